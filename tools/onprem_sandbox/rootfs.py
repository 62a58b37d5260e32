"""The Debian 12 host image: built once with debootstrap, cached by what goes into it."""
from __future__ import annotations

import ast
import glob
import os
import re
import shutil
import tempfile
from pathlib import Path

from . import qemu
from .run import log, sh
from .spec import HOST_FILES_DIR, debian_sources

BYTECODE_MODULE = "onprem_sandbox_bytecode"


def host_apt_sources():
    texts = []
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list")),
                 *sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))]:
        try:
            texts.append(Path(path).read_text())
        except OSError:
            continue
    return "\n\n".join(texts)


def sources_list(entries):
    return "".join(f"deb {uri} {suite} {' '.join(comps)}\n" for uri, suite, comps in entries)


def ensure(spec, cache_dir, host_type="container"):
    """Return the path of the cached image for `spec` and host type, building it if needed.

    Containers and VMs have separate images (the VM one adds a kernel); each kind replaces
    only its own stale images.
    """
    entries = debian_sources(host_apt_sources(), spec.suite)
    mirror = entries[0][0]
    key = spec.rootfs_key(mirror, host_type)
    prefix = "rootfs" if host_type == "container" else "vmroot"
    image = Path(cache_dir) / f"{prefix}-{spec.suite}-{key}"
    if (image / ".complete").exists():
        return image, entries
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    for stale in Path(cache_dir).glob(f"{prefix}-{spec.suite}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_dir))
    work.chmod(0o755)  # it becomes the hosts' "/"; mkdtemp makes it 0700
    try:
        log(f"building the {spec.suite} {host_type} image (debootstrap, about 90 s; cached afterwards)")
        sh("debootstrap", "--variant=minbase", f"--include={','.join(spec.image_packages(host_type))}",
           spec.suite, work, mirror)
        # Each host gets its own SSH host keys and machine id when it is created.
        for key_file in (work / "etc/ssh").glob("ssh_host_*"):
            key_file.unlink()
        (work / "etc/machine-id").write_text("")
        (work / "etc/apt/sources.list").write_text(sources_list(entries))
        sh("chroot", work, "useradd", "--create-home", "--shell", "/bin/bash", spec.admin_user)
        sudoers = work / "etc/sudoers.d" / spec.admin_user
        sudoers.write_text(f"{spec.admin_user} ALL=(ALL) NOPASSWD: ALL\n")
        sudoers.chmod(0o440)
        # A getty on the container console would only wait for a login that never comes.
        sh("chroot", work, "systemctl", "mask", "console-getty.service", "getty@tty1.service")
        if spec.extra_packages:
            _install_extra(work, spec.extra_packages)
        install_bytecode_cache(work)
        if host_type == "vm":
            _prepare_vm(work)
        sh("chroot", work, "apt-get", "clean")
        (work / ".complete").write_text(key + "\n")
        os.rename(work, image)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return image, entries


def _install_extra(work, packages):
    """apt-get install in the image, without recommends (as the roles install) and starting nothing."""
    log(f"installing into the image: {' '.join(packages)}")
    policy = work / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    try:
        sh("chroot", work, "apt-get", "update", "-q")
        sh("chroot", work, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-q", "-y",
           "--no-install-recommends", *packages)
    finally:
        policy.unlink()


def _prepare_vm(work):
    """A guest image: small initramfs, networkd for the static site address, a root fstab."""
    for rel, text in qemu.initramfs_conf().items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    sh("chroot", work, "update-initramfs", "-u", "-k", "all")
    # QEMU loads the kernel and this initramfs from outside the guest (direct kernel boot), so
    # rebuilding it inside the guest (mdadm, cryptsetup installs trigger that) is wasted time.
    (work / "etc/initramfs-tools/update-initramfs.conf").write_text("update_initramfs=no\nbackup_initramfs=no\n")
    sh("chroot", work, "systemctl", "enable", "systemd-networkd.service")
    (work / "etc/fstab").write_text("/dev/vda / ext4 defaults,errors=remount-ro 0 1\n")


def install_bytecode_cache(work):
    """The hosts' cache of compiled module payloads (host_files/onprem_sandbox_bytecode.py says why)."""
    # The newest interpreter (python3.9 before python3.11).
    versions = sorted((p for p in Path(work, "usr/lib").glob("python3.*") if (p / "os.py").exists()),
                      key=_version_key)
    if not versions:
        raise FileNotFoundError(f"no Python 3 in {work}/usr/lib")
    site = Path(work, "usr/local/lib", versions[-1].name, "dist-packages")
    site.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HOST_FILES_DIR / f"{BYTECODE_MODULE}.py", site / f"{BYTECODE_MODULE}.py")
    # site.py runs a .pth file's "import" lines at every interpreter start.
    (site / f"{BYTECODE_MODULE}.pth").write_text(f"import {BYTECODE_MODULE}\n")
    cache = Path(work, bytecode_cache_dir().lstrip("/"))
    cache.mkdir(parents=True, exist_ok=True)
    cache.chmod(0o700)


def bytecode_cache_dir():
    """CACHE_DIR of the host file, read without importing it (an import would patch this process)."""
    tree = ast.parse((HOST_FILES_DIR / f"{BYTECODE_MODULE}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["CACHE_DIR"]:
            return ast.literal_eval(node.value)
    raise LookupError(f"{BYTECODE_MODULE}.py sets no CACHE_DIR")


def _version_key(path):
    """Orders names by the numbers in them: vmlinuz-6.1.0-9 before vmlinuz-6.1.0-10."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path.name)]


def kernel_files(image):
    """The image's kernel and initramfs (the newest, if several)."""
    kernels = sorted(Path(image, "boot").glob("vmlinuz-*"), key=_version_key)
    if not kernels:
        raise FileNotFoundError(f"no kernel in {image}/boot")
    version = kernels[-1].name[len("vmlinuz-"):]
    return kernels[-1], Path(image, "boot", f"initrd.img-{version}")
