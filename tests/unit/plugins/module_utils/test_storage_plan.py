"""The storage tier planner: actions, device counts on both sides of each minimum, stripe geometry,
and the fstab and crypttab options a boot reads."""
import pytest

from ansible_collections.onprem.deepseek.plugins.filter.storage_plan import storage_plan
from ansible_collections.onprem.deepseek.plugins.module_utils._storage_plan import (
    StoragePlanError,
    boot_options,
    data_disks,
    devices_needed,
    plan_tier,
    plan_tiers,
)
from ansible.errors import AnsibleFilterError

ROOT = "/srv/deepseek"


def tier(name="hot", **kw):
    t = {"name": name, "method": "mdadm", "raid_level": "0", "chunk_kib": 512, "min_devices": 1,
         "required": False, "encrypt": False, "mount_options": ["noatime"], "scheduler": "none",
         "read_ahead_kb": 4096, "fio": {}}
    t.update(kw)
    return t


def disks(n, prefix="nvme"):
    return [{"id": "/dev/disk/by-id/%s-%d" % (prefix, i), "path": "/dev/%s%dn1" % (prefix, i), "serial": "S%d" % i,
             "wwn": "", "size_bytes": 100 << 30, "wipe_needed": False} for i in range(n)]


def plan(t, n=0, blockdevices=(), exists=False, root=ROOT):
    return plan_tier(t, disks(n), list(blockdevices), exists, root)


@pytest.mark.parametrize("method,level,min_devices,need", [
    ("mdadm", "0", 1, 2), ("mdadm", "0", 3, 3), ("mdadm", "1", 1, 2), ("mdadm", "5", 1, 3),
    ("mdadm", "6", 1, 4), ("mdadm", "6", 5, 5), ("mdadm", "10", 1, 2), ("mdadm", 10, 1, 2),
    ("lvm", "0", 1, 1), ("lvm", "0", 2, 2), ("single", "0", 1, 1),
])
def test_devices_needed_is_the_larger_of_min_devices_and_the_raid_minimum(method, level, min_devices, need):
    assert devices_needed(tier(method=method, raid_level=level, min_devices=min_devices)) == need


@pytest.mark.parametrize("method,level,count,width", [
    ("mdadm", "0", 3, 3), ("mdadm", "1", 2, 0), ("mdadm", "5", 3, 2), ("mdadm", "5", 4, 3),
    ("mdadm", "6", 4, 2), ("mdadm", "6", 6, 4), ("mdadm", "10", 4, 2), ("mdadm", "10", 5, 2),
    ("lvm", "0", 2, 2), ("lvm", "0", 1, 1), ("single", "0", 1, 0),
])
def test_data_disks_per_raid_level(method, level, count, width):
    assert data_disks(method, level, count) == width


def test_unknown_raid_level_and_method_are_refused():
    with pytest.raises(StoragePlanError, match="raid_level 7"):
        devices_needed(tier(raid_level="7"))
    with pytest.raises(StoragePlanError, match="raid_level 7"):
        data_disks("mdadm", "7", 2)
    with pytest.raises(StoragePlanError, match="method zfs"):
        plan(tier(method="zfs"), 2)


def test_create_with_exactly_the_devices_needed_has_no_error():
    p = plan(tier(raid_level="6"), 4)
    assert p["action"] == "create" and p["error"] == "" and p["need"] == 4
    assert [d["id"] for d in p["devices"]] == [d["id"] for d in disks(4)]
    assert p["array_path"] == p["top_path"] == "/dev/md/ds-hot"
    assert (p["su_kib"], p["sw"]) == (512, 2)


def test_create_with_one_device_too_few_says_how_many():
    p = plan(tier(raid_level="6"), 3)
    assert p["action"] == "create"
    assert p["error"] == "needs at least 4 device(s) for RAID6, found 3"
    p = plan(tier(method="lvm", min_devices=3), 2)
    assert p["error"] == "needs at least 3 device(s) for lvm, found 2"


def test_a_required_tier_without_devices_is_created_and_fails():
    p = plan(tier(required=True))
    assert p["action"] == "create" and p["error"] == "needs at least 2 device(s) for RAID0, found 0"
    assert plan(tier(required=False))["action"] == "skip"
    assert plan(tier(required=False))["error"] == ""


