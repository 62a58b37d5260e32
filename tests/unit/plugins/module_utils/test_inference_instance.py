"""What a running inference unit was started from, and the readiness wait, on recorded systemd states."""
import http.server
import subprocess
import sys
import threading

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils import _inference_instance as instance
from ansible_collections.onprem.deepseek.plugins.module_utils._inference_instance import (
    environ_value,
    file_value,
    outdated,
    started_from,
    wait_ready,
)

ENVIRON = b"HOME=/var/lib/deepseek-inference/main\0DEEPSEEK_INFERENCE_DEPLOYED=abc123\0VLLM_API_KEY=secret\0"
RUNNING = {"LoadState": "loaded", "ActiveState": "active", "SubState": "running", "MainPID": "2637"}


def test_environ_and_file_values():
    assert environ_value(ENVIRON, "DEEPSEEK_INFERENCE_DEPLOYED") == "abc123"
    assert environ_value(ENVIRON, "DEEPSEEK_INFERENCE") is None  # a prefix is not the variable
    assert environ_value(b"", "X") is None
    assert file_value("# comment\nDEEPSEEK_INFERENCE_DEPLOYED=abc123\n", "DEEPSEEK_INFERENCE_DEPLOYED") == "abc123"
    assert file_value('X="quoted"\n', "X") == "quoted"
    assert file_value("", "X") is None
    assert file_value("X\nX=1\n", "X") == "1"  # a line without "=" names no value
    assert file_value("X=a=b\n", "X") == "a=b"
    assert file_value('X="Xa"\n', "X") == "Xa"  # only the quotes are stripped


def test_environ_value_replaces_bytes_that_are_not_utf8():
    assert environ_value(b"A=1\0X=caf\xe9\0", "X") == "caf\ufffd"


