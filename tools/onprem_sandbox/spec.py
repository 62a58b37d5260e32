"""What a sandbox is made of, read from an Ansible inventory and validated.

Everything here is pure: no commands run, so it is unit-tested directly.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
HOST_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")

# Packages every sandbox host image carries: what a freshly installed server has, plus what
# Ansible needs to manage it (python3, python3-apt) and to reach it (openssh-server, sudo).
BASE_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "libpam-systemd", "python3", "python3-apt",
    "openssh-server", "sudo", "iproute2", "ca-certificates", "curl", "procps",
    "kmod", "less", "gnupg",
)

# A QEMU guest (sandbox_type: vm) boots its own kernel and sees real block devices: it also
# needs the kernel, udev (for /dev/disk/by-id) and an initramfs builder.
VM_PACKAGES = ("linux-image-amd64", "udev", "initramfs-tools", "e2fsprogs")

HOST_TYPES = ("container", "vm")

# Files every host image carries from this tool (rootfs.install_bytecode_cache).
HOST_FILES_DIR = Path(__file__).parent / "host_files"
DISK_BUSES = ("nvme", "sas", "sata")
DISK_ID_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
SERIAL_RE = re.compile(r"^[A-Za-z0-9]{1,20}$")
WWN_RE = re.compile(r"^0x[0-9a-fA-F]{16}$")
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
SIZE_RE = re.compile(r"^([0-9]+)([KMGT]?)$")
# QEMU's mptsas1068 and ahci take 8 and 6 devices.
BUS_LIMITS = {"nvme": 16, "sas": 8, "sata": 6}


class SpecError(ValueError):
    """The inventory does not describe a valid sandbox; the message names the variable."""


@dataclass(frozen=True)
class Site:
    name: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    bridge: str


@dataclass(frozen=True)
class Disk:
    id: str
    bus: str
    size_bytes: int
    rotational: bool
    serial: str
    wwn: str = None
    prefill: str = None  # "ext4": a filesystem with a marker file, made before the guest boots


@dataclass(frozen=True)
class Host:
    name: str
    site: str
    address: ipaddress.IPv4Address
    link: str  # in the router namespace: the host's veth end, or a VM's tap device
    type: str = "container"
    disks: tuple = ()
    memory_mib: int = 1024
    cpus: int = 2


@dataclass(frozen=True)
class RouterBgp:
    """BGP on the router namespace, standing for the site routers that the gateways announce
    the service address to."""
    asn: int
    peer_asn: int
    service_prefix: ipaddress.IPv4Network


@dataclass(frozen=True)
class Spec:
    name: str
    mirror_address: ipaddress.IPv4Address
    router_address: ipaddress.IPv4Address
    sites: dict
    hosts: tuple
    suite: str = "bookworm"
    packages: tuple = BASE_PACKAGES
    # Installed with apt after debootstrap (whose own resolver cannot configure some packages,
    # python3-cryptography among them): the packages a scenario wants in place before its roles run.
    extra_packages: tuple = ()
    pypi_requirements: tuple = ()
    pypi_requirement_files: tuple = ()
    admin_user: str = "deploy"
    apt_port: int = 3142
    http_port: int = 8080
    router_bgp: RouterBgp = None
    extra: dict = field(default_factory=dict)

    # Names of everything the sandbox creates on this machine, derived in one place so that
    # `down` removes exactly what `up` made.
    @property
    def router_netns(self):
        return f"sbx-{self.name}-router"

    def host_netns(self, host):
        return f"sbx-{self.name}-{host}"

    @property
    def uplink(self):
        return f"sbx-{self.name}"

    @property
    def apt_proxy_url(self):
        return f"http://{self.mirror_address}:{self.apt_port}"

    @property
    def http_url(self):
        return f"http://{self.mirror_address}:{self.http_port}"

    @property
    def vm_hosts(self):
        return tuple(h for h in self.hosts if h.type == "vm")

    @property
    def container_hosts(self):
        return tuple(h for h in self.hosts if h.type == "container")

    def image_packages(self, host_type="container"):
        return self.packages + (VM_PACKAGES if host_type == "vm" else ())

    def rootfs_key(self, mirror_url, host_type="container"):
        """Cache key of the host image: changes when anything that goes into it changes."""
        recipe = {"suite": self.suite, "mirror": mirror_url, "packages": sorted(self.image_packages(host_type)),
                  "admin_user": self.admin_user, "recipe": 4, "host_files": host_files_digest()}
        if self.extra_packages:
            recipe["extra_packages"] = sorted(self.extra_packages)
        if host_type == "vm":
            recipe["vm_recipe"] = 1
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def host_files_digest():
    """What the images copy from host_files/: a changed file rebuilds them."""
    digest = hashlib.sha256()
    for path in sorted(HOST_FILES_DIR.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _need(hostvars, var, where):
    if var not in hostvars:
        raise SpecError(f"{var} is not set ({where})")
    return hostvars[var]


def _address(value, var):
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError as exc:
        raise SpecError(f"{var}: {value!r} is not an IPv4 address") from exc


def parse_size(value, var):
    """'512M', '2G', or a number of bytes; at least 1 MiB."""
    m = SIZE_RE.match(str(value).strip().upper())
    if not m:
        raise SpecError(f"{var}: {value!r} is not a size such as 512M or 2G")
    size = int(m.group(1)) * 1024 ** " KMGT".index(m.group(2) or " ")
    if size < 1024 ** 2:
        raise SpecError(f"{var}: {value!r} is smaller than 1M")
    return size


def _bool(value, var):
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "yes", "1"):
        return True
    if str(value).lower() in ("false", "no", "0"):
        return False
    raise SpecError(f"{var}: {value!r} is not a boolean")


def _unique(value, pattern, rule, seen, var):
    """`value` if it matches `pattern` and is not in `seen` yet (it is added); else a SpecError."""
    if not pattern.match(value):
        raise SpecError(f"{var}: {value!r} {rule}")
    if value in seen:
        raise SpecError(f"{var}: {value!r} is used twice")
    seen.add(value)
    return value


def parse_disks(raw, host_name):
    """The emulated disks of a VM host (`sandbox_disks`)."""
    where = f"host {host_name}: sandbox_disks"
    if raw in (None, []):
        return ()
    if not isinstance(raw, list):
        raise SpecError(f"{where}: must be a list of disks")
    disks, ids, serials, wwns, per_bus = [], set(), set(), set(), {}
    for index, d in enumerate(raw):
        var = f"{where}[{index}]"
        if not isinstance(d, dict):
            raise SpecError(f"{var}: must be a mapping")
        unknown = set(d) - {"id", "bus", "size", "rotational", "serial", "wwn", "prefill"}
        if unknown:
            raise SpecError(f"{var}: unknown key(s) {', '.join(sorted(unknown))}")
        disk_id = _unique(str(d.get("id", "")), DISK_ID_RE,
                          "must be 1-12 lowercase letters/digits, starting with a letter", ids, f"{var}.id")
        bus = d.get("bus")
        if bus not in DISK_BUSES:
            raise SpecError(f"{var}.bus: {bus!r} is not one of {', '.join(DISK_BUSES)}")
        per_bus[bus] = per_bus.get(bus, 0) + 1
        if per_bus[bus] > BUS_LIMITS[bus]:
            raise SpecError(f"{var}.bus: more than {BUS_LIMITS[bus]} {bus} disks")
        size = parse_size(d.get("size", "1G"), f"{var}.size")
        rotational = _bool(d.get("rotational", False), f"{var}.rotational")
        if bus == "nvme" and rotational:
            raise SpecError(f"{var}.rotational: NVMe disks are never rotational")
        serial = _unique(str(d.get("serial", "")), SERIAL_RE, "must be 1-20 letters/digits", serials, f"{var}.serial")
        wwn = d.get("wwn")
        if wwn is not None:
            wwn = _unique(str(wwn).lower(), WWN_RE, "must be 0x and 16 hex digits", wwns, f"{var}.wwn")
        elif bus == "sas":
            # QEMU uses it as the SAS address: without it the disk does not appear.
            raise SpecError(f"{var}.wwn: SAS disks need a wwn (QEMU's SAS address)")
        prefill = d.get("prefill")
        if prefill not in (None, "ext4"):
            raise SpecError(f"{var}.prefill: {prefill!r} is not supported (ext4)")
        disks.append(Disk(disk_id, bus, size, rotational, serial, wwn, prefill))
    return tuple(disks)


def _host_type_and_disks(hv, host_name):
    host_type = hv.get("sandbox_type", "container")
    if host_type not in HOST_TYPES:
        raise SpecError(f"host {host_name}: sandbox_type {host_type!r} is not one of {', '.join(HOST_TYPES)}")
    if host_type == "container":
        if hv.get("sandbox_disks"):
            raise SpecError(f"host {host_name}: sandbox_disks needs sandbox_type: vm")
        return host_type, (), {}
    extra = {}
    for var, key, low, high in (("sandbox_vm_memory_mib", "memory_mib", 512, 16384),
                                ("sandbox_vm_cpus", "cpus", 1, 8)):
        if var in hv:
            try:
                value = int(hv[var])
            except (TypeError, ValueError) as exc:
                raise SpecError(f"host {host_name}: {var} {hv[var]!r} is not a number") from exc
            if not low <= value <= high:
                raise SpecError(f"host {host_name}: {var} {value} is outside {low}-{high}")
            extra[key] = value
    return host_type, parse_disks(hv.get("sandbox_disks"), host_name), extra


def _asn(raw, key):
    var = f"sandbox_router_bgp.{key}"
    value = raw.get(key)
    digits = isinstance(value, str) and re.fullmatch(r"[0-9]+", value)
    if isinstance(value, bool) or not (isinstance(value, int) or digits):
        raise SpecError(f"{var}: {value!r} is not an AS number")
    if not 1 <= int(value) <= 4294967295:
        raise SpecError(f"{var}: {value} is outside 1-4294967295")
    return int(value)


def parse_router_bgp(raw, sites, uplink_net):
    """`sandbox_router_bgp`: the router accepts BGP from the site subnets and installs the
    announced /32s of the service prefix."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SpecError("sandbox_router_bgp: must be a mapping {asn, peer_asn, service_prefix}")
    keys = {"asn", "peer_asn", "service_prefix"}
    for what, wrong in (("unknown", set(raw) - keys), ("missing", keys - set(raw))):
        if wrong:
            raise SpecError(f"sandbox_router_bgp: {what} key(s) {', '.join(sorted(wrong))}")
    asn, peer_asn = _asn(raw, "asn"), _asn(raw, "peer_asn")
    if asn == peer_asn:
        # The gateways are external peers (eBGP), whose AS path the standby site prepends.
        raise SpecError(f"sandbox_router_bgp.peer_asn: {peer_asn} must differ from asn")
    try:
        prefix = ipaddress.IPv4Network(str(raw["service_prefix"]))
    except ValueError as exc:
        raise SpecError(f"sandbox_router_bgp.service_prefix: {raw['service_prefix']!r} is not an IPv4 network"
                        f" ({exc})") from exc
    if prefix.overlaps(uplink_net):
        raise SpecError(f"sandbox_router_bgp.service_prefix: {prefix} overlaps the mirror link {uplink_net}")
    for site in sites.values():
        if prefix.overlaps(site.subnet):
            raise SpecError(f"sandbox_router_bgp.service_prefix: {prefix} overlaps site {site.name}")
    return RouterBgp(asn, peer_asn, prefix)


