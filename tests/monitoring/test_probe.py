"""The monitoring role's blackbox probe (roles/monitoring/tasks/probe.yml), run on this machine.

The role's tasks write the exporter's module and copy the probe's key into a temporary directory;
a real prometheus-blackbox-exporter on 127.0.0.1 loads that module and probes a STAND-IN gateway
(HTTPS with TLS 1.3 and a certificate from a throwaway CA, an API key, an OpenAI-style answer).
The probe must pass only when everything a real gateway checks holds: the key the role copied,
TLS 1.3, the CA, a 200 with choices.
"""
import http.server
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from playbook_runs import needs_playbook, run_playbook  # noqa: E402 pylint: disable=wrong-import-position

EXPORTER = shutil.which("prometheus-blackbox-exporter")
pytestmark = [needs_playbook, pytest.mark.skipif(EXPORTER is None, reason="prometheus-blackbox-exporter is not installed")]

KEY = "dsk_0123456789ab_" + "k" * 43
MODEL = "deepseek-r1"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=%s" % name, "-keyout", "%s.key" % name, "-out", "%s.pem" % name, cwd=directory)


def make_server_cert(directory, ca):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=gateway",
            "-keyout", "server.key", "-out", "server.csr", cwd=directory)
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "%s.pem" % ca, "-CAkey", "%s.key" % ca, "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=directory)


