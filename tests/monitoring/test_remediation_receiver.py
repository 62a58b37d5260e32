"""The remediation receiver as the host runs it (roles/remediation/files/onprem_deepseek_remediation.py,
built from plugins/module_utils/_remediation*.py) on loopback: mutual TLS 1.3, the allowed client
certificate subjects, the guard rails, one command at a time, and an audit line per decision and
result. The command is a STAND-IN script that records its arguments. The test CA is conftest.py's `certs`."""
import http.client
import importlib.util
import json
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILT = ROOT / "roles" / "remediation" / "files" / "onprem_deepseek_remediation.py"
STAND_IN = """import json, os, sys, time
with open(os.environ["RECORD"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
time.sleep(float(os.environ.get("SLEEP", "0")))
sys.exit(int(os.environ.get("RC", "0")))
"""


@pytest.fixture()
def receiver(certs, tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("onprem_deepseek_remediation", BUILT)
    built = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(built)
    (tmp_path / "stand-in.py").write_text(STAND_IN)
    monkeypatch.setenv("RECORD", str(tmp_path / "record"))
    config = {
        "alertname": "HostMemoryHigh", "target_label": "instance",
        "targets": {"10.0.0.1:9100": "node1", "10.0.0.2:9100": "node2"},
        "cooldown_s": 600, "max_per_hour": 3, "command_timeout_s": 5,
        "command": [sys.executable, str(tmp_path / "stand-in.py"), "-e", "rolling_update_hosts={node}"],
        "allowed_subjects": ["CN=alertmanager,O=onprem.deepseek"],
        "listen_host": "127.0.0.1", "listen_port": 0,
        "cert_file": str(certs / "server.pem"), "key_file": str(certs / "server.key"), "ca_file": str(certs / "ca.pem"),
        "state_file": str(tmp_path / "state.json"), "audit_file": str(tmp_path / "audit.log"),
    }
    started = {}
    ready = threading.Event()

    def on_ready(server, rec):
        started.update(server=server, receiver=rec)
        ready.set()

    # listen_port 0 would fail the settings check: bind a free port first.
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        config["listen_port"] = s.getsockname()[1]
    thread = threading.Thread(target=built.serve, args=(config,), kwargs={"ready": on_ready}, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield {"port": config["listen_port"], "dir": tmp_path, "built": built, **started}
    started["server"].shutdown()
    thread.join(10)


def post(rx, certs, body, cert="alertmanager", path="/alerts"):
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if cert:
        context.load_cert_chain(str(certs / (cert + ".pem")), str(certs / (cert + ".key")))
    conn = http.client.HTTPSConnection("127.0.0.1", rx["port"], context=context, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read() or b"null")
    finally:
        conn.close()


def hook(*instances, status="firing"):
    return json.dumps({"version": "4", "status": status, "alerts": [
        {"status": status, "labels": {"alertname": "HostMemoryHigh", "instance": i}, "startsAt": "T"} for i in instances
    ]}).encode()


def audit(rx, want, timeout=10):
    deadline = time.time() + timeout
    while True:
        path = rx["dir"] / "audit.log"
        lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        if len(lines) >= want or time.time() > deadline:
            return lines
        time.sleep(0.05)


def test_an_alert_restarts_its_node_once_with_an_audit_line_for_the_decision_and_the_result(receiver, certs):
    status, answer = post(receiver, certs, hook("10.0.0.1:9100"))
    assert status == 200 and [d["action"] for d in answer["decisions"]] == ["restart"]
    lines = audit(receiver, 2)
    assert [(x["event"], x["node"]) for x in lines] == [("decision", "node1"), ("result", "node1")]
    assert lines[0]["client"] == "CN=alertmanager,O=onprem.deepseek" and lines[1]["result"] == "restarted"
    assert lines[1]["rc"] == 0
    assert (receiver["dir"] / "record").read_text().splitlines() == ['["-e", "rolling_update_hosts=node1"]']
    # Again within the cooldown: refused, audited, nothing run.
    status, answer = post(receiver, certs, hook("10.0.0.1:9100"))
    assert answer["decisions"][0]["reason"].startswith("cooldown: node1 was restarted")
    lines = audit(receiver, 3)
    assert lines[2]["action"] == "refused" and len((receiver["dir"] / "record").read_text().splitlines()) == 1


def test_the_state_outlives_the_receiver(receiver, certs):
    post(receiver, certs, hook("10.0.0.2:9100"))
    audit(receiver, 2)
    state = json.loads((receiver["dir"] / "state.json").read_text())
    assert [a["node"] for a in state["actions"]] == ["node2"]


@pytest.mark.parametrize("cert", ["stranger"])
def test_a_client_certificate_of_the_ca_that_is_not_allowed_gets_403_and_is_audited(receiver, certs, cert):
    status, answer = post(receiver, certs, hook("10.0.0.1:9100"), cert=cert)
    assert status == 403 and answer == {"error": "client certificate CN=stranger,O=onprem.deepseek is not allowed"}
    assert audit(receiver, 1) == [{"event": "refused_client", "client": "CN=stranger,O=onprem.deepseek",
                                   "time": pytest.approx(time.time(), abs=30)}]
    assert not (receiver["dir"] / "record").exists()


@pytest.mark.parametrize("cert", [None, "forged"])
def test_without_a_certificate_of_the_ca_there_is_no_request_at_all(receiver, certs, cert):
    with pytest.raises((ssl.SSLError, ConnectionError)):
        post(receiver, certs, hook("10.0.0.1:9100"), cert=cert)
    assert not (receiver["dir"] / "audit.log").exists() and not (receiver["dir"] / "record").exists()


def test_tls_1_2_is_refused(receiver, certs):
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(certs / "alertmanager.pem"), str(certs / "alertmanager.key"))
    with pytest.raises(ssl.SSLError):
        http.client.HTTPSConnection("127.0.0.1", receiver["port"], context=context, timeout=10).connect()


@pytest.mark.parametrize("body, path, status", [(b"{", "/alerts", 400), (hook("x"), "/other", 404)])
def test_a_bad_body_or_path_changes_nothing(receiver, certs, body, path, status):
    assert post(receiver, certs, body, path=path)[0] == status
    assert not (receiver["dir"] / "record").exists()


def test_a_failed_command_is_audited_as_failed_with_its_output(receiver, certs, monkeypatch):
    monkeypatch.setenv("RC", "3")
    post(receiver, certs, hook("10.0.0.2:9100"))
    result = audit(receiver, 2)[1]
    assert (result["result"], result["rc"]) == ("failed", 3)


def test_a_command_that_outlasts_its_timeout_is_audited_as_failed(receiver, certs, monkeypatch):
    monkeypatch.setenv("SLEEP", "30")
    post(receiver, certs, hook("10.0.0.2:9100"))
    result = audit(receiver, 2, timeout=20)[1]
    assert (result["result"], result["rc"], result["output_tail"]) == ("failed", None, "timed out after 5 s")


def test_restarts_run_one_at_a_time_and_a_queued_node_is_refused(receiver, certs, monkeypatch):
    monkeypatch.setenv("SLEEP", "1")
    post(receiver, certs, hook("10.0.0.1:9100", "10.0.0.2:9100"))
    _status, again = post(receiver, certs, hook("10.0.0.2:9100"))
    assert again["decisions"][0]["reason"] == "a restart of node2 is already queued or running"
    results = [x for x in audit(receiver, 5, timeout=15) if x["event"] == "result"]
    assert [r["node"] for r in results] == ["node1", "node2"]
    # One at a time: the second started after the first had ended.
    assert results[1]["time"] - results[1]["seconds"] >= results[0]["time"] - 0.2


def test_the_check_command_refuses_bad_settings_naming_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"alertname": "HostMemoryHigh"}))
    run = subprocess.run([sys.executable, str(BUILT), "check", "--config", str(path)], capture_output=True, text=True,
                         timeout=30, check=False)
    assert run.returncode == 2 and run.stderr.startswith("onprem-deepseek-remediation: %s: " % path)
    assert "command must be a list of arguments" in run.stderr