@pytest.mark.parametrize("blockdevices,exists", [
    ([{"path": "/dev/md127", "fstype": "xfs", "label": "ds-hot"}], False),
    ([{"path": "/dev/md127", "fstype": "crypto_LUKS", "label": "ds-hot-luks"}], False),
    ([], True),
])
def test_an_existing_file_system_luks_container_or_array_is_present_and_never_recreated(blockdevices, exists):
    p = plan(tier(), 2, blockdevices, exists)
    assert p["action"] == "present" and p["devices"] == [] and p["error"] == ""


def test_labels_of_other_tiers_or_other_file_systems_do_not_count():
    other = [{"path": "/dev/sda1", "fstype": "ext4", "label": "ds-hot"},
             {"path": "/dev/sdb1", "fstype": "xfs", "label": "ds-warm"},
             {"path": "/dev/sdc1", "fstype": "crypto_LUKS", "label": "ds-hotter-luks"}]
    assert plan(tier(), 2, other)["action"] == "create"


def test_single_disk_is_addressed_by_id_when_created_and_by_what_it_holds_when_present():
    p = plan(tier(method="single"), 1)
    assert p["action"] == "create" and p["error"] == ""
    assert p["array_path"] == disks(1)[0]["id"]
    assert (p["su_kib"], p["sw"]) == (0, 0)
    both = [{"path": "/dev/sdb", "fstype": "xfs", "label": "ds-hot"},
            {"path": "/dev/sda", "fstype": "crypto_LUKS", "label": "ds-hot-luks"}]
    assert plan(tier(method="single", encrypt=True), 0, both)["array_path"] == "/dev/sda"
    assert plan(tier(method="single"), 0, both[:1])["array_path"] == "/dev/sdb"


def test_single_disk_refuses_several_devices():
    p = plan(tier(method="single"), 2)
    assert p["error"] == "method single needs exactly one device, found 2 (name one with storage_tiers_policy overrides)"
    assert p["array_path"] == ""


def test_stripe_geometry_only_with_more_than_one_data_disk():
    assert (plan(tier(raid_level="10", chunk_kib=256), 4)["su_kib"], plan(tier(raid_level="10"), 4)["sw"]) == (256, 2)
    p = plan(tier(raid_level="10"), 3)
    assert (p["su_kib"], p["sw"]) == (0, 0)
    p = plan(tier(raid_level="1"), 2)
    assert (p["su_kib"], p["sw"]) == (0, 0)
    p = plan(tier(method="lvm"), 2)
    assert (p["array_path"], p["su_kib"], p["sw"]) == ("/dev/ds_hot/data", 512, 2)


def test_encryption_puts_the_file_system_on_the_mapping():
    p = plan(tier(encrypt=True), 2)
    assert (p["array_path"], p["top_path"], p["luks_name"], p["label"]) == \
        ("/dev/md/ds-hot", "/dev/mapper/ds-hot", "ds-hot", "ds-hot")


def test_mountpoint_under_root_and_tier_keys_kept():
    p = plan(tier(name="cold", scheduler="mq-deadline"), 0, root="/data/")
    assert p["mountpoint"] == "/data/cold"
    assert p["scheduler"] == "mq-deadline" and p["name"] == "cold"


def test_plan_tiers_keeps_order_and_gives_each_tier_its_own_devices():
    tiers = [tier("hot"), tier("warm", raid_level="10"), tier("cold", raid_level="6")]
    found = {"hot": disks(2), "warm": disks(4, "sd")}
    result = plan_tiers(tiers, found, [], ["cold"], ROOT)
    assert [(p["name"], p["action"], len(p["devices"])) for p in result] == \
        [("hot", "create", 2), ("warm", "create", 4), ("cold", "present", 0)]
    assert plan_tiers(tiers, None, None, None, ROOT)[0]["action"] == "skip"


def test_filter_names_the_problem():
    assert storage_plan([tier()], {}, [], root=ROOT)[0]["action"] == "skip"
    with pytest.raises(AnsibleFilterError, match="storage_plan: .*raid_level 3"):
        storage_plan([tier(raid_level="3")], {}, [], root=ROOT)
    with pytest.raises(AnsibleFilterError, match="root is required"):
        storage_plan([tier()], {}, [])


def test_lvm_stripes_over_every_device_whatever_raid_level_says():
    assert data_disks("lvm", "5", 3) == 3 and data_disks("lvm", "1", 2) == 2
    p = plan(tier(method="lvm", raid_level="6"), 3)
    assert (p["su_kib"], p["sw"]) == (512, 3)


