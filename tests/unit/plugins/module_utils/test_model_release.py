"""Model release decisions: settings, the plan, the performance gate, canary weights and the canary's verdict."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.filter import model_release as plugin
from ansible_collections.onprem.deepseek.plugins.module_utils._model_release import (
    SETTINGS,
    ReleaseError,
    canary_split,
    canary_verdict,
    judge,
    canary_weights,
    engine_totals,
    gate,
    gateway_totals,
    plan,
    pool_weights,
    settings,
)

DEFAULTS = settings({})


# --- settings


def test_settings_defaults():
    assert DEFAULTS == {name: spec[0] for name, spec in SETTINGS.items()}
    assert DEFAULTS["canary_percent"] == 10 and DEFAULTS["max_latency_ratio"] == 1.25


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_settings_bounds_on_both_sides(name):
    _default, low, high, integer = SETTINGS[name]
    step = 1 if integer else 0.001
    assert settings({name: low})[name] == low
    assert settings({name: high})[name] == high
    for outside in (low - step, high + step):
        with pytest.raises(ReleaseError, match="model_release_%s: must be from" % name):
            settings({name: outside})


@pytest.mark.parametrize("value", ["ten", True, [1], 2.5])
def test_settings_refuse_what_is_not_a_number(value):
    with pytest.raises(ReleaseError, match="model_release_canary_percent: must be an integer number"):
        settings({"canary_percent": value})


def test_settings_accept_strings_from_a_survey_and_nulls_as_defaults():
    out = settings({"canary_percent": "20", "max_latency_ratio": "1.5", "canary_seconds": None, "probe_requests": ""})
    assert out["canary_percent"] == 20 and isinstance(out["canary_percent"], int)
    assert out["max_latency_ratio"] == 1.5 and out["canary_seconds"] == 300 and out["probe_requests"] == 6


def test_settings_refuse_unknown_names_and_non_dicts():
    with pytest.raises(ReleaseError, match="unknown setting.*model_release_canary_pct"):
        settings({"canary_pct": 5})
    with pytest.raises(ReleaseError, match="must be a dict"):
        settings([1])
    with pytest.raises(ReleaseError, match="model_release_canary_seconds: must be an integer number"):
        settings({"canary_seconds": float("nan")})
    with pytest.raises(ReleaseError, match="model_release_max_latency_ratio: must be from 0.01 to 100.0"):
        settings({"max_latency_ratio": float("nan")})
    assert settings(None) == DEFAULTS


# --- plan


def nodes(*pairs):
    return [{"host": h, "version": v} for h, v in pairs]


def test_plan_first_pending_node_is_the_canary_by_default():
    out = plan(nodes(("n1", "v1"), ("n2", "v1"), ("n3", "v1")), "v2")
    assert out == {"action": "release", "candidate": "v2", "from_version": "v1", "done": [],
                   "pending": ["n1", "n2", "n3"], "canary": ["n1"], "rest": ["n2", "n3"]}


def test_plan_named_canaries_keep_inventory_order():
    out = plan(nodes(("n1", "v1"), ("n2", "v1"), ("n3", "v1")), "v2", ["n3", "n2"])
    assert out["canary"] == ["n2", "n3"] and out["rest"] == ["n1"]


def test_plan_nothing_to_do_when_every_node_serves_the_candidate():
    out = plan(nodes(("n1", "v2"), ("n2", "v2")), "v2")
    assert out["action"] == "none" and out["done"] == ["n1", "n2"] and out["canary"] == [] and out["rest"] == []


def test_plan_single_node_is_its_own_canary():
    out = plan(nodes(("n1", "v1")), "v2")
    assert out["canary"] == ["n1"] and out["rest"] == []


def test_plan_refuses_a_release_stopped_half_way_unless_resumed():
    half = nodes(("n1", "v2"), ("n2", "v1"), ("n3", "v1"))
    with pytest.raises(ReleaseError, match="n1 already serves v2 and n2, n3 still serve v1: a release stopped half way"):
        plan(half, "v2")
    out = plan(half, "v2", ["n1"], resume=True)
    assert out["action"] == "release" and out["canary"] == [] and out["rest"] == ["n2", "n3"]
    assert out["done"] == ["n1"]


def test_plan_refuses_nodes_on_different_versions_naming_them():
    with pytest.raises(ReleaseError, match="v0 on n2; v1 on n1, n3"):
        plan(nodes(("n1", "v1"), ("n2", "v0"), ("n3", "v1")), "v2")


def test_plan_refuses_a_node_without_a_version_and_an_unknown_canary():
    with pytest.raises(ReleaseError, match="n2 serves no version"):
        plan(nodes(("n1", "v1"), ("n2", None)), "v2")
    with pytest.raises(ReleaseError, match="model_release_canary_hosts: n9 is not among the release's nodes"):
        plan(nodes(("n1", "v1")), "v2", ["n9"])
    with pytest.raises(ReleaseError, match="model_release_hosts: no node"):
        plan([], "v2")
    with pytest.raises(ReleaseError, match="each must be a dict"):
        plan(["n1"], "v2")


@pytest.mark.parametrize("candidate", ["", "../v1", "a/b", None, ".hidden"])
def test_plan_refuses_a_bad_version_naming_the_variable(candidate):
    with pytest.raises(ReleaseError, match="model_release_version"):
        plan(nodes(("n1", "v1")), candidate)


# --- the performance gate


def probe(total, ttft, tps):
    def fig(v):
        return {"min": v, "mean": v, "median": v, "max": v}
    return {"latency": {"total_s": fig(total), "ttft_s": fig(ttft), "tokens_per_s": fig(tps)}}


def test_gate_passes_an_equal_candidate_with_figures():
    out = gate(probe(1.0, 0.1, 20.0), probe(1.0, 0.1, 20.0), DEFAULTS)
    assert out["passed"] is True and out["reasons"] == []
    assert out["figures"]["total_s"] == {"current": 1.0, "candidate": 1.0, "ratio": 1.0, "limit": 1.25}
    assert out["figures"]["tokens_per_s"]["limit"] == 0.8


@pytest.mark.parametrize("total, ok", [(1.25, True), (1.2501, False)])
def test_gate_latency_boundary(total, ok):
    out = gate(probe(1.0, 0.1, 20.0), probe(total, 0.1, 20.0), DEFAULTS)
    assert out["passed"] is ok
    if not ok:
        assert out["reasons"] == ["median time per request: 1.25 s is 1.25 times the current version's 1 s, "
                                  "over model_release_max_latency_ratio (1.25)"]


@pytest.mark.parametrize("ttft, ok", [(0.125, True), (0.12501, False)])
def test_gate_ttft_boundary(ttft, ok):
    out = gate(probe(1.0, 0.1, 20.0), probe(1.0, ttft, 20.0), DEFAULTS)
    assert out["passed"] is ok
    assert ok or "model_release_max_ttft_ratio" in out["reasons"][0]


@pytest.mark.parametrize("tps, ok", [(16.0, True), (15.99, False)])
def test_gate_throughput_boundary(tps, ok):
    out = gate(probe(1.0, 0.1, 20.0), probe(1.0, 0.1, tps), DEFAULTS)
    assert out["passed"] is ok
    if not ok:
        assert out["reasons"] == ["median tokens per second: 15.99 is 0.80 of the current version's 20, under "
                                  "model_release_min_throughput_ratio (0.8)"]


def test_gate_gives_every_reason_and_uses_the_settings():
    out = gate(probe(1.0, 0.1, 20.0), probe(2.0, 0.5, 5.0), DEFAULTS)
    assert len(out["reasons"]) == 3
    loose = settings({"max_latency_ratio": 3, "max_ttft_ratio": 6, "min_throughput_ratio": 0.25})
    assert gate(probe(1.0, 0.1, 20.0), probe(2.0, 0.5, 5.0), loose)["passed"] is True


def test_gate_can_require_a_faster_candidate():
    faster = settings({"max_latency_ratio": 0.9, "max_ttft_ratio": 0.9, "min_throughput_ratio": 1.1})
    assert gate(probe(1.0, 0.1, 20.0), probe(0.9, 0.09, 22.0), faster)["passed"] is True
    out = gate(probe(1.0, 0.1, 20.0), probe(1.0, 0.1, 20.0), faster)
    assert out["passed"] is False and len(out["reasons"]) == 3


def test_gate_missing_figures():
    no_ttft = probe(1.0, 0.1, 20.0)
    no_ttft["latency"]["ttft_s"] = {"min": None, "mean": None, "median": None, "max": None}
    # The current version gave none: nothing to compare with.
    assert gate(no_ttft, probe(1.0, 0.1, 20.0), DEFAULTS)["passed"] is True
    out = gate(probe(1.0, 0.1, 20.0), no_ttft, DEFAULTS)
    assert out["passed"] is False and "the candidate gave no figure" in out["reasons"][0]
    with pytest.raises(ReleaseError, match="candidate: not a probe result"):
        gate(probe(1.0, 0.1, 20.0), {"failed": True}, DEFAULTS)


def test_gate_zero_baseline():
    assert gate(probe(1.0, 0.0, 20.0), probe(1.0, 0.0, 20.0), DEFAULTS)["passed"] is True
    assert gate(probe(1.0, 0.0, 20.0), probe(1.0, 0.01, 20.0), DEFAULTS)["passed"] is False


# --- canary weights


def test_canary_weights_one_of_two_ten_percent():
    pools = [{"name": "main", "servers": ["10.0.0.1:8000", "10.0.0.2:8000"]}]
    assert canary_weights(pools, ["10.0.0.1:8000"], 10) == {"10.0.0.1:8000": 1, "10.0.0.2:8000": 9}


def test_canary_weights_share_is_kept_over_several_servers():
    pools = [{"name": "main", "servers": ["a:1", "b:1", "c:1", "d:1", "e:1", "f:1", "g:1"]}]
    out = canary_weights(pools, ["a:1", "b:1"], 25)
    canary = out["a:1"] + out["b:1"]
    assert canary / sum(out.values()) == pytest.approx(0.25)
    assert out["a:1"] == out["b:1"] and len(set(out[s] for s in "cdefg" for s in [s + ":1"])) == 1


def test_canary_weights_are_capped_at_100():
    pools = [{"name": "p", "servers": ["a:1"] + ["s%d:1" % i for i in range(97)]}]
    out = canary_weights(pools, ["a:1"], 49)
    assert max(out.values()) <= 100 and min(out.values()) >= 1
    assert out["a:1"] / sum(out.values()) == pytest.approx(0.49, abs=0.02)


def test_canary_weights_leave_pools_without_a_canary_or_without_others():
    pools = [{"name": "other", "servers": ["x:1", "y:1"]}, {"name": "alone", "servers": ["a:1"]}]
    assert canary_weights(pools, ["a:1"], 10) == {}


@pytest.mark.parametrize("percent", [0, 51, True, "10", 10.0])
def test_canary_weights_refuse_a_bad_percent(percent):
    with pytest.raises(ReleaseError, match="model_release_canary_percent"):
        canary_weights([], [], percent)


def test_canary_weights_percent_boundaries():
    pools = [{"name": "p", "servers": ["a:1", "b:1"]}]
    assert canary_weights(pools, ["a:1"], 1) == {"a:1": 1, "b:1": 99}
    assert canary_weights(pools, ["a:1"], 50) == {"a:1": 1, "b:1": 1}


def test_canary_weights_refuse_conflicting_pools_and_bad_servers():
    pools = [{"name": "p1", "servers": ["a:1", "b:1"]}, {"name": "p2", "servers": ["a:1", "b:1", "c:1"]}]
    with pytest.raises(ReleaseError, match="server a:1 is in pools p1 and p2"):
        canary_weights(pools, ["a:1"], 10)
    with pytest.raises(ReleaseError, match="not host:port"):
        canary_weights([{"name": "p", "servers": ["nohost"]}], [], 10)
    with pytest.raises(ReleaseError, match="must be a dict with servers"):
        canary_weights(["p"], [], 10)
    assert canary_weights([{"name": "v6", "servers": ["[fd00::1]:8000", "[fd00::2]:8000"]}], ["[fd00::1]:8000"], 10)


def test_canary_split_names_the_pools_and_the_other_servers():
    pools = [{"name": "main", "servers": ["a:1", "b:1", "c:1"]}, {"name": "other", "servers": ["x:1"]},
             {"name": "second", "servers": ["a:2", "d:1"]}]
    out = canary_split(pools, ["a:1", "a:2"], 10)
    assert out == {"weights": {"a:1": 2, "b:1": 9, "c:1": 9, "a:2": 1, "d:1": 9}, "pools": ["main", "second"],
                   "stable": ["b:1", "c:1", "d:1"]}
    assert canary_split(pools, [], 10) == {"weights": {}, "pools": [], "stable": []}


# --- nginx.conf weights


CONF = """
    upstream gw_up_main {
        server 10.0.0.1:8000 max_fails=3 fail_timeout=10s;
        server 10.0.0.2:8000 weight=4 max_fails=3 fail_timeout=10s down;
        server 10.0.0.3:8000 backup max_fails=3 fail_timeout=10s;
    }
    server 10.9.9.9:9 max_fails=3 fail_timeout=10s;
