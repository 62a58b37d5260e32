"""Render the gateway's nginx configuration (roles/gateway/templates/nginx.conf.j2) with Ansible's
own templating, and judge it with gixy (no medium or high finding) and by what it must say.

The loopback tests (tests/gateway) run nginx with the Lua package; this checks the production
template itself, for both kinds of certificate key.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from role_templates import DataLoader, ROLES, render_file, role_variables

GIXY = Path(sys.executable).with_name("gixy")
# Findings that do not apply, each with the reason.
NOT_APPLICABLE = {
    # proxy_pass names an upstream{} block through $gw_upstream, a map of fixed names: nothing is
    # resolved through DNS, at start or later.
    "missing_resolver",
}
FILE_KEY = {"chain": "/etc/deepseek/pki/gateway.chain.pem", "key_file": "/etc/deepseek/pki/private/gateway.key",
            "key_engine_uri": "", "openssl_conf": ""}
TOKEN_KEY = {"chain": "/etc/deepseek/pki/gateway.chain.pem", "key_file": "",
             "key_engine_uri": "pkcs11:token=node;object=gateway-1;type=private?pin-source=file:/etc/deepseek/hsm/pin",
             "openssl_conf": "/etc/deepseek/pki/openssl-pkcs11.cnf"}


def gixy(conf):
    # Includes hold the engine keys and the distribution's MIME types; the judged text is ours.
    return subprocess.run([str(GIXY), "-f", "json", "--disable-includes", str(conf)], capture_output=True, text=True,
                          check=False)


def render(cert=None, **overrides):
    loader = DataLoader()
    variables = role_variables(loader, "tls_policy", "gateway")
    variables.update(
        ansible_managed="Ansible managed",
        inventory_hostname="gw-a1",
        pki_issued={"gateway": cert or FILE_KEY},
        gateway_models=["deepseek-r1"],
        gateway_upstreams=[{"name": "main", "servers": ["10.0.1.21:8000", "10.0.1.22:8000"]},
                           {"name": "canary", "servers": ["10.0.1.23:8000"]}],
    )
    variables.update(overrides)
    return render_file(ROLES / "gateway" / "templates" / "nginx.conf.j2", loader, variables)


@pytest.mark.parametrize("cert,mtls", [(FILE_KEY, False), (TOKEN_KEY, False), (FILE_KEY, True)],
                         ids=["file-key", "token-key", "mtls"])
def test_gixy_finds_nothing_medium_or_high(tmp_path, cert, mtls):
    if not GIXY.exists():
        pytest.skip("gixy is not installed in this environment (requirements/dev.txt has it)")
    conf = tmp_path / "nginx.conf"
    conf.write_text(render(cert, gateway_mtls=mtls))
    run = gixy(conf)
    findings = json.loads(run.stdout or "[]")
    serious = [(f["plugin"], f["severity"], f["line"]) for f in findings
               if f["severity"] in ("MEDIUM", "HIGH") and f["plugin"] not in NOT_APPLICABLE]
    assert serious == []
    assert run.returncode in (0, 1), run.stderr


def test_gixy_sees_a_planted_fault(tmp_path):
    """The judge works on this kind of file: the same configuration with the version shown is caught."""
    if not GIXY.exists():
        pytest.skip("gixy is not installed in this environment")
    conf = tmp_path / "nginx.conf"
    conf.write_text(render().replace("server_tokens off;", "server_tokens on;"))
    run = gixy(conf)
    assert "version_disclosure" in {f["plugin"] for f in json.loads(run.stdout)}


def test_tls13_only_hsts_and_the_key_kind():
    text = render()
    assert "ssl_protocols TLSv1.3;" in text
    assert 'add_header Strict-Transport-Security "max-age=63072000" always;' in text
    assert "ssl_certificate_key /etc/deepseek/pki/private/gateway.key;" in text
    token = render(TOKEN_KEY)
    assert 'ssl_certificate_key "engine:pkcs11:pkcs11:token=node;object=gateway-1' in token
    assert "gateway.key" not in token


def test_plain_http_only_redirects():
    text = render(gateway_listen_https=8443)
    server = text.split("listen 80 default_server;", 1)[1].split("}", 1)[0]
    assert "return 301 https://$host:8443$request_uri;" in server
    assert "proxy_pass" not in server


def upstreams(text):
    """Each upstream block's directives (comments left out), by upstream name."""
    blocks = re.findall(r"\n    upstream (\S+) \{\n(.*?)\n    \}(?=\n)", text, re.S)
    return {name: [line.strip() for line in body.splitlines() if line.strip() and not line.strip().startswith("#")]
            for name, body in blocks}


