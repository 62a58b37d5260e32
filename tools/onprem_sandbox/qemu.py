"""What a QEMU guest host is made of: its command line, network and boot settings.

Pure functions over the spec, unit-tested directly; vm.py runs them.
"""
from __future__ import annotations

import hashlib

# The guest's root is /dev/vda (virtio-blk); the kernel and initramfs come from the image and
# are loaded by QEMU directly, so the guest needs no boot loader.
KERNEL_APPEND = "root=/dev/vda rw console=ttyS0 loglevel=4 panic=10"
# Under TCG only, no address space randomization in the guest: QEMU 7.2's TCG keeps translated
# code per virtual address, so with randomized mappings every new process has the interpreter and
# its libraries translated again (an Ansible task is mostly a Python start). docs/sandbox-vm.md.
TCG_KERNEL_APPEND = KERNEL_APPEND + " norandmaps"

# Modules the trimmed initramfs carries: just enough to mount the root. Everything else
# (nvme, mptsas, ahci, virtio_net, md, dm-crypt) loads from the root filesystem via udev.
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "ext4")

# Seen on the serial console once the kernel has started user space.
KVM_OK_MARKERS = (" as init process", "Freeing unused kernel image")
KVM_FAIL_MARKERS = ("KVM internal error", "emulation failure", "failed to initialize kvm",
                    "Could not access KVM kernel module")


def mac_address(spec_name, host_name):
    """A stable, locally administered unicast MAC per sandbox host."""
    digest = hashlib.sha256(f"{spec_name}/{host_name}".encode()).digest()
    return "52:54:" + ":".join(f"{b:02x}" for b in digest[:4])


def networkd_config(spec, host):
    """systemd-networkd configuration of the guest: the host's site address, matched by MAC."""
    site = spec.sites[host.site]
    return (
        "[Match]\n"
        f"MACAddress={mac_address(spec.name, host.name)}\n\n"
        "[Network]\n"
        f"Address={host.address}/{site.subnet.prefixlen}\n"
        f"Gateway={site.gateway}\n"
        "LinkLocalAddressing=no\n"
        "IPv6AcceptRA=no\n"
    )


def drive_id(disk):
    # Prefixed so that no id clashes with QEMU's own (e.g. the built-in SD card "sd0").
    return f"disk-{disk.id}"


def disk_args(disks, paths):
    """-drive/-device arguments for the emulated data disks, controllers first."""
    args = []
    buses = {d.bus for d in disks}
    if "sas" in buses:
        # Reports transport "sas"; megasas gave none and lsi53c895a gives "spi".
        args += ["-device", "mptsas1068,id=sas0"]
    if "sata" in buses:
        args += ["-device", "ahci,id=ahci0"]
    sata_port = 0
    for disk in disks:
        drive = drive_id(disk)
        args += ["-drive", f"file={paths[disk.id]},if=none,id={drive},format=raw,discard=unmap"]
        rotation = "7200" if disk.rotational else "1"
        if disk.bus == "nvme":
            args += ["-device", f"nvme,drive={drive},serial={disk.serial}"]
        elif disk.bus == "sas":
            args += ["-device", f"scsi-hd,bus=sas0.0,drive={drive},serial={disk.serial},"
                                f"wwn={disk.wwn},rotation_rate={rotation}"]
        else:
            wwn = f",wwn={disk.wwn}" if disk.wwn else ""
            args += ["-device", f"ide-hd,bus=ahci0.{sata_port},drive={drive},serial={disk.serial},"
                                f"rotation_rate={rotation}{wwn}"]
            sata_port += 1
    return args


# Under TCG: the baseline x86-64 model plus the SSE4 and crypto extensions (AES, CLMUL; TCG has no SHA) that
# dm-crypt, OpenSSL and hashlib use. "max" adds AVX, 5-level paging and more that emulation pays
# for: five Python starts in the guest took a median 1.57 s with this model and 1.87 s with "max"
# (alternating runs, docs/sandbox-vm.md), and an Ansible task is mostly a Python start.
TCG_CPU = "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+aes,+pclmulqdq"


def accel_args(accel):
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg,thread=multi", "-cpu", TCG_CPU]


def qemu_argv(spec, host, paths, accel="tcg", qemu="qemu-system-x86_64"):
    """The guest's command line. `paths` holds kernel, initrd, root, console and disks{id: file}.

    No -no-reboot: a reboot inside the guest restarts it in the same QEMU process, with the
    same disks, which is what a test of "comes back after reboot" needs.
    """
    return [
        qemu, "-name", f"{spec.name}-{host.name}",
        *accel_args(accel),
        "-m", str(host.memory_mib), "-smp", str(host.cpus),
        "-nodefaults", "-display", "none", "-monitor", "none",
        "-serial", f"file:{paths['console']}",
        "-kernel", str(paths["kernel"]), "-initrd", str(paths["initrd"]),
        "-append", TCG_KERNEL_APPEND if accel == "tcg" else KERNEL_APPEND,
        "-drive", f"file={paths['root']},if=none,id=rootdisk,format=raw,cache=unsafe",
        "-device", "virtio-blk-pci,drive=rootdisk",
        "-netdev", f"tap,id=net0,ifname={host.link},script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=net0,mac={mac_address(spec.name, host.name)}",
        "-device", "virtio-rng-pci",
        *disk_args(host.disks, paths["disks"]),
    ]


def kvm_probe_argv(kernel, initrd, qemu="qemu-system-x86_64"):
    """A tiny KVM boot that must reach user space; it powers off on the kernel's panic."""
    return [
        qemu, "-accel", "kvm", "-cpu", "host", "-m", "256", "-smp", "1",
        "-nodefaults", "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
        "-kernel", str(kernel), "-initrd", str(initrd),
        "-append", "console=ttyS0 panic=-1 rdinit=/bin/false",
    ]


def kvm_probe_verdict(output):
    """True when the probe's console shows a kernel that reached user space under KVM."""
    if any(m in output for m in KVM_FAIL_MARKERS):
        return False
    return any(m in output for m in KVM_OK_MARKERS)


def initramfs_conf():
    """Files that make the guest image's initramfs small (it unpacks slowly under TCG)."""
    return {
        "etc/initramfs-tools/conf.d/onprem-sandbox.conf": "MODULES=list\nCOMPRESS=gzip\n",
        "etc/initramfs-tools/modules": "".join(m + "\n" for m in INITRAMFS_MODULES),
    }
