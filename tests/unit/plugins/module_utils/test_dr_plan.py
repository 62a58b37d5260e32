"""Disaster recovery decisions: site differences, cutover pre-checks with force, weights and cutover steps."""
import copy

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.filter import dr_plan as plugin
from ansible_collections.onprem.deepseek.plugins.module_utils._dr_plan import (
    DrPlanError,
    compare_sites,
    cutover_steps,
    precheck,
    primary_in_force,
    server_weights,
    weights,
)


def site(**changes):
    facts = {
        "models": {"deepseek-r1": "2025-01-20", "deepseek-v3-tiny-sandbox": "1"},
        "policy_hash": "p1",
        "ca_fingerprint": "ca1",
        "server_certificates": {"gateway": "gw1"},
        "revocations_hash": "r1",
        "config_hash": "c1",
        "engines": {"e1/main": True, "e2/main": True},
        "gateway_healthy": True,
        "replication_lag_s": 0.01,
    }
    facts.update(changes)
    return facts


def sites(a=None, b=None):
    return {"site_a": site(**(a or {})), "site_b": site(**(b or {}))}


# compare_sites

# What dr_cutover.yml gives a site none of whose gateways could be read.
DOWN = {"models": {}, "policy_hash": None, "ca_fingerprint": None, "server_certificates": {}, "revocations_hash": None,
        "config_hash": None, "engines": {}, "gateway_healthy": False, "replication_lag_s": None}


def test_a_site_that_cannot_be_read_differs_in_every_fact_and_only_force_moves_away_from_it():
    facts = {"site_a": dict(DOWN), "site_b": site()}
    named = [d["fact"] for d in compare_sites(facts)]
    assert "policy_hash" in named and "config_hash" in named and "models[deepseek-r1]" in named
    refused = precheck("site_a", "site_b", facts, 0.05, False)
    assert not refused["ok"] and any("policy_hash" in r for r in refused["refusals"])
    forced = precheck("site_a", "site_b", facts, 0.05, True)
    assert forced["ok"] and forced["refusals"] == [] and any("policy_hash" in w for w in forced["warnings"])
    # Never onto it, forced or not: it has no healthy engine and no healthy gateway.
    onto = precheck("site_b", "site_a", facts, 0.05, True)
    assert not onto["ok"]


def test_identical_sites_have_no_difference():
    assert compare_sites(sites()) == []


def test_every_consistency_fact_that_differs_is_named_with_both_values():
    facts = sites(b={
        "models": {"deepseek-r1": "2025-05-28", "deepseek-coder": "2"},
        "policy_hash": "p2",
        "ca_fingerprint": "ca2",
        "server_certificates": {"gateway": "gw2"},
        "revocations_hash": "r2",
        "config_hash": "c2",
    })
    assert [(d["fact"], d["values"]) for d in compare_sites(facts)] == [
        ("models[deepseek-coder]", {"site_a": None, "site_b": "2"}),
        ("models[deepseek-r1]", {"site_a": "2025-01-20", "site_b": "2025-05-28"}),
        ("models[deepseek-v3-tiny-sandbox]", {"site_a": "1", "site_b": None}),
        ("policy_hash", {"site_a": "p1", "site_b": "p2"}),
        ("ca_fingerprint", {"site_a": "ca1", "site_b": "ca2"}),
        ("server_certificates[gateway]", {"site_a": "gw1", "site_b": "gw2"}),
        ("revocations_hash", {"site_a": "r1", "site_b": "r2"}),
        ("config_hash", {"site_a": "c1", "site_b": "c2"}),
    ]
    messages = [d["message"] for d in compare_sites(facts)]
    assert messages[0] == "models[deepseek-coder] differs: site_a has none, site_b has '2'"
    assert messages[3] == "policy_hash differs: site_a has 'p1', site_b has 'p2'"


def test_health_and_lag_are_not_consistency_facts():
    facts = sites(b={"engines": {"x": False}, "gateway_healthy": False, "replication_lag_s": None})
    assert compare_sites(facts) == []


