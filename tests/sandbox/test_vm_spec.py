"""QEMU guest hosts: what the inventory may say about them, and the command line they get."""
import copy

import pytest

from onprem_sandbox import qemu, spec
from onprem_sandbox.spec import SpecError, parse_inventory

GROUP_VARS = {
    "sandbox_name": "mstor",
    "sandbox_mirror_address": "10.86.0.1",
    "sandbox_sites": {"site_a": {"subnet": "10.86.1.0/24"}},
}
DISKS = [
    {"id": "nvme1", "bus": "nvme", "size": "1G", "serial": "NVMEHOT0001"},
    {"id": "sas1", "bus": "sas", "size": "1G", "serial": "SASWARM0001", "wwn": "0x5000C50000A1B201"},
    {"id": "hdd1", "bus": "sata", "size": "2G", "rotational": True, "serial": "HDDCOLD0001"},
    {"id": "keep1", "bus": "sata", "size": "512M", "rotational": "yes", "serial": "KEEPDATA0001", "prefill": "ext4"},
]


def inventory(disks=None, **extra):
    vm = {**GROUP_VARS, "sandbox_site": "site_a", "ansible_host": "10.86.1.21", "sandbox_type": "vm",
          "sandbox_disks": copy.deepcopy(DISKS if disks is None else disks), **extra}
    ct = {**GROUP_VARS, "sandbox_site": "site_a", "ansible_host": "10.86.1.22"}
    return {"_meta": {"hostvars": {"mol-stor-a1": vm, "mol-stor-a2": ct,
                                   "localhost": {"ansible_connection": "local"}}}}


def test_vm_host_and_disks_are_parsed():
    s = parse_inventory(inventory())
    vm, ct = s.hosts
    assert (vm.type, ct.type) == ("vm", "container")
    assert s.vm_hosts == (vm,) and s.container_hosts == (ct,)
    assert [d.id for d in vm.disks] == ["nvme1", "sas1", "hdd1", "keep1"]
    assert vm.disks[0].size_bytes == 1 << 30
    assert vm.disks[3].size_bytes == 512 << 20
    assert vm.disks[1].wwn == "0x5000c50000a1b201"  # lower case, as lsblk shows it
    assert [d.rotational for d in vm.disks] == [False, False, True, True]
    assert vm.disks[3].prefill == "ext4" and vm.disks[0].prefill is None
    assert (vm.memory_mib, vm.cpus) == (1024, 2)
    assert ct.disks == ()


def test_vm_image_has_its_own_packages_and_cache_key():
    s = parse_inventory(inventory())
    assert {"linux-image-amd64", "udev"} <= set(s.image_packages("vm"))
    assert "linux-image-amd64" not in s.image_packages("container")
    mirror = "http://mirror/debian"
    assert s.rootfs_key(mirror, "vm") != s.rootfs_key(mirror, "container")
    # The container image key is what it was before VMs existed (no rebuild for them).
    assert s.rootfs_key(mirror) == s.rootfs_key(mirror, "container")


def _disk_change(index, **change):
    disks = copy.deepcopy(DISKS)
    disks[index].update(change)
    return disks


@pytest.mark.parametrize(
    "inv, message",
    [
        (inventory(sandbox_type="kvm"), "sandbox_type 'kvm' is not one of container, vm"),
        (inventory(disks=_disk_change(0, bus="scsi")), r"sandbox_disks\[0\]\.bus: 'scsi'"),
        (inventory(disks=_disk_change(0, rotational=True)), "NVMe disks are never rotational"),
        (inventory(disks=_disk_change(1, wwn=None)), "SAS disks need a wwn"),
        (inventory(disks=_disk_change(1, wwn="5000c50000a1b201")), "must be 0x and 16 hex digits"),
        (inventory(disks=_disk_change(2, serial="HDD COLD")), r"sandbox_disks\[2\]\.serial"),
        (inventory(disks=_disk_change(2, serial="NVMEHOT0001")), "'NVMEHOT0001' is used twice"),
        (inventory(disks=_disk_change(2, id="nvme1")), "'nvme1' is used twice"),
        (inventory(disks=_disk_change(2, id="Disk-1")), r"sandbox_disks\[2\]\.id"),
        (inventory(disks=_disk_change(2, size="2 GB")), "is not a size such as 512M or 2G"),
        (inventory(disks=_disk_change(2, size="100K")), "smaller than 1M"),
        (inventory(disks=_disk_change(3, prefill="xfs")), "prefill: 'xfs' is not supported"),
        (inventory(disks=_disk_change(3, color="red")), "unknown key"),
        (inventory(disks=[dict(DISKS[2], id=f"h{i}", serial=f"S{i}") for i in range(7)]), "more than 6 sata disks"),
        (inventory(sandbox_vm_memory_mib=256), "sandbox_vm_memory_mib 256 is outside 512-16384"),
    ],
)
def test_bad_vm_inventories_are_refused_naming_the_variable(inv, message):
    with pytest.raises(SpecError, match=message):
        parse_inventory(inv)


def test_disks_on_a_container_are_refused():
    inv = inventory()
    inv["_meta"]["hostvars"]["mol-stor-a2"]["sandbox_disks"] = DISKS
    with pytest.raises(SpecError, match="host mol-stor-a2: sandbox_disks needs sandbox_type: vm"):
        parse_inventory(inv)


def paths(host):
    return {"kernel": "/s/vmlinuz", "initrd": "/s/initrd.img", "root": "/s/root.raw", "console": "/s/console.log",
            "disks": {d.id: f"/s/disks/{d.id}.raw" for d in host.disks}}