def test_refusals_say_what_is_allowed():
    with pytest.raises(StoragePlanError) as caught:
        data_disks("mdadm", "7", 2)
    assert str(caught.value) == "raid_level 7 is not one of 0, 1, 10, 5, 6"
    with pytest.raises(StoragePlanError) as caught:
        devices_needed(tier(raid_level="7"))
    assert str(caught.value) == "tier hot: raid_level 7 is not one of 0, 1, 10, 5, 6"
    with pytest.raises(StoragePlanError) as caught:
        plan(tier(method="zfs"), 2)
    assert str(caught.value) == "tier hot: method zfs is not one of mdadm, lvm, single"


def test_only_slashes_are_trimmed_from_the_root():
    assert plan(tier(name="cold"), 0, root="/srv/X/")["mountpoint"] == "/srv/X/cold"


def test_without_a_timeout_the_options_are_the_tiers_own():
    assert boot_options(tier(mount_options=["noatime", "nofail"])) == (["noatime", "nofail"], [])
    assert plan(tier())["fstab_options"] == ["noatime"] and plan(tier())["crypttab_options"] == []


def test_the_device_timeout_goes_into_fstab_and_crypttab():
    fstab, crypttab = boot_options(tier(encrypt=True, mount_options=["noatime", "nofail"]), "pkcs11_wrapped", 300)
    assert fstab == ["noatime", "nofail", "x-systemd.device-timeout=300s"]
    assert crypttab == ["luks", "discard", "noauto", "x-systemd.device-timeout=300s"]
    # The tier's list itself is not changed.
    t = tier(mount_options=["noatime"])
    boot_options(t, "keyfile", 300)
    assert t["mount_options"] == ["noatime"]


def test_systemd_cryptsetup_opens_keyfile_tiers_and_the_unlock_unit_wrapped_ones():
    assert boot_options(tier(encrypt=True), "keyfile", 60)[1] == ["luks", "discard", "x-systemd.device-timeout=60s"]
    assert boot_options(tier(encrypt=True), "pkcs11_wrapped")[1] == ["luks", "discard", "noauto"]
    # An unencrypted tier has no crypttab entry, whatever the provider.
    assert boot_options(tier(), "pkcs11_wrapped", 60)[1] == []


def test_a_timeout_in_the_tiers_mount_options_is_kept():
    fstab, crypttab = boot_options(tier(encrypt=True, mount_options=["x-systemd.device-timeout=0", "nofail"]), "keyfile", 300)
    assert fstab == ["x-systemd.device-timeout=0", "nofail"]
    assert crypttab == ["luks", "discard", "x-systemd.device-timeout=300s"]


@pytest.mark.parametrize("timeout,ok", [(1, True), (3600, True), (0, False), (-5, False), ("300", False),
                                        (300.0, False), (True, False)])
def test_the_timeout_is_a_whole_number_of_seconds_of_at_least_one(timeout, ok):
    if ok:
        assert boot_options(tier(), "keyfile", timeout)[0][-1] == "x-systemd.device-timeout=%ds" % timeout
    else:
        with pytest.raises(StoragePlanError, match="device timeout"):
            boot_options(tier(), "keyfile", timeout)


def test_an_unknown_key_provider_is_refused():
    with pytest.raises(StoragePlanError) as caught:
        boot_options(tier(), "tpm2")
    assert str(caught.value) == "key provider tpm2 is not one of keyfile, pkcs11_wrapped"


def test_plan_and_filter_pass_the_provider_and_timeout_to_each_tier():
    tiers = [tier("hot", encrypt=True), tier("warm")]
    result = plan_tiers(tiers, {}, [], [], ROOT, "pkcs11_wrapped", 120)
    assert [(p["fstab_options"], p["crypttab_options"]) for p in result] == [
        (["noatime", "x-systemd.device-timeout=120s"], ["luks", "discard", "noauto", "x-systemd.device-timeout=120s"]),
        (["noatime", "x-systemd.device-timeout=120s"], []),
    ]
    filtered = storage_plan(tiers, {}, [], root=ROOT, key_provider="keyfile", device_timeout_s=120)
    assert filtered[0]["crypttab_options"] == ["luks", "discard", "x-systemd.device-timeout=120s"]
    with pytest.raises(AnsibleFilterError, match="storage_plan: device timeout 0"):
        storage_plan(tiers, {}, [], root=ROOT, device_timeout_s=0)