@pytest.mark.parametrize("facts, text", [
    ({"site_a": site()}, "facts: must be a dict of exactly two sites to their facts, not ['site_a']"),
    ([site(), site()], "facts: must be a dict of exactly two sites"),
    ({"site_a": site(), "": site()}, "facts: '' is not a site name"),
    ({"site_a": site(), "site_b": []}, "facts.site_b: must be a dict of the site's facts"),
    (sites(b={"policy_hash": ""}), "facts.site_b.policy_hash: must be a non-empty string or null (unknown), not ''"),
    (sites(b={"config_hash": 7}), "facts.site_b.config_hash: must be a non-empty string or null (unknown), not 7"),
    (sites(a={"models": {"deepseek-r1": 3}}), "facts.site_a.models: must be a dict of names to non-empty strings"),
    (sites(a={"server_certificates": ["gw1"]}), "facts.site_a.server_certificates: must be a dict"),
    (sites(b={"engines": {"e1": "yes"}}), "facts.site_b.engines: must be a dict of engine names to true or false"),
    (sites(b={"gateway_healthy": "true"}), "facts.site_b.gateway_healthy: must be true or false, not 'true'"),
    (sites(b={"replication_lag_s": -0.1}), "facts.site_b.replication_lag_s: must be seconds (0 or more) or null"),
    (sites(b={"replication_lag_s": True}), "facts.site_b.replication_lag_s: must be seconds"),
    (sites(b={"extra": 1}), "facts.site_b: unknown facts extra (known: models,"),
])
def test_malformed_facts_are_errors_naming_the_field(facts, text):
    with pytest.raises(DrPlanError) as err:
        compare_sites(facts)
    assert str(err.value).startswith(text)


def test_a_missing_fact_is_named():
    facts = sites()
    del facts["site_a"]["config_hash"]
    del facts["site_a"]["engines"]
    with pytest.raises(DrPlanError, match=r"^facts\.site_a: missing config_hash, engines$"):
        compare_sites(facts)


# precheck

def test_a_consistent_healthy_target_within_the_lag_is_allowed():
    assert precheck("site_a", "site_b", sites(), 0.05, False) == {"ok": True, "refusals": [], "warnings": []}


@pytest.mark.parametrize("lag, ok", [(0.05, True), (0.0500001, False), (0, True)])
def test_lag_equal_to_the_bound_is_allowed_and_above_it_refused(lag, ok):
    result = precheck("site_a", "site_b", sites(a={"replication_lag_s": lag}), 0.05, False)
    assert result["ok"] is ok
    if not ok:
        assert result["refusals"] == [
            "site_a: replication_lag_s: the lag of site_a -> site_b is 0.0500001s, above max_lag_s 0.05s"]


def test_lag_is_checked_in_both_directions_and_unknown_lag_is_refused():
    result = precheck("site_a", "site_b", sites(a={"replication_lag_s": None}, b={"replication_lag_s": 2}), 0.05, False)
    assert result == {"ok": False, "warnings": [], "refusals": [
        "site_a: replication_lag_s: the lag of site_a -> site_b is unknown",
        "site_b: replication_lag_s: the lag of site_b -> site_a is 2s, above max_lag_s 0.05s",
    ]}


def test_max_lag_zero_allows_only_zero_lag():
    assert precheck("site_a", "site_b", sites(a={"replication_lag_s": 0}, b={"replication_lag_s": 0}), 0, False)["ok"]
    result = precheck("site_a", "site_b", sites(a={"replication_lag_s": 0}, b={"replication_lag_s": 0.001}), 0, False)
    assert result["refusals"] == ["site_b: replication_lag_s: the lag of site_b -> site_a is 0.001s, above max_lag_s 0s"]


def test_every_reason_is_returned_at_once_naming_site_and_fact():
    facts = sites(b={"engines": {"e3/main": False, "e4/main": False}, "gateway_healthy": False,
                     "policy_hash": "p2", "replication_lag_s": 0.2})
    assert precheck("site_a", "site_b", facts, 0.05, False) == {"ok": False, "warnings": [], "refusals": [
        "site_b: engines: no healthy engine (none answered an authenticated completion; engines: e3/main, e4/main)",
        "site_b: gateway_healthy: the gateway did not answer an authenticated completion",
        "policy_hash differs: site_a has 'p1', site_b has 'p2'",
        "site_b: replication_lag_s: the lag of site_b -> site_a is 0.2s, above max_lag_s 0.05s",
    ]}


def test_one_healthy_engine_is_enough_and_a_target_without_engines_is_refused():
    assert precheck("site_a", "site_b", sites(b={"engines": {"e3": False, "e4": True}}), 0.05, False)["ok"]
    result = precheck("site_a", "site_b", sites(b={"engines": {}}), 0.05, True)
    assert result["refusals"] == [
        "site_b: engines: no healthy engine (none answered an authenticated completion; engines: none listed)"]


