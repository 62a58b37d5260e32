"""The router's BIRD (sandbox_router_bgp): its configuration, and, as root, a live run on
throwaway namespaces: a peer announces /32s, the router installs those of the service prefix,
and `down` leaves nothing."""
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from onprem_sandbox import cli, network, run
from onprem_sandbox.spec import parse_inventory

NAME = "bgplive"
PEER_NS = "bgplive-peer"  # not sbx-NAME-*: `down` must not be what removes it


def inventory(mirror="10.93.0.1", sites=("10.93.1.0/24", "10.93.2.0/24"), prefix="10.93.100.0/24"):
    group_vars = {
        "sandbox_name": NAME,
        "sandbox_mirror_address": mirror,
        "sandbox_sites": {f"site_{c}": {"subnet": s} for c, s in zip("ab", sites)},
        "sandbox_router_bgp": {"asn": 64512, "peer_asn": 64513, "service_prefix": prefix},
    }
    host = {**group_vars, "sandbox_site": "site_a", "ansible_host": sites[0].replace(".0/24", ".11")}
    return {"_meta": {"hostvars": {"bl-a1": host}}}


def test_config_has_one_session_per_site_the_prefix_filter_and_the_asns(tmp_path):
    conf = network.router_bird_config(parse_inventory(inventory()), tmp_path / "bird.log")
    assert "router id 10.93.1.1;" in conf
    assert f'log "{tmp_path / "bird.log"}" all;' in conf
    assert "local as 64512;" in conf
    assert "import where net ~ [ 10.93.100.0/24{32,32} ]; export none;" in conf
    assert "protocol bgp site0 from gateways { neighbor range 10.93.1.0/24 as 64513; }  # site_a" in conf
    assert "protocol bgp site1 from gateways { neighbor range 10.93.2.0/24 as 64513; }  # site_b" in conf
    assert conf.count("protocol bgp ") == 2
    assert "export all; import none;" in conf  # kernel: BGP routes in, nothing read back


def test_config_is_accepted_by_bird(tmp_path):
    if not shutil.which(network.BIRD):
        pytest.fail(f"{network.BIRD} missing: run tools/bootstrap")
    conf = tmp_path / "bird.conf"
    conf.write_text(network.router_bird_config(parse_inventory(inventory()), tmp_path / "bird.log"))
    subprocess.run([network.BIRD, "-p", "-c", conf], check=True, timeout=30)


def test_this_machine_routes_the_service_prefix_through_the_router():
    assert network.routed_nets(parse_inventory(inventory())) == ["10.93.1.0/24", "10.93.2.0/24", "10.93.100.0/24"]
    plain = inventory()
    del plain["_meta"]["hostvars"]["bl-a1"]["sandbox_router_bgp"]
    assert network.routed_nets(parse_inventory(plain)) == ["10.93.1.0/24", "10.93.2.0/24"]


PEER_CONF = """router id 10.93.1.11;
protocol device { scan time 10; }
protocol static announced {
  ipv4;
  route 10.93.100.10/32 blackhole;   # in the service prefix: installed
  route 10.93.100.64/26 blackhole;   # in it, but not a /32: refused
  route 10.93.200.10/32 blackhole;   # outside it: refused
}
protocol bgp uplink {
  local as 64513; neighbor 10.93.1.1 as 64512;
  hold time 3; keepalive time 1; connect retry time 1; error wait time 1, 2;
  ipv4 { import none; export where proto = "announced"; };
}
"""


def _sh(*cmd, check=True):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=check, timeout=30)


def _router_routes():
    return _sh("ip", "-n", f"sbx-{NAME}-router", "route", "show", "proto", "bird").stdout


def _until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"no {what} after {timeout} s")


def _start_peer(tmp_path):
    """A gateway stand-in: its own namespace on site_a's bridge, with a BIRD announcing /32s."""
    _sh("ip", "netns", "add", PEER_NS)
    _sh("ip", "-n", f"sbx-{NAME}-router", "link", "add", "peer0", "type", "veth", "peer", "name", "eth0",
        "netns", PEER_NS)
    _sh("ip", "-n", f"sbx-{NAME}-router", "link", "set", "peer0", "master", "site0", "up")
    _sh("ip", "-n", PEER_NS, "addr", "add", "10.93.1.11/24", "dev", "eth0")
    _sh("ip", "-n", PEER_NS, "link", "set", "eth0", "up")
    _sh("ip", "-n", PEER_NS, "link", "set", "lo", "up")
    conf = tmp_path / "peer.conf"
    conf.write_text(PEER_CONF)
    return subprocess.Popen(["ip", "netns", "exec", PEER_NS, network.BIRD, "-f", "-c", conf,
                             "-s", tmp_path / "peer.ctl", "-P", tmp_path / "peer.pid"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop_peer(peer):
    if peer is not None and peer.poll() is None:
        peer.send_signal(signal.SIGTERM)
        try:
            peer.wait(timeout=10)
        except subprocess.TimeoutExpired:
            peer.kill()
            peer.wait(timeout=10)
    if Path(f"/run/netns/{PEER_NS}").exists():
        _sh("ip", "netns", "del", PEER_NS, check=False)


def test_live_router_installs_announced_service_routes_and_down_removes_everything(tmp_path, monkeypatch, capsys):
    if os.geteuid() != 0:
        pytest.skip("needs root: namespaces")
    if not shutil.which(network.BIRD):
        pytest.fail(f"{network.BIRD} missing: run tools/bootstrap")
    monkeypatch.setattr(cli, "STATE_ROOT", tmp_path / "state")
    spec = parse_inventory(inventory())
    peer = bird = None
    cli.down(NAME)
    try:
        # The router part of `up` only: no hosts, no mirror.
        state = cli.State(NAME)
        cli.record_routes(spec, state)
        network.ensure_router(spec)
        cli.ensure_router_bgp(spec, state)
        bird = state.data["router_pids"]["bird"]
        assert run.alive(bird)
        assert "via 10.93.0.2 dev sbx-bgplive" in _sh("ip", "route", "show", "10.93.100.0/24").stdout

        peer = _start_peer(tmp_path)
        _until(lambda: "10.93.100.10 via 10.93.1.11 dev site0" in _router_routes(), 20, "route from the peer")
        routes = _router_routes()
        assert "10.93.100.64" not in routes and "10.93.200.10" not in routes, routes

        assert cli.bgp_routes(NAME) == 0
        assert "10.93.100.10/32" in capsys.readouterr().out

        # A second `up` keeps the running BIRD; one that died is started again.
        cli.ensure_router_bgp(spec, cli.State(NAME))
        assert cli.State(NAME).data["router_pids"]["bird"] == bird
        run.stop([bird], timeout=10)
        state = cli.State(NAME)
        cli.ensure_router_bgp(spec, state)
        bird = state.data["router_pids"]["bird"]
        assert run.alive(bird)
        _until(lambda: "10.93.100.10 via 10.93.1.11" in _router_routes(), 20, "route after the restart")

        cli.down(NAME)
        assert not run.alive(bird)
        assert _sh("ip", "route", "show", "10.93.100.0/24").stdout == ""
        assert not Path(f"/run/netns/sbx-{NAME}-router").exists()
        assert network.leftovers(NAME) == []
        assert not (tmp_path / "state" / NAME).exists()
    finally:
        _stop_peer(peer)
        cli.down(NAME)
        run.stop([bird], timeout=10)
