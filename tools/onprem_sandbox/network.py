"""Sites, router and per-host namespaces.

Layout (all names derive from the spec):
  this machine --[uplink veth: mirror address]-- router netns --[bridge per site]-- host netns
The router forwards between sites and towards the mirror address only: it has no default
route, so the hosts have no way out but the site mirror. With `sandbox_router_bgp` it also runs
BIRD, standing for the site routers that the gateways announce the service address to.
"""
from __future__ import annotations

import os
from pathlib import Path

from .run import CommandError, alive, sh, spawn, stop, wait_for

BIRD = "/usr/sbin/bird"
BIRDC = "/usr/sbin/birdc"


def netns_exists(name):
    return os.path.exists(f"/run/netns/{name}")


def _link_exists(name, netns=None):
    args = ["ip"] + (["-n", netns] if netns else []) + ["link", "show", name]
    return sh(*args, check=False).returncode == 0


def ensure_router(spec):
    ns = spec.router_netns
    if not netns_exists(ns):
        sh("ip", "netns", "add", ns)
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    for site in spec.sites.values():
        if not _link_exists(site.bridge, ns):
            sh("ip", "-n", ns, "link", "add", site.bridge, "type", "bridge")
        _ensure_addr(ns, site.bridge, f"{site.gateway}/{site.subnet.prefixlen}")
        sh("ip", "-n", ns, "link", "set", site.bridge, "up")
    if not _link_exists(spec.uplink):
        sh("ip", "link", "add", spec.uplink, "type", "veth", "peer", "name", "uplink", "netns", ns)
    _ensure_addr(None, spec.uplink, f"{spec.mirror_address}/30")
    sh("ip", "link", "set", spec.uplink, "up")
    _ensure_addr(ns, "uplink", f"{spec.router_address}/30")
    sh("ip", "-n", ns, "link", "set", "uplink", "up")
    for net in routed_nets(spec):
        sh("ip", "route", "replace", net, "via", str(spec.router_address), "dev", spec.uplink)


def routed_nets(spec):
    """What this machine routes through the router: the sites, and the service prefix that
    the gateways announce (load generators run here)."""
    nets = [str(s.subnet) for s in spec.sites.values()]
    return nets + ([str(spec.router_bgp.service_prefix)] if spec.router_bgp else [])


def _ensure_addr(ns, dev, cidr):
    prefix = ["ip"] + (["-n", ns] if ns else [])
    out = sh(*prefix, "-o", "addr", "show", "dev", dev, capture=True)
    if f" {cidr} " not in out:
        sh(*prefix, "addr", "add", cidr, "dev", dev)


def ensure_host(spec, host):
    site = spec.sites[host.site]
    ns = spec.host_netns(host.name)
    if not netns_exists(ns):
        sh("ip", "netns", "add", ns)
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    if not _link_exists(host.link, spec.router_netns):
        sh("ip", "-n", spec.router_netns, "link", "add", host.link, "type", "veth",
           "peer", "name", "eth0", "netns", ns)
    sh("ip", "-n", spec.router_netns, "link", "set", host.link, "master", site.bridge, "up")
    _ensure_addr(ns, "eth0", f"{host.address}/{site.subnet.prefixlen}")
    sh("ip", "-n", ns, "link", "set", "eth0", "up")
    sh("ip", "-n", ns, "route", "replace", "default", "via", str(site.gateway))


def ensure_vm_link(spec, host):
    """A QEMU guest's tap device in the router namespace, on its site's bridge: the guest
    itself holds the host address (set by its own systemd-networkd)."""
    site = spec.sites[host.site]
    ns = spec.router_netns
    if not _link_exists(host.link, ns):
        sh("ip", "-n", ns, "tuntap", "add", "dev", host.link, "mode", "tap")
    sh("ip", "-n", ns, "link", "set", host.link, "master", site.bridge, "up")


def remove_vm_link(spec_name, link):
    ns = f"sbx-{spec_name}-router"
    if link and netns_exists(ns) and _link_exists(link, ns):
        sh("ip", "-n", ns, "link", "del", link, check=False)


