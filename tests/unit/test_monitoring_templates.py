"""Render the monitoring roles' files with Ansible's own templating and check them with the tools the
roles' validate: steps run on the hosts (promtool check config, nft -c)."""
import json
import shutil
import subprocess

import pytest
import yaml

from ansible_collections.onprem.deepseek.plugins.module_utils._port_filter import port_filter
from ansible_collections.onprem.deepseek.plugins.module_utils._scrape_plan import scrape_jobs
from role_templates import DataLoader, ROLES, Templar, render_file, role_variables

PROMTOOL = shutil.which("promtool")
NFT = "/usr/sbin/nft"  # tools/bootstrap installs nftables
HOSTS = [
    {"name": "a1", "site": "site_a", "node_exporter_target": "10.0.1.11:9100", "gateway_metrics_target": None,
     "inference_metrics_targets": [{"instance": "main", "target": "10.0.1.11:8000", "engine": "vllm"}]},
    {"name": "a2", "site": "site_a", "node_exporter_target": "10.0.1.12:9100", "gateway_metrics_target": "10.0.1.12:9145",
     "inference_metrics_targets": []},
]
GROUPS = {"node": ["a1", "a2"], "inference": ["a1"], "gateway": ["a2"]}


def render_prometheus(rules_dir):
    loader = DataLoader()
    variables = role_variables(loader, "monitoring")
    variables.update(ansible_managed="Ansible managed", inventory_hostname="mon-b1", role_path=str(ROLES / "monitoring"),
                     __monitoring_rules_dir=str(rules_dir),
                     __monitoring_jobs=scrape_jobs(HOSTS, GROUPS, "10.0.2.11:9090", "127.0.0.1:9093"))
    return render_file(ROLES / "monitoring" / "templates" / "prometheus.yml.j2", loader, variables)


