# -*- coding: utf-8 -*-
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils._dr_load import (
    DrLoadError,
    check_params,
    completion_ok,
    one_request,
    run_load,
    summarize,
    watch_output,
)

BASE = {"url": "https://entry.example/v1/chat/completions", "api_key": "dsk_a_b", "model": "deepseek-r1",
        "workers": 3, "stream_every": 4, "max_requests": 100, "duration_s": 1.0, "timeout_s": 2.0,
        "watch_interval_s": 0.05, "interval_s": 0.0}


def params(**changes):
    out = dict(BASE)
    out.update(changes)
    return out


@pytest.mark.parametrize("name, value", [
    ("workers", 1), ("workers", 64), ("stream_every", 0), ("stream_every", 1000), ("max_requests", 1),
    ("max_requests", 1000000), ("duration_s", 0.1), ("duration_s", 3600), ("timeout_s", 0.1), ("timeout_s", 600.0),
    ("watch_interval_s", 0.01), ("watch_interval_s", 60), ("interval_s", 0.0), ("interval_s", 60),
])
def test_check_params_accepts_each_bound(name, value):
    assert check_params(params(**{name: value}))[name] == value


@pytest.mark.parametrize("name, value, message", [
    ("workers", 0, "workers: must be an integer from 1 to 64, not 0"),
    ("workers", 65, "workers: must be an integer from 1 to 64, not 65"),
    ("workers", True, "workers: must be an integer from 1 to 64, not True"),
    ("stream_every", -1, "stream_every: must be an integer from 0 to 1000, not -1"),
    ("stream_every", 1001, "stream_every: must be an integer from 0 to 1000, not 1001"),
    ("max_requests", 0, "max_requests: must be an integer from 1 to 1000000, not 0"),
    ("max_requests", 1000001, "max_requests: must be an integer from 1 to 1000000, not 1000001"),
    ("duration_s", 0.09, "duration_s: must be a number from 0.1 to 3600.0, not 0.09"),
    ("duration_s", 3600.5, "duration_s: must be a number from 0.1 to 3600.0, not 3600.5"),
    ("duration_s", "5", "duration_s: must be a number from 0.1 to 3600.0, not '5'"),
    ("timeout_s", 0.05, "timeout_s: must be a number from 0.1 to 600.0, not 0.05"),
    ("timeout_s", 601, "timeout_s: must be a number from 0.1 to 600.0, not 601"),
    ("watch_interval_s", 0.001, "watch_interval_s: must be a number from 0.01 to 60.0, not 0.001"),
    ("watch_interval_s", 61, "watch_interval_s: must be a number from 0.01 to 60.0, not 61"),
    ("interval_s", -0.01, "interval_s: must be a number from 0.0 to 60.0, not -0.01"),
    ("interval_s", 60.5, "interval_s: must be a number from 0.0 to 60.0, not 60.5"),
    ("interval_s", True, "interval_s: must be a number from 0.0 to 60.0, not True"),
    ("url", "ftp://x/v1", "url: 'ftp://x/v1' is not an http or https URL"),
    ("url", "https:///v1", "url: 'https:///v1' is not an http or https URL"),
    ("url", None, "url: None is not an http or https URL"),
    ("api_key", "", "api_key: must not be empty"),
    ("model", "", "model: must not be empty"),
])
def test_check_params_refuses_naming_the_option(name, value, message):
    with pytest.raises(DrLoadError) as caught:
        check_params(params(**{name: value}))
    assert str(caught.value) == message


def test_completion_ok_needs_200_and_a_whole_answer():
    assert completion_ok(200, b'{"choices": [{"index": 0}]}', False)
    assert not completion_ok(200, b'{"choices": []}', False)
    assert not completion_ok(200, b'not json', False)
    assert not completion_ok(200, b'[1]', False)
    assert not completion_ok(500, b'{"choices": [{"index": 0}]}', False)
    assert completion_ok(200, b'data: {}\n\ndata: [DONE]\n\n', True)
    assert not completion_ok(200, b'data: {}\n\n', True)
    assert not completion_ok(429, b'data: [DONE]\n\n', True)