def test_read_environ_reads_the_environment_a_process_started_with():
    child = subprocess.Popen([sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             env={"DEEPSEEK_INFERENCE_DEPLOYED": "abc123"})
    try:
        assert child.stdout.readline() == b"up\n"  # past exec: its environment is the new one
        assert environ_value(instance.read_environ(child.pid), "DEEPSEEK_INFERENCE_DEPLOYED") == "abc123"
    finally:
        child.communicate(b"", timeout=10)


def test_started_from_reads_the_main_process_environment():
    seen = []

    def read(pid):
        seen.append(pid)
        return ENVIRON

    assert started_from(RUNNING, "DEEPSEEK_INFERENCE_DEPLOYED", read=read) == "abc123"
    assert seen == [2637]
    assert started_from(dict(RUNNING, MainPID="0", ActiveState="inactive"), "X", read=read) is None
    assert started_from(dict(RUNNING, ActiveState="failed"), "X", read=read) is None
    assert started_from(dict(RUNNING, MainPID="0"), "X", read=read) is None  # active, but no main process
    assert started_from({"ActiveState": "active"}, "X", read=read) is None
    assert seen == [2637]
    for state in ("reloading", "activating"):
        assert started_from(dict(RUNNING, ActiveState=state), "DEEPSEEK_INFERENCE_DEPLOYED", read=read) == "abc123"
    assert started_from(dict(RUNNING, MainPID="1"), "DEEPSEEK_INFERENCE_DEPLOYED", read=read) == "abc123"
    assert seen == [2637, 2637, 2637, 1]

    def gone(pid):
        raise OSError(3, "No such process")

    assert started_from(RUNNING, "DEEPSEEK_INFERENCE_DEPLOYED", read=gone) is None


@pytest.mark.parametrize("running, deployed, restart", [
    ("abc", "abc", False),
    ("abc", "def", True),      # the files changed since the process started (an interrupted run)
    ("abc", None, True),       # the fingerprint file is gone
    (None, "abc", False),      # nothing runs: a start brings the deployed files in
])
def test_outdated(running, deployed, restart):
    assert outdated(running, deployed) is restart


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


UNIT = "deepseek-inference-main.service"
URL = "http://10.0.1.11:8000/health"


def run_wait(states, statuses, timeout=10, interval=2.0):
    """wait_ready over a list of systemctl states and /health answers (an exception = no answer)."""
    clock = Clock()
    states, statuses = list(states), list(statuses)
    calls = {"status": 0}

    def props(unit):
        assert unit == UNIT
        return states.pop(0) if len(states) > 1 else states[0]

    def status(url):
        assert url == URL
        calls["status"] += 1
        answer = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    result = wait_ready(UNIT, URL, timeout, props=props, status=status, clock=clock, sleep=clock.sleep,
                        interval=interval)
    return result, calls["status"]


def test_ready_after_the_engine_loads():
    result, calls = run_wait([RUNNING], [OSError("Connection refused"), 503, 200])
    assert calls == 3
    assert result == {"health": 200, "pid": "2637", "state": "active", "sub": "running", "seconds": 4.0,
                      "ready": True, "last_error": "Connection refused"}


def test_seconds_keep_one_decimal():
    result, _calls = run_wait([RUNNING], [503, 200], interval=0.25)
    assert result["seconds"] == 0.2  # 0.25 s rounded half to even


def test_a_long_error_is_cut_to_200_characters():
    result, _calls = run_wait([RUNNING], [OSError("x" * 300), 200])
    assert result["last_error"] == "x" * 200 and result["health"] == 200


def test_a_start_that_exits_stops_the_wait_early():
    restarting = {"LoadState": "loaded", "ActiveState": "activating", "SubState": "auto-restart", "MainPID": "0"}
    result, calls = run_wait([RUNNING, RUNNING, RUNNING, restarting], [OSError("Connection refused")], timeout=900)
    assert calls == 2
    assert result == {"health": 0, "pid": "2637", "state": "activating", "sub": "auto-restart", "seconds": 4.0,
                      "ready": False, "last_error": "Connection refused",
                      "reason": "the unit left its start (activating/auto-restart, MainPID 2637 -> 0)"}


def test_a_replaced_main_process_stops_the_wait():
    result, calls = run_wait([RUNNING, RUNNING, dict(RUNNING, MainPID="2700")], [503])
    assert calls == 1
    assert result["ready"] is False and "MainPID 2637 -> 2700" in result["reason"]


def test_a_unit_that_never_started_is_not_waited_for():
    dead = {"LoadState": "not-found", "ActiveState": "inactive", "SubState": "dead", "MainPID": "0"}
    result, calls = run_wait([dead], [200])
    assert calls == 0
    assert result == {"health": 0, "pid": "0", "state": "inactive", "sub": "dead", "seconds": 0.0, "ready": False,
                      "reason": "the unit left its start (inactive/dead, MainPID 0 -> 0)"}


@pytest.mark.parametrize("pid", ["0", None])
def test_an_active_unit_without_a_main_process_is_not_waited_for(pid):
    state = {"ActiveState": "active", "SubState": "exited"}
    if pid is not None:
        state["MainPID"] = pid
    result, calls = run_wait([state], [200])
    assert calls == 0 and result["ready"] is False
    assert result["reason"] == "the unit left its start (active/exited, MainPID %s -> %s)" % (pid, pid)


def test_no_answer_within_the_timeout():
    result, calls = run_wait([RUNNING], [503], timeout=10)
    assert result["ready"] is False and result["reason"] == "no /health 200 within 10 s"
    assert calls == 7 and result["health"] == 503  # every 2 s, one after the deadline


def test_unit_properties_parses_systemctl_show(monkeypatch):
    class Done:
        stdout = ("LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=2637\nNeedDaemonReload=no\n"
                  "StatusText=ready: key=value\n")

    seen = []

    def run(argv, **kwargs):
        seen.append(argv)
        assert kwargs == {"capture_output": True, "text": True, "check": True}
        return Done()

    props = instance.unit_properties("deepseek-inference-main.service", run=run)
    assert props == dict(RUNNING, NeedDaemonReload="no", StatusText="ready: key=value")
    assert seen == [["systemctl", "show", "--property=LoadState,ActiveState,SubState,MainPID,NeedDaemonReload",
                     "deepseek-inference-main.service"]]


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_http_status_on_loopback_ignores_proxies(monkeypatch):
    # A proxy in the environment must not be used for the instance's own address.
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    try:
        assert instance.http_status("http://127.0.0.1:%d/health" % server.server_port, timeout=5) == 200
    finally:
        thread.join(10)
        server.server_close()


def test_http_status_passes_its_timeout_five_seconds_by_default():
    seen = []

    class Answer:
        status = 204

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class Opener:
        def open(self, url, timeout=None):
            seen.append((url, timeout))
            return Answer()

    assert instance.http_status("http://10.0.1.11:8000/health", opener=Opener()) == 204
    assert instance.http_status("http://10.0.1.11:8000/health", timeout=1, opener=Opener()) == 204
    assert seen == [("http://10.0.1.11:8000/health", 5), ("http://10.0.1.11:8000/health", 1)]


def test_the_wait_polls_every_two_seconds_by_default():
    clock = Clock()
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock.sleep(seconds)

    answers = [503, 200]
    result = wait_ready(UNIT, URL, 10, props=lambda unit: RUNNING, status=lambda url: answers.pop(0), clock=clock,
                        sleep=sleep)
    assert result["ready"] is True and slept == [2.0]