def test_the_rendered_configuration_passes_promtool_with_the_collections_rules(tmp_path):
    if not PROMTOOL:
        pytest.fail("promtool is missing: run tools/bootstrap (it installs Debian's prometheus package)")
    rules = tmp_path / "rules"
    rules.mkdir()
    for src in (ROLES / "monitoring" / "files" / "prometheus" / "rules").glob("*.yml"):
        shutil.copy(src, rules / src.name)
    conf = tmp_path / "prometheus.yml"
    text = render_prometheus(rules)
    conf.write_text(text)
    run = subprocess.run([PROMTOOL, "check", "config", str(conf)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    config = yaml.safe_load(text)
    assert [j["job_name"] for j in config["scrape_configs"]] == ["prometheus", "alertmanager", "node", "inference", "gateway"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]
    assert config["global"] == {"scrape_interval": "15s", "evaluation_interval": "15s", "external_labels": {"monitor": "mon-b1"}}
    assert config["rule_files"] == [str(rules / "*.yml"), str(rules / "*.yaml")]


def test_promtool_refuses_a_configuration_whose_rules_do_not_parse(tmp_path):
    # What the role's validate: relies on: a bad rule file fails the configuration check.
    if not PROMTOOL:
        pytest.fail("promtool is missing: run tools/bootstrap")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bad.yml").write_text("groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: up ==\n")
    conf = tmp_path / "prometheus.yml"
    conf.write_text(render_prometheus(rules))
    run = subprocess.run([PROMTOOL, "check", "config", str(conf)], capture_output=True, text=True, check=False)
    assert run.returncode != 0
    assert "bad.yml" in run.stdout + run.stderr


def render_firewall(sets):
    loader = DataLoader()
    variables = role_variables(loader, "node_exporter")
    variables.update(ansible_managed="Ansible managed", node_exporter_firewall_name="deepseek_node_exporter",
                     node_exporter_firewall_sets=sets)
    return render_file(ROLES / "node_exporter" / "templates" / "firewall.nft.j2", loader, variables)


def test_the_firewall_table_parses_with_nft_and_names_its_sets(tmp_path):
    sets = port_filter("node_exporter_allowed_clients", ["10.0.2.11", "fd00::11"], [9100])
    text = render_firewall(sets)
    assert "elements = { 127.0.0.0/8, 10.0.2.11/32 }" in text
    assert "elements = { ::1/128, fd00::11/128 }" in text
    assert "elements = { 9100 }" in text
    assert "reject with tcp reset" in text
    # The table's comment changes with what it allows: the role reloads it when the loaded one differs.
    assert render_firewall(port_filter("v", ["10.0.2.12"], [9100])).splitlines()[6] != text.splitlines()[6]
    nft = tmp_path / "t.nft"
    nft.write_text(text)
    run = subprocess.run([NFT, "-c", "-f", str(nft)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr


def alertmanager_config(**overrides):
    """configure.yml's Alertmanager configuration (__monitoring_alertmanager_config), rendered."""
    loader = DataLoader()
    variables = role_variables(loader, "monitoring")
    variables.update(overrides)
    # Plain data, as to_nice_yaml writes it (the templar's strings carry Ansible's tags).
    return json.loads(json.dumps(Templar(loader=loader, variables=variables).template(
        variables["__monitoring_alertmanager_config"])))


def amtool(*args):
    path = shutil.which("amtool")
    if not path:
        pytest.fail("amtool is missing: run tools/bootstrap (it installs Debian's prometheus-alertmanager package)")
    return subprocess.run([path, *args], capture_output=True, text=True, check=False, timeout=60)


def test_the_default_alertmanager_configuration_passes_amtool(tmp_path):
    defaults = yaml.safe_load((ROLES / "monitoring" / "defaults" / "main.yml").read_text())
    # As configure.yml writes it: the route and the receivers, in Alertmanager's own format.
    config = alertmanager_config()
    assert config == {"route": defaults["monitoring_alertmanager_route"],
                      "receivers": defaults["monitoring_alertmanager_receivers"]}
    conf = tmp_path / "alertmanager.yml"
    conf.write_text(yaml.safe_dump(config))
    run = amtool("check-config", str(conf))
    assert run.returncode == 0, run.stdout + run.stderr
    # A route to a receiver that does not exist is refused: the role's validate: keeps the old file.
    conf.write_text(yaml.safe_dump({"route": {"receiver": "pager"}, "receivers": [{"name": "default"}]}))
    run = amtool("check-config", str(conf))
    assert run.returncode != 0 and "pager" in run.stdout + run.stderr


REMEDIATION = {"monitoring_remediation_url": "https://10.0.9.1:9443/alerts", "monitoring_scrape_client_certificate": "prom"}


def routes_test(conf, *labels):
    run = amtool("config", "routes", "test", "--config.file=%s" % conf, *labels)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout.strip()


def test_host_memory_high_also_goes_to_the_remediation_receiver_with_the_client_certificate(tmp_path):
    config = alertmanager_config(**REMEDIATION)
    assert config["receivers"][-1] == {"name": "onprem-deepseek-remediation", "webhook_configs": [{
        "url": "https://10.0.9.1:9443/alerts", "send_resolved": False, "http_config": {"tls_config": {
            "ca_file": "/etc/prometheus/onprem-deepseek-scrape/ca.pem",
            "cert_file": "/etc/prometheus/onprem-deepseek-scrape/client.crt",
            "key_file": "/etc/prometheus/onprem-deepseek-scrape/client.key", "min_version": "TLS13"}}}]}
    conf = tmp_path / "alertmanager.yml"
    conf.write_text(yaml.safe_dump(config))
    run = amtool("check-config", str(conf))
    assert run.returncode == 0, run.stdout + run.stderr
    # The site's own receiver still gets it (continue); other alerts, and the label missing, only the site's.
    assert routes_test(conf, "alertname=HostMemoryHigh", "action=restart_engine", "instance=n1:9100") \
        == "onprem-deepseek-remediation,default"
    assert routes_test(conf, "alertname=HostMemoryHigh", "instance=n1:9100") == "default"
    assert routes_test(conf, "alertname=GPUTemperatureHigh", "action=restart_engine") == "default"


def test_the_sites_own_routes_follow_the_remediation_route(tmp_path):
    route = {"receiver": "default", "routes": [{"receiver": "pager", "matchers": ['severity="critical"']}]}
    config = alertmanager_config(monitoring_alertmanager_route=route,
                                 monitoring_alertmanager_receivers=[{"name": "default"}, {"name": "pager"}], **REMEDIATION)
    assert config["route"]["routes"][1] == route and config["route"]["receiver"] == "default"
    conf = tmp_path / "alertmanager.yml"
    conf.write_text(yaml.safe_dump(config))
    assert routes_test(conf, "alertname=HostMemoryHigh", "action=restart_engine", "severity=critical") \
        == "onprem-deepseek-remediation,pager"
    assert routes_test(conf, "alertname=HostMemoryHigh", "action=restart_engine") == "onprem-deepseek-remediation,default"
    assert routes_test(conf, "alertname=SiteDown", "severity=critical") == "pager"
    assert routes_test(conf, "alertname=SiteDown") == "default"