class Engine(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Engine.seen.append((self.headers.get("Authorization"), self.headers.get("Host"), body))
        if body["model"] != "deepseek-r1":
            raw, status, kind = b'{"error": "no"}', 404, "application/json"
        elif body.get("stream"):
            raw, status, kind = b'data: {"choices": []}\n\ndata: [DONE]\n\n', 200, "text/event-stream"
        else:
            raw, status, kind = b'{"choices": [{"index": 0}]}', 200, "application/json"
        self.send_response(status)
        self.send_header("X-Deepseek-Site", "site_b")
        self.send_header("X-Engine", "e2")
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture()
def engine():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Engine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Engine.seen = []
    yield "http://127.0.0.1:%d/v1/chat/completions" % server.server_address[1]
    server.shutdown()
    server.server_close()


def test_one_request_records_the_site_engine_and_result(engine):
    p = params(url=engine, engine_header="X-Engine", server_name="entry.example")
    sample, why = one_request(p, None, False)
    assert why is None
    assert sample["ok"] is True and sample["site"] == "site_b" and sample["engine"] == "e2" and sample["streamed"] is False
    assert sample["end"] >= sample["start"]
    sample, why = one_request(p, None, True)
    assert sample["ok"] is True and sample["streamed"] is True and why is None
    authorization, host, body = Engine.seen[0]
    assert authorization == "Bearer dsk_a_b" and host == "entry.example"
    assert body == {"model": "deepseek-r1", "max_tokens": 8, "messages": [{"role": "user", "content": "drill"}]}
    assert Engine.seen[1][2]["stream"] is True


def test_one_request_records_a_failure_without_site_or_engine(engine):
    sample, why = one_request(params(url=engine, model="other", engine_header="X-Engine"), None, False)
    assert sample["ok"] is False and sample["site"] is None and sample["engine"] is None and why == "status 404"
    sample, why = one_request(params(url="http://127.0.0.1:9/v1/chat/completions"), None, False)
    assert sample["ok"] is False and why == "ConnectionRefusedError" and "engine" not in sample


def test_run_load_against_a_loopback_engine(engine, tmp_path):
    result = run_load(params(url=engine, workers=2, stream_every=2, max_requests=10, duration_s=30.0))
    assert result["requests"] == 10 and result["failed_requests"] == 0
    assert [s["start"] for s in result["samples"]] == sorted(s["start"] for s in result["samples"])
    assert sum(1 for s in result["samples"] if s["streamed"]) == 5
    assert result["watched"] == []


def test_run_load_stops_at_the_stop_file(engine, tmp_path):
    stop = tmp_path / "stop"
    stop.write_text("")
    result = run_load(params(url=engine, stop_file=str(stop), duration_s=30.0))
    assert result["requests"] == 0


def test_run_load_streams_none_with_stream_every_zero_and_records_watch_changes():
    calls = []

    def request(p, context, streamed):
        calls.append(streamed)
        return {"start": float(len(calls)), "end": float(len(calls)), "ok": len(calls) != 2, "site": "a",
                "streamed": streamed}, None if len(calls) != 2 else "status 502"

    outputs = iter(["r1", "r1", "r2"] + ["r2"] * 1000)
    result = run_load(params(workers=1, stream_every=0, max_requests=5, duration_s=30.0, watch=["x"],
                             watch_interval_s=0.01), request=request, watch=lambda argv, timeout: next(outputs))
    assert calls == [False] * 5
    assert result["failed_requests"] == 1 and result["failures"] == [{"start": 2.0, "why": "status 502"}]
    assert [w["output"] for w in result["watched"]][:2] == ["r1", "r2"]


class FakeTime:
    """A clock that moves only when the load sleeps or a request takes time."""

    def __init__(self):
        self.now, self.slept = 100.0, []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(round(seconds, 6))
        self.now += seconds


def paced_run(interval_s, takes_s, ok=True, workers=1, max_requests=3, stop_after=None):
    fake, starts = FakeTime(), []

    def request(p, context, streamed):
        starts.append(fake.now)
        fake.now += takes_s
        return {"start": fake.now, "end": fake.now, "ok": ok, "site": "a", "streamed": streamed}, \
            None if ok else "ConnectionRefusedError"

    given = params(workers=workers, max_requests=max_requests, duration_s=30.0, stop_file=stop_after)
    if interval_s is None:
        del given["interval_s"]
    else:
        given["interval_s"] = interval_s
    result = run_load(given,
                      request=request, monotonic=fake.monotonic, sleep=fake.sleep)
    return result, starts, fake


@pytest.mark.parametrize("interval_s", [None, 0.0])
def test_without_an_interval_each_request_follows_at_once(interval_s):
    result, starts, fake = paced_run(interval_s, 0.03)
    assert result["requests"] == 3 and fake.slept == []
    assert [round(b - a, 6) for a, b in zip(starts, starts[1:])] == [0.03, 0.03]


def test_an_interval_spaces_the_starts_and_sleeps_in_slices():
    result, starts, fake = paced_run(0.4, 0.03)
    assert result["requests"] == 3
    assert [round(b - a, 6) for a, b in zip(starts, starts[1:])] == [0.4, 0.4]
    # 0.37 s left after each request: one slice of 0.25 s, then the rest.
    assert fake.slept[:2] == [0.25, 0.12]


def test_a_request_as_long_as_the_interval_or_longer_waits_no_more():
    for takes_s in (0.4, 0.5):
        result, starts, fake = paced_run(0.4, takes_s)
        assert result["requests"] == 3 and fake.slept == []


def test_a_failed_request_waits_the_interval_or_at_least_50_ms():
    result, starts, fake = paced_run(0.0, 0.01, ok=False)
    assert result["failed_requests"] == 3 and fake.slept == [0.05, 0.05, 0.05]
    result, starts, fake = paced_run(0.4, 0.01, ok=False)
    assert [round(b - a, 6) for a, b in zip(starts, starts[1:])] == [0.4, 0.4]


def test_the_stop_file_ends_a_long_interval(tmp_path):
    stop = tmp_path / "stop"
    fake, starts = FakeTime(), []

    def request(p, context, streamed):
        starts.append(fake.now)
        stop.write_text("")
        return {"start": fake.now, "end": fake.now, "ok": True, "site": "a", "streamed": streamed}, None

    result = run_load(params(workers=1, max_requests=5, duration_s=3000.0, interval_s=60.0, stop_file=str(stop)),
                      request=request, monotonic=fake.monotonic, sleep=fake.sleep)
    assert result["requests"] == 1 and fake.slept == []


def test_summarize_sorts_and_counts():
    samples = [{"start": 2, "ok": True}, {"start": 1, "ok": False}]
    out = summarize(samples, [{"start": 1, "why": "x"}], [])
    assert [s["start"] for s in out["samples"]] == [1, 2] and out["failed_requests"] == 1 and out["requests"] == 2


@pytest.fixture()
def tls_engine(tmp_path):
    """The loopback engine behind TLS, its certificate for entry.example from a throwaway CA."""
    import ssl
    import subprocess
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=entry.example",
                    "-addext", "subjectAltName=DNS:entry.example"], check=True, capture_output=True, timeout=30)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Engine)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Engine.seen = []
    yield "https://127.0.0.1:%d/v1/chat/completions" % server.server_address[1], str(cert)
    server.shutdown()
    server.server_close()


