"""The scrape plan: each monitored host's published targets become jobs; a host not read is refused."""
import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils._scrape_plan import (
    ScrapePlanError,
    check_target,
    scrape_jobs,
)


def host(name, site="site_a", node="", inference=None, gateway=None):
    return {"name": name, "site": site, "node_exporter_target": node or None,
            "inference_metrics_targets": inference, "gateway_metrics_target": gateway}


def engine(instance, target, engine="vllm"):
    return {"instance": instance, "target": target, "engine": engine}


HOSTS = [
    host("a1", node="10.0.1.11:9100", inference=[engine("main", "10.0.1.11:8000"), engine("canary", "10.0.1.11:8001")]),
    host("a2", node="10.0.1.12:9100", gateway="10.0.1.12:9145"),
    host("b1", site="site_b", node="10.0.2.11:9100"),
]
GROUPS = {"node": ["a1", "a2", "b1"], "inference": ["a1"], "gateway": ["a2"]}


def jobs_by_name(hosts=None, groups=None):
    plan = scrape_jobs(HOSTS if hosts is None else hosts, GROUPS if groups is None else groups)
    return {j["job_name"]: j["static_configs"] for j in plan}


def test_each_group_brings_its_targets_with_host_site_and_instance_labels():
    jobs = jobs_by_name()
    assert list(jobs) == ["prometheus", "alertmanager", "node", "inference", "gateway"]
    assert jobs["node"] == [
        {"targets": ["10.0.1.11:9100"], "labels": {"host": "a1", "instance": "a1", "site": "site_a"}},
        {"targets": ["10.0.1.12:9100"], "labels": {"host": "a2", "instance": "a2", "site": "site_a"}},
        {"targets": ["10.0.2.11:9100"], "labels": {"host": "b1", "instance": "b1", "site": "site_b"}},
    ]
    assert jobs["inference"] == [
        {"targets": ["10.0.1.11:8000"], "labels": {"host": "a1", "instance": "a1/main", "runtime": "vllm", "site": "site_a"}},
        {"targets": ["10.0.1.11:8001"], "labels": {"host": "a1", "instance": "a1/canary", "runtime": "vllm", "site": "site_a"}},
    ]
    assert jobs["gateway"] == [{"targets": ["10.0.1.12:9145"], "labels": {"host": "a2", "instance": "a2", "site": "site_a"}}]
    assert jobs["prometheus"] == [{"targets": ["127.0.0.1:9090"], "labels": {"instance": "prometheus"}}]
    assert jobs["alertmanager"] == [{"targets": ["127.0.0.1:9093"], "labels": {"instance": "alertmanager"}}]


def test_adding_a_host_to_a_group_adds_its_targets():
    hosts = HOSTS + [host("b2", site="site_b", node="10.0.2.12:9100", inference=[engine("main", "10.0.2.12:8000")])]
    groups = {"node": GROUPS["node"] + ["b2"], "inference": ["a1", "b2"], "gateway": ["a2"]}
    jobs = jobs_by_name(hosts, groups)
    assert [c["targets"][0] for c in jobs["node"]] == ["10.0.1.11:9100", "10.0.1.12:9100", "10.0.2.11:9100", "10.0.2.12:9100"]
    assert [c["labels"]["instance"] for c in jobs["inference"]] == ["a1/main", "a1/canary", "b2/main"]


def test_a_group_with_no_host_has_no_job_and_an_empty_fact_no_target():
    jobs = jobs_by_name(groups={"node": ["a1"]})
    assert "inference" not in jobs and "gateway" not in jobs
    jobs = jobs_by_name([host("a1", node="10.0.1.11:9100", inference=[], gateway="")],
                        {"node": ["a1"], "inference": ["a1"], "gateway": ["a1"]})
    assert list(jobs) == ["prometheus", "alertmanager", "node"]


def test_a_host_not_read_in_this_run_is_refused_naming_it_and_the_fact():
    hosts = [host("a1", node="10.0.1.11:9100"), host("a2", node=None)]
    with pytest.raises(ScrapePlanError, match=r"^a2: node_exporter_target is unknown: .*--limit"):
        scrape_jobs(hosts, {"node": ["a1", "a2"]})
    with pytest.raises(ScrapePlanError, match=r"^a1: inference_metrics_targets is unknown"):
        scrape_jobs(hosts[:1], {"node": ["a1"], "inference": ["a1"]})


