"""tools/sandbox up/down: idempotent, complete clean-up, two routed sites, no way out but the mirror."""
import json
import os
import re
from pathlib import Path

import pytest

from conftest import ROOT, run

INVENTORY = Path(__file__).resolve().parent / "inventory"
NAME = "lifecyc"
STATE_ROOT = Path(os.environ.get("SANDBOX_STATE_ROOT", "/var/lib/onprem-sandbox"))
SSH_CONFIG = STATE_ROOT / NAME / "ssh" / "config"


def sandbox(*args, check=True):
    return run([ROOT / "tools/sandbox", "-i", INVENTORY, *args], check=check, timeout=900)


def root_source(pid):
    """The directory mounted as the process's / (its mountinfo's root field), or ''."""
    try:
        for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
            fields = line.split()
            if fields[4] == "/":
                return fields[3]
    except (OSError, IndexError):
        pass
    return ""


def footprint():
    """Everything of this sandbox visible on the machine: namespaces, links, routes,
    processes, mounts."""
    found = set()
    netns = Path("/run/netns")
    if netns.is_dir():
        found |= {f"netns {n.name}" for n in netns.iterdir() if n.name.startswith(f"sbx-{NAME}-")}
    links = run(["ip", "-o", "link", "show"]).stdout
    found |= {f"link {m}" for m in re.findall(rf"\d+: (sbx-{NAME}\S*?)[@:]", links)}
    routes = run(["ip", "route", "show"]).stdout
    found |= {f"route {line}" for line in routes.splitlines() if line.startswith("10.79.")}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"--machine={NAME}-" in cmdline or str(STATE_ROOT / NAME) in cmdline:
            found.add(f"process {pid} {cmdline[:80]}")
        # A container's processes, whatever their command line: their root is a host's rootfs.
        elif str(STATE_ROOT / NAME) in root_source(pid):
            found.add(f"container process {pid} {cmdline[:80]}")
    mounts = Path("/proc/mounts").read_text()
    found |= {f"mount {line}" for line in mounts.splitlines() if str(STATE_ROOT / NAME) in line}
    return found


def ssh(host, command):
    return run(["ssh", "-F", SSH_CONFIG, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", host, command],
               check=False, timeout=120)


@pytest.fixture(scope="module")
def sandbox_up(requires_root):
    sandbox("down")
    assert footprint() == set()
    sandbox("up")
    yield
    sandbox("down")


def test_up_boots_hosts_reachable_over_ssh_with_systemd(sandbox_up):
    for host in ("lc-a1", "lc-b1"):
        proc = ssh(host, "systemctl is-system-running --wait; hostname; systemd-detect-virt")
        assert proc.stdout.split() == ["running", host, "systemd-nspawn"], proc.stdout + proc.stderr


def test_sites_are_routed_to_each_other_and_to_the_mirror_only(sandbox_up):
    # site a reaches site b's SSH port through the router (bounded: one connection, 5 s)
    proc = ssh("lc-a1", "timeout 5 bash -c 'exec 3<>/dev/tcp/10.79.2.11/22 && head -c 4 <&3'")
    assert proc.stdout == "SSH-", proc.stderr
    # the mirror answers from inside a host
    proc = ssh("lc-b1", "curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://10.79.0.1:8080/pypi/simple/")
    assert proc.stdout == "200"
    # and nothing else is routable: the router has no default route (a lookup, no traffic)
    routes = run(["ip", "-n", f"sbx-{NAME}-router", "route", "show"]).stdout
    assert "default" not in routes
    lookup = run(["ip", "-n", f"sbx-{NAME}-router", "route", "get", "192.0.2.1"], check=False)
    assert lookup.returncode != 0 and "unreachable" in lookup.stderr


def test_hosts_install_packages_through_the_site_mirror(sandbox_up):
    proc = ssh("lc-a1", "sudo apt-get -q update >/dev/null && sudo apt-get -s install -y hello | tail -1; "
                        "cat /etc/apt/apt.conf.d/01onprem-proxy")
    assert "Inst hello" in proc.stdout or "Conf hello" in proc.stdout, proc.stdout + proc.stderr
    assert 'Acquire::http::Proxy "http://10.79.0.1:3142";' in proc.stdout


def test_second_up_changes_nothing(sandbox_up):
    state = json.loads((STATE_ROOT / NAME / "state.json").read_text())
    before = footprint()
    sandbox("up")
    after_state = json.loads((STATE_ROOT / NAME / "state.json").read_text())
    assert {h: v["pid"] for h, v in after_state["hosts"].items()} == {h: v["pid"] for h, v in state["hosts"].items()}
    assert after_state["mirror_pids"] == state["mirror_pids"]
    assert footprint() == before


def test_status_names_hosts_addresses_and_mirror(sandbox_up):
    out = sandbox("status").stdout
    assert re.search(r"lc-a1\s+10\.79\.1\.11\s+site site_a\s+container\s+up", out), out
    assert re.search(r"lc-b1\s+10\.79\.2\.11\s+site site_b\s+container\s+up", out), out
    assert "http://10.79.0.1:3142" in out and "running" in out


def test_down_twice_leaves_nothing(requires_root):
    sandbox("up")
    assert footprint()
    sandbox("down")
    assert footprint() == set()
    sandbox("down")
    assert footprint() == set()
    assert not (STATE_ROOT / NAME).exists()
    assert "down" in sandbox("status").stdout


def test_failed_up_removes_what_it_created(requires_root):
    sandbox("down")
    # A host whose root file system is a plain file cannot boot: up fails midway, after the
    # router, the mirror and the other host exist.
    broken = STATE_ROOT / NAME / "hosts" / "lc-b1" / "rootfs"
    broken.parent.mkdir(parents=True)
    broken.write_text("not a directory tree\n")
    proc = sandbox("up", check=False)
    assert proc.returncode != 0
    assert "lc-b1" in proc.stderr
    assert footprint() == set()
    assert not (STATE_ROOT / NAME).exists()
