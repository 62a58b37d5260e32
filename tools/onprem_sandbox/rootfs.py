"""The Debian 12 host image: built once with debootstrap, cached by what goes into it."""
from __future__ import annotations

import glob
import os
import shutil
import tempfile
from pathlib import Path

from .run import log, sh
from .spec import debian_sources


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


def ensure(spec, cache_dir):
    """Return the path of the cached image for `spec`, building it if needed."""
    entries = debian_sources(host_apt_sources(), spec.suite)
    mirror = entries[0][0]
    key = spec.rootfs_key(mirror)
    image = Path(cache_dir) / f"rootfs-{spec.suite}-{key}"
    if (image / ".complete").exists():
        return image, entries
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    for stale in Path(cache_dir).glob(f"rootfs-{spec.suite}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_dir))
    work.chmod(0o755)  # it becomes the hosts' "/"; mkdtemp makes it 0700
    try:
        log(f"building the {spec.suite} host image (debootstrap, about 90 s; cached afterwards)")
        sh("debootstrap", "--variant=minbase", f"--include={','.join(spec.packages)}",
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
        sh("chroot", work, "apt-get", "clean")
        (work / ".complete").write_text(key + "\n")
        os.rename(work, image)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return image, entries