"""


def test_pool_weights_reads_default_weight_and_backup():
    out = pool_weights(CONF, ["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000", "10.0.0.4:8000"])
    assert out == {"10.0.0.1:8000": "default", "10.0.0.2:8000": 4, "10.0.0.3:8000": 0}
    assert pool_weights("", ["10.0.0.1:8000"]) == {}


def test_pool_weights_refuses_two_weights_for_one_server():
    conf = CONF + "        server 10.0.0.2:8000 weight=2 max_fails=3 fail_timeout=10s;\n"
    with pytest.raises(ReleaseError, match="two weights"):
        pool_weights(conf, ["10.0.0.2:8000"])


# --- metrics


VLLM = """# HELP vllm:e2e_request_latency_seconds Histogram
vllm:e2e_request_latency_seconds_bucket{le="1.0",model_name="m"} 3.0
vllm:e2e_request_latency_seconds_sum{model_name="m"} 12.5
vllm:e2e_request_latency_seconds_count{model_name="m"} 10.0
vllm:num_requests_running{model_name="m"} 0.0
"""

GATEWAY = """# TYPE onprem_gateway_requests_total counter
onprem_gateway_requests_total{route="/v1/chat/completions",model="m",status="200",principal_class="user"} 90
onprem_gateway_requests_total{route="/v1/chat/completions",model="m",status="502",principal_class="user"} 2
onprem_gateway_requests_total{route="/health",model="",status="503",principal_class="anonymous"} 7
onprem_gateway_requests_total{route="/v1/completions",model="m",status="429",principal_class="user"} 8
onprem_gateway_upstream_failures_total{upstream="main"} 3
onprem_gateway_upstream_failures_total{upstream="other"} 5
"""


def test_engine_totals_vllm_and_sglang():
    assert engine_totals(VLLM) == {"requests": 10.0, "seconds": 12.5}
    sglang = VLLM.replace("vllm:", "sglang:")
    assert engine_totals(sglang) == {"requests": 10.0, "seconds": 12.5}
    with pytest.raises(ReleaseError, match="engine 10.0.0.1:8000: its metrics have no end-to-end latency"):
        engine_totals("vllm:num_requests_running 0\n", "10.0.0.1:8000")
    with pytest.raises(ReleaseError, match="no end-to-end"):
        engine_totals("vllm:e2e_request_latency_seconds_count 1\n")


def test_gateway_totals_count_model_routes_5xx_and_the_pools_failures():
    assert gateway_totals(GATEWAY, ["main"]) == {"requests": 100.0, "errors": 5.0}
    assert gateway_totals(GATEWAY, []) == {"requests": 100.0, "errors": 2.0}
    with pytest.raises(ReleaseError, match="gateway g1: its metrics have no onprem_gateway_requests_total"):
        gateway_totals("up 1\n", ["main"], "g1")


# --- the canary's verdict


def totals(requests, seconds):
    return {"requests": requests, "seconds": seconds}


def window(canary_n=20, canary_s=20.0, stable_n=180, stable_s=180.0, gw_requests=200, gw_errors=0):
    return {
        "canary": {"n1:8000": {"before": totals(100, 100.0), "after": totals(100 + canary_n, 100.0 + canary_s)}},
        "stable": {"n2:8000": {"before": totals(500, 400.0), "after": totals(500 + stable_n, 400.0 + stable_s)}},
        "gateways": {"g1": {"before": {"requests": 1000, "errors": 4},
                            "after": {"requests": 1000 + gw_requests, "errors": 4 + gw_errors}}},
    }


def test_verdict_passes_with_figures():
    out = judge(window(), DEFAULTS)
    assert out["passed"] is True
    assert out["figures"] == {"canary_requests": 20, "stable_requests": 180, "canary_share": 0.1,
                              "canary_mean_s": 1.0, "stable_mean_s": 1.0, "latency_ratio": 1.0,
                              "gateway_requests": 200, "gateway_errors": 0, "error_rate": 0.0}


@pytest.mark.parametrize("n, ok", [(20, True), (19, False)])
def test_verdict_min_requests_boundary(n, ok):
    out = judge(window(canary_n=n, canary_s=float(n)), DEFAULTS)
    assert out["passed"] is ok
    assert ok or "fewer than model_release_canary_min_requests (20)" in out["reasons"][0]


@pytest.mark.parametrize("errors, ok", [(2, True), (3, False)])
def test_verdict_error_rate_boundary(errors, ok):
    out = judge(window(gw_requests=200, gw_errors=errors), DEFAULTS)
    assert out["passed"] is ok
    assert ok or "model_release_canary_max_error_rate" in out["reasons"][0]


@pytest.mark.parametrize("seconds, ok", [(30.0, True), (30.02, False)])
def test_verdict_latency_boundary(seconds, ok):
    out = judge(window(canary_s=seconds), DEFAULTS)
    assert out["passed"] is ok
    assert ok or "over model_release_canary_max_latency_ratio (1.5)" in out["reasons"][0]


def test_verdict_without_stable_traffic_or_gateway_requests():
    w = window(stable_n=0, stable_s=0.0, gw_requests=0)
    out = judge(w, DEFAULTS)
    assert out["passed"] is True and out["figures"]["latency_ratio"] is None and out["figures"]["error_rate"] == 0.0
    out = judge({"canary": {}, "stable": {}, "gateways": {}}, DEFAULTS)
    assert out["passed"] is False and out["figures"]["canary_share"] is None


def test_verdict_refuses_counters_that_went_back():
    w = window()
    w["canary"]["n1:8000"]["after"] = totals(5, 5.0)
    with pytest.raises(ReleaseError, match="engine n1:8000: its counters went back"):
        judge(w, DEFAULTS)
    w = window()
    w["gateways"]["g1"]["after"]["requests"] = 1
    with pytest.raises(ReleaseError, match="gateway g1: its counters went back"):
        judge(w, DEFAULTS)


def engine_text(requests, seconds):
    return ("vllm:e2e_request_latency_seconds_sum{model_name=\"m\"} %s\n"
            "vllm:e2e_request_latency_seconds_count{model_name=\"m\"} %s\n" % (seconds, requests))


def gateway_text(ok, failed, upstream_failures):
    return ("onprem_gateway_requests_total{route=\"/v1/chat/completions\",model=\"m\",status=\"200\"} %s\n"
            "onprem_gateway_requests_total{route=\"/v1/chat/completions\",model=\"m\",status=\"502\"} %s\n"
            "onprem_gateway_upstream_failures_total{upstream=\"main\"} %s\n" % (ok, failed, upstream_failures))


def raw_window(**changes):
    metrics = {
        "canary_servers": ["n1:8000"],
        "engines_before": {"n1:8000": engine_text(0, 0), "n2:8000": engine_text(100, 100)},
        "engines_after": {"n1:8000": engine_text(25, 30), "n2:8000": engine_text(325, 325)},
        "gateways": {"g1": {"before": gateway_text(10, 0, 0), "after": gateway_text(260, 0, 0), "pools": ["main"]}},
    }
    metrics.update(changes)
    return metrics


def test_canary_verdict_from_the_metrics_texts():
    out = canary_verdict(raw_window(), DEFAULTS)
    assert out["passed"] is True
    assert out["figures"]["canary_requests"] == 25 and out["figures"]["stable_requests"] == 225
    assert out["figures"]["canary_share"] == 0.1 and out["figures"]["latency_ratio"] == 1.2
    assert out["figures"]["gateway_requests"] == 250
    failing = raw_window(gateways={"g1": {"before": gateway_text(10, 0, 0), "after": gateway_text(250, 3, 2),
                                          "pools": ["main"]}})
    out = canary_verdict(failing, DEFAULTS)
    assert out["passed"] is False and out["figures"]["gateway_errors"] == 5
    assert "failed 5 of 243 model requests" in out["reasons"][0]


def test_canary_verdict_refuses_what_was_not_read():
    with pytest.raises(ReleaseError, match="read before the window .* differ"):
        canary_verdict(raw_window(engines_after={"n1:8000": engine_text(1, 1)}), DEFAULTS)
    with pytest.raises(ReleaseError, match="no metrics were read from the canary server"):
        canary_verdict(raw_window(canary_servers=["n9:8000"]), DEFAULTS)
    with pytest.raises(ReleaseError, match="engine n1:8000: its metrics have no end-to-end"):
        canary_verdict(raw_window(engines_before={"n1:8000": "", "n2:8000": engine_text(1, 1)}), DEFAULTS)
    with pytest.raises(ReleaseError, match="must be a dict"):
        canary_verdict([], DEFAULTS)


def test_filters_wrap_errors_naming_the_filter():
    filters = plugin.FilterModule().filters()
    assert filters["model_release_plan"](nodes(("n1", "v1")), "v2")["canary"] == ["n1"]
    with pytest.raises(AnsibleFilterError, match="^model_release_settings: model_release_canary_percent"):
        filters["model_release_settings"]({"canary_percent": 0})
    assert set(filters) == {"model_release_settings", "model_release_plan", "model_release_gate",
                            "model_release_canary_split", "model_release_pool_weights",
                            "model_release_engine_totals", "model_release_gateway_totals",
                            "model_release_canary_verdict"}


# --- exact messages and edge cases (what a mutation run of _model_release found untested)


def message(function, *args):
    with pytest.raises(ReleaseError) as excinfo:
        function(*args)
    return str(excinfo.value)


def test_settings_messages():
    assert message(settings, {"max_latency_ratio": "x"}) == "model_release_max_latency_ratio: must be a number, not 'x'"
    assert message(settings, {"canary_percent": "x"}) == "model_release_canary_percent: must be an integer number, not 'x'"
    assert message(settings, [1]) == "the release settings must be a dict, not [1]"
    assert message(settings, {"b": 1, "a": 2}) == "unknown setting(s): model_release_a, model_release_b"
    assert message(settings, {"canary_percent": 0}) == "model_release_canary_percent: must be from 1 to 50 (is 0)"


def test_plan_messages():
    assert message(plan, nodes(("n1", "v1")), "../v1") == (
        "model_release_version: version '../v1' is not usable as a directory name (no '/', no leading '.', "
        "at most 200 characters)")
    assert message(plan, [], "v2") == "model_release_hosts: no node to release to (the pattern matched no host)"
    assert message(plan, ["n1"], "v2") == "nodes: each must be a dict with host and version, not 'n1'"
    assert message(plan, nodes(("n1", None)), "v2") == (
        "n1 serves no version of the model (its store has no current): a release replaces a served version; "
        "deploy the node first (playbooks/site.yml)")
    assert message(plan, nodes(("n1", "v1")), "v2", ["n8", "n9"]) == (
        "model_release_canary_hosts: n8, n9 are not among the release's nodes (n1)")
    assert message(plan, nodes(("n1", "v1"), ("n2", "v1")), "v2", ["n9"]) == (
        "model_release_canary_hosts: n9 is not among the release's nodes (n1, n2)")
    assert message(plan, nodes(("n1", "v1"), ("n2", "v0")), "v2") == (
        "the nodes serve different versions (v0 on n2; v1 on n1): release to one group of nodes at a time "
        "(model_release_hosts)")
    assert message(plan, nodes(("n1", "v2"), ("n2", "v2"), ("n3", "v1")), "v2") == (
        "n1, n2 already serve v2 and n3 still serves v1: a release stopped half way. Set model_release_resume=true "
        "to roll the rest without a new canary, or go back by releasing v1 to n1, n2 (model_release_hosts)")
    assert message(plan, nodes(("n1", "v2"), ("n2", "v1"), ("n3", "v1")), "v2") == (
        "n1 already serves v2 and n2, n3 still serve v1: a release stopped half way. Set model_release_resume=true "
        "to roll the rest without a new canary, or go back by releasing v1 to n1 (model_release_hosts)")


def test_gate_messages_and_figures_without_a_candidate_figure():
    assert message(gate, ["not", "a", "dict"], probe(1.0, 0.1, 20.0), DEFAULTS) == (
        "current: not a probe result (no latency figures): ['not', 'a', 'dict']")
    no_ttft = probe(1.0, 0.1, 20.0)
    no_ttft["latency"]["ttft_s"]["median"] = None
    out = gate(probe(1.0, 0.1, 20.0), no_ttft, DEFAULTS)
    assert out["reasons"] == ["median time to first token: the candidate gave no figure (the current version: 0.1)"]
    assert out["figures"]["ttft_s"] == {"current": 0.1, "candidate": None, "ratio": None, "limit": 1.25}
    assert out["figures"]["tokens_per_s"]["ratio"] == 1.0
    out = gate(probe(1.0, 0.3, 20.0), probe(1.0, 0.1, 20.0), DEFAULTS)
    assert out["figures"]["ttft_s"]["ratio"] == 0.3333


def test_gate_checks_the_figures_after_one_the_current_version_lacks():
    no_ttft = probe(1.0, 0.1, 20.0)
    no_ttft["latency"]["ttft_s"]["median"] = None
    out = gate(no_ttft, probe(1.0, 0.1, 10.0), DEFAULTS)
    assert out["passed"] is False and "ttft_s" not in out["figures"]
    assert out["reasons"][0].startswith("median tokens per second: 10 is 0.50")


def test_canary_weights_messages_and_integers():
    assert message(canary_weights, [], ["nohost"], 10) == "canary servers: 'nohost' is not host:port"
    assert message(canary_weights, [{"servers": ["x"]}], [], 10) == "pools[0] (?): 'x' is not host:port"
    assert message(canary_weights, [{"name": "p", "servers": ["x"]}], [], 10) == "pools[0] (p): 'x' is not host:port"
    assert message(canary_weights, ["p"], [], 10) == "pools[0]: must be a dict with servers, not 'p'"
    assert message(canary_weights, [], [], 0) == "model_release_canary_percent: must be an integer from 1 to 50 (is 0)"
    pools = [{"name": "p1", "servers": ["a:1", "b:1"]}, {"servers": ["a:1", "b:1", "c:1"]}]
    assert message(canary_weights, pools, ["a:1"], 10) == (
        "server a:1 is in pools p1 and 1, which would need different weights (1 and 2) for the canary: give the "
        "canary its own nodes or one pool")
    out = canary_weights([{"name": "p", "servers": ["a:1", "b:1", "c:1", "d:1"]}], ["a:1", "b:1"], 20)
    assert out == {"a:1": 1, "b:1": 1, "c:1": 4, "d:1": 4}
    assert all(isinstance(w, int) and not isinstance(w, bool) for w in out.values())
    assert canary_weights([{"name": "v6", "servers": ["[FD00::1]:8000", "[fd00::2]:8000"]}], ["[FD00::1]:8000"], 10) == {
        "[FD00::1]:8000": 1, "[fd00::2]:8000": 9}


def test_canary_weights_scaled_to_100_keep_every_server_at_1_or_more():
    stable = ["s%d:1" % i for i in range(101)]
    out = canary_weights([{"name": "p", "servers": ["a:1"] + stable}], ["a:1"], 1)
    assert out["a:1"] == 100 and out["s0:1"] == 98
    many = ["c%d:1" % i for i in range(200)]
    out = canary_weights([{"name": "p", "servers": many + ["s:1"]}], many, 1)
    assert out["c0:1"] == 1 and out["s:1"] == 100


def test_pool_weights_message_names_the_server():
    conf = CONF + "        server 10.0.0.2:8000 weight=2 max_fails=3 fail_timeout=10s;\n"
    assert message(pool_weights, conf, ["10.0.0.2:8000"]) == "nginx.conf gives server 10.0.0.2:8000 two weights (4 and 2)"


def test_metrics_lines_that_are_not_samples_are_skipped():
    text = ("not a sample\n"
            "vllm:e2e_request_latency_seconds_count{model_name=\"m\"} notanumber\n" + VLLM)
    assert engine_totals(text) == {"requests": 10.0, "seconds": 12.5}
    assert message(engine_totals, "", "") == (
        "engine ?: its metrics have no end-to-end latency histogram (vllm:e2e_request_latency_seconds or "
        "sglang:e2e_request_latency_seconds)")
    gateway = (GATEWAY + "onprem_gateway_requests_total{route=\"/v1/models\",model=\"\",status=\"500\"} 40\n"
               "onprem_gateway_requests_total{route=\"/v1/chat/completions\",model=\"m\"} 5\n"
               "onprem_gateway_requests_total{route=\"/v1/embeddings\",model=\"m\",status=\"503\"} 1\n")
    assert gateway_totals(gateway, ["main"]) == {"requests": 106.0, "errors": 6.0}


def test_canary_verdict_counts_every_server_and_gateway_and_names_what_went_back():
    metrics = raw_window(
        canary_servers=["n1:8000", "n1:8001"],
        engines_before={"n1:8000": engine_text(0, 0), "n1:8001": engine_text(0, 0), "n2:8000": engine_text(0, 0),
                        "n3:8000": engine_text(0, 0)},
        engines_after={"n1:8000": engine_text(10, 15), "n1:8001": engine_text(10, 15), "n2:8000": engine_text(90, 45),
                       "n3:8000": engine_text(90, 45)},
        gateways={"g1": {"before": gateway_text(0, 0, 2), "after": gateway_text(100, 0, 2), "pools": ["main"]},
                  "g2": {"before": gateway_text(0, 0, 0), "after": gateway_text(99, 1, 0), "pools": ["main"]}})
    out = canary_verdict(metrics, DEFAULTS)
    assert out["figures"] == {"canary_requests": 20, "stable_requests": 180, "canary_share": 0.1, "canary_mean_s": 1.5,
                              "stable_mean_s": 0.5, "latency_ratio": 3.0, "gateway_requests": 200, "gateway_errors": 1,
                              "error_rate": 0.005}
    assert out["reasons"] == ["the canary's mean time per request, 1.500 s, is 3.00 times the other engines' 0.500 s, "
                              "over model_release_canary_max_latency_ratio (1.5)"]
    assert message(canary_verdict, raw_window(engines_after={"n1:8000": "", "n2:8000": engine_text(1, 1)}), DEFAULTS) == (
        "engine n1:8000: its metrics have no end-to-end latency histogram (vllm:e2e_request_latency_seconds or "
        "sglang:e2e_request_latency_seconds)")
    assert message(canary_verdict, raw_window(gateways={"g1": {"before": "", "after": "", "pools": []}}), DEFAULTS) == (
        "gateway g1: its metrics have no onprem_gateway_requests_total")


def test_judge_edge_cases():
    w = window()
    w["canary"]["n1:8000"]["after"] = totals(120, 90.0)
    assert message(judge, w, DEFAULTS) == (
        "engine n1:8000: its counters went back (seconds from 100.0 to 90.0): it restarted during the canary window")
    w = window()
    w["gateways"]["g1"]["after"]["errors"] = 0
    assert message(judge, w, DEFAULTS) == (
        "gateway g1: its counters went back (errors from 4 to 0): it restarted during the canary window")
    # No canary request: no ratio; the same number of requests on both sides: a share of one half.
    out = judge(window(canary_n=0, canary_s=0.0, stable_s=90.0), DEFAULTS)
    assert out["figures"]["latency_ratio"] is None and out["figures"]["canary_mean_s"] is None
    out = judge(window(canary_n=180, canary_s=180.0), DEFAULTS)
    assert out["figures"]["canary_share"] == 0.5
    # Other engines that took no time (a stand-in): no ratio rather than a division by zero.
    assert judge(window(stable_s=0.0), DEFAULTS)["figures"]["latency_ratio"] is None
    out = judge(window(stable_s=0.9, canary_s=20.0), DEFAULTS)
    assert out["passed"] is False and out["figures"]["latency_ratio"] == 200.0
    out = judge(window(canary_n=3, canary_s=1.0, stable_n=7, stable_s=1.0, gw_requests=3000, gw_errors=1), settings(
        {"canary_min_requests": 1}))
    assert out["figures"]["canary_share"] == 0.3 and out["figures"]["canary_mean_s"] == 0.3333
    assert out["figures"]["stable_mean_s"] == 0.1429 and out["figures"]["latency_ratio"] == 2.3333
    assert out["figures"]["error_rate"] == 0.000333