def test_the_primary_health_does_not_matter():
    facts = sites(a={"engines": {"e1": False}, "gateway_healthy": False})
    assert precheck("site_a", "site_b", facts, 0.05, False)["ok"]


def test_force_turns_differences_and_lag_into_warnings():
    facts = sites(b={"models": {"deepseek-r1": "2025-05-28", "deepseek-v3-tiny-sandbox": "1"},
                     "replication_lag_s": None}, a={"replication_lag_s": 0.06})
    assert precheck("site_a", "site_b", facts, 0.05, True) == {"ok": True, "refusals": [], "warnings": [
        "forced: models[deepseek-r1] differs: site_a has '2025-01-20', site_b has '2025-05-28'",
        "forced: site_a: replication_lag_s: the lag of site_a -> site_b is 0.06s, above max_lag_s 0.05s",
        "forced: site_b: replication_lag_s: the lag of site_b -> site_a is unknown",
    ]}


@pytest.mark.parametrize("changes, refusal", [
    ({"engines": {"e3": False}}, "site_b: engines: no healthy engine (none answered an authenticated completion; "
                                 "engines: e3)"),
    ({"gateway_healthy": False}, "site_b: gateway_healthy: the gateway did not answer an authenticated completion"),
])
def test_force_never_allows_a_target_that_cannot_serve(changes, refusal):
    changes["policy_hash"] = "p2"
    result = precheck("site_a", "site_b", sites(b=changes), 0.05, True)
    assert result == {"ok": False, "refusals": [refusal],
                      "warnings": ["forced: policy_hash differs: site_a has 'p1', site_b has 'p2'"]}


@pytest.mark.parametrize("primary, target, refusals", [
    ("site_a", "site_a", ["target: site_a is already the primary site"]),
    ("site_a", "site_c", ["target: unknown site 'site_c' (known: site_a, site_b)"]),
    ("site_x", "site_b", ["primary: unknown site 'site_x' (known: site_a, site_b)"]),
    ("site_x", "site_x", ["primary: unknown site 'site_x' (known: site_a, site_b)",
                          "target: unknown site 'site_x' (known: site_a, site_b)",
                          "target: site_x is already the primary site"]),
])
@pytest.mark.parametrize("force", [False, True])
def test_unknown_or_same_sites_are_refused_even_forced(primary, target, refusals, force):
    assert precheck(primary, target, sites(), 0.05, force) == {"ok": False, "refusals": refusals, "warnings": []}


@pytest.mark.parametrize("args, text", [
    (("site_a", "site_b", sites(), -1, False), "max_lag_s: must be seconds (0 or more), not -1"),
    (("site_a", "site_b", sites(), True, False), "max_lag_s: must be seconds (0 or more), not True"),
    (("site_a", "site_b", sites(), "0.05", False), "max_lag_s: must be seconds (0 or more), not '0.05'"),
    (("site_a", "site_b", sites(), 0.05, "yes"), "force: must be true or false, not 'yes'"),
    (("", "site_b", sites(), 0.05, False), "primary: '' is not a site name"),
    (("site_a", None, sites(), 0.05, False), "target: None is not a site name"),
])
def test_malformed_precheck_arguments_are_errors(args, text):
    with pytest.raises(DrPlanError) as err:
        precheck(*args)
    assert str(err.value).startswith(text)


# weights

HEALTHY = {"site_a": {"e1": True}, "site_b": {"e3": True, "e4": False}}


def health(a=True, b=True):
    return {"site_a": {"e1": a, "e2": False}, "site_b": {"e3": b}}


def test_the_primary_gets_its_weight_and_the_other_the_rest():
    assert weights("site_a", ["site_a", "site_b"], HEALTHY) == {
        "primary": "site_a",
        "weights": {"site_a": 80, "site_b": 20},
        "variants": [{"name": "site_a", "weight": 80}, {"name": "site_b", "weight": 20}],
        "reasons": [],
    }


def test_variants_keep_site_name_order_and_use_the_pool_names():
    result = weights("site_b", ["site_b", "site_a"], HEALTHY, 70, {"site_a": "pool-a", "site_b": "pool-b"})
    assert result["weights"] == {"site_a": 30, "site_b": 70}
    assert result["variants"] == [{"name": "pool-a", "weight": 30}, {"name": "pool-b", "weight": 70}]


