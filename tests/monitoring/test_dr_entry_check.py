"""The gateways' health check of the global entry point (plugins/module_utils/_dr_entry_health.py,
built into roles/dr/files/onprem_deepseek_dr_entry.py) on loopback: a STAND-IN gateway (TLS 1.3,
the test CA's server certificate, one API key) answers completions or 503 as the test says, and a
STAND-IN birdc records its arguments. Checked: what BIRD is told on each check, the included
protocol's definition, the metrics, a restart that keeps the announcement, the wrong key, the
wrong CA, and the built file's commands."""
import http.server
import importlib.util
import json
import os
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILT = ROOT / "roles" / "dr" / "files" / "onprem_deepseek_dr_entry.py"
# The built file is what the hosts run (tests/unit checks it is what the module_utils build).
_SPEC = importlib.util.spec_from_file_location("onprem_deepseek_dr_entry", BUILT)
check = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(check)
KEY = "dsk_test_abcdefghijklmnop"
BIRDC = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/birdc.calls"
echo "BIRD 2.0.12 ready."
"""


class Gateway(http.server.BaseHTTPRequestHandler):
    healthy = True
    requests = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                    "host": self.headers.get("Host"), "body": body})
        if self.headers.get("Authorization") != "Bearer " + KEY:
            status, answer = 401, {"error": "unknown key"}
        elif not type(self).healthy:
            status, answer = 503, {"error": "no engine"}
        else:
            status, answer = 200, {"choices": [{"index": 0, "message": {"content": "ok"}}]}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def gateway(certs):
    Gateway.healthy, Gateway.requests = True, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certs / "server.pem"), str(certs / "server.key"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture()
def config(gateway, certs, tmp_path):
    (tmp_path / "api.key").write_text(KEY + "\n")
    birdc = tmp_path / "birdc"
    birdc.write_text(BIRDC)
    birdc.chmod(0o755)
    return {"address": "10.99.100.10", "url": "https://127.0.0.1:%d/v1/chat/completions" % gateway,
            "server_name": "127.0.0.1", "ca_file": str(certs / "ca.pem"), "key_file": str(tmp_path / "api.key"),
            "model": "deepseek-r1", "interval_s": 0.2, "timeout_s": 0.2, "rise": 2, "fall": 2, "birdc": str(birdc),
            "bird_socket": "/run/bird/bird.ctl", "bird_include": str(tmp_path / "entry.conf"), "protocol": "dr_entry",
            "metrics_file": str(tmp_path / "dr.prom")}


def calls(config):
    path = Path(config["birdc"]).parent / "birdc.calls"
    return [line.split()[2] for line in path.read_text().splitlines()] if path.exists() else []


def run(config, results):
    """Run the check once per result (True: the gateway answers, False: 503)."""
    plan = iter(results)

    def sleep(_seconds):
        Gateway.healthy = next(plan, True)

    Gateway.healthy = results[0]
    plan = iter(results[1:])
    return check.serve(config, checks=len(results), sleep=sleep)


def test_it_announces_after_rise_passes_and_withdraws_after_fall_failures(config):
    health = run(config, [True, True, True, False, False, True])
    # BIRD is told the decision on every check.
    assert calls(config) == ["disable", "enable", "enable", "enable", "disable", "disable"]
    assert health.announced is False
    assert "disabled;" in Path(config["bird_include"]).read_text()
    metrics = Path(config["metrics_file"]).read_text()
    assert 'onprem_deepseek_dr_entry_announced{address="10.99.100.10"} 0' in metrics
    assert 'onprem_deepseek_dr_entry_check_ok{address="10.99.100.10"} 1' in metrics
    assert 'onprem_deepseek_dr_entry_transitions_total{address="10.99.100.10"} 2' in metrics


def test_each_check_is_one_authenticated_one_token_completion_for_the_server_name(config):
    run(config, [True])
    assert Gateway.requests == [{"path": "/v1/chat/completions", "auth": "Bearer " + KEY, "host": "127.0.0.1",
                                 "body": {"model": "deepseek-r1", "max_tokens": 1,
                                          "messages": [{"role": "user", "content": "health check"}]}}]


def test_the_include_says_announced_so_a_reload_of_bird_keeps_it(config):
    run(config, [True, True])
    assert Path(config["bird_include"]).read_text().splitlines()[1] == \
        "protocol static dr_entry { ipv4; route 10.99.100.10/32 unreachable; }"
    assert oct(os.stat(config["bird_include"]).st_mode & 0o777) == "0o644"


def test_a_restarted_check_goes_on_announcing_until_fall_failures(config):
    run(config, [True, True])
    (Path(config["birdc"]).parent / "birdc.calls").unlink()
    health = run(config, [False, True, False, False])
    assert calls(config) == ["enable", "enable", "enable", "disable"]
    assert health.announced is False


def test_a_wrong_key_never_announces(config, tmp_path):
    (tmp_path / "api.key").write_text("dsk_wrong_key\n")
    assert run(config, [True, True, True]).announced is False
    assert calls(config) == ["disable"] * 3


def test_a_gateway_certificate_of_another_ca_never_announces(config, certs):
    config["ca_file"] = str(certs / "other-ca.pem")
    assert run(config, [True, True, True]).announced is False
    assert Gateway.requests == []


def test_a_dead_gateway_never_announces(config):
    config["url"] = "https://127.0.0.1:1/v1/chat/completions"
    assert run(config, [True, True]).announced is False


def test_the_built_file_checks_settings_and_withdraws(config, tmp_path):
    good = tmp_path / "check.json"
    good.write_text(json.dumps(config))
    done = subprocess.run([sys.executable, str(BUILT), "check", "--config", str(good)], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(config, rise=0, protocol="dr-entry")))
    done = subprocess.run([sys.executable, str(BUILT), "check", "--config", str(bad)], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 2
    assert "bad.json: " in done.stderr and "rise must be" in done.stderr and "protocol must be" in done.stderr
    Path(config["bird_include"]).write_text("protocol static dr_entry { ipv4; route 10.99.100.10/32 unreachable; }\n")
    done = subprocess.run([sys.executable, str(BUILT), "withdraw", "--config", str(good)], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert "disabled;" in Path(config["bird_include"]).read_text() and calls(config) == ["disable"]


def test_without_the_textfile_directory_the_check_goes_on(config, tmp_path, capsys):
    config["metrics_file"] = str(tmp_path / "missing" / "dr.prom")
    assert run(config, [True, True, True]).announced is True
    assert calls(config) == ["disable", "enable", "enable"]
    assert capsys.readouterr().err.count("cannot write") == 1