def test_run_load_over_tls_checks_the_certificate_for_the_server_name(tls_engine):
    url, ca = tls_engine
    result = run_load(params(url=url, ca_path=ca, server_name="entry.example", workers=1, max_requests=2,
                             max_tokens=3, duration_s=30.0))
    assert result["requests"] == 2 and result["failed_requests"] == 0
    assert Engine.seen[0][1] == "entry.example" and Engine.seen[0][2]["max_tokens"] == 3
    # The certificate does not name this host: every request fails, none is sent in clear.
    result = run_load(params(url=url, ca_path=ca, server_name="other.example", workers=1, max_requests=2, duration_s=30.0))
    assert result["failed_requests"] == 2 and {f["why"] for f in result["failures"]} == {"SSLCertVerificationError"}
    # Without the CA the system's trust store does not know the throwaway CA either.
    result = run_load(params(url=url, server_name="entry.example", workers=1, max_requests=1, duration_s=30.0))
    assert result["failed_requests"] == 1


def test_summarize_sorts_failures_by_start():
    out = summarize([], [{"start": 3, "why": "b"}, {"start": 1, "why": "a"}, {"start": 2, "why": "c"}], [])
    assert [f["why"] for f in out["failures"]] == ["a", "c", "b"]


def test_watch_output_is_the_stripped_output_or_none():
    assert watch_output(["printf", " via 10.0.0.1\n"], 5) == "via 10.0.0.1"
    assert watch_output(["sh", "-c", "echo partial; exit 3"], 5) is None
    assert watch_output(["/nonexistent/command"], 5) is None
    assert watch_output(["sleep", "5"], 0.2) is None
