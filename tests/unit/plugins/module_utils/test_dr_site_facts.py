# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils._dr_entry import metrics_text
from ansible_collections.onprem.deepseek.plugins.module_utils._dr_site_facts import (
    SiteFactsError,
    certificate_summary,
    gateway_healthy,
    host_view,
    model_version,
    models_served,
    parse_metrics,
    policy_hashes,
    received_lag,
    site_facts,
)

STORE = "/srv/deepseek/hot/models/deepseek-r1/versions"


# parse_metrics

def test_samples_are_read_with_labels_escapes_and_timestamps_and_comments_are_skipped():
    text = ('# HELP x A help line.\n# TYPE x gauge\n\n'
            'x 1\n'
            'y{a="1",b="two words"} 2.5 1700000000000\n'
            'z{path="C:\\\\dir",quote="say \\"hi\\"",nl="a\\nb",} NaN\n'
            'w{} +Inf\n')
    samples = parse_metrics(text)
    assert samples[0] == ("x", {}, 1.0)
    assert samples[1] == ("y", {"a": "1", "b": "two words"}, 2.5)
    assert samples[2][0] == "z" and samples[2][1] == {"path": "C:\\dir", "quote": 'say "hi"', "nl": "a\nb"}
    assert samples[2][2] != samples[2][2]  # NaN
    assert samples[3] == ("w", {}, float("inf"))


@pytest.mark.parametrize("text, message", [
    ("x 1\nnot a sample\n", "^line 2 is not a sample"),
    ('x{a=1} 2\n', "^line 1: malformed labels"),
    ('x{a="1" b="2"} 2\n', "^line 1: malformed labels"),
    ("x one\n", "^line 1: 'one' is not a number"),
    (None, "^metrics: must be text"),
])
def test_a_damaged_exposition_is_an_error_naming_the_line(text, message):
    with pytest.raises(SiteFactsError, match=message):
        parse_metrics(text)


# gateway_healthy: the entry health check's own textfile (_dr_entry.metrics_text)

def check(ok, at):
    return metrics_text("10.87.100.10", True, ok, at, 3)


@pytest.mark.parametrize("age, healthy", [(0.0, True), (9.999, True), (10.0, False), (10.001, False), (-1.0, True)])
def test_the_gateway_is_healthy_only_when_its_check_passed_less_than_10_s_ago(age, healthy):
    assert gateway_healthy(check(True, 1000.0), 1000.0 + age) is healthy


@pytest.mark.parametrize("text", [
    "", None, "garbage line\n",
    metrics_text("10.87.100.10", True, False, 1000.0, 3),
    "onprem_deepseek_dr_entry_check_ok 1\n",
    "onprem_deepseek_dr_entry_check_timestamp_seconds 1000\n",
    # Another metric whose name starts the same is not the check.
    "onprem_deepseek_dr_entry_check_ok_total 1\nonprem_deepseek_dr_entry_check_timestamp_seconds 1000\n",
    # Two series, one failed.
    'onprem_deepseek_dr_entry_check_ok{a="1"} 1\nonprem_deepseek_dr_entry_check_ok{a="2"} 0\n'
    "onprem_deepseek_dr_entry_check_timestamp_seconds 1000\n",
])
def test_no_file_a_damaged_one_a_failed_or_partial_check_is_not_healthy(text):
    assert gateway_healthy(text, 1001.0) is False


# received_lag

def test_the_lag_received_from_each_site_is_the_largest_of_its_hosts():
    text = ('# TYPE onprem_deepseek_dr_replication_lag_seconds gauge\n'
            'onprem_deepseek_dr_replication_lag_seconds{from_host="a2",from_site="site_a"} 0.5\n'
            'onprem_deepseek_dr_replication_lag_seconds{from_site="site_a",from_host="a1"} 0.020000\n'
            'onprem_deepseek_dr_replication_lag_seconds{from_site="site_c",from_host="c1"} 1e-3\n'
            'onprem_deepseek_dr_replication_lag_seconds{from_site="site_c",from_host="c2"} NaN\n'
            'onprem_deepseek_dr_replication_lag_seconds{from_host="x"} 9\n'
            'onprem_deepseek_dr_replication_lag_seconds_max{from_site="site_a",from_host="a1"} 99\n')
    assert received_lag(text) == {"site_a": 0.5, "site_c": 0.001}


