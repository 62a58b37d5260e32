"""Audit replication on loopback: two rsyslogd in the foreground, each with the dr role's drop-in
(roles/dr/templates/rsyslog-dr.conf.j2, rendered with ansible-core's Templar) as its whole
configuration, gateway gw-a (site_a) on 127.0.0.1 and gw-b (site_b) on 127.0.0.2, the same port.
Each runs the built replication agent (roles/dr/files/onprem_deepseek_dr_replication.py). Checked:
rsyslogd -N1 accepts the drop-in alone (the role's validate), chained records appended at gw-a
arrive in gw-b's replica file in order, with plausible lag metrics; with gw-b stopped the lag grows,
records appended meanwhile wait in gw-a's queue, on disk across a restart of gw-a too, and arrive
once gw-b is back; the replica gives the RPO of a fault; RELP over TLS with a throwaway CA. Bounded
times. Without rsyslog (tools/bootstrap installs it) the tests fail, so a missing install shows."""
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "unit"))
from role_templates import DataLoader, ROLES, render_file, role_variables, trust  # noqa: E402 pylint: disable=wrong-import-position

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
AGENT = ROOT / "roles" / "dr" / "files" / "onprem_deepseek_dr_replication.py"


def built(path, name):
    """A built host command as a module (tests/unit checks it is what the module_utils build)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


replication = built(AGENT, "onprem_deepseek_dr_replication")
audit = built(ROOT / "roles" / "gateway" / "files" / "onprem_deepseek_audit.py", "onprem_deepseek_audit")
chain_written, replica_seqs = replication.chain_written, replication.replica_seqs
replication_loss, replication_peers = replication.replication_loss, replication.replication_peers
HOSTS = {"gw-a": ("site_a", "127.0.0.1"), "gw-b": ("site_b", "127.0.0.2")}
INTERVAL = 0.5

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root, as ./dev test does")


def test_rsyslog_with_relp_is_installed():
    assert os.path.exists(RSYSLOGD), "%s missing: tools/bootstrap installs rsyslog and rsyslog-relp" % RSYSLOGD
    module_dirs = ("/usr/lib/x86_64-linux-gnu/rsyslog", "/usr/lib/aarch64-linux-gnu/rsyslog", "/usr/lib/rsyslog")
    assert any(os.path.exists(os.path.join(d, "imrelp.so")) for d in module_dirs), \
        "rsyslog's imrelp module missing: tools/bootstrap installs rsyslog-relp"


def free_port():
    """A port free on both loopback addresses."""
    for attempt in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            try:
                with socket.socket() as second:
                    second.bind(("127.0.0.2", port))
                    return port
            except OSError:
                continue
    raise RuntimeError("no free port on 127.0.0.1 and 127.0.0.2")


class Host:
    """One gateway's rsyslogd and replication agent, in their own directories."""

    def __init__(self, base, name, port, pki=None):
        self.name, (self.site, self.address) = name, HOSTS[name]
        self.dir = base / name
        for sub in ("state/imfile", "state/queue", "replica", "metrics"):
            (self.dir / sub).mkdir(parents=True)
        self.chain = self.dir / "audit.log"
        self.chain.touch()
        self.conf = self.dir / "rsyslog-dr.conf"
        self.pidfile = self.dir / "rsyslogd.pid"
        gateways = [{"name": n, "site": s, "address": a} for n, (s, a) in HOSTS.items()]
        plan = replication_peers(gateways, name, port)
        loader = DataLoader()
        variables = dict(role_variables(loader, "dr"), inventory_hostname=name, ansible_managed="managed",
                         dr_replication_port=port, dr_replication_listen_address=self.address,
                         dr_replication_audit_file=str(self.chain),
                         dr_replication_replica_dir=str(self.dir / "replica"),
                         dr_replication_metrics_dir=str(self.dir / "metrics"),
                         dr_replication_heartbeat_s=INTERVAL, dr_replication_retry_max_s=1,
                         __dr_replication_state_dir=str(self.dir / "state"),
                         __dr_replication_heartbeat_file=str(self.dir / "state" / "heartbeat.log"))
        if pki is not None:
            # The copies the pki role's service_copy makes: chain, key and CA.
            (self.dir / "tls").mkdir()
            for src, dest in ((name + ".pem", "cert.pem"), (name + ".key", "key.pem"), ("ca.pem", "ca.pem")):
                (self.dir / "tls" / dest).write_bytes((pki / src).read_bytes())
            variables.update(dr_replication_tls_certificate="gateway", __dr_replication_tls_dir=str(self.dir / "tls"))
        variables = trust(variables)
        variables["__dr_replication_plan"] = plan
        self.conf.write_text(render_file(ROLES / "dr" / "templates" / "rsyslog-dr.conf.j2", loader, variables))
        # The role's __dr_replication_agent_settings with this host's directories.
        agent = {"interval_s": INTERVAL, "heartbeat_max_bytes": 1048576, "senders": plan["senders"],
                 "heartbeat_file": str(self.dir / "state" / "heartbeat.log"), "replica_dir": str(self.dir / "replica"),
                 "metrics_file": str(self.dir / "metrics" / "onprem_deepseek_dr_replication.prom")}
        self.agent_conf = self.dir / "agent.json"
        self.agent_conf.write_text(json.dumps(agent))
        self.rsyslogd = self.agent = None

    def start(self):
        self.rsyslogd = subprocess.Popen([RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.pidfile)],
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.address, self.port), timeout=0.5).close()
                return self
            except OSError:
                assert self.rsyslogd.poll() is None, self.rsyslogd.stdout.read()
                time.sleep(0.1)
        raise AssertionError("%s: rsyslogd does not listen on %s:%d" % (self.name, self.address, self.port))

    def stop(self):
        if self.rsyslogd is not None and self.rsyslogd.poll() is None:
            self.rsyslogd.send_signal(signal.SIGTERM)
            self.rsyslogd.communicate(timeout=30)
        self.rsyslogd = None

    def start_agent(self):
        self.agent = subprocess.Popen([sys.executable, str(AGENT), "serve", "--config", str(self.agent_conf)],
                                      stderr=subprocess.PIPE, text=True)

    def stop_agent(self):
        if self.agent is not None and self.agent.poll() is None:
            self.agent.terminate()
            self.agent.communicate(timeout=10)

    @property
    def port(self):
        return int(re.search(r'input\(type="imrelp" port="(\d+)"', self.conf.read_text()).group(1))

    def replica(self, sender):
        path = self.dir / "replica" / (sender + ".log")
        return path.read_text() if path.exists() else ""

    def metric(self, name, sender):
        path = self.dir / "metrics" / "onprem_deepseek_dr_replication.prom"
        text = path.read_text() if path.exists() else ""
        match = re.search(r'^%s\{from_site="%s",from_host="%s"\} (\S+)$' % (name, HOSTS[sender][0], sender), text, re.M)
        return float(match.group(1)) if match else None