def test_a_group_member_missing_from_the_hosts_is_refused():
    with pytest.raises(ScrapePlanError, match="host zz of the node targets is not in the inventory's hosts"):
        scrape_jobs(HOSTS, {"node": ["a1", "zz"]})


def test_the_same_target_twice_is_refused_naming_both():
    hosts = [host("a1", node="10.0.1.11:9100", gateway="10.0.1.11:9100")]
    with pytest.raises(ScrapePlanError, match=r"a1: gateway_metrics_target \(from gateway_metrics_listen\): "
                                              r"10\.0\.1\.11:9100 is also a1: node_exporter_target"):
        scrape_jobs(hosts, {"node": ["a1"], "gateway": ["a1"]})


def test_a_host_listed_twice_is_refused():
    with pytest.raises(ScrapePlanError, match="host a1 is listed twice"):
        scrape_jobs(HOSTS[:1] * 2, {})


@pytest.mark.parametrize("target", ["10.0.0.1:1", "10.0.0.1:65535", "[fd00::1]:9100", "node-1.site.example:9100"])
def test_good_targets(target):
    assert check_target(target, "t") == target


@pytest.mark.parametrize("target", ["10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1", "10.0.0.1:", ":9100", "a b:80",
                                    "http://10.0.0.1:9100", None, 9100])
def test_bad_targets_are_refused_naming_what(target):
    with pytest.raises(ScrapePlanError, match=r"^node a1: .* is not host:port \(a port from 1 to 65535\)$"):
        check_target(target, "node a1")


@pytest.mark.parametrize("target", ["127.0.0.1:9145", "[::1]:9145", "localhost:9145"])
def test_loopback_targets_are_refused(target):
    with pytest.raises(ScrapePlanError, match="listens on loopback only"):
        check_target(target, "a2: gateway_metrics_target (from gateway_metrics_listen)")


def test_label_values_are_checked():
    with pytest.raises(ScrapePlanError, match=r"a1: deepseek_site: 'site a' is not a label value"):
        scrape_jobs([host("a1", site="site a", node="10.0.1.11:9100")], {"node": ["a1"]})
    with pytest.raises(ScrapePlanError, match=r"a1: inference instance name: 'm\{1\}' is not a label value"):
        scrape_jobs([host("a1", node="10.0.1.11:9100", inference=[engine("m{1}", "10.0.1.11:8000")])],
                    {"inference": ["a1"]})
    with pytest.raises(ScrapePlanError, match="host name"):
        scrape_jobs([{"name": None}], {})


def test_the_own_targets_can_be_moved():
    jobs = {j["job_name"]: j for j in scrape_jobs([], {}, self_target="10.0.0.5:9090", alertmanager_target="10.0.0.5:9093")}
    assert jobs["prometheus"]["static_configs"][0]["targets"] == ["10.0.0.5:9090"]
    assert jobs["alertmanager"]["static_configs"][0]["targets"] == ["10.0.0.5:9093"]


def test_the_filter_returns_the_plan_and_names_itself_in_errors():
    from ansible.errors import AnsibleFilterError
    from ansible_collections.onprem.deepseek.plugins.filter.scrape_plan import scrape_plan

    assert scrape_plan(HOSTS, GROUPS) == scrape_jobs(HOSTS, GROUPS)
    with pytest.raises(AnsibleFilterError, match="^scrape_plan: host zz of the node targets"):
        scrape_plan(HOSTS, {"node": ["zz"]})


# The messages whole: an operator reads them to find the variable and the host.
def test_loopback_message():
    with pytest.raises(ScrapePlanError) as caught:
        check_target("127.0.0.1:9145", "a2: gateway_metrics_target (from gateway_metrics_listen)")
    assert str(caught.value) == ("a2: gateway_metrics_target (from gateway_metrics_listen): '127.0.0.1:9145' listens "
                                 "on loopback only, which Prometheus on another host cannot reach")


def test_label_and_host_messages():
    with pytest.raises(ScrapePlanError) as caught:
        scrape_jobs([{"name": None}], {})
    assert str(caught.value) == "host name: None is not a label value of letters, digits and _.:/-"
    with pytest.raises(ScrapePlanError) as caught:
        scrape_jobs(HOSTS[:1] * 2, {})
    assert str(caught.value) == "host a1 is listed twice"
    with pytest.raises(ScrapePlanError) as caught:
        scrape_jobs([host("a1", node="10.0.1.11:9100", inference=[engine("main", "10.0.1.11:8000", engine="v llm")])],
                    {"inference": ["a1"]})
    assert str(caught.value) == "a1: inference engine: 'v llm' is not a label value of letters, digits and _.:/-"