@pytest.mark.parametrize("text", ["", None, "onprem_deepseek_dr_replication_lag_seconds{from_site=site_a} 1\n",
                                  'onprem_deepseek_dr_replication_lag_seconds{from_site="site_a",from_host="a1"} NaN\n'])
def test_no_lag_file_a_damaged_one_or_no_figure_is_unknown_never_zero(text):
    assert received_lag(text) == {}


# model_version, models_served

@pytest.mark.parametrize("root, version", [
    (STORE + "/2025-05-28", "2025-05-28"),
    (STORE + "/v2/", "v2"),
    (STORE + "//v2", "v2"),
    ("/opt/models/deepseek-r1", "/opt/models/deepseek-r1"),
    ("/srv/versions", "/srv/versions"),
    ("deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-R1"),
    (None, "unknown"),
    ("", "unknown"),
    ("  ", "unknown"),
    (7, "unknown"),
])
def test_the_version_is_the_store_directory_the_engine_loaded(root, version):
    assert model_version(root) == version


def test_models_name_every_version_their_answering_engines_serve():
    probes = [
        # Failed with an answer's fields still there (ignore_errors): not served.
        {"server": "a:0", "failed": True, "model": "deepseek-r1", "models": ["deepseek-old"]},
        {"server": "a:1", "model": "deepseek-r1", "models": ["deepseek-r1", "deepseek-coder"],
         "model_roots": {"deepseek-r1": STORE + "/v2", "deepseek-coder": "/opt/coder"}},
        {"server": "a:2", "model": "deepseek-r1", "models": ["deepseek-r1"], "model_roots": {"deepseek-r1": STORE + "/v1"}},
        {"server": "a:3", "model": "deepseek-r1", "models": ["deepseek-r1"], "model_roots": {"deepseek-r1": STORE + "/v2"}},
        {"server": "a:4", "model": "deepseek-lite", "models": ["deepseek-lite", 7, ""]},
        # failed_when: false leaves failed false: a probe that got no answer has only its message.
        {"server": "a:6", "failed": False, "failed_when_result": False, "msg": "HTTP 401", "models": ["deepseek-x"]},
        {"server": "a:5", "failed": True, "models": ["deepseek-r1"], "model_roots": {"deepseek-r1": STORE + "/v9"}},
    ]
    assert models_served(probes) == {"deepseek-r1": "v1, v2", "deepseek-coder": "/opt/coder", "deepseek-lite": "unknown"}


# policy_hashes, certificate_summary

POLICY = {"generation": "g1", "models": ["deepseek-r1"], "keys": {"k1": {"salt": "s1", "digest": "d1"}},
          "revoked": [], "revoked_certificates": []}


def test_the_policy_hash_ignores_each_gateways_salts_and_generation_but_not_which_keys_exist():
    salted = dict(POLICY, generation="g2", keys={"k1": {"salt": "s2", "digest": "d2"}})
    assert policy_hashes(salted) == policy_hashes(POLICY)
    assert policy_hashes(dict(POLICY, keys={"k2": {}}))[0] != policy_hashes(POLICY)[0]
    assert policy_hashes(dict(POLICY, models=["other"]))[0] != policy_hashes(POLICY)[0]


def test_a_revocation_changes_the_revocations_hash():
    for change in ({"revoked": ["k1"]}, {"revoked_certificates": ["0A"]}):
        assert policy_hashes(dict(POLICY, **change))[1] != policy_hashes(POLICY)[1]
    assert policy_hashes(dict(POLICY, models=["other"]))[1] == policy_hashes(POLICY)[1]


def test_no_policy_is_unknown_and_a_malformed_one_is_an_error():
    assert policy_hashes(None) == (None, None)
    with pytest.raises(SiteFactsError, match="^policy: must be the gateway's compiled policy"):
        policy_hashes({"keys": []})


def test_the_certificate_is_summed_up_by_its_issuer_and_expiry():
    cert = {"issuer": {"organizationName": "Bank", "commonName": "Root"}, "expired": False}
    assert certificate_summary(cert) == "issuer commonName=Root,organizationName=Bank"
    assert certificate_summary(dict(cert, expired=True)) == "issuer commonName=Root,organizationName=Bank; EXPIRED"
    assert certificate_summary({"failed": True}) == "unreadable"
    assert certificate_summary(None) == "unreadable"


