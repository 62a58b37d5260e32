"""The sandbox's reading of its inventory: what it accepts, and what it refuses by name."""
import copy
import ipaddress
import re

import pytest

from onprem_sandbox import spec
from onprem_sandbox.spec import SpecError, debian_sources, parse_inventory

GROUP_VARS = {
    "sandbox_name": "deepseek",
    "sandbox_mirror_address": "10.77.0.1",
    "sandbox_sites": {"site_a": {"subnet": "10.77.1.0/24"}, "site_b": {"subnet": "10.77.2.0/24"}},
}


def inventory(**hosts):
    hostvars = {name: {**GROUP_VARS, **hv} for name, hv in hosts.items()}
    hostvars["localhost"] = {"ansible_connection": "local"}
    return {"_meta": {"hostvars": hostvars}}


def two_sites():
    return inventory(
        **{
            "ds-a-node1": {"sandbox_site": "site_a", "ansible_host": "10.77.1.11"},
            "ds-b-node1": {"sandbox_site": "site_b", "ansible_host": "10.77.2.11"},
        }
    )


def test_two_sites_are_parsed_with_derived_names():
    s = parse_inventory(two_sites())
    assert s.name == "deepseek"
    assert s.mirror_address == ipaddress.IPv4Address("10.77.0.1")
    assert s.router_address == ipaddress.IPv4Address("10.77.0.2")
    assert [h.name for h in s.hosts] == ["ds-a-node1", "ds-b-node1"]
    assert s.sites["site_a"].gateway == ipaddress.IPv4Address("10.77.1.1")
    assert s.sites["site_b"].bridge == "site1"
    assert s.router_netns == "sbx-deepseek-router"
    assert s.host_netns("ds-a-node1") == "sbx-deepseek-ds-a-node1"
    assert s.uplink == "sbx-deepseek"
    assert len(s.uplink) <= 15  # Linux interface names
    assert s.apt_proxy_url == "http://10.77.0.1:3142"


def test_controller_is_not_a_sandbox_host():
    s = parse_inventory(two_sites())
    assert "localhost" not in [h.name for h in s.hosts]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda inv: inv["_meta"]["hostvars"]["ds-a-node1"].update(ansible_host="10.77.2.11"),
         "ansible_host 10.77.2.11 is not a free host address in 10.77.1.0/24"),
        (lambda inv: inv["_meta"]["hostvars"]["ds-a-node1"].update(ansible_host="10.77.1.1"),
         "is not a free host address"),
        (lambda inv: inv["_meta"]["hostvars"]["ds-a-node1"].update(sandbox_site="site_c"),
         "sandbox_site 'site_c' is not in sandbox_sites"),
        (lambda inv: inv["_meta"]["hostvars"]["ds-a-node1"].pop("sandbox_site"),
         "sandbox_site is not set (host ds-a-node1)"),
        (lambda inv: [hv.update(sandbox_name="Deep_Seek") for hv in inv["_meta"]["hostvars"].values()],
         "sandbox_name: 'Deep_Seek'"),
        (lambda inv: [hv.update(sandbox_mirror_address="10.77.0.2") for hv in inv["_meta"]["hostvars"].values()],
         "sandbox_mirror_address: 10.77.0.2 must be the first address of a /30"),
        (lambda inv: [hv.update(sandbox_sites={"a": {"subnet": "10.77.1.0/24"}, "b": {"subnet": "10.77.1.128/25"}})
                      for hv in inv["_meta"]["hostvars"].values()],
         "overlaps site a"),
        (lambda inv: [hv.update(sandbox_sites={"a": {"subnet": "10.77.0.0/16"}}) for hv in inv["_meta"]["hostvars"].values()],
         "overlaps the mirror link"),
        (lambda inv: [hv.update(sandbox_sites={"a": {"subnet": "not-a-net"}}) for hv in inv["_meta"]["hostvars"].values()],
         "sandbox_sites.a.subnet"),
        (lambda inv: [hv.update(sandbox_pypi_requirements="vllm") for hv in inv["_meta"]["hostvars"].values()],
         "sandbox_pypi_requirements: must be a list"),
    ],
)
def test_bad_inventories_are_refused_naming_the_variable(mutate, message):
    inv = copy.deepcopy(two_sites())
    mutate(inv)
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        parse_inventory(inv)