def test_unknown_fact_message():
    with pytest.raises(ScrapePlanError) as caught:
        scrape_jobs([host("a2", node=None)], {"node": ["a2"]})
    assert str(caught.value) == (
        "a2: node_exporter_target is unknown: its read-only preflight did not run in this play (left out by "
        "--limit?); run with every monitored host, or without --limit")


@pytest.mark.parametrize("hosts, groups, message", [
    ([host("a1", node="10.0.1.11:8000", inference=[engine("main", "10.0.1.11:8000")])], {"node": ["a1"], "inference": ["a1"]},
     "a1: inference_metrics_targets[main] (from inference_listen_address, inference_instances): 10.0.1.11:8000 is "
     "also a1: node_exporter_target (from node_exporter_listen)"),
    ([host("a1", inference=[engine("main", "10.0.1.11")])], {"inference": ["a1"]},
     "a1: inference_metrics_targets[main] (from inference_listen_address, inference_instances): '10.0.1.11' is not "
     "host:port (a port from 1 to 65535)"),
])
def test_target_messages_name_the_fact_and_where_it_comes_from(hosts, groups, message):
    with pytest.raises(ScrapePlanError) as caught:
        scrape_jobs(hosts, groups)
    assert str(caught.value) == message


def test_no_site_and_no_engine_give_empty_labels():
    jobs = jobs_by_name([host("a1", site=None, node="10.0.1.11:9100",
                              inference=[{"instance": "main", "target": "10.0.1.11:8000"}])],
                        {"node": ["a1"], "inference": ["a1"]})
    assert jobs["node"][0]["labels"] == {"host": "a1", "instance": "a1", "site": ""}
    assert jobs["inference"][0]["labels"] == {"host": "a1", "instance": "a1/main", "runtime": "", "site": ""}


# The blackbox job: one authenticated completion per probed gateway.

PROBE = {"exporter": "127.0.0.1:9115", "module": "deepseek_completion"}


def probed(url_a2="https://10.0.1.12/v1", url_b1="https://10.0.2.11:8443/v1/", names=("a2", "b1")):
    hosts = [dict(h) for h in HOSTS]
    hosts[1]["gateway_url"] = url_a2
    hosts[2]["gateway_url"] = url_b1
    groups = dict(GROUPS, deepseek_gateway_probe=list(names))
    return scrape_jobs(hosts, groups, probe=PROBE)


def test_probe_job_calls_each_gateways_completion_route_through_the_exporter():
    job = probed()[-1]
    assert job == {
        "job_name": "deepseek_gateway_probe",
        "metrics_path": "/probe",
        "params": {"module": ["deepseek_completion"]},
        "static_configs": [
            {"targets": ["https://10.0.1.12/v1/chat/completions"], "labels": {"host": "a2", "instance": "a2", "site": "site_a"}},
            {"targets": ["https://10.0.2.11:8443/v1/chat/completions"],
             "labels": {"host": "b1", "instance": "b1", "site": "site_b"}},
        ],
        "relabel_configs": [
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"target_label": "__address__", "replacement": "127.0.0.1:9115"},
        ],
    }


def test_no_probe_without_the_option_or_without_probed_gateways():
    assert [j["job_name"] for j in scrape_jobs(HOSTS, GROUPS)][-1] == "gateway"
    assert [j["job_name"] for j in probed(names=())][-1] == "gateway"


def test_probe_of_a_gateway_not_read_in_this_run_is_refused():
    with pytest.raises(ScrapePlanError, match=r"^b1: gateway_endpoint is unknown: its read-only preflight did not run"):
        probed(url_b1=None)
    with pytest.raises(ScrapePlanError, match=r"^host zz of the deepseek_gateway_probe targets is not in the inventory's hosts$"):
        probed(names=("a2", "zz"))


@pytest.mark.parametrize("url", [
    "http://10.0.1.12/v1", "https://10.0.1.12:0/v1", "https://10.0.1.12:65536/v1", "https:///v1", "10.0.1.12/v1",
    "https://10.0.1.12/v1?x=1", 42,
])
def test_probe_url_must_be_https_host_port_path(url):
    with pytest.raises(ScrapePlanError) as exc:
        probed(url_a2=url)
    assert str(exc.value) == "a2: gateway_endpoint.url (from gateway_url): %r is not an https://host[:port]/path URL" % (
        url.rstrip("/") + "/chat/completions" if isinstance(url, str) else url,)