def wait_for(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("not within %ss: %s" % (seconds, what))


class Chain:
    """gw-a's audit chain, written as the follower writes it (records with nginx's time, checkpoints)."""

    def __init__(self, path):
        self.path, self.writer, self.lines = path, audit.Writer(lambda payload: b"sig", every=5), []

    def append(self, count):
        for number in range(count):
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
            lines = self.writer.append({"time": stamp, "request_id": "r%d" % (self.writer.seq + 1), "status": 200})
            with open(self.path, "a") as handle:
                handle.write("".join(line + "\n" for line in lines))
            self.lines.extend(lines)
        return self.writer.seq


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A throwaway CA and a certificate per gateway naming its inventory name, serverAuth only, as the pki
    role issues a usage server certificate (the gateway's)."""
    work = tmp_path_factory.mktemp("relp-pki")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            str(work / "ca.key"), "-out", str(work / "ca.pem"), "-subj", "/CN=Test CA", "-days", "2",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, (_site, address) in HOSTS.items():
        (work / (name + ".ext")).write_text("basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"
                                            "subjectAltName=DNS:%s,IP:%s\n" % (name, address))
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                str(work / (name + ".key")), "-out", str(work / (name + ".csr")), "-subj", "/CN=entry.dr.test")
        openssl("x509", "-req", "-in", str(work / (name + ".csr")), "-CA", str(work / "ca.pem"), "-CAkey",
                str(work / "ca.key"), "-set_serial", "1", "-days", "2", "-extfile", str(work / (name + ".ext")),
                "-out", str(work / (name + ".pem")))
    return work


def both(base, pki=None):
    port = free_port()
    return {name: Host(base, name, port, pki) for name in HOSTS}


@pytest.fixture()
def sites(tmp_path):
    hosts = both(tmp_path)
    yield hosts
    for host in hosts.values():
        host.stop_agent()
        host.stop()


@pytest.fixture()
def tls_sites(tmp_path, pki):
    hosts = both(tmp_path, pki)
    yield hosts
    for host in hosts.values():
        host.stop()


def test_the_drop_in_alone_passes_rsyslogd_check(sites):
    for host in sites.values():
        done = subprocess.run([RSYSLOGD, "-N1", "-f", str(host.conf)], capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        assert "error" not in done.stderr.lower(), done.stderr


def test_records_replicate_survive_an_outage_and_give_the_rpo(sites):
    a, b = sites["gw-a"], sites["gw-b"]
    chain = Chain(a.chain)
    chain.append(3)
    for host in (b, a):
        host.start()
        host.start_agent()
    wait_for(lambda: replica_seqs(b.replica("gw-a")) == [1, 2, 3], 20, "seqs 1-3 at gw-b")
    chain.append(4)
    wait_for(lambda: replica_seqs(b.replica("gw-a")) == list(range(1, 8)), 20, "seqs 1-7 at gw-b")
    # The replica holds the chain's own lines, records and checkpoints alike, in order.
    bodies = [line.split(" ", 3)[3] for line in b.replica("gw-a").splitlines() if " onprem-deepseek-audit " in line]
    assert bodies == chain.lines
    # Heartbeats both ways; the lag on loopback is a few milliseconds, well under one interval.
    # The lag series is there before anything arrives (it then counts the wait), so the heartbeat
    # from gw-b is waited for in gw-a's replica itself.
    wait_for(lambda: b.metric("onprem_deepseek_dr_replication_last_seq", "gw-a") == 7, 10, "gw-a's last seq at gw-b")
    wait_for(lambda: "onprem-deepseek-heartbeat" in a.replica("gw-b"), 10, "gw-b's heartbeat at gw-a")
    # A busy machine can hold one heartbeat back: the lag must come under one interval, not be there
    # at the first read.
    wait_for(lambda: 0 <= b.metric("onprem_deepseek_dr_replication_lag_seconds", "gw-a") < INTERVAL, 10,
             "the lag under one interval")
    assert abs(b.metric("onprem_deepseek_dr_replication_last_record_timestamp_seconds", "gw-a") - time.time()) < 30

    # gw-b's rsyslog stops: its agent sees the lag grow, gw-a queues what it writes meanwhile.
    b.stop()
    chain.append(5)
    wait_for(lambda: (b.metric("onprem_deepseek_dr_replication_lag_seconds", "gw-a") or 0) > 1.0, 10,
             "the lag grows while gw-b receives nothing")
    fault = time.time()
    # What gw-b holds at the fault: seqs 8-12 are lost if site A is lost now.
    loss = replication_loss(chain_written(chain.lines, fault), b.replica("gw-a"), fault)
    assert loss["lost_seqs"] == [8, 9, 10, 11, 12] and loss["records_written"] == 12
    assert 0 <= loss["rpo_s"] < 30
    b.start()
    wait_for(lambda: replica_seqs(b.replica("gw-a")) == list(range(1, 13)), 30, "seqs 1-12 at gw-b after the outage")
    wait_for(lambda: (b.metric("onprem_deepseek_dr_replication_lag_seconds", "gw-a") or 99) < INTERVAL, 15,
             "the lag back under one interval")
    assert replication_loss(chain_written(chain.lines, fault), b.replica("gw-a"), fault)["lost_seqs"] == []
    wait_for(lambda: b.metric("onprem_deepseek_dr_replication_missing_records", "gw-a") == 0, 5, "no record missing")

    # gw-b stops again and gw-a restarts meanwhile: its queue is saved to disk and sent once gw-b is back.
    b.stop()
    chain.append(5)
    wait_for(lambda: (b.metric("onprem_deepseek_dr_replication_lag_seconds", "gw-a") or 0) > 1.0, 10,
             "the lag grows again")
    a.stop()
    assert list((a.dir / "state" / "queue").iterdir()), "gw-a's queue towards gw-b was not saved to disk"
    a.start()
    b.start()
    chain.append(1)
    wait_for(lambda: max(replica_seqs(b.replica("gw-a"))) == 18, 30, "seq 18 at gw-b after gw-a's restart")
    now = time.time()
    lost = replication_loss(chain_written(chain.lines, now), b.replica("gw-a"), now)["lost_seqs"]
    # What librelp had sent into the dead session before it noticed is in no queue when gw-a stops
    # (docs/dr.md): at most the records written during the outage; the receiver counts them.
    assert set(lost) <= set(range(13, 18)), lost
    wait_for(lambda: b.metric("onprem_deepseek_dr_replication_missing_records", "gw-a") == len(lost), 5,
             "the missing records counted (%s)" % lost)
    # Nothing of gw-b's own was sent back to it, nor a replica of itself kept.
    assert sorted(p.name for p in (b.dir / "replica").iterdir()) == ["gw-a.log"]


def test_relp_over_tls_delivers_and_refuses_a_client_without_a_certificate(tls_sites):
    a, b = tls_sites["gw-a"], tls_sites["gw-b"]
    assert 'tls.permittedPeer=["gw-b"]' in a.conf.read_text() and 'tls.permittedPeer=["gw-a"]' in b.conf.read_text()
    chain = Chain(a.chain)
    chain.append(3)
    b.start()
    a.start()
    wait_for(lambda: replica_seqs(b.replica("gw-a")) == [1, 2, 3], 20, "seqs 1-3 at gw-b over TLS")
    # A client without a certificate of the CA gets no session: nothing it sends is kept.
    with socket.create_connection((b.address, b.port), timeout=5) as raw:
        raw.sendall(b"1 open 85 relp_version=0\nrelp_software=test\ncommands=syslog\n")
        raw.settimeout(5)
        try:
            answer = raw.recv(4096)
        except OSError:
            answer = b""
    assert b"200 OK" not in answer
    assert replica_seqs(b.replica("gw-a")) == [1, 2, 3]