def test_duplicate_addresses_are_refused():
    inv = two_sites()
    inv["_meta"]["hostvars"]["ds-a-node2"] = {**GROUP_VARS, "sandbox_site": "site_a", "ansible_host": "10.77.1.11"}
    with pytest.raises(SpecError, match="already used by ds-a-node1"):
        parse_inventory(inv)


def test_empty_inventory_is_refused():
    with pytest.raises(SpecError, match="no hosts"):
        parse_inventory({"_meta": {"hostvars": {"localhost": {"ansible_connection": "local"}}}})


def test_rootfs_key_follows_what_goes_into_the_image():
    s = parse_inventory(two_sites())
    inv = two_sites()
    for hv in inv["_meta"]["hostvars"].values():
        hv["sandbox_extra_packages"] = ["nginx-light"]
    s2 = parse_inventory(inv)
    assert s.rootfs_key("http://mirror/debian") == parse_inventory(two_sites()).rootfs_key("http://mirror/debian")
    assert s.rootfs_key("http://mirror/debian") != s2.rootfs_key("http://mirror/debian")
    assert s.rootfs_key("http://mirror/debian") != s.rootfs_key("http://other/debian")


def test_extra_packages_are_names():
    inv = two_sites()
    for hv in inv["_meta"]["hostvars"].values():
        hv["sandbox_extra_packages"] = ["mdadm", "libengine-pkcs11-openssl"]
    assert parse_inventory(inv).extra_packages == ("mdadm", "libengine-pkcs11-openssl")
    for bad in (["mdadm; reboot"], [""], [3], "mdadm"):
        for hv in inv["_meta"]["hostvars"].values():
            hv["sandbox_extra_packages"] = bad
        with pytest.raises(SpecError, match="sandbox_extra_packages"):
            parse_inventory(inv)


# apt sources as this machine kind has them: deb822 with a commented snapshot line, plus
# unrelated third-party repositories that must not leak into the hosts.
DEB822 = """Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://archive.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://archive.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: https://vendor.example/apt
Suites: vendor-bookworm
Components: main

Types: deb-src
URIs: http://archive.example/debian
Suites: bookworm
Components: main
"""
ONE_LINE = "deb [arch=amd64 signed-by=/k.gpg] http://other.example/debian bookworm main contrib\ndeb https://vendor.example/x nodistro main\n"


def test_debian_sources_from_deb822_pick_the_suite_family_only():
    assert debian_sources(DEB822, "bookworm") == [
        ("http://archive.example/debian", "bookworm", ["main"]),
        ("http://archive.example/debian", "bookworm-updates", ["main"]),
        ("http://archive.example/debian-security", "bookworm-security", ["main"]),
    ]


def test_debian_sources_from_one_line_format_drop_options():
    assert debian_sources(ONE_LINE, "bookworm") == [("http://other.example/debian", "bookworm", ["main", "contrib"])]


def test_debian_sources_without_the_suite_are_refused():
    with pytest.raises(SpecError, match="no 'bookworm' Debian source"):
        debian_sources("deb http://archive.example/debian trixie main\n", "bookworm")


def test_base_packages_carry_what_ansible_needs():
    assert {"python3", "python3-apt", "openssh-server", "sudo", "systemd-sysv", "dbus"} <= set(spec.BASE_PACKAGES)


ROUTER_BGP = {"asn": 65000, "peer_asn": 65001, "service_prefix": "10.77.100.0/24"}


def with_router_bgp(value):
    inv = two_sites()
    for hv in inv["_meta"]["hostvars"].values():
        hv["sandbox_router_bgp"] = value
    return inv