@pytest.mark.parametrize("url", ["https://10.0.1.12:1/v1", "https://10.0.1.12:65535/v1", "https://[fd00::1]/v1",
                                 "https://gw.example.test/v1"])
def test_probe_url_port_bounds_and_hosts(url):
    configs = probed(url_a2=url)[-1]["static_configs"]
    assert [c["targets"][0] for c in configs if c["labels"]["host"] == "a2"] == [url + "/chat/completions"]


@pytest.mark.parametrize("host_part", ["127.0.0.1", "[::1]", "localhost"])
def test_probe_url_on_loopback_is_refused(host_part):
    with pytest.raises(ScrapePlanError, match="is on loopback, which the blackbox exporter on another host cannot reach"):
        probed(url_a2="https://%s/v1" % host_part)


def test_two_gateways_with_one_url_are_refused():
    with pytest.raises(ScrapePlanError, match=r"^b1: https://10.0.1.12/v1/chat/completions is also probed for a2$"):
        probed(url_b1="https://10.0.1.12/v1")


def test_probe_exporter_may_be_loopback_but_must_be_host_port():
    hosts = [dict(h) for h in HOSTS]
    hosts[1]["gateway_url"] = "https://10.0.1.12/v1"
    groups = dict(GROUPS, deepseek_gateway_probe=["a2"])
    job = scrape_jobs(hosts, groups, probe={"exporter": "10.0.2.11:9115", "module": "m"})[-1]
    assert job["relabel_configs"][1]["replacement"] == "10.0.2.11:9115" and job["params"] == {"module": ["m"]}
    with pytest.raises(ScrapePlanError, match=r"^blackbox exporter: '127.0.0.1' is not host:port"):
        scrape_jobs(hosts, groups, probe={"exporter": "127.0.0.1", "module": "m"})
    with pytest.raises(ScrapePlanError, match=r"^probe module: 'a b' is not a label value"):
        scrape_jobs(hosts, groups, probe={"exporter": "127.0.0.1:9115", "module": "a b"})
    bad_site = [dict(h) for h in hosts]
    bad_site[1]["site"] = "site a"
    with pytest.raises(ScrapePlanError, match=r"^a2: deepseek_site: 'site a' is not a label value"):
        scrape_jobs(bad_site, groups, probe=PROBE)


# Each pool's vllm-router, through its gateway's metrics server.

def with_routers(routers, metrics_target="10.0.1.12:9145"):
    hosts = [dict(h) for h in HOSTS]
    hosts[1]["gateway_router_metrics"] = routers
    hosts[1]["gateway_metrics_target"] = metrics_target
    return scrape_jobs(hosts, GROUPS)


def test_router_job_scrapes_each_pool_at_its_path_on_the_gateways_metrics_server():
    plan = with_routers([{"pool": "main", "path": "/router/main/metrics"}, {"pool": "canary", "path": "/router/canary/metrics"}])
    assert [j["job_name"] for j in plan][-2:] == ["gateway", "gateway_router"]
    assert plan[-1] == {"job_name": "gateway_router", "static_configs": [
        {"targets": ["10.0.1.12:9145"], "labels": {"__metrics_path__": "/router/main/metrics", "host": "a2",
                                                   "instance": "a2/main", "pool": "main", "site": "site_a"}},
        {"targets": ["10.0.1.12:9145"], "labels": {"__metrics_path__": "/router/canary/metrics", "host": "a2",
                                                   "instance": "a2/canary", "pool": "canary", "site": "site_a"}},
    ]}


@pytest.mark.parametrize("routers", [None, []])
def test_no_router_job_without_routers(routers):
    assert [j["job_name"] for j in with_routers(routers)][-1] == "gateway"


def test_no_router_job_for_a_gateway_without_a_metrics_target():
    assert [j["job_name"] for j in with_routers([{"pool": "main", "path": "/router/main/metrics"}], "")][-1] == "inference"


