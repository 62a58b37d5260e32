"""Storage discovery and tier classification on recorded and constructed lsblk/wipefs/sysfs inputs."""
import json
from pathlib import Path

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils._storage import (
    StorageError,
    classify_devices,
    parse_lsblk_json,
    parse_wipefs_result,
    probe_targets,
    read_disk_links,
    read_sysfs_facts,
    validate_policy,
    validate_wipe_id,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "storage"


def _load(scenario, name):
    path = FIXTURES / scenario / name
    return json.loads(path.read_text()) if path.exists() else None


def classify(scenario, policy=None, wipe_devices=None, min_size_gib=10, include_types=None, probes="fixture"):
    devices = parse_lsblk_json((FIXTURES / scenario / "lsblk.json").read_text())
    if probes == "fixture":
        probes = dict((k, parse_wipefs_result(**v)) for k, v in (_load(scenario, "wipefs.json") or {}).items())
    pol = validate_policy(policy or {}, wipe_devices, min_size_gib, include_types)
    return classify_devices(devices, sysfs=_load(scenario, "sysfs.json"), links=_load(scenario, "links.json"),
                            probes=probes, policy=pol)


def by_name(result):
    return dict((d["kname"], d) for d in result["devices"])


def tier_devices(result):
    return dict((tier, [e["device"] for e in entries]) for tier, entries in result["tiers"].items())


# --- parsing across util-linux versions -------------------------------------------------------

def test_parse_real_vm_lsblk_2_38():
    devices = parse_lsblk_json((FIXTURES / "vm_debian12_real" / "lsblk.json").read_text())
    assert [d["kname"] for d in devices] == ["zram0", "vda"]
    vda = devices[1]
    assert vda["size"] == 274877906944
    assert vda["rota"] is True and vda["rm"] is False
    assert vda["tran"] is None and vda["fstype"] is None
    assert vda["mountpoints"] == ["/"]
    assert devices[0]["mountpoints"] == []  # [null] in 2.38


def test_parse_util_linux_2_32_strings_without_path():
    devices = parse_lsblk_json((FIXTURES / "rhel8_util_linux_232" / "lsblk.json").read_text())
    sda, sdb, nvme = devices
    assert sda["path"] == "/dev/sda"
    assert sdb["size"] == 16000900661248 and sdb["rota"] is True
    assert nvme["rota"] is False and nvme["tran"] is None
    root = sda["children"][1]["children"][0]
    assert (root["name"], root["kname"], root["mountpoints"]) == ("rhel-root", "dm-0", ["/"])


def test_parse_util_linux_2_34_mountpoint_string():
    devices = parse_lsblk_json((FIXTURES / "gpu_server_8nvme" / "lsblk.json").read_text())
    sda = devices[0]
    assert sda["children"][0]["mountpoints"] == ["/boot/efi"]
    assert sda["children"][1]["children"][0]["mountpoints"] == ["/"]
    assert devices[1]["children"][0]["mountpoints"] == []


@pytest.mark.parametrize("text", ["", "not json", "[]", '{"devices": []}', '{"blockdevices": [{"type": "disk"}]}'])
def test_parse_lsblk_rejects_garbage(text):
    with pytest.raises(StorageError):
        parse_lsblk_json(text)


def test_parse_lsblk_rejects_human_sizes():
    with pytest.raises(StorageError, match="--bytes"):
        parse_lsblk_json('{"blockdevices": [{"name": "sda", "type": "disk", "size": "1.8T"}]}')


def test_parse_recorded_wipefs_outputs():
    rec = FIXTURES / "wipefs_recorded"
    ext4 = parse_wipefs_result(0, (rec / "ext4.json").read_text())
    assert ext4 == {"error": None, "signatures": [{
        "type": "ext4", "offset": "0x438", "uuid": "1f07583b-eb25-4d8b-b286-4034fbdcd639", "label": "archive01"}]}
    gpt = parse_wipefs_result(0, (rec / "gpt.json").read_text())
    assert [(s["type"], s["offset"]) for s in gpt["signatures"]] == [
        ("gpt", "0x200"), ("gpt", "0x3fffe00"), ("PMBR", "0x1fe")]
    assert parse_wipefs_result(0, (rec / "md12.json").read_text())["signatures"][0]["type"] == "linux_raid_member"
    assert parse_wipefs_result(0, (rec / "lvm.json").read_text())["signatures"][0]["offset"] == "0x218"
    assert parse_wipefs_result(0, (rec / "luks1.json").read_text())["signatures"][0]["type"] == "crypto_LUKS"
    assert parse_wipefs_result(0, (rec / "sw.json").read_text())["signatures"][0]["type"] == "swap"
    assert parse_wipefs_result(0, (rec / "empty.json").read_text()) == {"signatures": [], "error": None}
    assert parse_wipefs_result(0, "") == {"signatures": [], "error": None}


def test_parse_wipefs_failure_is_an_error():
    probe = _load("vm_debian12_real", "wipefs.json")["vda"]
    parsed = parse_wipefs_result(**probe)
    assert parsed["error"] == "wipefs: error: /dev/vda: probing initialization failed: Operation not permitted"
    assert parse_wipefs_result(0, "{oops")["error"].startswith("cannot parse wipefs JSON output")


# --- classification of every fixture ----------------------------------------------------------

def test_real_vm_has_no_candidate():
    result = classify("vm_debian12_real")
    assert tier_devices(result) == {"hot": [], "warm": [], "cold": []}
    devs = by_name(result)
    assert devs["vda"]["os_disk"] is True
    assert devs["vda"]["transport"] == "virtio"  # from the sysfs path, lsblk TRAN is empty
    assert devs["vda"]["reasons"] == [
        "operating system disk: / on vda",
        "no stable identifier (no by-id or by-path link, serial or WWN)",
        "signature probe failed: wipefs: error: /dev/vda: probing initialization failed: Operation not permitted",
    ]
    assert devs["zram0"]["reasons"][0] == "memory-backed device (zram0)"
    assert [e["device"] for e in result["excluded"]] == ["/dev/vda", "/dev/zram0"]


def test_qemu_lab_tiers():
    result = classify("qemu_lab")
    assert tier_devices(result) == {
        "hot": ["/dev/nvme0n1", "/dev/nvme1n1"],
        "warm": ["/dev/sda", "/dev/sdb"],
        "cold": ["/dev/sdc"],
    }
    hot0 = result["tiers"]["hot"][0]
    assert hot0["serial"] == "deadbeef01"
    assert hot0["id"].startswith("/dev/disk/by-id/nvme-nvme.1b36-")
    assert "/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_deadbeef01" in hot0["by_id"]
    assert hot0["by_path"] == ["/dev/disk/by-path/pci-0000:00:05.0-nvme-1"]
    warm0 = result["tiers"]["warm"][0]
    assert (warm0["id"], warm0["wwn"]) == ("/dev/disk/by-id/wwn-0x5000c500a1b2c301", "0x5000c500a1b2c301")
    assert result["tier_capacity_bytes"] == {"hot": 400 * 1024 ** 3, "warm": 1600 * 1024 ** 3, "cold": 4000787030016}
    assert by_name(result)["sdc"]["reasons"] == [
        "rotational disk (transport sata): cold tier",
        "no partitions, holders, mounts or signatures",
        "size 3726.02 GiB",
    ]


def test_qemu_lab_exclusion_reasons():
    devs = by_name(classify("qemu_lab"))
    vda = devs["vda"]
    assert vda["tier"] is None and vda["os_disk"] is True
    assert vda["reasons"][0] == ("operating system disk: /boot/efi on vda1, /boot on vda2, / on debian--vg-root, "
                                 "[SWAP] on debian--vg-swap_1")
    assert vda["partitions"] == ["vda1", "vda2", "vda3"]
    assert vda["stable_id"] == "/dev/disk/by-path/pci-0000:00:04.0"  # virtio without serial: by-path only
    # md RAID member, assembled
    assert devs["sde"]["reasons"][0] == "in use: held by md0 (raid1)"
    assert devs["sdf"]["holders"] == [{"name": "md0", "type": "raid1"}]
    # LVM PV with a mounted LV
    assert devs["sdg"]["reasons"][:2] == ["in use: mounted /srv/scratch on vg_data-scratch",
                                          "in use: held by vg_data-scratch (lvm)"]
    assert devs["sdg"]["reasons"][2].startswith("carries signatures: LVM2_member at 0x218")
    # closed LUKS container: data, not in use
    assert devs["sdh"]["reasons"] == [
        "carries signatures: crypto_LUKS at 0x0 (uuid 6f1c2a3b-8d4e-4f60-9a7b-1c2d3e4f5a6b)",
        "existing data is never wiped unless the disk is named in wipe_devices by by-id, by-path, serial or WWN",
    ]
    assert devs["sr0"]["reasons"][:2] == ["type rom is not in include_types (disk)", "removable device"]


def test_prefilled_ext4_disk_is_never_chosen_without_wipe_id():
    result = classify("qemu_lab")
    sdd = by_name(result)["sdd"]
    assert sdd["tier"] is None
    assert sdd["reasons"][0] == ("carries signatures: ext4 at 0x438 "
                                 "(label archive01, uuid 1f07583b-eb25-4d8b-b286-4034fbdcd639)")
    assert all("/dev/sdd" not in devices for devices in tier_devices(result).values())
    assert result["wipe_allowed"] == []
    # A policy override alone does not make it usable.
    result = classify("qemu_lab", policy={"overrides": [{"match": {"serial": "QM00007"}, "tier": "cold"}]})
    assert by_name(result)["sdd"]["tier"] is None
    assert result["wipe_allowed"] == []
    # Named for another disk: still untouched.
    result = classify("qemu_lab", wipe_devices=["SASSSD04"])
    assert [w["device"] for w in result["wipe_allowed"]] == ["/dev/sdh"]
    assert by_name(result)["sdd"]["tier"] is None


def test_lsblk_fstype_alone_blocks_when_probe_missing():
    # Without wipefs output the lsblk FSTYPE still keeps the disk out.
    result = classify("qemu_lab", probes=None)
    assert by_name(result)["sdd"]["tier"] is None
    assert "lsblk reports FSTYPE ext4" in by_name(result)["sdd"]["reasons"]
    # A probes dict lacking the device counts as not probed.
    result = classify("qemu_lab", probes={})
    assert by_name(result)["sdc"]["tier"] is None
    assert "signatures were not probed" in by_name(result)["sdc"]["reasons"]


def test_gpu_server_layout():
    result = classify("gpu_server_8nvme")
    tiers = tier_devices(result)
    assert tiers["hot"] == ["/dev/nvme%dn1" % i for i in range(7)]
    assert tiers["warm"] == ["/dev/sdc", "/dev/sdd", "/dev/sde", "/dev/sdf"]
    assert tiers["cold"] == ["/dev/sd" + c for c in "ghijklmnopqr"]
    assert result["tier_capacity_bytes"]["cold"] == 12 * 20000588955648  # 240 TB >= 100 TB
    devs = by_name(result)
    assert devs["sda"]["reasons"][:2] == ["operating system disk: /boot/efi on sda1, / on md0",
                                          "in use: held by md0 (raid1)"]
    assert devs["sdb"]["reasons"][0] == "operating system disk: / on md0"
    assert devs["nvme7n1"]["reasons"][0] == ("carries signatures: xfs at 0x0 "
                                             "(label models, uuid 2d5f8b1e-7c4a-4e9b-a3f6-0b1c2d3e4f58)")
    assert devs["sds"]["reasons"] == ["removable device", "has partitions: sds1", "carries signatures: dos at 0x1fe",
                                      "transport usb is never used for a tier"]
    assert devs["sdg"]["reasons"][0] == "rotational disk (transport sas): cold tier"
    assert result["tiers"]["cold"][0]["id"] == "/dev/disk/by-id/wwn-0x5000c500d73a1b00"
    assert result["tiers"]["hot"][0]["id"] == "/dev/disk/by-id/nvme-eui.36344730527012000025384500000001"


def test_rhel8_nvme_without_tran_is_hot():
    result = classify("rhel8_util_linux_232")
    assert tier_devices(result) == {"hot": ["/dev/nvme0n1"], "warm": [], "cold": ["/dev/sdb"]}
    sda = by_name(result)["sda"]
    assert sda["reasons"][0] == "operating system disk: /boot on sda1, / on rhel-root, [SWAP] on rhel-swap, /var on rhel-var"
    assert by_name(result)["nvme0n1"]["transport"] == "nvme"


def test_min_size_and_include_types():
    result = classify("qemu_lab", min_size_gib=500)
    assert tier_devices(result)["hot"] == []
    assert by_name(result)["nvme0n1"]["reasons"] == ["size 200.00 GiB is below min_size_gib 500"]
    result = classify("qemu_lab", include_types=["rom"])
    assert by_name(result)["sda"]["reasons"][0] == "type disk is not in include_types (rom)"
    assert by_name(result)["sr0"]["tier"] is None  # still removable


# --- policy overrides -------------------------------------------------------------------------

def test_override_by_serial_excludes_and_moves():
    result = classify("gpu_server_8nvme", policy={"overrides": [
        {"match": {"serial": "S4YPNE0R701203"}, "tier": "exclude"},
        {"match": {"serial": "Z1R0A0X1T4Y8"}, "tier": "hot"},
    ]})
    tiers = tier_devices(result)
    assert "/dev/nvme3n1" not in tiers["hot"] and "/dev/sdc" in tiers["hot"]
    assert "/dev/sdc" not in tiers["warm"]
    devs = by_name(result)
    assert devs["nvme3n1"]["reasons"] == ["excluded by policy override #0 (serial=S4YPNE0R701203)"]
    assert devs["sdc"]["reasons"][0] == "policy override #1 (serial=Z1R0A0X1T4Y8): hot tier"


def test_override_by_path_classifies_unknown_transport_and_small_disk():
    result = classify("qemu_lab", min_size_gib=1000, policy={"overrides": [
        {"match": {"by_path": "pci-0000:00:07.0-sas-phy1-lun-0"}, "tier": "cold"},
        {"match": {"by_path": "/dev/disk/by-path/pci-0000:00:07.0-sas-phy1-lun-0"}, "tier": "hot"},
    ]})
    sdb = by_name(result)["sdb"]
    assert sdb["tier"] == "cold"  # first match wins
    assert sdb["reasons"][:2] == ["overridden: size 800.00 GiB is below min_size_gib 1000",
                                  "policy override #0 (by_path=/dev/disk/by-path/pci-0000:00:07.0-sas-phy1-lun-0): cold tier"]
    assert by_name(result)["sda"]["tier"] is None


def test_override_never_beats_in_use():
    result = classify("qemu_lab", policy={"overrides": [
        {"match": {"by_id": "ata-QEMU_HARDDISK_QM00009"}, "tier": "cold"},
        {"match": {"wwn": "0X5000C500A1B2C303"}, "tier": "warm"},
    ]})
    assert by_name(result)["sde"]["tier"] is None
    assert by_name(result)["sdg"]["tier"] is None


@pytest.mark.parametrize("policy, message", [
    ({"overrides": [{"match": {}, "tier": "hot"}]}, r"policy.overrides\[0\].match: give at least one"),
    ({"overrides": [{"match": {"name": "sdb"}, "tier": "hot"}]}, r"unknown key\(s\) name"),
    ({"overrides": [{"match": {"serial": "X"}, "tier": "lukewarm"}]}, r"policy.overrides\[0\].tier"),
    ({"overrides": [{"match": {"by_path": "/dev/sdb"}, "tier": "hot"}]}, r"match.by_path: '/dev/sdb' is not a link"),
])
def test_invalid_policy(policy, message):
    with pytest.raises(StorageError, match=message):
        validate_policy(policy)


# --- wipe list --------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["/dev/sdb", "sdb", "/dev/nvme0n1", "nvme1n1", "/dev/sdb1", "/dev/nvme0n1p2",
                                   "/dev/vdb", "/dev/md0", "/dev/dm-3"])