def test_qemu_command_line_has_the_transports_that_report_nvme_sas_sata():
    s = parse_inventory(inventory())
    vm = s.hosts[0]
    argv = qemu.qemu_argv(s, vm, paths(vm), "tcg")
    line = " ".join(argv)
    assert argv[0] == "qemu-system-x86_64"
    assert "-accel tcg,thread=multi -cpu qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+aes,+pclmulqdq" in line
    assert "-m 1024 -smp 2 -nodefaults" in line
    assert "-no-reboot" not in argv  # a reboot must restart the guest in place
    assert "-kernel /s/vmlinuz -initrd /s/initrd.img" in line
    assert argv[argv.index("-append") + 1] == "root=/dev/vda rw console=ttyS0 loglevel=4 panic=10 norandmaps"
    assert "tap,id=net0,ifname=h0,script=no,downscript=no" in argv
    assert f"virtio-net-pci,netdev=net0,mac={qemu.mac_address('mstor', 'mol-stor-a1')}" in argv
    devices = [argv[i + 1] for i, a in enumerate(argv) if a == "-device"]
    assert "mptsas1068,id=sas0" in devices and "ahci,id=ahci0" in devices
    assert "nvme,drive=disk-nvme1,serial=NVMEHOT0001" in devices
    assert ("scsi-hd,bus=sas0.0,drive=disk-sas1,serial=SASWARM0001,wwn=0x5000c50000a1b201,rotation_rate=1"
            in devices)
    assert "ide-hd,bus=ahci0.0,drive=disk-hdd1,serial=HDDCOLD0001,rotation_rate=7200" in devices
    assert "ide-hd,bus=ahci0.1,drive=disk-keep1,serial=KEEPDATA0001,rotation_rate=7200" in devices
    # Controllers come before the disks that sit on them.
    assert devices.index("mptsas1068,id=sas0") < devices.index(next(d for d in devices if d.startswith("scsi-hd")))
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert "file=/s/disks/keep1.raw,if=none,id=disk-keep1,format=raw,discard=unmap" in drives
    assert not any(",id=sd" in d for d in drives)  # QEMU's SD card is "sd0"


def test_no_controllers_without_their_disks_and_kvm_when_chosen():
    s = parse_inventory(inventory(disks=[DISKS[0]]))
    vm = s.hosts[0]
    argv = qemu.qemu_argv(s, vm, paths(vm), "kvm")
    assert "-accel kvm -cpu host" in " ".join(argv)
    # Address randomization stays on where the guest's code runs natively.
    assert argv[argv.index("-append") + 1] == "root=/dev/vda rw console=ttyS0 loglevel=4 panic=10"
    assert "mptsas1068,id=sas0" not in argv and "ahci,id=ahci0" not in argv


def test_mac_is_stable_unicast_and_per_host():
    mac = qemu.mac_address("mstor", "mol-stor-a1")
    assert mac == qemu.mac_address("mstor", "mol-stor-a1")
    assert mac != qemu.mac_address("mstor", "mol-stor-a2")
    assert mac.startswith("52:54:") and len(mac.split(":")) == 6


def test_guest_network_is_the_site_address_matched_by_mac():
    s = parse_inventory(inventory())
    text = qemu.networkd_config(s, s.hosts[0])
    assert f"MACAddress={qemu.mac_address('mstor', 'mol-stor-a1')}\n" in text
    assert "Address=10.86.1.21/24\n" in text
    assert "Gateway=10.86.1.1\n" in text


@pytest.mark.parametrize(
    "console, works",
    [
        ("[    0.6] Freeing unused kernel image (initmem) memory: 3000K\n[    0.7] Run /init as init process\n", True),
        ("KVM internal error. Suberror: 1\nemulation failure\nEAX=00000000", False),
        ("[    0.0] Linux version 6.1.0-28-amd64\n", False),  # stopped before user space
        ("Run /init as init process\nKVM internal error. Suberror: 1", False),
        ("", False),
    ],
)
def test_kvm_is_used_only_when_the_probe_reached_user_space(console, works):
    assert qemu.kvm_probe_verdict(console) is works


def test_kvm_probe_cannot_hang_or_reboot():
    argv = qemu.kvm_probe_argv("/k", "/i")
    assert "-no-reboot" in argv and "kvm" in argv
    assert "panic=-1" in argv[argv.index("-append") + 1]


def test_initramfs_stays_small():
    files = qemu.initramfs_conf()
    assert "MODULES=list" in files["etc/initramfs-tools/conf.d/onprem-sandbox.conf"]
    assert files["etc/initramfs-tools/modules"].split() == ["virtio_pci", "virtio_blk", "ext4"]


def test_size_parsing():
    assert spec.parse_size("512M", "x") == 512 << 20
    assert spec.parse_size(2 * 1024 ** 3, "x") == 2 << 30
    assert spec.parse_size("1t", "x") == 1 << 40


def test_kernel_files_pick_the_newest_kernel_and_its_initramfs(tmp_path):
    from onprem_sandbox.rootfs import kernel_files
    boot = tmp_path / "boot"
    boot.mkdir()
    for version in ("6.1.0-9-amd64", "6.1.0-28-amd64"):
        (boot / f"vmlinuz-{version}").write_text("k")
        (boot / f"initrd.img-{version}").write_text("i")
    assert kernel_files(tmp_path) == (boot / "vmlinuz-6.1.0-28-amd64", boot / "initrd.img-6.1.0-28-amd64")
    with pytest.raises(FileNotFoundError):
        kernel_files(tmp_path / "empty")