def test_every_pool_is_an_upstream_and_the_first_is_the_default():
    text = render()
    # nginx alone (gateway_router: nginx): least connections, an engine that fails is left out a while.
    assert upstreams(text) == {
        "gw_up_main": ["least_conn;", "server 10.0.1.21:8000 max_fails=3 fail_timeout=10s;",
                       "server 10.0.1.22:8000 max_fails=3 fail_timeout=10s;", "keepalive 16;"],
        "gw_up_canary": ["least_conn;", "server 10.0.1.23:8000 max_fails=3 fail_timeout=10s;", "keepalive 16;"]}
    assert "default gw_up_main;" in text


def test_with_vllm_router_each_pool_goes_to_its_router_on_loopback():
    text = render(gateway_router="vllm-router")
    assert upstreams(text) == {"gw_up_main": ["server 127.0.0.1:30000;", "keepalive 16;"],
                               "gw_up_canary": ["server 127.0.0.1:30001;", "keepalive 16;"]}
    # Only the routers know the engines.
    assert not re.search(r"10\.0\.1\.2[123]", text)
    moved = render(gateway_router="vllm-router", gateway_router_port=31000)
    assert upstreams(moved)["gw_up_canary"] == ["server 127.0.0.1:31001;", "keepalive 16;"]
    # Everything else (routes, keys, limits, audit) is the same in both modes, but /health (the
    # router's /readiness answers for the pool) and the routers' metrics on the metrics server.
    outside = re.compile(r"\n    upstream \S+ \{\n.*?\n    \}(?=\n)", re.S)
    health = re.compile(r"location = /health \{.*?\n        \}", re.S)
    routers = re.compile(r"\n        # Pool \S+'s router serves.*?\n        \}", re.S)
    assert routers.sub("", health.sub("", outside.sub("", text))) == health.sub("", outside.sub("", render()))
    assert "proxy_pass http://$gw_upstream/readiness;" in health.search(text).group(0)
    assert "proxy_pass http://$gw_upstream$gw_route;" in health.search(render()).group(0)


def test_each_routers_metrics_pass_through_the_metrics_server_to_the_allowed_addresses_only():
    text = render(gateway_router="vllm-router", gateway_metrics_listen="10.0.1.12:9145",
                  gateway_metrics_allow=["127.0.0.1", "10.0.2.11"])
    metrics_server = text.split("listen 10.0.1.12:9145;", 1)[1]
    locations = re.findall(r"location = (/router/\S+/metrics) \{(.*?)\n        \}", metrics_server, re.S)
    assert [(path, [line.strip() for line in body.strip().splitlines()]) for path, body in locations] == [
        ("/router/main/metrics", ["allow 127.0.0.1;", "allow 10.0.2.11;", "deny all;",
                                  "proxy_pass http://127.0.0.1:29000/metrics;"]),
        ("/router/canary/metrics", ["allow 127.0.0.1;", "allow 10.0.2.11;", "deny all;",
                                    "proxy_pass http://127.0.0.1:29001/metrics;"]),
    ]
    assert "/router/" not in render(gateway_metrics_listen="10.0.1.12:9145")


def test_gixy_finds_nothing_medium_or_high_with_the_routers(tmp_path):
    if not GIXY.exists():
        pytest.skip("gixy is not installed in this environment (requirements/dev.txt has it)")
    conf = tmp_path / "nginx.conf"
    conf.write_text(render(gateway_router="vllm-router"))
    run = gixy(conf)
    findings = json.loads(run.stdout or "[]")
    assert [(f["plugin"], f["line"]) for f in findings
            if f["severity"] in ("MEDIUM", "HIGH") and f["plugin"] not in NOT_APPLICABLE] == []
    assert run.returncode in (0, 1), run.stderr