class Gateway(http.server.ThreadingHTTPServer):
    """STAND-IN gateway: 200 with choices for the expected key, 401 otherwise."""

    daemon_threads = True
    expected_key = KEY
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "p"}}]}

    def __init__(self, *args):
        super().__init__(*args)
        self.seen = []


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append({"path": self.path, "authorization": self.headers.get("Authorization"),
                                 "content_type": self.headers.get("Content-Type"), "body": json.loads(body or b"null")})
        ok = self.headers.get("Authorization") == "Bearer " + self.server.expected_key
        raw = json.dumps(self.server.answer if ok else {"error": "unauthorized"}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    make_server_cert(d, "ca")
    return d


def serve(pki, max_tls=None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki / "server.pem"), str(pki / "server.key"))
    if max_tls:
        context.maximum_version = max_tls
    server = Gateway(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def role_run(tmp_path, key_file, check=False, ca="ca"):
    """The role's probe.yml alone, its paths in tmp_path; end_play keeps its handlers (systemd) from running."""
    variables = {
        "monitoring_probe_gateways": ["gw1"], "monitoring_probe_model": MODEL,
        "monitoring_probe_key_file": str(key_file), "monitoring_probe_ca_file": str(tmp_path / "pki" / ("%s.pem" % ca)),
        "monitoring_probe_timeout": "5s",
        "__monitoring_probe_dir": str(tmp_path / "probe"), "__monitoring_blackbox_file": str(tmp_path / "blackbox.yml"),
        "__monitoring_blackbox_args_file": str(tmp_path / "blackbox.args"),
    }
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    (tmp_path / "hosts.json").write_text(json.dumps({"all": {"hosts": {"mon": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    (tmp_path / "probe.yml").write_text(
        "---\n- name: The monitoring role's probe tasks alone\n  hosts: mon\n  gather_facts: false\n  tasks:\n"
        "    - name: Run them\n      ansible.builtin.include_role:\n        name: onprem.deepseek.monitoring\n"
        "        tasks_from: probe.yml\n    - name: Stop before the handlers\n      ansible.builtin.meta: end_play\n")
    args = ["-i", "hosts.json", "-e", "@vars.json", "probe.yml"] + (["--check"] if check else [])
    proc = run_playbook(args, cwd=tmp_path, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    return proc, json.loads(proc.stdout) if proc.stdout.startswith("{") else None


def changed_tasks(report):
    return [t["task"]["name"].split(" : ", 1)[-1] for t in report["plays"][0]["tasks"]
            if t["hosts"].get("mon", {}).get("changed")]


@pytest.fixture
def exporter(tmp_path):
    procs = []

    def start():
        port = free_port()
        proc = subprocess.Popen([EXPORTER, "--config.file=%s" % (tmp_path / "blackbox.yml"),
                                 "--web.listen-address=127.0.0.1:%d" % port],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(proc)
        for _attempt in range(100):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/-/healthy" % port, timeout=1).read()
                return port
            except OSError:
                time.sleep(0.1)
        raise AssertionError("blackbox exporter did not start: %s" % proc.stderr.read(2000))
    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def probe(port, server):
    target = "https://127.0.0.1:%d/v1/chat/completions" % server.server_address[1]
    url = "http://127.0.0.1:%d/probe?module=deepseek_completion&target=%s" % (port, target)
    text = urllib.request.urlopen(url, timeout=15).read().decode()
    metrics = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            metrics[name] = float(value)
    return metrics


def test_the_probe_passes_with_the_copied_key_and_fails_when_a_gateway_check_would(tmp_path, pki, exporter):
    key_file = tmp_path / "probe.key"
    key_file.write_text(KEY + "\n")
    proc, report = role_run(tmp_path, key_file)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "blackbox.args").read_text().splitlines()[-1] == (
        'ARGS="--config.file=%s --web.listen-address=127.0.0.1:9115"' % (tmp_path / "blackbox.yml"))
    copied = tmp_path / "probe" / "api.key"
    assert copied.read_text().strip() == KEY and oct(copied.stat().st_mode & 0o777) == "0o640"
    assert KEY not in proc.stdout
    # The exporter (user prometheus) reads a copy of the CA beside its key, not the pki role's file.
    ca_copy = tmp_path / "probe" / "ca.pem"
    assert ca_copy.read_text() == (pki / "ca.pem").read_text() and oct(ca_copy.stat().st_mode & 0o777) == "0o640"
    port = exporter()
    server = serve(pki)
    try:
        passed = probe(port, server)
        assert passed["probe_success"] == 1 and passed["probe_http_status_code"] == 200
        assert passed['probe_tls_version_info{version="TLS 1.3"}'] == 1
        assert passed["probe_ssl_earliest_cert_expiry"] > time.time()
        (seen,) = server.seen
        assert seen == {"path": "/v1/chat/completions", "authorization": "Bearer " + KEY, "content_type": "application/json",
                        "body": {"model": MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]}}
        # A key the gateway does not know: 401.
        server.expected_key = KEY.replace("k", "z")
        assert probe(port, server)["probe_success"] == 0
        # A 200 without choices is no completion.
        server.expected_key, server.answer = KEY, {"object": "list", "data": []}
        refused = probe(port, server)
        assert refused["probe_success"] == 0 and refused["probe_http_status_code"] == 200
    finally:
        server.shutdown()
    # A gateway that offers TLS 1.2 at most.
    old = serve(pki, max_tls=ssl.TLSVersion.TLSv1_2)
    try:
        assert probe(port, old)["probe_success"] == 0
    finally:
        old.shutdown()


def test_the_probe_refuses_a_certificate_from_another_ca(tmp_path, pki, exporter):
    key_file = tmp_path / "probe.key"
    key_file.write_text(KEY + "\n")
    proc, _report = role_run(tmp_path, key_file, ca="other-ca")
    assert proc.returncode == 0, proc.stdout[-3000:]
    port = exporter()
    server = serve(pki)
    try:
        assert probe(port, server)["probe_success"] == 0
        assert server.seen == []
    finally:
        server.shutdown()


def test_a_second_run_changes_nothing_and_a_new_key_is_copied(tmp_path, pki):
    key_file = tmp_path / "probe.key"
    key_file.write_text(KEY + "\n")
    first = role_run(tmp_path, key_file)[1]
    assert set(changed_tasks(first)) >= {"Copy the probe's API key (0640 root:prometheus)",
                                         "Write the blackbox exporter's module (checked with its --config.check)"}
    proc, second = role_run(tmp_path, key_file)
    assert changed_tasks(second) == [], proc.stdout[-2000:]
    key_file.write_text(KEY.replace("k", "q") + "\n")
    assert changed_tasks(role_run(tmp_path, key_file)[1]) == ["Copy the probe's API key (0640 root:prometheus)"]
    assert (tmp_path / "probe" / "api.key").read_text().strip() == KEY.replace("k", "q")


def test_a_missing_key_fails_a_run_naming_the_variable_and_is_predicted_in_check_mode(tmp_path, pki):
    missing = tmp_path / "not-yet.key"
    proc, report = role_run(tmp_path, missing, check=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Predict the probe's API key, which this run's pki role would make first" in changed_tasks(report)
    assert not (tmp_path / "probe").exists() and not (tmp_path / "blackbox.yml").exists()
    proc, report = role_run(tmp_path, missing)
    assert proc.returncode != 0
    failed = [h["msg"] for t in report["plays"][0]["tasks"] for h in t["hosts"].values() if h.get("failed")]
    assert len(failed) == 1 and failed[0].startswith("monitoring_probe_key_file: %s does not exist on localhost" % missing)
    assert not (tmp_path / "probe").exists()


def test_a_module_the_exporter_refuses_is_not_written(tmp_path, pki):
    key_file = tmp_path / "probe.key"
    key_file.write_text(KEY + "\n")
    (tmp_path / "blackbox.yml").write_text("# the running module\n")
    variables_timeout = "20 seconds"
    proc, report = role_run(tmp_path, key_file)
    assert proc.returncode == 0
    # Now a timeout the exporter cannot parse: validate refuses and the old file stays.
    data = json.loads((tmp_path / "vars.json").read_text())
    data["monitoring_probe_timeout"] = variables_timeout
    (tmp_path / "vars.json").write_text(json.dumps(data))
    before = (tmp_path / "blackbox.yml").read_text()
    proc = run_playbook(["-i", "hosts.json", "-e", "@vars.json", "probe.yml"], cwd=tmp_path)
    assert proc.returncode != 0 and "failed to validate" in proc.stdout
    assert (tmp_path / "blackbox.yml").read_text() == before
    assert os.path.exists(tmp_path / "probe" / "api.key")


def test_a_missing_ca_file_fails_a_run_naming_the_variable(tmp_path, pki):
    key_file = tmp_path / "probe.key"
    key_file.write_text(KEY + "\n")
    proc, report = role_run(tmp_path, key_file, ca="no-such-ca")
    assert proc.returncode != 0
    failed = [h["msg"] for t in report["plays"][0]["tasks"] for h in t["hosts"].values() if h.get("failed")]
    assert len(failed) == 1 and failed[0].startswith(
        "monitoring_probe_ca_file: %s does not exist on mon" % (tmp_path / "pki" / "no-such-ca.pem")), failed
    assert not (tmp_path / "blackbox.yml").exists()
