"""tools/bench/gateway.py's reading of wrk output, fed with recorded wrk runs.

fixtures/wrk/recorded_*.txt are wrk 4.1 (Debian) outputs saved as they were printed: the
benchmark's own HTTPS run against the gateway, and runs against a loopback nginx answering 200,
404 and 444 (connection closed), a server answering after 1.2 s, and one that never answers.
"""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "bench" / "gateway.py"
RECORDED = Path(__file__).resolve().parent / "fixtures" / "wrk"

pytestmark = pytest.mark.skipif(not TOOL.exists(),
                                reason="the built collection ships no tools/: checked in the source tree")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gateway", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def recorded(name):
    return (RECORDED / ("recorded_%s.txt" % name)).read_text()


def test_gateway_https_run(bench):
    figures = bench.parse_wrk(recorded("gateway_https"))
    assert figures == {"qps": 5020.64, "p50_ms": 5.11, "p99_ms": 82.41, "avg_ms": 10.45, "requests": 15364,
                       "duration_s": pytest.approx(3.06), "non2xx": 0, "errors": 0}
    assert bench.refusal(figures) is None


def test_microseconds_become_milliseconds(bench):
    figures = bench.parse_wrk(recorded("http_ok"))
    assert figures["p50_ms"] == pytest.approx(0.285)
    assert (figures["qps"], figures["p99_ms"], figures["requests"]) == (29597.76, 40.62, 89170)
    assert bench.refusal(figures) is None


def test_seconds_with_trailing_blanks(bench):
    figures = bench.parse_wrk(recorded("http_slow_seconds"))
    assert (figures["p50_ms"], figures["p99_ms"], figures["avg_ms"]) == (1200.0, 1300.0, 1230.0)
    assert (figures["requests"], figures["qps"]) == (6, 1.49)


def test_non_2xx_answers_refuse_the_figure(bench):
    figures = bench.parse_wrk(recorded("http_404"))
    assert (figures["non2xx"], figures["requests"], figures["errors"]) == (40326, 40326, 0)
    assert bench.refusal(figures) == "40326 answers of 400 or more (wrk)"


def test_socket_errors_refuse_the_figure(bench):
    figures = bench.parse_wrk(recorded("http_closed_444"))
    assert (figures["errors"], figures["requests"]) == (14121, 0)
    assert bench.refusal(figures) == "14121 socket errors, no request completed"


def test_no_answer_at_all_is_refused(bench):
    figures = bench.parse_wrk(recorded("http_no_answer"))
    assert (figures["requests"], figures["errors"], figures["non2xx"]) == (0, 0, 0)
    assert bench.refusal(figures) == "no request completed"


def test_output_without_latency_distribution_is_an_error(bench):
    with pytest.raises(ValueError, match="50%"):
        bench.parse_wrk(recorded("http_without_latency"))


def test_not_wrk_output_is_an_error(bench):
    with pytest.raises(ValueError, match="requests line"):
        bench.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_log_statuses_refuse_the_figure(bench):
    figures = dict(bench.parse_wrk(recorded("gateway_https")), logged=15370, log_non2xx=0, log_499=6)
    # 499s for the requests wrk left in flight when it stopped (logged beyond its count) are fine.
    assert bench.refusal(figures) is None
    assert bench.refusal(dict(figures, log_499=7)) == "7 requests given up by wrk (499) while it ran"
    assert bench.refusal(dict(figures, log_non2xx=2)) == "2 non-2xx statuses in the log"


@pytest.mark.parametrize("logged, ok", [(15363, False), (15364, True), (15396, True), (15397, False)])
def test_audit_lines_per_request(bench, logged, ok):
    assert bench.audit_matches(logged, 15364, 32) is ok


@pytest.mark.parametrize("text, ms", [("812.00us", 0.812), ("1.20ms", 1.2), ("2.00s", 2000.0), ("1.00m", 60000.0)])
def test_wrk_times(bench, text, ms):
    assert bench.wrk_time_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["", "1.2", "-nan%", "3 ms"])
def test_not_wrk_times(bench, text):
    with pytest.raises(ValueError):
        bench.wrk_time_ms(text)


def test_duration_is_bounded(bench):
    assert bench.duration_s("10") == bench.duration_s("10s") == 10.0
    assert bench.wrk_duration("5m") == "5m"
    for text in ("6m", "0s", "ten"):
        with pytest.raises(Exception, match="duration"):
            bench.wrk_duration(text)


class StandInHarness:
    """What render_production takes from tests/gateway's harness: paths and free ports."""

    LUA_DIR = Path("/stand-in/lua")
    _next = [20000]

    @staticmethod
    def module_dir():
        return "/stand-in/modules"

    @classmethod
    def free_port(cls):
        cls._next[0] += 1
        return cls._next[0]


def test_the_benchmark_renders_the_roles_current_template(bench, tmp_path):
    # The benchmark renders nginx.conf.j2 with the role's defaults and its own values, not
    # Ansible: a template change that needs a role variable it lacks breaks it here first.
    conf, variables = bench.render_production(StandInHarness, tmp_path, {"standin": 18080}, set(),
                                              tmp_path / "policy.json", tmp_path / "splits.json")
    assert "server 127.0.0.1:18080" in conf and str(tmp_path / "audit.log") in conf
    assert variables["gateway_router"] == "nginx" and "/router/" not in conf
    assert bench.tls_lines(conf)
