"""Booting a QEMU guest host (sandbox_type: vm): a raw ext4 root made from the cached VM
image, its kernel loaded directly, emulated NVMe/SAS/SATA disks, and a tap device on its
site's bridge, so it sits on the same network as the container hosts."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

from . import qemu, run
from .hosts import create_rootfs, host_dir, host_key
from .rootfs import kernel_files
from .run import log, sh, spawn

ROOT_SIZE = "3G"
PREFILL_MARKER = "SANDBOX-PREFILLED"


def qemu_binary():
    path = shutil.which("qemu-system-x86_64")
    if not path:
        raise run.CommandError("qemu-system-x86_64 is missing (Debian package qemu-system-x86)")
    return path


def choose_accel(kernel, initrd, cache_dir):
    """KVM where it really works, else TCG. /dev/kvm can exist and still fail on a stock
    kernel (nested software virtualisation), so a short boot must reach user space first.

    SANDBOX_ACCEL=tcg|kvm overrides; the verdict is cached per machine and kernel."""
    forced = os.environ.get("SANDBOX_ACCEL")
    if forced in ("tcg", "kvm"):
        return forced
    if not os.path.exists("/dev/kvm"):
        return "tcg"
    cache = Path(cache_dir) / "accel.json"
    known = json.loads(cache.read_text()) if cache.exists() else {}
    key = f"{os.uname().release}/{hashlib.sha256(Path(kernel).read_bytes()).hexdigest()[:16]}"
    if key not in known:
        known[key] = "kvm" if _kvm_probe(kernel, initrd) else "tcg"
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(known, indent=2, sort_keys=True))
        log(f"KVM probe: using {known[key]}")
    return known[key]


def _kvm_probe(kernel, initrd, timeout=20):
    proc = subprocess.Popen(qemu.kvm_probe_argv(kernel, initrd, qemu_binary()), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    return qemu.kvm_probe_verdict(out.decode(errors="replace"))


def create(spec, host, image, apt_entries, state_dir, pubkey):
    """Make the guest's files (root image, kernel, disks) unless they exist; keep the host key."""
    hdir = host_dir(state_dir, host.name)
    root_img = hdir / "root.raw"
    if not root_img.exists():
        root = create_rootfs(spec, host, image, apt_entries, state_dir, pubkey)
        net = root / "etc/systemd/network/10-site.network"
        net.parent.mkdir(parents=True, exist_ok=True)
        net.write_text(qemu.networkd_config(spec, host))
        (hdir / "hostkey.pub").write_text(" ".join(host_key(root)) + "\n")
        kernel, initrd = kernel_files(root)
        shutil.copy(kernel, hdir / "vmlinuz")
        shutil.copy(initrd, hdir / "initrd.img")
        tmp = hdir / "root.raw.tmp"
        tmp.unlink(missing_ok=True)
        sh("mkfs.ext4", "-q", "-F", "-L", "root", "-d", root, tmp, ROOT_SIZE)
        tmp.rename(root_img)
        shutil.rmtree(root)
    disks = make_disks(host, hdir / "disks")
    return {
        "kernel": hdir / "vmlinuz", "initrd": hdir / "initrd.img", "root": root_img,
        "console": hdir / "console.log", "disks": disks,
    }


def make_disks(host, disk_dir):
    disk_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for disk in host.disks:
        path = disk_dir / f"{disk.id}.raw"
        paths[disk.id] = path
        if path.exists():
            continue
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.truncate(disk.size_bytes)  # sparse
        if disk.prefill == "ext4":
            content = disk_dir / f".{disk.id}.content"
            content.mkdir(exist_ok=True)
            (content / PREFILL_MARKER).write_text(prefill_marker_text(host, disk))
            sh("mkfs.ext4", "-q", "-F", "-L", f"pre-{disk.id}"[:16], "-d", content, tmp)
            shutil.rmtree(content)
        tmp.rename(path)
    return paths


def prefill_marker_text(host, disk):
    return f"data of {host.name} disk {disk.id} (serial {disk.serial}): must survive\n"


def host_key_of(state_dir, host_name):
    return (host_dir(state_dir, host_name) / "hostkey.pub").read_text().split()[:2]


def boot(spec, host, paths, accel, state_dir):
    hdir = host_dir(state_dir, host.name)
    argv = qemu.qemu_argv(spec, host, paths, accel, qemu_binary())
    (hdir / "qemu.argv").write_text(" ".join(map(str, argv)) + "\n")
    # The tap lives in the router namespace, on the site bridge; QEMU opens it there.
    return spawn(["ip", "netns", "exec", spec.router_netns, *argv], hdir / "qemu.out")


def shutdown(pids):
    # The disks are thrown away with the guest, so QEMU may simply quit (SIGTERM).
    run.stop(pids, signal.SIGTERM, timeout=10)