def test_router_bgp_is_parsed():
    bgp = parse_inventory(with_router_bgp(ROUTER_BGP)).router_bgp
    assert (bgp.asn, bgp.peer_asn) == (65000, 65001)
    assert bgp.service_prefix == ipaddress.IPv4Network("10.77.100.0/24")


def test_router_bgp_is_optional():
    assert parse_inventory(two_sites()).router_bgp is None


@pytest.mark.parametrize("asn", [1, 4294967295, "4200000000"])
def test_router_bgp_asn_bounds_are_accepted(asn):
    assert parse_inventory(with_router_bgp({**ROUTER_BGP, "asn": asn})).router_bgp.asn == int(asn)
    assert parse_inventory(with_router_bgp({**ROUTER_BGP, "peer_asn": asn})).router_bgp.peer_asn == int(asn)


@pytest.mark.parametrize("prefix", ["10.77.0.4/30", "10.76.255.255/32", "10.77.3.0/24", "10.77.100.10/32"])
def test_router_bgp_prefix_next_to_the_other_networks_is_accepted(prefix):
    bgp = parse_inventory(with_router_bgp({**ROUTER_BGP, "service_prefix": prefix})).router_bgp
    assert str(bgp.service_prefix) == prefix


@pytest.mark.parametrize(
    "value, message",
    [
        ("65000", "sandbox_router_bgp: must be a mapping"),
        ({**ROUTER_BGP, "med": 10}, "sandbox_router_bgp: unknown key(s) med"),
        ({"asn": 65000}, "sandbox_router_bgp: missing key(s) peer_asn, service_prefix"),
        ({**ROUTER_BGP, "asn": 0}, "sandbox_router_bgp.asn: 0 is outside 1-4294967295"),
        ({**ROUTER_BGP, "asn": 4294967296}, "sandbox_router_bgp.asn: 4294967296 is outside 1-4294967295"),
        ({**ROUTER_BGP, "peer_asn": 0}, "sandbox_router_bgp.peer_asn: 0 is outside"),
        ({**ROUTER_BGP, "peer_asn": 4294967296}, "sandbox_router_bgp.peer_asn: 4294967296 is outside"),
        ({**ROUTER_BGP, "asn": -1}, "sandbox_router_bgp.asn: -1 is outside 1-4294967295"),
        ({**ROUTER_BGP, "asn": "-1"}, "sandbox_router_bgp.asn: '-1' is not an AS number"),
        ({**ROUTER_BGP, "asn": True}, "sandbox_router_bgp.asn: True is not an AS number"),
        ({**ROUTER_BGP, "asn": "AS65000"}, "sandbox_router_bgp.asn: 'AS65000' is not an AS number"),
        ({**ROUTER_BGP, "peer_asn": 650.5}, "sandbox_router_bgp.peer_asn: 650.5 is not an AS number"),
        ({**ROUTER_BGP, "peer_asn": 65000}, "sandbox_router_bgp.peer_asn: 65000 must differ from asn"),
        ({**ROUTER_BGP, "service_prefix": "10.77.100.1/24"}, "sandbox_router_bgp.service_prefix: '10.77.100.1/24'"),
        ({**ROUTER_BGP, "service_prefix": "2001:db8::/64"}, "is not an IPv4 network"),
        ({**ROUTER_BGP, "service_prefix": None}, "sandbox_router_bgp.service_prefix: None is not an IPv4 network"),
        ({**ROUTER_BGP, "service_prefix": "10.77.0.0/30"}, "10.77.0.0/30 overlaps the mirror link 10.77.0.0/30"),
        ({**ROUTER_BGP, "service_prefix": "10.77.0.3/32"}, "10.77.0.3/32 overlaps the mirror link"),
        ({**ROUTER_BGP, "service_prefix": "10.77.2.255/32"}, "10.77.2.255/32 overlaps site site_b"),
        ({**ROUTER_BGP, "service_prefix": "10.77.0.0/16"}, "sandbox_router_bgp.service_prefix: 10.77.0.0/16 overlaps"),
    ],
)
def test_bad_router_bgp_is_refused_naming_the_variable(value, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_inventory(with_router_bgp(value))