def remove_host(spec_name, host_name):
    ns = f"sbx-{spec_name}-{host_name}"
    if netns_exists(ns):
        sh("ip", "netns", "del", ns, check=False)


def remove_router(spec_name, routes):
    for route in routes:
        sh("ip", "route", "del", route, check=False)
    uplink = f"sbx-{spec_name}"
    if _link_exists(uplink):
        sh("ip", "link", "del", uplink, check=False)
    ns = f"sbx-{spec_name}-router"
    if netns_exists(ns):
        sh("ip", "netns", "del", ns, check=False)


def bird_files(state_dir):
    return {what: Path(state_dir) / f"bird-router.{what}" for what in ("conf", "ctl", "pid", "log", "out")}


def router_bird_config(spec, log_path):
    """BIRD for the router namespace: BGP from any host of a site subnet (dynamic neighbours,
    so the gateways need no declaration here), importing only /32s of the service prefix into
    the namespace's kernel table. BFD and short timers so that a drill sees a lost gateway within a
    second (BFD) or three (the hold time, for a gateway without BFD)."""
    bgp = spec.router_bgp
    first_site = next(iter(spec.sites.values()))
    lines = [
        f"router id {first_site.gateway};",
        f'log "{log_path}" all;',
        "protocol device { scan time 10; }",
        "protocol kernel { ipv4 { export all; import none; }; }",
        # BFD notices a silent gateway in half a second; a gateway without BFD keeps its session.
        'protocol bfd { interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 5; }; }',
        "template bgp gateways {",
        f"  local as {bgp.asn};",
        # Without `error wait time` a neighbour that lost its link stays refused for a minute.
        "  hold time 3; keepalive time 1; connect retry time 1; error wait time 1, 2; bfd on;",
        f"  ipv4 {{ import where net ~ [ {bgp.service_prefix}{{32,32}} ]; export none; }};",
        "}",
    ]
    # Named after the bridges: site names need not be valid BIRD symbols.
    lines += [f"protocol bgp {site.bridge} from gateways {{ neighbor range {site.subnet} as {bgp.peer_asn}; }}"
              f"  # {site.name}" for site in spec.sites.values()]
    return "\n".join(lines) + "\n"


def ensure_router_bird(spec, state_dir, pid):
    """The router's BIRD, running with the spec's configuration: `pid` when it already is,
    else a new process (its pid)."""
    files = bird_files(state_dir)
    conf = router_bird_config(spec, files["log"])
    current = files["conf"].exists() and files["conf"].read_text() == conf
    if alive(pid) and current and _in_netns(pid, spec.router_netns):
        return pid
    stop([pid], timeout=10)
    files["conf"].write_text(conf)
    sh(BIRD, "-p", "-c", files["conf"])
    pid = spawn(["ip", "netns", "exec", spec.router_netns, BIRD, "-f", "-c", files["conf"],
                 "-s", files["ctl"], "-P", files["pid"]], files["out"])
    wait_for(lambda: _bird_answers(pid, files), 15, "BIRD in the router namespace")
    return pid


def _in_netns(pid, netns):
    """False for a BIRD left in a router namespace that was deleted and made again."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{netns}").st_ino
    except OSError:
        return False


def _bird_answers(pid, files):
    if not alive(pid):
        tail = files["out"].read_text(errors="replace")[-2000:] if files["out"].exists() else ""
        raise CommandError(f"BIRD in the router namespace exited:\n{tail}")
    return sh(BIRDC, "-s", files["ctl"], "show", "status", check=False).returncode == 0


def bird_routes(state_dir):
    """The router's BGP routes as BIRD shows them (best path first, marked *)."""
    return sh(BIRDC, "-s", bird_files(state_dir)["ctl"], "show", "route", capture=True)


def leftovers(spec_name):
    """Everything of this sandbox still present on the machine (for status and tests)."""
    found = []
    if os.path.isdir("/run/netns"):
        found += [f"netns {n}" for n in sorted(os.listdir("/run/netns")) if n.startswith(f"sbx-{spec_name}-")]
    if _link_exists(f"sbx-{spec_name}"):
        found.append(f"link sbx-{spec_name}")
    return found