@pytest.mark.parametrize("primary_weight, expected", [(0, (0, 100)), (100, (100, 0)), (50, (50, 50)), (1, (1, 99))])
def test_primary_weight_at_its_bounds(primary_weight, expected):
    result = weights("site_a", ["site_a", "site_b"], HEALTHY, primary_weight)
    assert (result["weights"]["site_a"], result["weights"]["site_b"]) == expected


@pytest.mark.parametrize("primary_weight", [101, -1, True, False, 80.0, "80", None])
def test_primary_weight_outside_0_to_100_or_not_an_integer_is_refused(primary_weight):
    with pytest.raises(DrPlanError, match=r"^primary_weight: must be an integer from 0 to 100, not "):
        weights("site_a", ["site_a", "site_b"], HEALTHY, primary_weight)


def test_a_site_without_a_healthy_engine_gets_0_and_the_other_100():
    result = weights("site_a", ["site_a", "site_b"], health(a=False))
    assert (result["weights"], result["reasons"]) == (
        {"site_a": 0, "site_b": 100}, ["site_a: no healthy engine: weight 0, site_b 100"])
    result = weights("site_a", ["site_a", "site_b"], health(b=False), 0)
    assert (result["weights"], result["reasons"]) == (
        {"site_a": 100, "site_b": 0}, ["site_b: no healthy engine: weight 0, site_a 100"])
    result = weights("site_a", ["site_a", "site_b"], {"site_a": {"e1": True}, "site_b": {}})
    assert result["weights"] == {"site_a": 100, "site_b": 0}


def test_both_sites_without_a_healthy_engine_is_an_error_naming_both():
    with pytest.raises(DrPlanError, match=r"^health: no healthy engine on site_a nor on site_b: no site can serve$"):
        weights("site_b", ["site_a", "site_b"], health(a=False, b=False))


@pytest.mark.parametrize("args, text", [
    (("site_a", ["site_a"], HEALTHY), "sites: must be a list of the two site names, not ['site_a']"),
    (("site_a", ["site_a", "site_a"], HEALTHY), "sites: site_a is listed twice"),
    (("site_a", ["site_a", 3], HEALTHY), "sites[1]: 3 is not a site name"),
    (("site_c", ["site_a", "site_b"], HEALTHY), "primary: 'site_c' is not one of the sites (site_a, site_b)"),
    (("site_a", ["site_a", "site_b"], {"site_a": {"e1": True}}), "health.site_b: must be a dict of engine names"),
    (("site_a", ["site_a", "site_b"], dict(HEALTHY, site_c={})), "health: unknown sites site_c (known: site_a, site_b)"),
    (("site_a", ["site_a", "site_b"], {"site_a": {"e1": 1}, "site_b": {}}), "health.site_a: must be a dict"),
    (("site_a", ["site_a", "site_b"], HEALTHY, 80, {"site_a": "pa"}), "pools.site_b: must name the site's pool"),
    (("site_a", ["site_a", "site_b"], HEALTHY, 80, {"site_a": "pa", "site_b": "pb", "x": "px"}),
     "pools: unknown sites x (known: site_a, site_b)"),
])
def test_malformed_weights_arguments_are_errors_naming_the_field(args, text):
    with pytest.raises(DrPlanError) as err:
        weights(*args)
    assert str(err.value).startswith(text)


# cutover_steps

def test_a_cutover_is_steady_weights_then_the_new_primary_at_its_weight():
    assert cutover_steps("site_a", "site_b", 80) == [
        {"step": "steady", "primary": "site_a", "weights": {"site_a": 80, "site_b": 20},
         "variants": [{"name": "site_a", "weight": 80}, {"name": "site_b", "weight": 20}]},
        {"step": "cutover", "primary": "site_b", "weights": {"site_a": 20, "site_b": 80},
         "variants": [{"name": "site_a", "weight": 20}, {"name": "site_b", "weight": 80}]},
    ]


def test_a_failback_is_the_same_with_the_sites_swapped_and_keeps_variant_order():
    steps = cutover_steps("site_b", "site_a", 100, {"site_a": "pa", "site_b": "pb"})
    assert [(s["step"], s["primary"], s["variants"]) for s in steps] == [
        ("steady", "site_b", [{"name": "pa", "weight": 0}, {"name": "pb", "weight": 100}]),
        ("cutover", "site_a", [{"name": "pa", "weight": 100}, {"name": "pb", "weight": 0}]),
    ]