@pytest.mark.parametrize("item, message", [
    ({"pool": "a b", "path": "/router/a/metrics"}, "a2: gateway_router_metrics pool: 'a b' is not a label value"),
    ({"pool": "main", "path": "router/main"}, "a2: gateway_router_metrics[main]: 'router/main' is not a URL path"),
    ({"pool": "main", "path": "/r?x=1"}, "a2: gateway_router_metrics[main]: '/r?x=1' is not a URL path"),
    ({"pool": "main"}, "a2: gateway_router_metrics[main]: None is not a URL path"),
])
def test_router_entries_are_checked(item, message):
    with pytest.raises(ScrapePlanError) as exc:
        with_routers([item])
    assert str(exc.value).startswith(message)


def test_a_gateway_without_metrics_target_does_not_hide_the_next_ones_routers():
    hosts = [dict(h) for h in HOSTS] + [dict(host("a3", node="10.0.1.13:9100", gateway="10.0.1.13:9145"))]
    hosts[1]["gateway_metrics_target"] = ""
    hosts[1]["gateway_router_metrics"] = [{"pool": "main", "path": "/router/main/metrics"}]
    hosts[3]["gateway_router_metrics"] = [{"pool": "Main", "path": "/Router/Main/metrics"}]
    groups = dict(GROUPS, node=GROUPS["node"] + ["a3"], gateway=["a2", "a3"])
    router = scrape_jobs(hosts, groups)[-1]
    assert router["job_name"] == "gateway_router"
    assert [(c["targets"], c["labels"]["instance"], c["labels"]["__metrics_path__"]) for c in router["static_configs"]] == [
        (["10.0.1.13:9145"], "a3/Main", "/Router/Main/metrics")]


def test_probe_without_a_probed_group_adds_no_job():
    hosts = [dict(h) for h in HOSTS]
    assert [j["job_name"] for j in scrape_jobs(hosts, GROUPS, probe=PROBE)][-1] == "gateway"


def test_probe_error_messages_in_full():
    with pytest.raises(ScrapePlanError) as exc:
        probed(url_b1=None)
    assert str(exc.value) == ("b1: gateway_endpoint is unknown: its read-only preflight did not run in this play "
                              "(left out by --limit?); run with every monitored host, or without --limit")
    with pytest.raises(ScrapePlanError) as exc:
        probed(url_a2="https://localhost/v1")
    assert str(exc.value) == ("a2: gateway_endpoint.url (from gateway_url): 'https://localhost/v1/chat/completions' is on "
                              "loopback, which the blackbox exporter on another host cannot reach")


def with_dcgm(entry, target):
    return dict(entry, dcgm_exporter_target=target)


def test_gpu_hosts_bring_their_dcgm_exporter_and_the_others_none():
    hosts = [with_dcgm(HOSTS[0], "10.0.1.11:9400"), with_dcgm(HOSTS[1], ""), with_dcgm(HOSTS[2], "10.0.2.11:9400")]
    jobs = jobs_by_name(hosts, dict(GROUPS, dcgm=["a1", "a2", "b1"]))
    assert list(jobs) == ["prometheus", "alertmanager", "node", "dcgm", "inference", "gateway"]
    assert jobs["dcgm"] == [
        {"targets": ["10.0.1.11:9400"], "labels": {"host": "a1", "instance": "a1", "site": "site_a"}},
        {"targets": ["10.0.2.11:9400"], "labels": {"host": "b1", "instance": "b1", "site": "site_b"}},
    ]


def test_no_gpu_host_no_dcgm_job():
    jobs = jobs_by_name([with_dcgm(h, "") for h in HOSTS], dict(GROUPS, dcgm=["a1", "a2", "b1"]))
    assert "dcgm" not in jobs


def test_a_node_whose_dcgm_preflight_did_not_run_is_refused():
    hosts = [with_dcgm(HOSTS[0], "10.0.1.11:9400"), HOSTS[1], with_dcgm(HOSTS[2], "")]
    with pytest.raises(ScrapePlanError, match=r"^a2: dcgm_exporter_target is unknown: .*--limit"):
        scrape_jobs(hosts, dict(GROUPS, dcgm=["a1", "a2", "b1"]))


def test_a_dcgm_target_on_a_node_exporters_port_is_refused_naming_both():
    hosts = [with_dcgm(HOSTS[0], "10.0.1.11:9100")] + HOSTS[1:]
    with pytest.raises(ScrapePlanError, match=r"^a1: dcgm_exporter_target \(from dcgm_exporter_listen\): "
                                              r"10\.0\.1\.11:9100 is also a1: node_exporter_target"):
        scrape_jobs(hosts, dict(GROUPS, dcgm=["a1"]))


