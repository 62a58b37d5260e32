"""sandbox up | down | status | publish | bgp-routes: the command line of the sandbox."""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import sys
import time
from pathlib import Path

from . import hosts as hostmod
from . import mirror, network, rootfs, run, vm
from .run import log, sh
from .spec import SpecError, load

STATE_ROOT = Path(os.environ.get("SANDBOX_STATE_ROOT", "/var/lib/onprem-sandbox"))
CACHE_ROOT = Path(os.environ.get("SANDBOX_CACHE", "/var/cache/onprem-sandbox"))


class State:
    """What this sandbox created, so that `down` removes exactly that, even after the
    inventory changed."""

    def __init__(self, name):
        self.name = name
        self.dir = STATE_ROOT / name
        self.file = self.dir / "state.json"
        self.data = json.loads(self.file.read_text()) if self.file.exists() else {}

    def save(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True))
        tmp.rename(self.file)

    @property
    def hosts(self):
        return self.data.setdefault("hosts", {})


def ssh_material(spec, state):
    ssh_dir = state.dir / "ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ssh_dir / "id_ed25519"
    if not key.exists():
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"sandbox-{spec.name}", "-f", key)
    return key, (ssh_dir / "id_ed25519.pub").read_text()


def write_ssh_files(spec, state):
    ssh_dir = state.dir / "ssh"
    known = "".join(f"{h['address']} {h['hostkey']}\n" for h in state.hosts.values())
    (ssh_dir / "known_hosts").write_text(known)
    config = "".join(
        f"Host {name}\n  HostName {h['address']}\n  User {spec.admin_user}\n"
        f"  IdentityFile {ssh_dir / 'id_ed25519'}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {ssh_dir / 'known_hosts'}\n  StrictHostKeyChecking yes\n\n"
        for name, h in sorted(state.hosts.items())
    )
    (ssh_dir / "config").write_text(config)


def up(spec):
    state = State(spec.name)
    record_routes(spec, state)
    try:
        _up(spec, state)
    except BaseException:
        log("up failed: removing what it created")
        down(spec.name)
        raise


def record_routes(spec, state):
    """Note this machine's routes before they are made (a failed `up` removes them), and
    remove those an earlier `up` made that the inventory no longer names."""
    routes = network.routed_nets(spec)
    for route in set(state.data.get("routes", [])) - set(routes):
        sh("ip", "route", "del", route, check=False)
    state.data.update(name=spec.name, mirror=str(spec.mirror_address), routes=routes)
    state.save()


