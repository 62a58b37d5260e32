"""The drain of one node for a rolling change: its servers, never a pool's last, and when it is idle."""
import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.onprem.deepseek.plugins.filter import drain_plan as plan_plugin
from ansible_collections.onprem.deepseek.plugins.filter import engine_in_flight as flight_plugin
from ansible_collections.onprem.deepseek.plugins.module_utils._drain import (
    IN_FLIGHT_GAUGES,
    DrainError,
    drain_plan,
    in_flight,
    server_address,
)

GW = {
    "gw-a": [{"name": "main", "servers": ["10.0.0.1:8000", "10.0.0.1:8001", "10.0.0.2:8000"]},
             {"name": "canary", "servers": ["10.0.0.2:8002", "10.0.0.1:8002"]}],
    "gw-b": [{"name": "main", "servers": ["10.0.0.2:8000", "10.0.0.1:8000"], "router_url": "http://127.0.0.1:30000"}],
}


@pytest.mark.parametrize("server, address", [
    ("10.0.0.1:8000", "10.0.0.1"),
    ("node1.example:80", "node1.example"),
    ("[fd00::1]:8000", "fd00::1"),
])
def test_the_address_of_a_server(server, address):
    assert server_address(server) == address


@pytest.mark.parametrize("server", ["10.0.0.1", "fd00::1:8000", "[fd00::1]", ":8000", "a:b", "", 8000, None])
def test_a_server_that_is_not_address_and_port_is_named(server):
    with pytest.raises(DrainError, match="address:port"):
        server_address(server)


def test_a_node_drains_its_servers_of_every_pool_of_every_gateway():
    assert drain_plan(GW, "n1", ["n1", "10.0.0.1"]) == {
        "servers": ["10.0.0.1:8000", "10.0.0.1:8001", "10.0.0.1:8002"],
        "gateways": {"gw-a": {"main": ["10.0.0.2:8000"], "canary": ["10.0.0.2:8002"]},
                     "gw-b": {"main": ["10.0.0.2:8000"]}},
    }


def test_the_other_node_drains_only_its_own():
    assert drain_plan(GW, "n2", ["10.0.0.2"]) == {
        "servers": ["10.0.0.2:8000", "10.0.0.2:8002"],
        "gateways": {"gw-a": {"main": ["10.0.0.1:8000", "10.0.0.1:8001"], "canary": ["10.0.0.1:8002"]},
                     "gw-b": {"main": ["10.0.0.1:8000"]}},
    }


def test_a_node_in_no_pool_drains_nothing():
    assert drain_plan(GW, "n3", ["n3", "10.0.0.3", ""]) == {"servers": [], "gateways": {}}


def test_a_server_listed_at_two_gateways_is_drained_once():
    plan = drain_plan(GW, "n1", ["10.0.0.1"])
    assert plan["servers"].count("10.0.0.1:8000") == 1


def test_an_address_prefix_is_not_the_node():
    # 10.0.0.1 is not 10.0.0.10's: addresses compare whole.
    gws = {"gw": [{"name": "p", "servers": ["10.0.0.10:8000", "10.0.0.1:8000"]}]}
    assert drain_plan(gws, "n1", ["10.0.0.1"])["servers"] == ["10.0.0.1:8000"]


def test_the_last_server_of_a_pool_is_never_drained_and_every_such_pool_is_named():
    gws = {"gw-a": [{"name": "main", "servers": ["10.0.0.1:8000", "10.0.0.1:8001"]},
                    {"name": "other", "servers": ["10.0.0.1:9000", "10.0.0.2:9000"]}],
           "gw-b": [{"name": "solo", "servers": ["10.0.0.1:8000"]}]}
    with pytest.raises(DrainError) as err:
        drain_plan(gws, "n1", ["10.0.0.1"])
    assert str(err.value) == (
        "gateway gw-a pool main: every server (10.0.0.1:8000, 10.0.0.1:8001) is on n1, so draining it would leave "
        "the pool without an engine; add a server on another node to the pool first; "
        "gateway gw-b pool solo: every server (10.0.0.1:8000) is on n1, so draining it would leave "
        "the pool without an engine; add a server on another node to the pool first")


def test_one_server_left_is_enough():
    gws = {"gw": [{"name": "p", "servers": ["10.0.0.1:8000", "10.0.0.2:8000"]}]}
    assert drain_plan(gws, "n1", ["10.0.0.1"])["gateways"] == {"gw": {"p": ["10.0.0.2:8000"]}}


@pytest.mark.parametrize("gateways, message", [
    ({}, "no gateway published gateway_pools"),
    ([], "no gateway published gateway_pools"),
    ({"gw": "main"}, "gateway gw: gateway_pools must be a list"),
    ({"gw": [{"servers": []}]}, "gateway gw: a pool must be a mapping with a name"),
    ({"gw": [{"name": "p", "servers": "10.0.0.1:8000"}]}, "gateway gw: a pool must be a mapping"),
    ({"gw": ["p"]}, "gateway gw: a pool must be a mapping"),
    ({"gw": [{"name": "p", "servers": ["10.0.0.1"]}]}, "'10.0.0.1' is not address:port"),
])
def test_malformed_pools_are_refused(gateways, message):
    with pytest.raises(DrainError, match=message):
        drain_plan(gateways, "n1", ["10.0.0.1"])