TLS = {"ca_file": "/etc/deepseek/pki/ca-chain.pem", "cert_file": "/etc/prometheus/onprem-deepseek-scrape/client.crt",
       "key_file": "/etc/prometheus/onprem-deepseek-scrape/client.key"}


def test_tls_exporters_are_scraped_over_https_with_the_client_certificate():
    hosts = [dict(HOSTS[0], node_exporter_tls=True), HOSTS[1], dict(HOSTS[2], node_exporter_tls=False)]
    plan = {j["job_name"]: j for j in scrape_jobs(hosts, GROUPS, tls=TLS)}
    assert plan["node"]["tls_config"] == TLS
    assert [c["labels"].get("__scheme__") for c in plan["node"]["static_configs"]] == ["https", None, None]
    # Only the jobs with a TLS target get the certificate.
    assert "tls_config" not in plan["inference"] and "tls_config" not in plan["gateway"]


def test_no_tls_target_no_tls_config_even_with_a_certificate():
    plan = {j["job_name"]: j for j in scrape_jobs(HOSTS, GROUPS, tls=TLS)}
    assert "tls_config" not in plan["node"]
    assert all("__scheme__" not in c["labels"] for c in plan["node"]["static_configs"])


def test_the_dcgm_exporter_on_tls_is_scraped_over_https_and_only_its_job_gets_the_certificate():
    hosts = [dict(with_dcgm(HOSTS[0], "10.0.1.11:9400"), dcgm_exporter_tls=True)] + \
        [with_dcgm(HOSTS[1], "10.0.1.12:9400"), with_dcgm(HOSTS[2], "")]
    plan = {j["job_name"]: j for j in scrape_jobs(hosts, dict(GROUPS, dcgm=["a1", "a2", "b1"]), tls=TLS)}
    assert plan["dcgm"]["tls_config"] == TLS
    assert [c["labels"].get("__scheme__") for c in plan["dcgm"]["static_configs"]] == ["https", None]
    assert "tls_config" not in plan["node"]


def test_a_dcgm_exporter_on_tls_without_a_client_certificate_is_refused_naming_both_variables():
    hosts = [dict(with_dcgm(HOSTS[0], "10.0.1.11:9400"), dcgm_exporter_tls=True)] + [with_dcgm(h, "") for h in HOSTS[1:]]
    with pytest.raises(ScrapePlanError) as refused:
        scrape_jobs(hosts, dict(GROUPS, dcgm=["a1", "a2", "b1"]))
    assert str(refused.value) == ("a1: dcgm_exporter_tls_certificate is set, so its dcgm exporter answers only over TLS "
                                  "to a client certificate: give Prometheus one (monitoring_scrape_client_certificate)")


def test_a_tls_exporter_without_a_client_certificate_is_refused_naming_both_variables():
    hosts = [dict(HOSTS[0], node_exporter_tls=True)] + HOSTS[1:]
    with pytest.raises(ScrapePlanError) as refused:
        scrape_jobs(hosts, GROUPS)
    assert str(refused.value) == ("a1: node_exporter_tls_certificate is set, so its node exporter answers only over TLS "
                                  "to a client certificate: give Prometheus one (monitoring_scrape_client_certificate)")


@pytest.mark.parametrize("tls", [
    {"ca_file": "/a", "cert_file": "/b"},
    dict(TLS, extra="/x"),
    dict(TLS, key_file="relative.key"),
    dict(TLS, ca_file=None),
    "/etc/prometheus/client.pem",
])
def test_a_malformed_client_certificate_is_refused(tls):
    hosts = [dict(HOSTS[0], node_exporter_tls=True)] + HOSTS[1:]
    with pytest.raises(ScrapePlanError, match=r"^the scrape client certificate"):
        scrape_jobs(hosts, GROUPS, tls=tls)


def test_the_client_certificate_keys_are_named_in_the_refusal():
    hosts = [dict(HOSTS[0], node_exporter_tls=True)] + HOSTS[1:]
    with pytest.raises(ScrapePlanError) as refused:
        scrape_jobs(hosts, GROUPS, tls={"ca_file": "/a"})
    assert str(refused.value) == ("the scrape client certificate must name exactly ca_file, cert_file, key_file, "
                                  "got {'ca_file': '/a'}")