def parse_inventory(inv):
    """Build a Spec from `ansible-inventory --list` output (a dict)."""
    # The controller may be in the inventory too (molecule's create/destroy run there).
    hostvars = {
        name: hv for name, hv in inv.get("_meta", {}).get("hostvars", {}).items()
        if hv.get("ansible_connection") != "local"
    }
    if not hostvars:
        raise SpecError("the inventory has no hosts")
    first = next(iter(hostvars.values()))
    name = str(_need(first, "sandbox_name", "group_vars/all"))
    if not NAME_RE.match(name):
        raise SpecError(f"sandbox_name: {name!r} must be 1-8 lowercase letters/digits, starting with a letter")
    mirror = _address(_need(first, "sandbox_mirror_address", "group_vars/all"), "sandbox_mirror_address")
    uplink_net = ipaddress.IPv4Network(f"{mirror}/30", strict=False)
    if mirror != uplink_net.network_address + 1:
        raise SpecError(f"sandbox_mirror_address: {mirror} must be the first address of a /30 (e.g. x.y.z.1)")
    router = mirror + 1

    raw_sites = _need(first, "sandbox_sites", "group_vars/all")
    if not isinstance(raw_sites, dict) or not raw_sites:
        raise SpecError("sandbox_sites: must be a mapping of site name to {subnet, gateway}")
    sites = {}
    for index, (site_name, conf) in enumerate(sorted(raw_sites.items())):
        try:
            subnet = ipaddress.IPv4Network(str(conf["subnet"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SpecError(f"sandbox_sites.{site_name}.subnet: missing or not an IPv4 network") from exc
        gateway = _address(conf.get("gateway", subnet.network_address + 1), f"sandbox_sites.{site_name}.gateway")
        if gateway not in subnet:
            raise SpecError(f"sandbox_sites.{site_name}.gateway: {gateway} is outside {subnet}")
        if uplink_net.overlaps(subnet):
            raise SpecError(f"sandbox_sites.{site_name}.subnet: {subnet} overlaps the mirror link {uplink_net}")
        for other in sites.values():
            if other.subnet.overlaps(subnet):
                raise SpecError(f"sandbox_sites.{site_name}.subnet: {subnet} overlaps site {other.name}")
        sites[site_name] = Site(site_name, subnet, gateway, f"site{index}")
    router_bgp = parse_router_bgp(first.get("sandbox_router_bgp"), sites, uplink_net)

    hosts = []
    seen = {}
    for index, (host_name, hv) in enumerate(sorted(hostvars.items())):
        if not HOST_RE.match(host_name):
            raise SpecError(f"host {host_name!r}: names must be lowercase letters, digits and '-'")
        site = _need(hv, "sandbox_site", f"host {host_name}")
        if site not in sites:
            raise SpecError(f"host {host_name}: sandbox_site {site!r} is not in sandbox_sites")
        address = _address(_need(hv, "ansible_host", f"host {host_name}"), f"host {host_name}: ansible_host")
        net = sites[site].subnet
        if address not in net or address in (net.network_address, net.broadcast_address, sites[site].gateway):
            raise SpecError(f"host {host_name}: ansible_host {address} is not a free host address in {net}")
        if address in seen:
            raise SpecError(f"host {host_name}: ansible_host {address} is already used by {seen[address]}")
        seen[address] = host_name
        host_type, disks, extra = _host_type_and_disks(hv, host_name)
        hosts.append(Host(host_name, site, address, f"h{index}", host_type, disks, **extra))

    pypi = first.get("sandbox_pypi_requirements", []) or []
    if not isinstance(pypi, list) or not all(isinstance(r, str) for r in pypi):
        raise SpecError("sandbox_pypi_requirements: must be a list of requirement strings")
    pypi_files = first.get("sandbox_pypi_requirement_files", []) or []
    if not isinstance(pypi_files, list) or not all(isinstance(r, str) for r in pypi_files):
        raise SpecError("sandbox_pypi_requirement_files: must be a list of paths (relative to the repository root)")
    extra_pkgs = first.get("sandbox_extra_packages", []) or []
    if not isinstance(extra_pkgs, list) or not all(isinstance(p, str) and PACKAGE_RE.match(p) for p in extra_pkgs):
        raise SpecError("sandbox_extra_packages: must be a list of Debian package names")
    return Spec(
        name=name, mirror_address=mirror, router_address=router, sites=sites,
        hosts=tuple(hosts), extra_packages=tuple(extra_pkgs),
        pypi_requirements=tuple(pypi),
        pypi_requirement_files=tuple(pypi_files), router_bgp=router_bgp,
    )


def load(inventories, ansible_inventory="ansible-inventory"):
    """Read inventory sources with Ansible's own parser, so the sandbox and the playbooks agree."""
    cmd = [ansible_inventory] + [a for i in inventories for a in ("-i", str(i))] + ["--list"]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SpecError(f"cannot read inventory {' '.join(map(str, inventories))}: {proc.stderr.strip()}")
    return parse_inventory(json.loads(proc.stdout))


def debian_sources(sources_text, suite):
    """Pick the Debian archive entries for `suite` from deb822 and one-line apt sources.

    Returns [(uri, suite, components)], main suite first. The sandbox and its hosts use the
    same upstream as this machine, so no mirror address is written into the repository.
    """
    entries = []
    for stanza in re.split(r"\n\s*\n", sources_text):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", "").split():
            continue
        for uri in fields.get("uris", "").split():
            for s in fields.get("suites", "").split():
                entries.append((uri.rstrip("/"), s, fields.get("components", "main").split()))
    for line in sources_text.splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 3 and parts[0] == "deb":
            if parts[1].startswith("["):
                parts = [p for p in parts if not (p.startswith("[") or p.endswith("]") or "=" in p)]
            entries.append((parts[1].rstrip("/"), parts[2], parts[3:] or ["main"]))
    picked = [e for e in entries if e[1] == suite or e[1].startswith(suite + "-")]
    picked.sort(key=lambda e: e[1] != suite)
    if not any(e[1] == suite for e in picked):
        raise SpecError(f"no '{suite}' Debian source in this machine's apt configuration")
    return picked