@pytest.mark.parametrize("args, text", [
    (("site_a", "site_a", 80), "new_primary: site_a is already the primary site"),
    (("site_a", "site_b", 101), "primary_weight: must be an integer from 0 to 100, not 101"),
    (("site_a", "site_b", -1), "primary_weight: must be an integer from 0 to 100, not -1"),
    (("site_a", "site_b", True), "primary_weight: must be an integer from 0 to 100, not True"),
    (("", "site_b", 80), "old_primary: '' is not a site name"),
])
def test_malformed_cutover_arguments_are_errors(args, text):
    with pytest.raises(DrPlanError) as err:
        cutover_steps(*args)
    assert str(err.value).startswith(text)


def test_inputs_are_not_changed():
    facts = sites(b={"policy_hash": "p2"})
    kept = copy.deepcopy(facts)
    precheck("site_a", "site_b", facts, 0.05, True)
    weights("site_a", ["site_a", "site_b"], HEALTHY)
    assert facts == kept


# the filters

def test_filters_are_registered_and_call_through():
    filters = plugin.FilterModule().filters()
    assert sorted(filters) == ["dr_compare_sites", "dr_cutover_steps", "dr_precheck", "dr_primary_in_force", "dr_server_weights", "dr_weights"]
    assert filters["dr_precheck"](sites(), primary="site_a", target="site_b")["ok"] is True
    assert filters["dr_precheck"](sites(a={"replication_lag_s": 0.06}), "site_a", "site_b", max_lag_s=0.1)["ok"]
    assert filters["dr_weights"](HEALTHY, primary="site_b", sites=["site_a", "site_b"])["weights"] == {
        "site_a": 20, "site_b": 80}
    assert [s["step"] for s in filters["dr_cutover_steps"]("site_a", "site_b")] == ["steady", "cutover"]
    assert filters["dr_compare_sites"](sites()) == []


@pytest.mark.parametrize("name, args, text", [
    ("dr_compare_sites", ({},), "dr_compare_sites: facts: must be a dict of exactly two sites"),
    ("dr_precheck", (sites(), "site_a", "site_b", -1), "dr_precheck: max_lag_s: must be seconds"),
    ("dr_weights", (HEALTHY, "site_a", ["site_a", "site_b"], 101), "dr_weights: primary_weight: must be an integer"),
    ("dr_cutover_steps", ("site_a", "site_a"), "dr_cutover_steps: new_primary: site_a is already the primary site"),
])
def test_errors_are_filter_errors_naming_the_filter(name, args, text):
    with pytest.raises(AnsibleFilterError) as err:
        plugin.FilterModule().filters()[name](*args)
    assert str(err.value).startswith(text)


def test_documentation_names_every_option_of_the_filters():
    doc = yaml.safe_load(plugin.DOCUMENTATION)
    assert doc["name"] == "dr_plan" and doc["positional"] == "_input"
    assert set(doc["options"]) == {"_input", "primary", "target", "max_lag_s", "force", "sites", "new_primary",
                                   "primary_weight", "pools", "server_sites", "configured",
                                   "allow_split"}
    for name in plugin.FilterModule().filters():
        assert "C(%s" % name in " ".join(doc["description"]), name
    yaml.safe_load(plugin.EXAMPLES)


# Refusals whole, and defaults, where a mutation of the message or the default went unnoticed.
def test_force_is_off_by_default():
    facts = sites(b={"policy_hash": "p2"})
    assert precheck("site_a", "site_b", facts)["ok"] is False
    assert precheck("site_a", "site_b", facts)["refusals"] == precheck("site_a", "site_b", facts, force=False)["refusals"]


@pytest.mark.parametrize("call, message", [
    (lambda: precheck("site_a", "site_b", sites(a={"gpu": 1, "rack": 2})),
     "facts.site_a: unknown facts gpu, rack (known: "),
    (lambda: weights("site_a", ["site_a", "site_b"], {"site_a": {"e": True}, "site_b": {"e": True}}, pools=[]),
     "pools: must be a dict of site names to gateway_upstreams names, not []"),
    (lambda: weights("site_a", ["site_a", "site_b"], {"site_a": {"e": True}, "site_b": {"e": True}},
                     pools={"site_a": 5, "site_b": "b"}),
     "pools.site_a: must name the site's pool in gateway_upstreams, not 5"),
    (lambda: weights("site_a", ["site_a", "site_b"], {"site_a": {"e": True}, "site_b": {"e": True}},
                     pools={"site_a": "a", "site_b": "b", "site_c": "c", "site_d": "d"}),
     "pools: unknown sites site_c, site_d (known: site_a, site_b)"),
    (lambda: weights("site_a", ["site_a", "site_b"], []),
     "health: must be a dict of sites to {engine: true or false}, not []"),
    (lambda: weights("site_a", ["site_a", "site_b"], {"site_a": {}, "site_b": {}, 1: {}, "zz": {}}),
     "health: unknown sites 1, zz (known: site_a, site_b)"),
    (lambda: weights("", ["site_a", "site_b"], {}), "primary: '' is not a site name (a non-empty string)"),
    (lambda: cutover_steps("site_a", ""), "new_primary: '' is not a site name (a non-empty string)"),
])
def test_refusals_whole(call, message):
    with pytest.raises(DrPlanError) as caught:
        call()
    assert str(caught.value).startswith(message)
    if not message.endswith("(known: "):
        assert str(caught.value) == message