@contextlib.contextmanager
def machine_lock(cache):
    """Sandboxes may come up side by side (molecule lanes): the shared image cache, wheelhouse
    and router are built by one of them at a time."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _up(spec, state):
    started = time.monotonic()
    cache = CACHE_ROOT
    images = {}
    with machine_lock(cache):
        for host_type in sorted({h.type for h in spec.hosts}):
            images[host_type] = rootfs.ensure(spec, cache / "images", host_type)
        network.ensure_router(spec)
        www = mirror.prepare_www(spec, state.dir, cache / "wheels")
    _, pubkey = ssh_material(spec, state)

    mirror_cache = cache / "mirror" / spec.name
    procs = state.data.setdefault("mirror_pids", {})
    if not run.alive(procs.get("apt")):
        procs["apt"] = mirror.start_apt_proxy(spec, state.dir, mirror_cache)
    if not run.alive(procs.get("http")):
        procs["http"] = mirror.start_http(spec, www)
    state.save()
    ensure_router_bgp(spec, state)

    wanted = {h.name for h in spec.hosts}
    gone = sorted(set(state.hosts) - wanted)
    if gone:
        log(f"removing host(s) no longer in the inventory: {', '.join(gone)}")
        _remove_hosts(state, gone)
    for host in spec.hosts:
        entry = state.hosts.get(host.name, {})
        if entry and entry.get("type", "container") != host.type:
            log(f"host {host.name} changed type: recreating it")
            _remove_hosts(state, [host.name])
            entry = {}
        if host.type == "vm":
            network.ensure_vm_link(spec, host)
        else:
            network.ensure_host(spec, host)
        if run.alive(entry.get("pid")):
            continue
        image, apt_entries = images[host.type]
        if host.type == "vm":
            paths = vm.create(spec, host, image, apt_entries, state.dir, pubkey)
            accel = vm.choose_accel(paths["kernel"], paths["initrd"], cache)
            pid = vm.boot(spec, host, paths, accel, state.dir)
            hostkey = vm.host_key_of(state.dir, host.name)
            extra = {"accel": accel, "link": host.link,
                     "disks": {d.id: f"{d.bus} serial {d.serial}" + (f" wwn {d.wwn}" if d.wwn else "")
                               + (" (prefilled ext4)" if d.prefill else "") for d in host.disks}}
        else:
            root = hostmod.create_rootfs(spec, host, image, apt_entries, state.dir, pubkey)
            pid = hostmod.boot(spec, host, root, state.dir)
            hostkey = hostmod.host_key(root)
            extra = {}
        state.hosts[host.name] = {
            "pid": pid, "address": str(host.address), "site": host.site, "type": host.type,
            "hostkey": " ".join(hostkey), **extra,
        }
        state.save()
    for host in spec.hosts:
        # A guest under TCG answers SSH about 50 s after start on an idle machine.
        timeout = 420 if host.type == "vm" else 120
        hdir = hostmod.host_dir(state.dir, host.name)
        logs = [hdir / "qemu.out", hdir / "console.log"] if host.type == "vm" else [hdir / "console.log"]
        hostmod.wait_ssh(host, state.hosts[host.name]["pid"], timeout, logs)
    write_ssh_files(spec, state)
    log(f"up: {len(spec.hosts)} host(s) answering SSH after {time.monotonic() - started:.0f}s")


def ensure_router_bgp(spec, state):
    """The router's BIRD when the inventory asks for it (restarted when it is not running or
    its configuration changed); stopped when it no longer does."""
    procs = state.data.setdefault("router_pids", {})
    if spec.router_bgp:
        procs["bird"] = network.ensure_router_bird(spec, state.dir, procs.get("bird"))
    else:
        run.stop([procs.pop("bird", None)], timeout=10)
    state.save()


def _remove_hosts(state, names):
    entries = {n: state.hosts.get(n, {}) for n in names}
    vm.shutdown([e.get("pid") for e in entries.values() if e.get("type") == "vm"])
    hostmod.shutdown([e.get("pid") for e in entries.values() if e.get("type", "container") == "container"])
    for name in names:
        state.hosts.pop(name, None)
        if entries[name].get("type") == "vm":
            network.remove_vm_link(state.name, entries[name].get("link"))
        network.remove_host(state.name, name)
        shutil.rmtree(hostmod.host_dir(state.dir, name), ignore_errors=True)
        state.save()


def down(name):
    state = State(name)
    _remove_hosts(state, sorted(state.hosts))
    run.stop(list(state.data.get("mirror_pids", {}).values()), timeout=10)
    run.stop(list(state.data.get("router_pids", {}).values()), timeout=10)
    network.remove_router(name, state.data.get("routes", []))
    # Namespaces left by an interrupted run that never reached the state file.
    for item in network.leftovers(name):
        kind, _, obj = item.partition(" ")
        sh("ip", *(["netns", "del"] if kind == "netns" else ["link", "del"]), obj, check=False)
    if state.dir.exists():
        shutil.rmtree(state.dir)
    remaining = network.leftovers(name)
    if remaining:
        raise run.CommandError(f"down left {', '.join(remaining)}")


def status(name):
    state = State(name)
    if not state.data:
        print(f"sandbox {name}: down")
        return 0
    healthy = True
    print(f"sandbox {name}: state in {state.dir}")
    procs = state.data.get("mirror_pids", {})
    m = state.data.get("mirror")
    for what, port, path in (("apt proxy", 3142, ""), ("http", 8080, "/pypi/simple/ and /artifacts/")):
        key = "apt" if what == "apt proxy" else "http"
        ok = run.alive(procs.get(key))
        healthy &= ok
        print(f"  mirror {what:9} http://{m}:{port}{path:30} {'running' if ok else 'STOPPED'}")
    if "bird" in state.data.get("router_pids", {}):
        ok = run.alive(state.data["router_pids"]["bird"])
        healthy &= ok
        ctl = network.bird_files(state.dir)["ctl"]
        print(f"  router BGP       {'birdc -s ' + str(ctl):50} {'running' if ok else 'STOPPED'}")
    for host, h in sorted(state.hosts.items()):
        ok = run.alive(h.get("pid")) and hostmod.ssh_ready(h["address"])
        healthy &= ok
        kind = h.get("type", "container")
        if kind == "vm":
            kind = f"vm/{h.get('accel', '?')}"
        print(f"  host   {host:20} {h['address']:15} site {h['site']:10} {kind:13} {'up (ssh)' if ok else 'DOWN'}")
        for disk_id, what in sorted(h.get("disks", {}).items()):
            print(f"         disk {disk_id:15} {what}")
    print(f"  ssh:   ssh -F {state.dir / 'ssh' / 'config'} <host>")
    return 0 if healthy else 1


def bgp_routes(name):
    state = State(name)
    if not run.alive(state.data.get("router_pids", {}).get("bird")):
        print(f"sandbox {name}: the router runs no BIRD (sandbox_router_bgp unset, or the sandbox is down)",
              file=sys.stderr)
        return 1
    print(network.bird_routes(state.dir), end="")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="sandbox", description=__doc__)
    p.add_argument("-i", "--inventory", action="append",
                   help="inventory source(s) describing the sandbox (default: inventories/sandbox)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="create or repair the sandbox (idempotent)")
    sub.add_parser("down", help="remove every host, link, namespace and process of the sandbox")
    sub.add_parser("status", help="show hosts, addresses and the mirror; exit 1 if anything is down")
    pub = sub.add_parser("publish", help="copy files into the mirror's artifact store")
    pub.add_argument("src")
    pub.add_argument("dest")
    sub.add_parser("bgp-routes", help="the routes the router's BIRD learnt (sandbox_router_bgp)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("sandbox: must run as root (namespaces, containers)")
    inventories = args.inventory or ["inventories/sandbox"]
    ansible_inventory = str(Path(sys.executable).with_name("ansible-inventory"))
    try:
        spec = load(inventories, ansible_inventory)
        if args.cmd == "up":
            up(spec)
            return status(spec.name)
        if args.cmd == "down":
            down(spec.name)
            print(f"sandbox {spec.name}: down")
            return 0
        if args.cmd == "status":
            return status(spec.name)
        if args.cmd == "publish":
            target = mirror.publish(State(spec.name).dir / "mirror" / "www", args.src, args.dest)
            print(f"published {args.src} -> {spec.http_url}/artifacts/{args.dest.strip('/')} ({target})")
            return 0
        if args.cmd == "bgp-routes":
            return bgp_routes(spec.name)
    except (SpecError, run.CommandError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    return 0

