"""gateway_router: vllm-router - the router's systemd unit and per-pool arguments as the role renders
them (Ansible's Templar), and the preflight's checks of the router settings (ansible-playbook on
this machine, read-only).

tests/gateway/test_gateway_router.py runs vllm-router itself with these arguments.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from role_templates import DataLoader, ROLES, Templar, render_file, role_variables, trust_as_template

ROOT = ROLES.parent
TEMPLATES = ROLES / "gateway" / "templates"
ENGINE_KEY = "sk-engine-0123456789abcdef"
POOLS = [{"name": "main", "servers": ["10.0.1.21:8000", "10.0.1.22:8000"], "engine_key": ENGINE_KEY},
         {"name": "canary", "servers": ["10.0.1.23:8000"], "engine_key": ENGINE_KEY}]
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")


def variables(**overrides):
    loader = DataLoader()
    found = role_variables(loader, "gateway")
    found.update(ansible_managed="Ansible managed", inventory_hostname="gw-a1", ansible_host="gw-a1.site.example",
                 gateway_router="vllm-router", gateway_upstreams=POOLS)
    found.update(overrides)
    return loader, found


def value(name, **overrides):
    loader, found = variables(**overrides)
    return Templar(loader=loader, variables=found).template(trust_as_template("{{ %s }}" % name))


def router_args(index=0, **overrides):
    """The vllm-router arguments of the pool at ``index``, as systemd splits ROUTER_ARGS."""
    loader, found = variables(**overrides)
    found["item"] = value("__gateway_router_pools", **overrides)[index]
    text = render_file(TEMPLATES / "onprem-deepseek-router.env.j2", loader, found)
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(lines) == 1 and lines[0].startswith("ROUTER_ARGS="), text
    return text, shlex.split(lines[0][len("ROUTER_ARGS="):])


def options(args):
    """--flag value... to {flag: [values]}."""
    found, current = {}, None
    for arg in args:
        if arg.startswith("--"):
            current = found.setdefault(arg, [])
        else:
            current.append(arg)
    return found


def unit(**overrides):
    loader, found = variables(**overrides)
    return render_file(TEMPLATES / "onprem-deepseek-router@.service.j2", loader, found)


def test_each_pool_has_a_router_on_loopback_before_its_servers():
    main, canary = (options(router_args(i)[1]) for i in (0, 1))
    assert main["--host"] == ["127.0.0.1"] and main["--port"] == ["30000"]
    assert main["--worker-urls"] == ["http://10.0.1.21:8000", "http://10.0.1.22:8000"]
    assert canary["--port"] == ["30001"] and canary["--worker-urls"] == ["http://10.0.1.23:8000"]
    # Metrics on loopback, one port per pool (vllm-router's default, 29000, would clash).
    assert main["--prometheus-host"] == ["127.0.0.1"] and main["--prometheus-port"] == ["29000"]
    assert canary["--prometheus-port"] == ["29001"]
    assert main["--policy"] == ["cache_aware"]
    assert options(router_args(0, gateway_router_policy="consistent_hash")[1])["--policy"] == ["consistent_hash"]


def test_nginx_sends_each_pool_to_the_port_its_router_listens_on():
    loader, found = variables(pki_issued={"gateway": {"chain": "/c.pem", "key_file": "/k.pem", "key_engine_uri": ""}},
                              gateway_models=["m"])
    found.update(role_variables(loader, "tls_policy"))
    nginx = render_file(TEMPLATES / "nginx.conf.j2", loader, found)
    for index, pool in enumerate(POOLS):
        port = options(router_args(index)[1])["--port"][0]
        assert re.search(r"upstream gw_up_%s \{\n(\s*#.*\n)*\s*server 127\.0\.0\.1:%s;\n" % (pool["name"], port), nginx)


def test_the_router_gets_no_key_and_passes_on_what_nginx_sends():
    for index in (0, 1):
        text, args = router_args(index)
        assert ENGINE_KEY not in text
        assert "--api-key" not in args
    text = unit()
    assert ENGINE_KEY not in text and "--api-key" not in text
    exec_start = [line for line in text.splitlines() if line.startswith("ExecStart=")]
    assert exec_start == ["ExecStart=/opt/onprem-deepseek/vllm-router/bin/vllm-router $ROUTER_ARGS"]
    assert "EnvironmentFile=/etc/deepseek/gateway/router/%i.env" in text.splitlines()


def test_a_dead_engine_opens_its_breaker_before_the_retries_run_out():
    # Measured on 0.1.17: with cache_aware a retry picks the same engine again, so only a breaker
    # that opens within one request's retries moves it to another engine.
    found = options(router_args()[1])
    assert int(found["--cb-failure-threshold"][0]) < int(found["--retry-max-retries"][0])
    # At start the router waits for a healthy engine; 30 s between checks by default.
    assert int(found["--worker-startup-check-interval"][0]) <= 5


@pytest.mark.parametrize("read_timeout,seconds", [("3600s", 3600), ("1h", 3600), ("90", 90), ("2m", 120), ("500ms", 1)])
def test_the_router_waits_as_long_as_nginx_does(read_timeout, seconds):
    found = options(router_args(gateway_read_timeout=read_timeout)[1])
    assert found["--request-timeout-secs"] == [str(seconds)]


def test_no_cross_origin_grants_but_for_the_gateway_itself():
    # Without --cors-allowed-origins vllm-router answers Access-Control-Allow-Origin: * to everyone.
    assert options(router_args()[1])["--cors-allowed-origins"] == ["https://gw-a1.site.example"]
    moved = router_args(gateway_url="https://api.bank.example:8443/v1")[1]
    assert options(moved)["--cors-allowed-origins"] == ["https://api.bank.example:8443"]
    assert options(router_args()[1])["--request-id-headers"] == ["x-request-id"]


HARDENING = [
    "DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
    "PrivateDevices=yes", "ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes", "RestrictNamespaces=yes", "RestrictSUIDSGID=yes", "LockPersonality=yes",
    "MemoryDenyWriteExecute=yes", "SystemCallArchitectures=native", "SystemCallFilter=@system-service",
    "SystemCallFilter=~@privileged @resources", "CapabilityBoundingSet=",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
]


def test_the_unit_is_hardened():
    lines = unit().splitlines()
    assert [line for line in HARDENING if line not in lines] == []
    assert not [line for line in lines if re.match(r"(User|Group|AmbientCapabilities)=.", line)]


def exposure(tmp_path, text):
    path = tmp_path / "onprem-deepseek-router@main.service"
    path.write_text(text)
    # The threshold is ten times the exposure systemd prints (2.0 here).
    run = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=yes", "--threshold=20", str(path)],
                         capture_output=True, text=True, timeout=60, check=False)
    return run.returncode, run.stdout + run.stderr


@pytest.mark.skipif(not SYSTEMD_ANALYZE, reason="systemd-analyze is not installed here")
def test_systemd_rates_the_unit_exposure_at_most_2(tmp_path):
    rc, out = exposure(tmp_path, unit())
    assert rc == 0, out


@pytest.mark.skipif(not SYSTEMD_ANALYZE, reason="systemd-analyze is not installed here")
def test_systemd_rating_catches_a_weaker_unit(tmp_path):
    weak = "\n".join(line for line in unit().splitlines()
                     if not line.startswith(("SystemCallFilter=", "Protect", "Private", "DynamicUser=")))
    rc, out = exposure(tmp_path, weak)
    assert rc != 0, out


# One inventory host (this machine, read-only) per case: host name, variables, what the run says.
PREFLIGHT = {
    "good": ({}, None),
    "nginx_without_keys": ({"gateway_router": "nginx",
                            "gateway_upstreams": [{"name": "main", "servers": ["10.0.1.21:8000"]}]}, None),
    "unknown_router": ({"gateway_router": "haproxy"}, "gateway_router: 'haproxy' must be nginx or vllm-router"),
    "pool_without_key": ({"gateway_upstreams": [POOLS[0], {"name": "canary", "servers": ["10.0.1.23:8000"]}]},
                         "gateway_upstreams[1] (canary): with gateway_router: vllm-router every pool needs engine_key"),
    "one_server_two_choices": ({"gateway_router_policy": "power_of_two"},
                               "gateway_upstreams[1] (canary): gateway_router_policy: power_of_two needs at least two "
                               "servers, it has 1"),
    "ports_overlap": ({"gateway_router_metrics_port": 30001}, "gateway_router_metrics_port (30001) ports from 1024"),
    "port_of_the_metrics_server": ({"gateway_router_port": 9144}, "gateway_router_port (9144)"),
    "unknown_policy": ({"gateway_router_policy": "kv_aware"}, "gateway_router_policy: 'kv_aware' must be one of"),
    "no_retry": ({"gateway_upstream_retries": 0}, None),
    "nine_retries": ({"gateway_upstream_retries": 9}, None),
    "ten_retries": ({"gateway_upstream_retries": 10}, "gateway_upstream_retries from 0 to 9"),
    "negative_retries": ({"gateway_upstream_retries": -1}, "gateway_upstream_retries from 0 to 9"),
}


@pytest.mark.skipif(not PLAYBOOK.exists() and not shutil.which("ansible-playbook"), reason="needs ansible-playbook")
def test_the_preflight_checks_the_router_settings_and_prints_no_key(tmp_path):
    hosts = {name: dict(case) for name, (case, _message) in PREFLIGHT.items()}
    inventory = {"all": {"vars": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "pki_certificates": [{"name": "gateway"}], "gateway_models": ["m"], "gateway_audit_chain": False,
        "gateway_router": "vllm-router", "gateway_upstreams": POOLS}, "hosts": hosts}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "preflight.yml").write_text(
        "- name: Gateway preflight\n  hosts: all\n  gather_facts: true\n  tasks:\n"
        "    - name: The role's read-only preflight\n      ansible.builtin.include_role:\n"
        "        name: onprem.deepseek.gateway\n        tasks_from: preflight.yml\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    run = subprocess.run([str(PLAYBOOK) if PLAYBOOK.exists() else "ansible-playbook", "-i", "inventory.yml", "-v",
                          "preflight.yml"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
                         check=False)
    out = run.stdout + run.stderr
    assert ENGINE_KEY not in out
    recap = dict(re.findall(r"^(\w+)\s+: ok=\d+\s+changed=\d+\s+unreachable=\d+\s+failed=(\d+)", out, re.M))
    assert recap == {name: "0" if message is None else "1" for name, (_case, message) in PREFLIGHT.items()}, out[-3000:]
    errors = " ".join(re.findall(r"^\[ERROR\]: Task failed: Action failed: (.*)$", out, re.M))
    for name, (_case, message) in PREFLIGHT.items():
        if message:
            assert message in errors, (name, errors)
