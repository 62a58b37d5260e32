"""inference_instance: what a unit's process was started from, and the readiness wait, with
systemd and /proc replaced by recorded answers (no unit on this machine is touched)."""
import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.onprem.deepseek.plugins.module_utils._inference_instance import started_from
from ansible_collections.onprem.deepseek.plugins.modules import inference_instance

RUNNING = {"LoadState": "loaded", "ActiveState": "active", "SubState": "running", "MainPID": "2637", "NeedDaemonReload": "no"}


@pytest.fixture
def node(monkeypatch):
    state = {"props": dict(RUNNING), "environ": b"DEEPSEEK_INFERENCE_DEPLOYED=aaa\0"}
    monkeypatch.setattr(inference_instance, "unit_properties", lambda unit: state["props"])
    # /proc/<MainPID>/environ of the recorded process
    monkeypatch.setattr(inference_instance, "started_from",
                        lambda props, variable: started_from(props, variable, read=lambda pid: state["environ"]))
    return state


def run(args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            inference_instance.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("deployed, outdated", [("DEEPSEEK_INFERENCE_DEPLOYED=aaa\n", False),
                                                ("DEEPSEEK_INFERENCE_DEPLOYED=bbb\n", True)])
def test_the_running_process_against_the_deployed_files(node, capsys, tmp_path, deployed, outdated):
    path = tmp_path / "main.deployed"
    path.write_text(deployed)
    code, out = run({"unit": "deepseek-inference-main.service", "deployed_file": str(path)}, capsys)
    assert code == 0 and out["changed"] is False
    assert (out["pid"], out["state"], out["loaded"], out["need_daemon_reload"]) == ("2637", "active", True, False)
    assert out["started_from"] == "aaa" and out["outdated"] is outdated
    assert "ready" not in out


def test_nothing_running_is_not_outdated(node, capsys, tmp_path):
    node["props"] = {"LoadState": "not-found", "ActiveState": "inactive", "SubState": "dead", "MainPID": "0", "NeedDaemonReload": "no"}
    code, out = run({"unit": "deepseek-inference-main.service", "deployed_file": str(tmp_path / "missing")}, capsys)
    assert code == 0 and out["loaded"] is False and out["started_from"] is None
    assert out["deployed"] is None and out["outdated"] is False


def test_the_wait_fails_with_the_reason(node, capsys, monkeypatch):
    monkeypatch.setattr(inference_instance, "wait_ready", lambda unit, url, timeout, interval: {
        "health": 0, "pid": "2637", "state": "activating", "sub": "auto-restart", "ready": False, "seconds": 3.0,
        "reason": "the unit left its start (activating/auto-restart, MainPID 2637 -> 0)"})
    code, out = run({"unit": "deepseek-inference-main.service", "url": "http://10.0.1.11:8000/health", "timeout": 60}, capsys)
    assert code == 1 and out["failed"] is True
    assert out["msg"] == ("deepseek-inference-main.service did not become ready "
                          "(the unit left its start (activating/auto-restart, MainPID 2637 -> 0))")
    assert out["reason"].startswith("the unit left its start") and out["ready"] is False


def test_the_wait_succeeds(node, capsys, monkeypatch):
    seen = []
    monkeypatch.setattr(inference_instance, "wait_ready", lambda unit, url, timeout, interval: seen.append(
        (unit, url, timeout, interval)) or {"health": 200, "pid": "2637", "state": "active", "sub": "running",
                                            "ready": True, "seconds": 96.4})
    code, out = run({"unit": "u.service", "url": "http://10.0.1.11:8000/health", "timeout": 900}, capsys)
    assert code == 0 and out["ready"] is True and out["health"] == 200
    assert seen == [("u.service", "http://10.0.1.11:8000/health", 900, 2)]


def test_bad_arguments(node, capsys):
    code, out = run({"unit": "u.service", "interval": 0}, capsys)
    assert code == 1 and "interval must be at least 1" in out["msg"]
