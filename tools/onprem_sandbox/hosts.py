"""Booting one sandbox host: a copy of the cached image, booted by systemd-nspawn with real
systemd as PID 1, inside the host's own network namespace."""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
from pathlib import Path

from . import run
from .rootfs import sources_list
from .run import sh, spawn, wait_for


def host_dir(state_dir, host):
    return Path(state_dir) / "hosts" / host


def create_rootfs(spec, host, image, apt_entries, state_dir, pubkey):
    root = host_dir(state_dir, host.name) / "rootfs"
    if root.exists():
        return root
    tmp = root.with_name("rootfs.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    sh("cp", "-a", "--reflink=auto", image, tmp)
    (tmp / ".complete").unlink(missing_ok=True)
    (tmp / "etc/hostname").write_text(host.name + "\n")
    (tmp / "etc/hosts").write_text(f"127.0.0.1 localhost\n{host.address} {host.name}\n")
    (tmp / "etc/machine-id").write_text(
        hashlib.sha256(f"{spec.name}/{host.name}".encode()).hexdigest()[:32] + "\n")
    (tmp / "etc/resolv.conf").unlink(missing_ok=True)
    (tmp / "etc/resolv.conf").write_text("# No DNS in the sandbox: everything comes from the site mirror.\n")
    # What a site's installer (PXE, kickstart) leaves behind: the distribution's sources and the
    # site's apt proxy. The site_mirror role manages the same file afterwards.
    (tmp / "etc/apt/sources.list").write_text(sources_list(apt_entries))
    (tmp / "etc/apt/apt.conf.d/01onprem-proxy").write_text(
        f'Acquire::http::Proxy "{spec.apt_proxy_url}";\n')
    sh("ssh-keygen", "-q", "-A", "-f", tmp)
    ssh_dir = tmp / "home" / spec.admin_user / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(pubkey)
    (ssh_dir / "authorized_keys").chmod(0o600)
    uid_gid = _uid_gid(tmp, spec.admin_user)
    for p in (ssh_dir, ssh_dir / "authorized_keys"):
        shutil.chown(p, *uid_gid)
    tmp.rename(root)
    return root


def _uid_gid(root, user):
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise run.CommandError(f"user {user} missing from the host image")


def host_key(root):
    return (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2]


def boot(spec, host, root, state_dir):
    log = host_dir(state_dir, host.name) / "console.log"
    # The console must be drained: systemd blocks writing to an unread one.
    # CAP_NET_ADMIN (in the host's own network namespace), as root has on a real server: roles
    # load their firewall rules (nftables). nspawn grants it only with a network it made itself.
    return spawn(
        ["systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit",
         f"--machine={spec.name}-{host.name}", f"--hostname={host.name}",
         f"--directory={root}", f"--network-namespace-path=/run/netns/{spec.host_netns(host.name)}",
         "--capability=CAP_NET_ADMIN",
         "--console=read-only", "--resolv-conf=off", "--timezone=off", "--link-journal=no"],
        log,
    )


def ssh_ready(address):
    try:
        with socket.create_connection((str(address), 22), timeout=1) as s:
            s.settimeout(2)
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def wait_ssh(host, pid, timeout=120, logs=()):
    """Wait for the host's SSH banner. A failed `up` removes the host's directory, so the
    error carries the end of its console logs."""
    def ready():
        if not run.alive(pid):
            raise run.CommandError(f"host {host.name}: exited during boot")
        return ssh_ready(host.address)
    try:
        wait_for(ready, timeout, f"SSH on {host.name} ({host.address})")
    except run.CommandError as err:
        raise run.CommandError(f"{err}{log_tails(logs)}") from None


def log_tails(paths, lines=15):
    text = ""
    for path in paths:
        try:
            tail = Path(path).read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            continue
        text += f"\n--- last lines of {path}:\n" + "\n".join(tail)
    return text


def children(pid):
    """The processes whose parent is pid (nspawn's is the container's init)."""
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(child) for child in f.read().split()]
    except OSError:
        pass
    return found


def shutdown(pids, timeout=45):
    # nspawn turns SIGTERM into an orderly shutdown of the container's systemd. A container that
    # does not stop in time (one still booting can ignore it) has nspawn killed, and its init
    # would live on with the whole container: killing the init ends its PID namespace.
    inits = [child for pid in pids if run.alive(pid) for child in children(pid)]
    run.stop(pids, signal.SIGTERM, timeout=timeout)
    run.stop(inits, signal.SIGKILL, timeout=5)
