"""What a running inference unit was started from, and the readiness wait, on recorded systemd states."""
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


def test_started_from_reads_the_main_process_environment():
    seen = []

    def read(pid):
        seen.append(pid)
        return ENVIRON

    assert started_from(RUNNING, "DEEPSEEK_INFERENCE_DEPLOYED", read=read) == "abc123"
    assert seen == [2637]
    assert started_from(dict(RUNNING, MainPID="0", ActiveState="inactive"), "X", read=read) is None
    assert started_from(dict(RUNNING, ActiveState="failed"), "X", read=read) is None

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
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def run_wait(states, statuses, timeout=10):
    """wait_ready over a list of systemctl states and /health answers (an exception = no answer)."""
    clock = Clock()
    states, statuses = list(states), list(statuses)
    calls = {"status": 0}

    def props(unit):
        return states.pop(0) if len(states) > 1 else states[0]

    def status(url):
        calls["status"] += 1
        answer = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    result = wait_ready("deepseek-inference-main.service", "http://10.0.1.11:8000/health", timeout,
                        props=props, status=status, clock=clock, sleep=clock.sleep)
    return result, calls["status"]


def test_ready_after_the_engine_loads():
    result, calls = run_wait([RUNNING], [OSError("Connection refused"), 503, 200])
    assert result["ready"] is True and result["health"] == 200 and calls == 3
    assert result["pid"] == "2637" and result["state"] == "active" and result["seconds"] == 4.0
    assert "reason" not in result


def test_a_start_that_exits_stops_the_wait_early():
    restarting = {"LoadState": "loaded", "ActiveState": "activating", "SubState": "auto-restart", "MainPID": "0"}
    result, calls = run_wait([RUNNING, RUNNING, RUNNING, restarting], [OSError("Connection refused")], timeout=900)
    assert result["ready"] is False and calls == 2
    assert result["reason"] == "the unit left its start (activating/auto-restart, MainPID 2637 -> 0)"
    assert result["last_error"] == "Connection refused" and result["seconds"] < 10


def test_a_replaced_main_process_stops_the_wait():
    result, calls = run_wait([RUNNING, RUNNING, dict(RUNNING, MainPID="2700")], [503])
    assert calls == 1
    assert result["ready"] is False and "MainPID 2637 -> 2700" in result["reason"]


def test_a_unit_that_never_started_is_not_waited_for():
    dead = {"LoadState": "not-found", "ActiveState": "inactive", "SubState": "dead", "MainPID": "0"}
    result, calls = run_wait([dead], [200])
    assert result["ready"] is False and calls == 0 and result["reason"].startswith("the unit left its start")


def test_no_answer_within_the_timeout():
    result, calls = run_wait([RUNNING], [503], timeout=10)
    assert result["ready"] is False and result["reason"] == "no /health 200 within 10 s"
    assert calls == 7 and result["health"] == 503  # every 2 s, one after the deadline


def test_unit_properties_parses_systemctl_show(monkeypatch):
    class Done:
        stdout = "LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=2637\nNeedDaemonReload=no\n"

    seen = []

    def run(argv, **kwargs):
        seen.append(argv)
        return Done()

    props = instance.unit_properties("deepseek-inference-main.service", run=run)
    assert props == dict(RUNNING, NeedDaemonReload="no")
    assert seen == [["systemctl", "show", "--property=LoadState,ActiveState,SubState,MainPID,NeedDaemonReload",
                     "deepseek-inference-main.service"]]