MTLS_LINES = ["ssl_client_certificate", "ssl_verify_client", "ssl_verify_depth"]


def https_server(text):
    return text.split("listen 443 ssl default_server;", 1)[1].split("\n    }\n", 1)[0]


def test_no_client_certificate_is_asked_for_by_default():
    text = render()
    assert not [line for line in text.splitlines() if any(d in line for d in MTLS_LINES)]
    assert "ssl_certificate /etc/deepseek/pki/gateway.chain.pem;" in https_server(text)


def test_mtls_asks_for_a_certificate_verified_against_the_pki_chain():
    text = render(gateway_mtls=True)
    lines = [line.strip() for line in text.splitlines() if any(d in line for d in MTLS_LINES)]
    assert lines == ["ssl_client_certificate /etc/deepseek/pki/ca-chain.pem;", "ssl_verify_client optional;",
                     "ssl_verify_depth 2;"]
    # Only the API server asks; the redirect and metrics servers do not.
    assert all(line in https_server(text) for line in ("ssl_verify_client optional;", "ssl_verify_depth 2;"))
    assert "ssl_verify_client" not in text.split("listen 443 ssl", 1)[0]
    assert "ssl_verify_client" not in text.split("# Prometheus scrapes", 1)[1]
    moved = render(gateway_mtls=True, pki_cert_dir="/srv/pki")
    assert "ssl_client_certificate /srv/pki/ca-chain.pem;" in moved
    explicit = render(gateway_mtls=True, gateway_client_ca_file="/etc/site/clients.pem")
    assert "ssl_client_certificate /etc/site/clients.pem;" in explicit
    assert "ssl_verify_client" not in render(gateway_mtls=False, gateway_client_ca_file="/etc/site/clients.pem")


def test_the_audit_line_says_which_credential_proved_the_principal():
    text = render()
    assert '\'"credential":"$gw_credential",\'' in text
    assert 'set $gw_credential "";' in https_server(text)


def test_ssl_protocols_follow_the_tls_policy():
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in render(tls_policy_allow_tls12=True)


def test_audit_lines_go_to_syslog_only_when_asked():
    assert "syslog:" not in render()
    text = render(gateway_audit_syslog="[2001:db8::5]:514", gateway_audit_syslog_facility="local5")
    assert ("access_log syslog:server=[2001:db8::5]:514,facility=local5,tag=onprem_gateway,severity=info gateway_audit;"
            in text)
    assert "access_log /var/log/nginx/gateway-audit.log gateway_audit;" in text


def test_bodies_are_logged_only_when_asked():
    off = render()
    assert ",\"request_body\":" not in off and "set $gw_payload_max 0;" in off
    on = render(gateway_audit_payloads=True, gateway_audit_payload_max=4096)
    assert ',"request_body":"$gw_request_body","response_body":"$gw_response_body"' in on
    assert "set $gw_payload_max 4096;" in on


def next_upstream_lines(text):
    return [line.strip() for line in https_server(text).splitlines() if line.strip().startswith("proxy_next_upstream")]


@pytest.mark.parametrize("retries, lines", [
    (None, ["proxy_next_upstream error timeout non_idempotent;", "proxy_next_upstream_tries 2;",
            "proxy_next_upstream_timeout 30s;"]),
    (1, ["proxy_next_upstream error timeout non_idempotent;", "proxy_next_upstream_tries 2;",
         "proxy_next_upstream_timeout 30s;"]),
    (3, ["proxy_next_upstream error timeout non_idempotent;", "proxy_next_upstream_tries 4;",
         "proxy_next_upstream_timeout 30s;"]),
    (0, ["proxy_next_upstream off;"]),
])
def test_a_request_an_engine_failed_before_answering_goes_to_another(retries, lines):
    # POST is resent too (non_idempotent): without it nginx answers 502 for a completion sent on a
    # keepalive connection the stopped engine had closed.
    text = render() if retries is None else render(gateway_upstream_retries=retries)
    assert next_upstream_lines(text) == lines