# host_view

def view(**changes):
    args = {
        "site": "site_a",
        "policy": POLICY,
        "ca_fingerprint": "ca1",
        "certificate": {"issuer": {"commonName": "Root"}, "expired": False},
        "server_name": "entry.dr.test",
        "check_text": check(True, 1000.0),
        "lag_text": 'onprem_deepseek_dr_replication_lag_seconds{from_site="site_b",from_host="b1"} 0.01\n',
        "now": 1001,
        "probes": [{"item": {"pool": "p", "server": "10.0.1.21:8000"}, "failed": False, "model": "deepseek-r1",
                    "models": ["deepseek-r1"], "model_roots": {"deepseek-r1": STORE + "/v1"}},
                   {"item": {"pool": "p", "server": "10.0.1.22:8000"}, "failed": False, "failed_when_result": False,
                    "msg": "GET http://10.0.1.22:8000/v1/models: connection refused"}],
        "config": {"models": ["deepseek-r1"], "primary_weight": 80},
    }
    args.update(changes)
    return host_view(**args)


def test_a_gateway_view_has_every_fact():
    got = view()
    assert got["site"] == "site_a"
    assert got["models"] == {"deepseek-r1": "v1"}
    assert got["policy_hash"] == policy_hashes(POLICY)[0] and got["revocations_hash"] == policy_hashes(POLICY)[1]
    assert got["ca_fingerprint"] == "ca1"
    assert got["server_certificates"] == {"entry.dr.test": "issuer commonName=Root"}
    assert got["received_lag_s"] == {"site_b": 0.01}
    assert got["engines"] == {"10.0.1.21:8000": True, "10.0.1.22:8000": False}
    assert got["gateway_healthy"] is True
    assert got["config_hash"] == view(config={"primary_weight": 80, "models": ["deepseek-r1"]})["config_hash"]
    assert got["config_hash"] != view(config={"models": ["deepseek-r1"], "primary_weight": 70})["config_hash"]


def test_a_gateway_without_its_files_reports_them_unknown():
    got = view(policy=None, ca_fingerprint="", certificate=None, check_text="", lag_text=None)
    assert (got["policy_hash"], got["revocations_hash"], got["ca_fingerprint"]) == (None, None, None)
    assert got["server_certificates"] == {"entry.dr.test": "unreadable"}
    assert got["received_lag_s"] == {} and got["gateway_healthy"] is False


@pytest.mark.parametrize("changes, message", [
    ({"site": ""}, "^site: must be the gateway's site name"),
    ({"server_name": None}, "^server_name: must be the entry point's name"),
    ({"now": "1001"}, "^now: must be the gateway's clock"),
    ({"now": True}, "^now: must be the gateway's clock"),
    ({"probes": {}}, "^probes: must be the list of engine probe results"),
    ({"probes": [{"models": []}]}, "^probes: each result needs its engine's server"),
    ({"probes": [{"item": "10.0.1.21:8000"}]}, "^probes: each result needs its engine's server"),
    ({"probes": ["10.0.1.21:8000"]}, "^probes: each result needs its engine's server"),
])
def test_bad_reads_fail_naming_the_argument(changes, message):
    with pytest.raises(SiteFactsError, match=message):
        view(**changes)


# site_facts

DOWN = {"models": {}, "policy_hash": None, "ca_fingerprint": None, "server_certificates": {}, "revocations_hash": None,
        "config_hash": None, "engines": {}, "gateway_healthy": False, "replication_lag_s": None}