@pytest.mark.parametrize("addresses", [[], None, "10.0.0.1"])
def test_a_node_without_addresses_is_refused(addresses):
    with pytest.raises(DrainError, match="^node n1: no address to match pool servers against$"):
        drain_plan(GW, "n1", addresses)


VLLM = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 2.0
vllm:num_requests_waiting{engine="0",model_name="m"} 1.0
vllm:num_requests_swapped{engine="0",model_name="m"} 7.0
vllm:num_requests_running_total 9.0
"""


def test_vllm_running_and_waiting_are_summed_and_nothing_else():
    assert in_flight(VLLM) == 3


def test_an_idle_engine_is_zero():
    assert in_flight("vllm:num_requests_running 0\nvllm:num_requests_waiting 0.0\n") == 0


def test_one_request_is_not_idle():
    assert in_flight("vllm:num_requests_running 0\nvllm:num_requests_waiting 1\n") == 1


def test_sglang_gauges_count_and_samples_of_every_label_set_add_up():
    text = 'sglang:num_running_reqs{tp_rank="0"} 1\nsglang:num_running_reqs{tp_rank="1"} 2\nsglang:num_queue_reqs 4 1700000000\n'
    assert in_flight(text) == 7


def test_every_gauge_is_known():
    assert IN_FLIGHT_GAUGES == ("vllm:num_requests_running", "vllm:num_requests_waiting",
                                "sglang:num_running_reqs", "sglang:num_queue_reqs")


@pytest.mark.parametrize("text, message", [
    ("", "10.0.0.1:8000: the engine's metrics have none of vllm:num_requests_running, vllm:num_requests_waiting, "
         "sglang:num_running_reqs, sglang:num_queue_reqs, so whether it is idle cannot be known"),
    ("# vllm:num_requests_running 0\nvllm:num_requests_swapped 0\n", "the engine's metrics have none of"),
    ("vllm:num_requests_running x\n", "10.0.0.1:8000: vllm:num_requests_running has the value 'x', not a number"),
    ("vllm:num_requests_running -1\n", "10.0.0.1:8000: vllm:num_requests_running has the value '-1', not a count"),
    ("vllm:num_requests_running NaN\n", "has the value 'NaN', not a count"),
    (None, "10.0.0.1:8000: metrics must be text"),
])
def test_metrics_that_cannot_say_idle_are_refused(text, message):
    with pytest.raises(DrainError) as err:
        in_flight(text, "10.0.0.1:8000")
    assert message in str(err.value)


def test_without_a_server_the_message_starts_with_what_failed():
    with pytest.raises(DrainError, match="^the engine's metrics have none of"):
        in_flight("up 1\n")
    with pytest.raises(DrainError, match="^metrics must be text"):
        in_flight(3)
    with pytest.raises(DrainError, match="^vllm:num_requests_running has the value 'y', not a number$"):
        in_flight("vllm:num_requests_running y\n")
    with pytest.raises(DrainError, match="^vllm:num_requests_waiting has the value '-2', not a count$"):
        in_flight("vllm:num_requests_waiting -2\n")


def test_the_filters_wrap_the_logic_and_name_themselves():
    assert plan_plugin.FilterModule().filters()["drain_plan"](GW, "n3", ["10.0.0.3"]) == {"servers": [], "gateways": {}}
    assert flight_plugin.FilterModule().filters()["engine_in_flight"](VLLM, "s") == 3
    with pytest.raises(AnsibleFilterError, match="^drain_plan: no gateway published"):
        plan_plugin.drain_plan({}, "n1", ["a"])
    with pytest.raises(AnsibleFilterError, match="^engine_in_flight: s: the engine's metrics have none"):
        flight_plugin.engine_in_flight("", "s")


# --- Cases from the mutation run ------------------------------------------------------------------

@pytest.mark.parametrize("server, message", [
    (8000, "a pool server must be a string address:port, not 8000"),
    ("10.0.0.1", "pool server '10.0.0.1' is not address:port (or [v6 address]:port)"),
])
def test_server_messages_whole(server, message):
    with pytest.raises(DrainError) as err:
        server_address(server)
    assert str(err.value) == message


@pytest.mark.parametrize("gateways, message", [
    ({"gw": "main"}, "gateway gw: gateway_pools must be a list of pools, not 'main'"),
    ({"gw": ["p"]}, "gateway gw: a pool must be a mapping with a name and a list of servers, not 'p'"),
])
def test_pool_messages_whole(gateways, message):
    with pytest.raises(DrainError) as err:
        drain_plan(gateways, "n1", ["10.0.0.1"])
    assert str(err.value) == message


def test_non_string_addresses_are_not_the_nodes():
    gws = {"gw": [{"name": "p", "servers": ["10.0.0.1:8000", "10.0.0.2:8000"]}]}
    assert drain_plan(gws, "n1", [None, 7, "10.0.0.1"])["servers"] == ["10.0.0.1:8000"]


def test_a_pool_without_the_node_does_not_end_the_search():
    gws = {"gw": [{"name": "other", "servers": ["10.0.0.2:8000"]},
                  {"name": "p", "servers": ["10.0.0.1:8000", "10.0.0.2:8001"]}]}
    assert drain_plan(gws, "n1", ["10.0.0.1"])["gateways"] == {"gw": {"p": ["10.0.0.2:8001"]}}
