"""The DCGM exporter's TLS on loopback: node_exporter's web_tls entry point writes the web
configuration (rendered here with ansible-core's Templar from the task file itself), the dcgm_exporter
role's drop-in passes it as --web-config-file, and the STAND-IN dcgm-exporter (tests/fixtures/bin,
the package the gpu_stack scenario installs) serves TLS 1.3 to client certificates of the CA only,
as the exporter toolkit does with that file."""
import ssl
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "unit"))
from role_templates import DataLoader, ROLES, render_file, role_variables, trust  # noqa: E402 pylint: disable=wrong-import-position

STAND_IN = ROOT / "tests" / "fixtures" / "bin" / "dcgm-exporter-stand-in"
CAPTURE = ROOT / "tests" / "unit" / "fixtures" / "nvidia_smi" / "h100-sxm-8gpu.xml"
COUNTERS = ROLES / "dcgm_exporter" / "files" / "onprem-deepseek-counters.csv"


def web_config_content(tls_dir):
    """The content node_exporter's web_tls entry point writes, rendered as the copy module gets it."""
    tasks = yaml.safe_load((ROLES / "node_exporter" / "tasks" / "web_tls.yml").read_text())
    task = next(t for t in tasks if "ansible.builtin.copy" in t and "content" in t["ansible.builtin.copy"])
    loader = DataLoader()
    variables = dict(role_variables(loader, "node_exporter"), node_exporter_web_tls_dir=tls_dir,
                     node_exporter_web_tls_for="dcgm_exporter_tls_certificate")
    path = Path(tls_dir) / "content.j2"
    path.write_text(task["ansible.builtin.copy"]["content"])
    return render_file(path, loader, trust(variables))


def drop_in(tls):
    """The ExecStart= line of the dcgm_exporter role's drop-in, as its template renders it."""
    loader = DataLoader()
    variables = dict(role_variables(loader, "dcgm_exporter"), dcgm_exporter_tls=tls, dcgm_exporter_firewall=False,
                     dcgm_exporter_target="127.0.0.1:9400", ansible_managed="managed")
    text = render_file(ROLES / "dcgm_exporter" / "templates" / "dropin.conf.j2", loader, trust(variables))
    return [line for line in text.splitlines() if line.startswith("ExecStart=/")][0]


@pytest.fixture()
def exporter(certs, tmp_path):
    """The stand-in with the rendered web configuration and certificate copies named as web_tls names them."""
    for src, dest in (("server.pem", "server.crt"), ("server.key", "server.key"), ("ca.pem", "client-ca.pem")):
        (tmp_path / dest).write_bytes((certs / src).read_bytes())
    config = tmp_path / "web.yml"
    config.write_text(web_config_content(str(tmp_path)))
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\ncat %s\n" % CAPTURE)
    smi.chmod(0o755)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(STAND_IN), "-f", str(COUNTERS), "-a", "127.0.0.1:%d" % port,
                             "-c", "15000", "--web-config-file", str(config)],
                            env={"PATH": "%s:/usr/bin:/bin" % tmp_path}, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield port
    proc.terminate()
    proc.communicate(timeout=10)


def fetch(port, certs, client=None, version=ssl.TLSVersion.TLSv1_3):
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    context.minimum_version = context.maximum_version = version
    if client:
        context.load_cert_chain(str(certs / (client + ".pem")), str(certs / (client + ".key")))
    with urllib.request.urlopen("https://127.0.0.1:%d/metrics" % port, context=context, timeout=5) as answer:
        return answer.status, answer.read().decode()


def test_the_web_configuration_asks_tls_1_3_and_a_client_certificate_of_the_ca(tmp_path):
    config = yaml.safe_load(web_config_content(str(tmp_path)))
    assert config == {"tls_server_config": {
        "cert_file": "%s/server.crt" % tmp_path, "key_file": "%s/server.key" % tmp_path,
        "client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": "%s/client-ca.pem" % tmp_path,
        "min_version": "TLS13"}}


def test_the_drop_in_passes_the_web_configuration_only_with_tls():
    assert drop_in(True).endswith("-c 15000 --web-config-file /etc/dcgm-exporter/onprem-deepseek-web.yml")
    assert drop_in(False).endswith("-c 15000")


def test_a_client_certificate_of_the_ca_gets_every_field(exporter, certs):
    status, text = fetch(exporter, certs, client="alertmanager")
    assert status == 200
    assert text.count("DCGM_FI_DEV_GPU_TEMP{") == 8


@pytest.mark.parametrize("client", [None, "forged"])
def test_without_a_certificate_of_the_ca_there_are_no_metrics(exporter, certs, client):
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)) as caught:
        fetch(exporter, certs, client=client)
    if client is None:
        assert "certificate required" in str(caught.value).lower()


def test_tls_1_2_is_refused(exporter, certs):
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        fetch(exporter, certs, client="alertmanager", version=ssl.TLSVersion.TLSv1_2)


def test_a_web_configuration_it_does_not_know_stops_it(tmp_path):
    config = tmp_path / "web.yml"
    config.write_text("basic_auth_users:\n  alice: x\n")
    run = subprocess.run([sys.executable, str(STAND_IN), "-f", str(COUNTERS), "-a", "127.0.0.1:1",
                          "--web-config-file", str(config)], capture_output=True, text=True, timeout=30,
                         env={"PATH": "%s:/usr/bin:/bin" % tmp_path}, check=False)
    assert run.returncode != 0 and "only tls_server_config is supported" in run.stderr
