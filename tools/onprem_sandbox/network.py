"""Sites, router and per-host namespaces.

Layout (all names derive from the spec):
  this machine --[uplink veth: mirror address]-- router netns --[bridge per site]-- host netns
The router forwards between sites and towards the mirror address only: it has no default
route, so the hosts have no way out but the site mirror.
"""
from __future__ import annotations

import os

from .run import sh


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
    for site in spec.sites.values():
        sh("ip", "route", "replace", str(site.subnet), "via", str(spec.router_address), "dev", spec.uplink)


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


def leftovers(spec_name):
    """Everything of this sandbox still present on the machine (for status and tests)."""
    found = []
    if os.path.isdir("/run/netns"):
        found += [f"netns {n}" for n in sorted(os.listdir("/run/netns")) if n.startswith(f"sbx-{spec_name}-")]
    if _link_exists(f"sbx-{spec_name}"):
        found.append(f"link sbx-{spec_name}")
    return found