def test_a_degraded_plan_keeps_the_primary_it_was_asked_for():
    for down in ("site_a", "site_b"):
        health = {"site_a": {"e": True}, "site_b": {"e": True}}
        health[down] = {"e": False}
        assert weights("site_a", ["site_a", "site_b"], health)["primary"] == "site_a"


def test_engines_of_the_wrong_shape_are_refused_whole():
    with pytest.raises(DrPlanError) as caught:
        compare_sites(sites(a={"engines": ["e1"]}))
    assert str(caught.value) == ("facts.site_a.engines: must be a dict of engine names to true or false (answered an "
                                 "authenticated completion), not ['e1']")


SITES = {"10.1.0.1": "site_a", "10.1.0.2": "site_a", "10.2.0.1": "site_b", "e-b2": "site_b", "10.3.0.1": "site_c"}


def test_server_weights_split_a_pool_over_both_sites():
    pools = [{"name": "p", "servers": ["10.1.0.1:8000", "10.2.0.1:8000"]}]
    assert server_weights({"site_a": 80, "site_b": 20}, pools, SITES) == {"10.1.0.1:8000": 4, "10.2.0.1:8000": 1}
    assert server_weights({"site_a": 20, "site_b": 80}, pools, SITES) == {"10.1.0.1:8000": 1, "10.2.0.1:8000": 4}
    assert server_weights({"site_a": 50, "site_b": 50}, pools, SITES) == {"10.1.0.1:8000": 1, "10.2.0.1:8000": 1}
    assert server_weights({"site_a": 70, "site_b": 30}, pools, SITES) == {"10.1.0.1:8000": 7, "10.2.0.1:8000": 3}


def test_server_weights_split_a_share_evenly_over_a_sites_servers():
    pools = [{"name": "p", "servers": ["10.1.0.1:8000", "10.1.0.2:8000", "10.2.0.1:8000"]}]
    # site_a's 80 over two servers (40 each), site_b's 20 over one: 2, 2, 1.
    assert server_weights({"site_a": 80, "site_b": 20}, pools, SITES) == {
        "10.1.0.1:8000": 2, "10.1.0.2:8000": 2, "10.2.0.1:8000": 1}
    pools = [{"name": "p", "servers": ["10.1.0.1:8000", "10.1.0.2:8000", "10.2.0.1:8000", "e-b2:8001"]}]
    assert server_weights({"site_a": 80, "site_b": 20}, pools, SITES) == {
        "10.1.0.1:8000": 4, "10.1.0.2:8000": 4, "10.2.0.1:8000": 1, "e-b2:8001": 1}
    pools = [{"name": "p", "servers": ["10.1.0.1:8000", "10.1.0.2:8000", "10.2.0.1:8000"]}]
    assert server_weights({"site_a": 20, "site_b": 80}, pools, SITES) == {
        "10.1.0.1:8000": 1, "10.1.0.2:8000": 1, "10.2.0.1:8000": 8}


def test_server_weights_give_a_drained_site_backup_weight_zero():
    pools = [{"name": "p", "servers": ["10.1.0.1:8000", "10.2.0.1:8000", "e-b2:8000"]}]
    assert server_weights({"site_a": 0, "site_b": 100}, pools, SITES) == {
        "10.1.0.1:8000": 0, "10.2.0.1:8000": 1, "e-b2:8000": 1}
    assert server_weights({"site_a": 100, "site_b": 0}, pools, SITES) == {
        "10.1.0.1:8000": 1, "10.2.0.1:8000": 0, "e-b2:8000": 0}