def test_each_site_gets_its_gateways_facts_and_the_lag_the_other_site_received():
    a1 = view()
    a2 = view(probes=[{"server": "10.0.1.23:8000", "model": "deepseek-r1", "models": ["deepseek-r1"],
                       "model_roots": {"deepseek-r1": STORE + "/v1"}}],
              check_text="", lag_text='onprem_deepseek_dr_replication_lag_seconds{from_site="site_b",from_host="b1"} 0.03\n')
    b1 = view(site="site_b", lag_text='onprem_deepseek_dr_replication_lag_seconds{from_site="site_a",from_host="a1"} 0.02\n',
              probes=[{"server": "10.0.2.21:8001", "model": "deepseek-r1", "models": ["deepseek-r1"],
                       "model_roots": {"deepseek-r1": STORE + "/v1"}}])
    got = site_facts({"a1": a1, "a2": a2, "b1": b1}, ["site_a", "site_b"], DOWN)
    assert got["site_a"]["engines"] == {"10.0.1.21:8000": True, "10.0.1.22:8000": False, "10.0.1.23:8000": True}
    assert got["site_a"]["gateway_healthy"] is True  # a1's check passed, a2 has none
    assert got["site_a"]["replication_lag_s"] == 0.02  # what site B received from site A
    assert got["site_b"]["replication_lag_s"] == 0.03  # the larger of what a1 and a2 received
    assert got["site_a"]["models"] == got["site_b"]["models"] == {"deepseek-r1": "v1"}
    assert sorted(got["site_a"]) == sorted(DOWN)


def test_a_site_whose_gateways_disagree_says_so_and_a_site_without_a_view_is_down():
    a1 = view()
    a2 = view(probes=[{"server": "10.0.1.23:8000", "model": "deepseek-r1", "models": ["deepseek-r1"],
                       "model_roots": {"deepseek-r1": STORE + "/v2"}}],
              policy=dict(POLICY, models=["other"]))
    got = site_facts({"a1": a1, "a2": a2}, ["site_a", "site_b"], DOWN)
    assert got["site_a"]["models"] == {"deepseek-r1": "differs between the gateways of site_a: v1 / v2"}
    assert got["site_a"]["policy_hash"] == "differs between the gateways of site_a: %s / %s" % tuple(
        sorted([policy_hashes(POLICY)[0], policy_hashes(dict(POLICY, models=["other"]))[0]]))
    assert got["site_a"]["ca_fingerprint"] == "ca1"
    assert got["site_a"]["replication_lag_s"] is None  # nobody at another site received from it
    assert got["site_b"] == DOWN
    # One gateway reads a certificate the other cannot: named, against none.
    a3 = view(server_name="other.dr.test")
    got = site_facts({"a1": a1, "a3": a3}, ["site_a"], DOWN)
    assert got["site_a"]["server_certificates"] == {
        "entry.dr.test": "differs between the gateways of site_a: issuer commonName=Root / none",
        "other.dr.test": "differs between the gateways of site_a: issuer commonName=Root / none"}


@pytest.mark.parametrize("views, sites, message", [
    ([], ["site_a"], "^views: must map hosts to their views"),
    ({"a1": {"site": "site_a"}}, ["site_a"], "^views.a1: not a gateway's view"),
    ({}, "site_a", "^sites: must be a list of site names"),
    ({}, ["site_a", ""], "^sites: must be a list of site names"),
])
def test_bad_views_fail_naming_the_argument(views, sites, message):
    with pytest.raises(SiteFactsError, match=message):
        site_facts(views, sites, DOWN)


# Into the planner

def test_sites_serving_different_versions_are_refused_and_an_engine_that_did_not_answer_is_not_healthy():
    from ansible_collections.onprem.deepseek.plugins.module_utils._dr_plan import precheck
    a1 = view()
    b1 = view(site="site_b", lag_text='onprem_deepseek_dr_replication_lag_seconds{from_site="site_a",from_host="a1"} 0.01\n',
              probes=[{"server": "10.0.2.21:8001", "model": "deepseek-r1", "models": ["deepseek-r1"],
                       "model_roots": {"deepseek-r1": STORE + "/v2"}}])
    facts = site_facts({"a1": a1, "b1": b1}, ["site_a", "site_b"], DOWN)
    refused = precheck("site_a", "site_b", facts)
    assert not refused["ok"]
    assert refused["refusals"] == ["models[deepseek-r1] differs: site_a has 'v1', site_b has 'v2'"]
    same = dict(b1, models={"deepseek-r1": "v1"})
    assert precheck("site_a", "site_b", site_facts({"a1": a1, "b1": same}, ["site_a", "site_b"], DOWN))["ok"]
    # Site B's only engine gave no answer: never a target, forced or not.
    silent = dict(same, engines={"10.0.2.21:8001": False})
    forced = precheck("site_a", "site_b", site_facts({"a1": a1, "b1": silent}, ["site_a", "site_b"], DOWN), force=True)
    assert not forced["ok"] and any("engine" in r for r in forced["refusals"])