def test_wipe_rejects_kernel_names(value):
    with pytest.raises(StorageError, match=r"wipe_devices\[1\]: '%s' is a kernel device name" % value):
        validate_policy({}, wipe_devices=["QM00007", value])


@pytest.mark.parametrize("value", ["/dev/mapper/vg-lv", "/dev/disk/by-uuid/1f07583b", "/srv/disk.img", "/dev/disk/by-id/", " "])
def test_wipe_rejects_other_paths(value):
    with pytest.raises(StorageError, match=r"wipe_devices\[0\]"):
        validate_policy({}, wipe_devices=[value])


def test_wipe_accepts_ids():
    assert validate_wipe_id(" /dev/disk/by-id/wwn-0x5000c500a1b2c304 ") == "/dev/disk/by-id/wwn-0x5000c500a1b2c304"
    assert validate_wipe_id("0x5000c500a1b2c304") == "0x5000c500a1b2c304"
    assert validate_wipe_id("/dev/disk/by-path/pci-0000:00:1f.2-ata-3") == "/dev/disk/by-path/pci-0000:00:1f.2-ata-3"


def test_wipe_evaluation():
    result = classify("qemu_lab", wipe_devices=[
        "/dev/disk/by-id/ata-QEMU_HARDDISK_QM00007",   # pre-filled ext4: allowed
        "0x5000C500A1B2C304",                          # LUKS by WWN: allowed
        "QM00009",                                     # md member in use: refused
        "/dev/disk/by-path/pci-0000:00:04.0",          # OS disk: refused
        "/dev/disk/by-id/wwn-0x5000c500ffffffff",      # not present
    ])
    allowed = dict((w["device"], w) for w in result["wipe_allowed"])
    assert sorted(allowed) == ["/dev/sdd", "/dev/sdh"]
    assert allowed["/dev/sdd"]["tier"] == "cold" and allowed["/dev/sdd"]["signatures"][0]["type"] == "ext4"
    assert allowed["/dev/sdh"]["ids"] == ["0x5000C500A1B2C304"] and allowed["/dev/sdh"]["tier"] == "warm"
    assert [(r["device"], r["reasons"][0]) for r in result["wipe_refused"]] == [
        ("/dev/sde", "in use: held by md0 (raid1)"),
        ("/dev/vda", "operating system disk: /boot/efi on vda1, /boot on vda2, / on debian--vg-root, "
                     "[SWAP] on debian--vg-swap_1"),
    ]
    assert result["wipe_unmatched"] == ["/dev/disk/by-id/wwn-0x5000c500ffffffff"]
    cold = dict((e["device"], e) for e in result["tiers"]["cold"])
    assert cold["/dev/sdd"]["wipe_needed"] is True and cold["/dev/sdc"]["wipe_needed"] is False
    assert by_name(result)["sdd"]["reasons"][0] == (
        "named in wipe_devices as /dev/disk/by-id/ata-QEMU_HARDDISK_QM00007: signatures will be wiped")
    assert by_name(result)["vda"]["tier"] is None


