"""main() of onprem.deepseek.storage_devices with run_command, sysfs and /dev/disk mocked."""
import json
from pathlib import Path

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.onprem.deepseek.plugins.modules import storage_devices

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "storage"


class CommandLog(object):
    """Answers lsblk and wipefs from a fixture directory and records every call."""

    def __init__(self, scenario, lsblk_rc=0):
        self.dir = FIXTURES / scenario
        self.wipefs = json.loads((self.dir / "wipefs.json").read_text())
        self.lsblk_rc = lsblk_rc
        self.calls = []

    def __call__(self, module, args, **kwargs):
        self.calls.append(list(args))
        assert kwargs.get("environ_update", {}).get("LC_ALL") == "C"
        if args[0].endswith("lsblk"):
            if self.lsblk_rc:
                return self.lsblk_rc, "", "lsblk: failed to access sysfs directory: /sys/dev/block"
            return 0, (self.dir / "lsblk.json").read_text(), ""
        if args[0].endswith("wipefs"):
            assert args[1:3] == ["--no-act", "--json"]
            probe = self.wipefs[args[3].rsplit("/", 1)[-1]]
            return probe["rc"], probe["stdout"], probe["stderr"]
        raise AssertionError("unexpected command %r" % (args,))


def run_main(monkeypatch, capsys, scenario, args, lsblk_rc=0):
    log = CommandLog(scenario, lsblk_rc)

    def run_command(self, args, **kwargs):
        return log(self, args, **kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name)
    monkeypatch.setattr(storage_devices, "read_sysfs_facts",
                        lambda knames, root: json.loads((FIXTURES / scenario / "sysfs.json").read_text()))
    monkeypatch.setattr(storage_devices, "read_disk_links",
                        lambda root: json.loads((FIXTURES / scenario / "links.json").read_text()))
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            storage_devices.main()
    out = json.loads(capsys.readouterr().out)
    return exc.value.code, out, log


def test_main_classifies_qemu_lab(monkeypatch, capsys):
    code, out, log = run_main(monkeypatch, capsys, "qemu_lab", {
        "wipe_devices": ["/dev/disk/by-id/ata-QEMU_HARDDISK_QM00007"],
        "policy": {"overrides": [{"match": {"serial": "SASSSD02"}, "tier": "exclude"}]},
    })
    assert code == 0
    assert out["changed"] is False
    assert [e["device"] for e in out["tiers"]["hot"]] == ["/dev/nvme0n1", "/dev/nvme1n1"]
    assert [e["device"] for e in out["tiers"]["warm"]] == ["/dev/sda"]
    assert [e["device"] for e in out["tiers"]["cold"]] == ["/dev/sdc", "/dev/sdd"]
    assert [w["device"] for w in out["wipe_allowed"]] == ["/dev/sdd"]
    excluded = dict((e["device"], e["reasons"]) for e in out["excluded"])
    assert excluded["/dev/sdb"] == ["excluded by policy override #0 (serial=SASSSD02)"]
    assert "/dev/vda" in excluded and "/dev/sr0" in excluded
    assert log.calls[0] == ["/usr/bin/lsblk", "--json", "--bytes", "--output-all"]
    probed = [c[3] for c in log.calls[1:]]
    assert probed == ["/dev/vda", "/dev/nvme0n1", "/dev/nvme1n1", "/dev/sda", "/dev/sdb", "/dev/sdc",
                      "/dev/sdd", "/dev/sde", "/dev/sdf", "/dev/sdg", "/dev/sdh"]  # not sr0 (type rom)


def test_main_check_mode_real_vm(monkeypatch, capsys):
    code, out, log = run_main(monkeypatch, capsys, "vm_debian12_real", {"_ansible_check_mode": True})
    assert code == 0 and out["changed"] is False
    assert out["tiers"] == {"hot": [], "warm": [], "cold": []}
    vda = [d for d in out["devices"] if d["kname"] == "vda"][0]
    assert vda["probe_error"].endswith("Operation not permitted")
    assert vda["os_disk"] is True
    assert [c[-1] for c in log.calls] == ["--output-all", "/dev/vda"]  # zram0 is never probed


def test_main_rejects_kernel_name_in_wipe_devices(monkeypatch, capsys):
    code, out, log = run_main(monkeypatch, capsys, "qemu_lab", {"wipe_devices": ["/dev/sdb"]})
    assert code == 1
    assert out["failed"] is True
    assert out["msg"].startswith("wipe_devices[0]: '/dev/sdb' is a kernel device name")
    assert log.calls == []  # validation happens before anything runs


def test_main_rejects_bad_override(monkeypatch, capsys):
    code, out, _log = run_main(monkeypatch, capsys, "qemu_lab", {
        "policy": {"overrides": [{"match": {}, "tier": "hot"}]}})
    assert code == 1
    assert out["msg"] == "policy.overrides[0].match: give at least one of serial, wwn, by_path, by_id"


def test_main_reports_lsblk_failure(monkeypatch, capsys):
    code, out, _log = run_main(monkeypatch, capsys, "qemu_lab", {}, lsblk_rc=32)
    assert code == 1
    assert out["msg"] == "lsblk failed (rc 32): lsblk: failed to access sysfs directory: /sys/dev/block"