def test_server_weights_leave_out_a_pool_of_one_site():
    pools = [{"name": "local", "servers": ["10.1.0.1:8000", "10.1.0.2:8000"]},
             {"name": "both", "servers": ["10.1.0.1:9000", "10.2.0.1:9000"]}]
    assert server_weights({"site_a": 80, "site_b": 20}, pools, SITES) == {"10.1.0.1:9000": 4, "10.2.0.1:9000": 1}
    assert server_weights({"site_a": 80, "site_b": 20}, [], SITES) == {}


@pytest.mark.parametrize("site_weights, pools, sites, message", [
    ({}, [], SITES, "site_weights: must be a dict of site names to weights, not {}"),
    ([80], [], SITES, "site_weights: must be a dict of site names to weights, not [80]"),
    ({"site_a": 101, "site_b": 0}, [], SITES, "site_weights.site_a: must be an integer from 0 to 100, not 101"),
    ({"site_a": -1, "site_b": 0}, [], SITES, "site_weights.site_a: must be an integer from 0 to 100, not -1"),
    ({"site_a": True, "site_b": 0}, [], SITES, "site_weights.site_a: must be an integer from 0 to 100, not True"),
    ({"": 1}, [], SITES, "site_weights: '' is not a site name (a non-empty string)"),
    ({"site_a": 0, "site_b": 0}, [], SITES, "site_weights: every site has weight 0: no server could serve"),
    ({"site_a": 80}, "p", SITES, "pools: must be a list of the gateway's pools ({name, servers}), not 'p'"),
    ({"site_a": 80}, [], [], "server_sites: must be a dict of server hosts to site names, not []"),
    ({"site_a": 80}, [{"name": "p"}], SITES, "pools[0]: must be a dict with servers (a list of host:port), not {'name': 'p'}"),
    ({"site_a": 80}, ["p"], SITES, "pools[0]: must be a dict with servers (a list of host:port), not 'p'"),
    ({"site_a": 80}, [{"name": "p", "servers": ["10.1.0.1"]}], SITES, "pools[0] (p): server '10.1.0.1' is not host:port"),
    ({"site_a": 80}, [{"name": "p", "servers": [8000]}], SITES, "pools[0] (p): server 8000 is not host:port"),
    ({"site_a": 80}, [{"name": "p", "servers": ["10.9.0.1:8000"]}], SITES,
     "pools[0] (p): server 10.9.0.1:8000 is on no host of a site (no inventory host with deepseek_site has that name "
     "or ansible_host)"),
    ({"site_a": 80, "site_b": 20}, [{"name": "p", "servers": ["10.3.0.1:8000"]}], SITES,
     "pools[0] (p): server 10.3.0.1:8000 is on site site_c, which has no weight (sites: site_a, site_b)"),
    ({"site_a": 0, "site_b": 0, "site_c": 1}, [{"name": "p", "servers": ["10.1.0.1:8000", "10.2.0.1:8000"]}], SITES,
     "pools[0] (p): every site of the pool (site_a, site_b) has weight 0"),
])
def test_server_weights_refuse_bad_input_naming_it(site_weights, pools, sites, message):
    with pytest.raises(DrPlanError) as caught:
        server_weights(site_weights, pools, sites)
    assert str(caught.value) == message


def test_server_weights_filter_names_itself():
    filters = plugin.FilterModule().filters()
    assert filters["dr_server_weights"]({"site_a": 80, "site_b": 20},
                                        [{"name": "p", "servers": ["10.1.0.1:1", "10.2.0.1:1"]}], SITES) == {
        "10.1.0.1:1": 4, "10.2.0.1:1": 1}
    with pytest.raises(AnsibleFilterError) as caught:
        filters["dr_server_weights"]({}, [], {})
    assert str(caught.value).startswith("dr_server_weights: site_weights: must be")


TWO = ["site_a", "site_b"]


def test_primary_in_force_is_the_configured_one_without_a_record():
    assert primary_in_force({}, "site_a", TWO) == {"site": "site_a", "entry_site": "site_a", "source": "inventory",
                                                   "since": None, "differs": False}
    assert primary_in_force({"g1": None, "g2": None}, "site_b", TWO) == {
        "site": "site_b", "entry_site": "site_b", "source": "inventory", "since": None, "differs": False}