def test_ambiguous_wipe_id_is_refused():
    devices = parse_lsblk_json(json.dumps({"blockdevices": [
        {"name": "sdx", "type": "disk", "size": 4000787030016, "rota": True, "tran": "sata", "serial": "DUP1",
         "fstype": "ext4", "mountpoints": [None]},
        {"name": "sdy", "type": "disk", "size": 4000787030016, "rota": True, "tran": "sata", "serial": "DUP1",
         "mountpoints": [None]},
    ]}))
    probes = {"sdx": {"signatures": [{"type": "ext4", "offset": "0x438"}], "error": None},
              "sdy": {"signatures": [], "error": None}}
    result = classify_devices(devices, probes=probes, policy=validate_policy({}, ["DUP1"]))
    assert result["wipe_allowed"] == []
    assert [r["device"] for r in result["wipe_refused"]] == ["/dev/sdx", "/dev/sdy"]
    assert result["wipe_refused"][0]["reasons"] == ["wipe id(s) DUP1 match more than one device"]
    assert tier_devices(result)["cold"] == ["/dev/sdy"]  # the blank one is still usable


def test_override_exclude_refuses_wipe():
    result = classify("qemu_lab", wipe_devices=["QM00007"],
                      policy={"overrides": [{"match": {"serial": "QM00007"}, "tier": "exclude"}]})
    assert result["wipe_allowed"] == []
    assert result["wipe_refused"] == [{"device": "/dev/sdd", "ids": ["QM00007"],
                                       "reasons": ["excluded by policy override #0"]}]


