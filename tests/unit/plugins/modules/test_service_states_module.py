"""main() of onprem.deepseek.service_states with run_command mocked by the recorded listings."""
import json
from pathlib import Path

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.onprem.deepseek.plugins.modules import service_states

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "systemd"


TIMED_OUT = "Failed to list units: Connection timed out"


def run_main(monkeypatch, capsys, args, rc=0, timeouts=0):
    """main() with run_command answering the recorded listings, after `timeouts` timed-out calls."""
    calls = []

    def run_command(self, argv, **kwargs):
        calls.append((list(argv), kwargs.get("environ_update")))
        if rc:
            return rc, "", "System has not been booted with systemd as init system (PID 1). Can't operate."
        if len(calls) <= timeouts:
            return 1, "", TIMED_OUT
        name = "list-units" if argv[1] == "list-units" else "list-unit-files"
        return 0, (FIXTURES / ("bookworm-nspawn-%s.txt" % name)).read_text(), ""

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            service_states.main()
    return exc.value.code, json.loads(capsys.readouterr().out), calls


def test_two_listings_in_the_c_locale(monkeypatch, capsys):
    code, out, calls = run_main(monkeypatch, capsys, {"pattern": r"^ssh\.service$"})
    assert code == 0 and out["changed"] is False
    assert out["services"] == {"ssh.service": {"name": "ssh.service", "state": "stopped", "status": "failed",
                                               "source": "systemd"}}
    assert [c[0][1] for c in calls] == ["list-units", "list-unit-files"]
    assert all(c[0][0] == "/usr/bin/systemctl" and c[1] == {"LC_ALL": "C", "SYSTEMD_BUS_TIMEOUT": "120s"} for c in calls)


def test_a_timed_out_listing_is_tried_again(monkeypatch, capsys):
    code, out, calls = run_main(monkeypatch, capsys, {"pattern": r"^ssh\.service$"}, timeouts=2)
    assert code == 0 and "ssh.service" in out["services"]
    assert [c[0][1] for c in calls] == ["list-units"] * 3 + ["list-unit-files"]


def test_three_timeouts_fail_and_say_why(monkeypatch, capsys):
    code, out, calls = run_main(monkeypatch, capsys, {}, timeouts=3)
    assert code == 1 and out["msg"].startswith("systemctl list-units failed (rc 1): " + TIMED_OUT)
    assert len(calls) == 3


def test_without_systemd_it_fails_and_says_why(monkeypatch, capsys):
    code, out, calls = run_main(monkeypatch, capsys, {}, rc=1)
    assert code == 1 and out["failed"]
    assert len(calls) == 1
    assert "list-units failed (rc 1)" in out["msg"] and "needs systemd" in out["msg"]


def test_bad_pattern_is_refused_before_systemctl_runs(monkeypatch, capsys):
    code, out, calls = run_main(monkeypatch, capsys, {"pattern": "deepseek-(["})
    assert code == 1 and out["msg"].startswith("pattern: not a regular expression")
    assert calls == []