def test_primary_in_force_is_the_recorded_one():
    records = {"g1": {"primary_site": "site_b", "since": "2026-12-05T10:00:00Z"},
               "g2": {"primary_site": "site_b", "since": "2026-12-05T10:00:01Z"}, "g3": None}
    assert primary_in_force(records, "site_a", TWO) == {
        "site": "site_b", "entry_site": "site_b", "source": "record", "since": "2026-12-05T10:00:01Z", "differs": True}
    records = {"g1": {"primary_site": "site_a", "since": None}}
    assert primary_in_force(records, "site_a", TWO) == {"site": "site_a", "entry_site": "site_a", "source": "record",
                                                        "since": None, "differs": False}


def test_primary_in_force_keeps_the_entry_point_where_the_record_says():
    records = {"g1": {"primary_site": "site_b", "entry_site": "site_a", "since": "t1"},
               "g2": {"primary_site": "site_b", "entry_site": "site_a", "since": "t2"}}
    assert primary_in_force(records, "site_a", TWO) == {
        "site": "site_b", "entry_site": "site_a", "source": "record", "since": "t2", "differs": True}
    # The entry point elsewhere than dr_primary_site differs too.
    records = {"g1": {"primary_site": "site_a", "entry_site": "site_b"}}
    assert primary_in_force(records, "site_a", TWO)["differs"] is True
    assert primary_in_force({"g1": {"primary_site": "site_a", "entry_site": ""}}, "site_a", TWO)["entry_site"] == "site_a"
    with pytest.raises(DrPlanError) as caught:
        primary_in_force({"g1": {"primary_site": "site_a", "entry_site": "site_c"}}, "site_a", TWO)
    assert str(caught.value) == ("g1: the primary site record names site_c, which is not a site of the gateways "
                                 "(site_a, site_b)")
    with pytest.raises(DrPlanError) as caught:
        primary_in_force({"g1": {"primary_site": "site_b", "entry_site": "site_a"}, "g2": {"primary_site": "site_b"}},
                         "site_a", TWO)
    assert str(caught.value) == ("the gateways' primary site records differ (a cutover stopped half way?): "
                                 "g1: site_b (entry point at site_a), g2: site_b; run dr_cutover.yml to the site that "
                                 "should be primary")


@pytest.mark.parametrize("recorded, sites, message", [
    ([], TWO, "recorded: must be a dict of gateway hosts to their records, not []"),
    ({}, "site_a", "sites: must be a list of site names, not 'site_a'"),
    ({"g1": "site_a"}, TWO, "g1: the primary site record is not {primary_site, since}: 'site_a'"),
    ({"g1": {"since": 1}}, TWO, "g1: the primary site record is not {primary_site, since}: {'since': 1}"),
    ({"g1": {"primary_site": "site_c"}}, TWO,
     "g1: the primary site record names site_c, which is not a site of the gateways (site_a, site_b)"),
    ({"g2": {"primary_site": "site_b"}, "g1": {"primary_site": "site_a"}, "g3": None}, TWO,
     "the gateways' primary site records differ (a cutover stopped half way?): g1: site_a, g2: site_b; run "
     "dr_cutover.yml to the site that should be primary"),
])
def test_primary_in_force_refuses_records_that_disagree_or_are_malformed(recorded, sites, message):
    with pytest.raises(DrPlanError) as caught:
        primary_in_force(recorded, "site_a", sites)
    assert str(caught.value) == message
    with pytest.raises(AnsibleFilterError) as caught:
        plugin.FilterModule().filters()["dr_primary_in_force"](recorded, "site_a", sites)
    assert str(caught.value) == "dr_primary_in_force: " + message


def test_primary_in_force_may_allow_records_that_differ():
    records = {"g1": {"primary_site": "site_a"}, "g2": {"primary_site": "site_b"}}
    assert primary_in_force(records, "site_a", TWO, allow_split=True) == {
        "site": "", "entry_site": "", "source": "split", "since": None, "differs": True}
    assert plugin.FilterModule().filters()["dr_primary_in_force"](records, "site_a", TWO, True)["source"] == "split"
    with pytest.raises(DrPlanError):
        primary_in_force(records, "site_a", TWO)
    with pytest.raises(DrPlanError):
        primary_in_force({"g1": {"primary_site": "site_c"}}, "site_a", TWO, allow_split=True)


def test_primary_in_force_refuses_a_configured_site_without_a_gateway_even_under_a_record():
    for records in ({}, {"g1": {"primary_site": "site_a"}}):
        with pytest.raises(DrPlanError) as caught:
            primary_in_force(records, "site_c", TWO)
        assert str(caught.value) == "dr_primary_site: 'site_c' has no gateway (the gateways' sites: site_a, site_b)"
    assert primary_in_force({}, "", TWO)["site"] == ""