def test_probe_targets_skip_memory_and_other_types():
    devices = parse_lsblk_json((FIXTURES / "qemu_lab" / "lsblk.json").read_text())
    names = [d["kname"] for d in probe_targets(devices, ["disk"])]
    assert "sr0" not in names and names[0] == "vda" and len(names) == 11
    real = parse_lsblk_json((FIXTURES / "vm_debian12_real" / "lsblk.json").read_text())
    assert [d["kname"] for d in probe_targets(real, ["disk"])] == ["vda"]


# --- sysfs and /dev/disk readers on a fake tree --------------------------------------------------

def test_read_sysfs_facts(tmp_path):
    sysroot = tmp_path / "sys"
    real = sysroot / "devices" / "pci0000:00" / "0000:00:05.0" / "nvme" / "nvme0" / "nvme0n1"
    (real / "queue").mkdir(parents=True)
    (real / "holders").mkdir()
    (real / "removable").write_text("0\n")
    (real / "queue" / "rotational").write_text("0\n")
    (real / "wwid").write_text("eui.0025388b91b3c0a5\n")
    part = real / "nvme0n1p1"
    (part / "holders").mkdir(parents=True)
    (part / "partition").write_text("1\n")
    (part / "holders" / "dm-0").mkdir()
    dev = real / "device"
    dev.mkdir()
    (dev / "serial").write_text("S4YPNE0R701200      \n")
    (dev / "model").write_text("SAMSUNG MZWLJ7T6HALA-00007              \n")
    (sysroot / "block").mkdir()
    (sysroot / "block" / "nvme0n1").symlink_to(real)
    facts = read_sysfs_facts(["nvme0n1", "sdz"], str(sysroot))
    assert facts == {"nvme0n1": {
        "removable": False, "rotational": False, "holders": ["dm-0"], "serial": "S4YPNE0R701200",
        "wwid": "eui.0025388b91b3c0a5", "model": "SAMSUNG MZWLJ7T6HALA-00007", "transport": "nvme"}}


def test_read_disk_links(tmp_path):
    by_id = tmp_path / "by-id"
    by_path = tmp_path / "by-path"
    by_id.mkdir()
    by_path.mkdir()
    (by_id / "wwn-0x5000c500a1b2c301").symlink_to("../../sda")
    (by_id / "wwn-0x5000c500a1b2c301-part1").symlink_to("../../sda1")
    (by_path / "pci-0000:00:07.0-sas-phy0-lun-0").symlink_to("../../sda")
    (by_id / "not-a-link").write_text("")
    assert read_disk_links(str(tmp_path)) == {
        "by-id": {"/dev/disk/by-id/wwn-0x5000c500a1b2c301": "sda",
                  "/dev/disk/by-id/wwn-0x5000c500a1b2c301-part1": "sda1"},
        "by-path": {"/dev/disk/by-path/pci-0000:00:07.0-sas-phy0-lun-0": "sda"},
    }
    assert read_disk_links(str(tmp_path / "missing")) == {"by-id": {}, "by-path": {}}
