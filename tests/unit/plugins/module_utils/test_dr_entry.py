"""The global entry point's decisions: each gateway's BGP announcement, the health check's rise and
fall, what counts as an answered completion, and the health check's settings."""
import copy
import importlib.util
import os
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.filter import dr_entry_plan as plugin
from ansible_collections.onprem.deepseek.plugins.module_utils._dr_entry import (
    DrEntryError,
    EntryHealth,
    bird_protocol,
    check_config,
    completion_ok,
    entry_plan,
    metrics_text,
)

GATEWAYS = [{"name": "gw-b", "site": "site_b", "router_id": "10.0.2.21"},
            {"name": "gw-a", "site": "site_a", "router_id": "10.0.1.21"},
            {"name": "gw-a2", "site": "site_a", "router_id": "10.0.1.22"}]
PEERS = {"gw-a": [{"address": "10.0.1.1", "asn": 65000}], "gw-a2": [{"address": "10.0.1.1", "asn": 65000}],
         "gw-b": [{"address": "10.0.2.1", "asn": 65000}, {"address": "10.0.2.2", "asn": 65002}]}


def plan(**changes):
    args = dict(gateways=GATEWAYS, address="10.0.100.10", primary_site="site_a", asn=65001, peers=PEERS)
    args.update(changes)
    return entry_plan(**args)


def refused(**changes):
    with pytest.raises(DrEntryError) as caught:
        plan(**changes)
    return str(caught.value)


def test_the_primary_sites_gateways_announce_plainly_and_the_standbys_prepend():
    got = plan()
    assert sorted(got) == ["gw-a", "gw-a2", "gw-b"]
    assert got["gw-a"] == {"site": "site_a", "role": "primary", "prepend": 0, "router_id": "10.0.1.21",
                           "address": "10.0.100.10", "asn": 65001, "peers": [{"address": "10.0.1.1", "asn": 65000}],
                           "hold_time": 3, "keepalive_time": 1, "bfd": True}
    assert got["gw-a2"]["role"] == "primary" and got["gw-a2"]["prepend"] == 0
    assert got["gw-b"]["role"] == "standby" and got["gw-b"]["prepend"] == 3
    assert got["gw-b"]["peers"] == PEERS["gw-b"]


def test_moving_the_primary_swaps_the_prepends():
    got = plan(primary_site="site_b")
    assert [got[n]["prepend"] for n in ("gw-a", "gw-a2", "gw-b")] == [3, 3, 0]


def test_the_address_may_be_written_as_a_slash_32():
    assert plan(address="10.0.100.10/32")["gw-a"]["address"] == "10.0.100.10"


@pytest.mark.parametrize("address, message", [
    ("10.0.100.0/31", "must be one address (a /32), not a network"),
    ("10.0.100.0/24", "must be one address (a /32), not a network"),
    ("10.0.100.300", "is not an IPv4 address"),
    ("", "is not an IPv4 address"),
    ("127.0.0.2", "cannot be announced"),
    ("224.0.0.9", "cannot be announced"),
    ("0.0.0.0", "cannot be announced"),
])
def test_a_service_address_that_is_not_one_routable_address_is_refused(address, message):
    text = refused(address=address)
    assert text.startswith("dr_entry_address: ") and message in text


@pytest.mark.parametrize("field, value, ok", [
    ("asn", 0, False), ("asn", 1, True), ("asn", 4294967295, True), ("asn", 4294967296, False), ("asn", "65001", False),
    ("asn", True, False),
    ("standby_prepend", 0, False), ("standby_prepend", 1, True), ("standby_prepend", 16, True),
    ("standby_prepend", 17, False),
    ("hold_time", 2, False), ("hold_time", 3, True), ("hold_time", 65535, True), ("hold_time", 65536, False),
])
def test_numbers_on_both_sides_of_their_bounds(field, value, ok):
    if ok:
        got = plan(**{field: value})["gw-b"]
        assert got[{"standby_prepend": "prepend"}.get(field, field)] == value
    else:
        assert refused(**{field: value}).startswith("dr_entry_%s: " % field)


@pytest.mark.parametrize("hold, keepalive", [(3, 1), (5, 1), (6, 2), (90, 30)])
def test_keepalives_come_every_third_of_the_hold_time(hold, keepalive):
    assert plan(hold_time=hold)["gw-b"]["keepalive_time"] == keepalive


def test_bfd_is_a_boolean():
    assert plan(bfd=False)["gw-a"]["bfd"] is False
    assert refused(bfd="yes").startswith("dr_entry_bfd: ")


def test_a_primary_site_without_a_gateway_is_refused_naming_the_sites():
    assert refused(primary_site="site_c") == "dr_primary_site: 'site_c' has no gateway (the gateways' sites: site_a, site_b)"


def test_no_gateway_is_refused():
    assert "deepseek_gateways has no host" in refused(gateways=[])


@pytest.mark.parametrize("site", [None, "", "1a", "site-a"])
def test_a_gateway_without_a_proper_site_is_refused(site):
    gateways = copy.deepcopy(GATEWAYS)
    gateways[0]["site"] = site
    assert refused(gateways=gateways).startswith("gw-b: deepseek_site ")


def test_two_gateways_with_one_address_are_refused():
    gateways = copy.deepcopy(GATEWAYS)
    gateways[2]["router_id"] = "10.0.1.21"
    assert refused(gateways=gateways) == "gw-a2: router id 10.0.1.21 is also gw-a's; each gateway needs its own address"


@pytest.mark.parametrize("peers, message", [
    (None, "gw-a: dr_entry_peers: needs at least one BGP peer"),
    ([], "gw-a: dr_entry_peers: needs at least one BGP peer"),
    ([{"address": "10.0.1.1", "asn": 65001}], "gw-a: dr_entry_peers[0].asn: 65001 is dr_entry_asn"),
    ([{"address": "10.0.1.1"}], "gw-a: dr_entry_peers[0].asn: None must be a whole number"),
    ([{"address": "x", "asn": 65000}], "gw-a: dr_entry_peers[0].address: 'x' is not an IPv4 address"),
    ([{"address": "10.0.1.1", "asn": 65000, "port": 179}], "gw-a: dr_entry_peers[0]: must be a mapping with address and asn only"),
    ([{"address": "10.0.1.1", "asn": 65000}, {"address": "10.0.1.1", "asn": 65002}],
     "gw-a: dr_entry_peers[1].address: 10.0.1.1 is listed twice"),
])
def test_bad_peers_are_refused_naming_the_gateway_and_the_peer(peers, message):
    all_peers = dict(PEERS, **{"gw-a": peers})
    assert refused(peers=all_peers).startswith(message)


def test_the_filter_names_itself_in_errors():
    assert plugin.dr_entry_plan(GATEWAYS, "10.0.100.10", "site_a", 65001, PEERS)["gw-b"]["prepend"] == 3
    with pytest.raises(AnsibleFilterError, match="^dr_entry_plan: dr_primary_site"):
        plugin.dr_entry_plan(GATEWAYS, "10.0.100.10", "site_c", 65001, PEERS)
    assert plugin.FilterModule().filters() == {"dr_entry_plan": plugin.dr_entry_plan,
                                               "dr_entry_check_settings": plugin.dr_entry_check_settings}


@pytest.mark.parametrize("rise", [1, 2, 3])
def test_it_announces_after_exactly_rise_passes_in_a_row(rise):
    health = EntryHealth(rise=rise, fall=2)
    assert health.announced is False
    for _count in range(rise - 1):
        assert health.observe(True) is False
    assert health.announced is False
    assert health.observe(True) is True and health.announced is True
    assert health.observe(True) is False and health.announced is True


@pytest.mark.parametrize("fall", [1, 2, 3])
def test_it_withdraws_after_exactly_fall_failures_in_a_row(fall):
    health = EntryHealth(rise=1, fall=fall)
    health.observe(True)
    for _count in range(fall - 1):
        assert health.observe(False) is False
    assert health.announced is True
    assert health.observe(False) is True and health.announced is False
    assert health.observe(False) is False and health.announced is False


def test_a_pass_between_failures_starts_the_count_again():
    health = EntryHealth(rise=2, fall=2)
    health.observe(True)
    health.observe(True)
    assert [health.observe(ok) for ok in (False, True, False, True)] == [False] * 4
    assert health.announced is True and health.failed == 0 and health.passed == 1
    assert [health.observe(ok) for ok in (False, False)] == [False, True]
    # Withdrawn: a failure between passes restarts the count of passes.
    assert [health.observe(ok) for ok in (True, False, True)] == [False, False, False]
    assert health.announced is False
    assert health.observe(True) is True


def test_failures_before_the_first_announcement_change_nothing():
    health = EntryHealth(rise=1, fall=1)
    assert [health.observe(False) for _count in range(3)] == [False] * 3
    assert health.announced is False


@pytest.mark.parametrize("rise, fall", [(0, 1), (1, 0), (101, 1), (1, 101), (True, 1), (1, "2")])
def test_rise_and_fall_are_whole_numbers_from_1_to_100(rise, fall):
    with pytest.raises(DrEntryError):
        EntryHealth(rise, fall)
    EntryHealth(100, 100)


@pytest.mark.parametrize("status, body, ok", [
    (200, b'{"choices": [{"index": 0}]}', True),
    (200, b'{"choices": []}', False),
    (200, b'{"error": "x"}', False),
    (200, b'[1]', False),
    (200, b'not json', False),
    (200, None, False),
    (201, b'{"choices": [{"index": 0}]}', False),
    (401, b'{"choices": [{"index": 0}]}', False),
    (503, b'', False),
])
def test_only_an_answered_completion_passes(status, body, ok):
    assert completion_ok(status, body) is ok


CONFIG = {"address": "10.0.100.10", "url": "https://127.0.0.1:443/v1/chat/completions", "server_name": "gw.example.test",
          "ca_file": "/etc/deepseek/pki/ca-chain.pem", "key_file": "/etc/onprem-deepseek/dr-entry/api.key",
          "model": "deepseek-r1", "interval_s": 1, "timeout_s": 0.8, "rise": 2, "fall": 2, "birdc": "/usr/sbin/birdc",
          "bird_socket": "/run/bird/bird.ctl", "bird_include": "/run/onprem-deepseek-dr-entry/entry.conf",
          "protocol": "dr_entry",
          "metrics_file": "/var/lib/prometheus/node-exporter/onprem_deepseek_dr_entry.prom"}


def test_good_settings_pass():
    assert check_config(dict(CONFIG)) == CONFIG
    assert check_config(dict(CONFIG, metrics_file="", url="https://localhost/v1/chat/completions"))


@pytest.mark.parametrize("change, message", [
    ({"url": "http://127.0.0.1/v1/chat/completions"}, "url must be https://127.0.0.1[:port]/v1/chat/completions"),
    ({"url": "https://10.0.1.21/v1/chat/completions"}, "url must be https://127.0.0.1"),
    ({"url": "https://127.0.0.1/v1/models"}, "url must be https://127.0.0.1"),
    ({"server_name": "gw example"}, "server_name must be"),
    ({"ca_file": "ca.pem"}, "ca_file must be an absolute path"),
    ({"bird_include": "entry.conf"}, "bird_include must be an absolute path"),
    ({"key_file": None}, "key_file must be an absolute path"),
    ({"metrics_file": "x.prom"}, "metrics_file must be an absolute path or empty"),
    ({"model": "bad model"}, "model must be"),
    ({"protocol": "dr-entry"}, "protocol must be the BIRD protocol name"),
    ({"interval_s": 0.1}, "interval_s must be a number from 0.2 to 60.0"),
    ({"interval_s": 60.5}, "interval_s must be a number from 0.2 to 60.0"),
    ({"timeout_s": 0.05}, "timeout_s must be a number from 0.1 to 60.0"),
    ({"timeout_s": 1.5}, "timeout_s (1.5) must not exceed interval_s (1)"),
    ({"rise": 0}, "rise must be a whole number from 1 to 100"),
    ({"fall": 101}, "fall must be a whole number from 1 to 100"),
    ({"fall": True}, "fall must be a whole number"),
    ({"address": "10.0.100.0/24"}, "address: '10.0.100.0/24' must be one address"),
    ({"extra": 1}, "unknown setting extra"),
])
def test_bad_settings_are_refused_naming_them(change, message):
    with pytest.raises(DrEntryError) as caught:
        check_config(dict(CONFIG, **change))
    assert message in str(caught.value)


@pytest.mark.parametrize("interval, timeout", [(0.2, 0.1), (60, 60), (1, 1)])
def test_the_bounds_of_interval_and_timeout_pass(interval, timeout):
    check_config(dict(CONFIG, interval_s=interval, timeout_s=timeout))


def test_a_missing_setting_is_named():
    config = dict(CONFIG)
    del config["rise"]
    with pytest.raises(DrEntryError, match="rise is missing"):
        check_config(config)
    with pytest.raises(DrEntryError, match="must be a JSON object"):
        check_config([])


def test_the_metrics_name_the_address_and_the_state():
    text = metrics_text("10.0.100.10", True, False, 1700000000.25, 3)
    assert 'onprem_deepseek_dr_entry_announced{address="10.0.100.10"} 1\n' in text
    assert 'onprem_deepseek_dr_entry_check_ok{address="10.0.100.10"} 0\n' in text
    assert 'onprem_deepseek_dr_entry_check_timestamp_seconds{address="10.0.100.10"} 1700000000.250\n' in text
    assert 'onprem_deepseek_dr_entry_transitions_total{address="10.0.100.10"} 3\n' in text
    assert 'onprem_deepseek_dr_entry_announced{address="10.0.100.10"} 0\n' in metrics_text("10.0.100.10", False, True, 0, 0)


def test_the_included_protocol_is_disabled_while_withdrawn():
    assert bird_protocol("dr_entry", "10.0.100.10", False) == (
        "# Managed by the onprem.deepseek dr role's health check: withdrawn.\n"
        "protocol static dr_entry { disabled; ipv4; route 10.0.100.10/32 unreachable; }\n")
    assert bird_protocol("dr_entry", "10.0.100.10", True).splitlines()[1] == (
        "protocol static dr_entry { ipv4; route 10.0.100.10/32 unreachable; }")


def test_a_gateway_plans_its_own_announcement_and_needs_only_its_own_peers():
    got = plan(peers={"gw-b": PEERS["gw-b"]}, only=["gw-b"])
    assert list(got) == ["gw-b"] and got["gw-b"]["prepend"] == 3
    # The others are still checked.
    gateways = copy.deepcopy(GATEWAYS)
    gateways[1]["router_id"] = "10.0.2.21"
    with pytest.raises(DrEntryError, match="router id 10.0.2.21"):
        plan(gateways=gateways, peers={"gw-b": PEERS["gw-b"]}, only=["gw-b"])


@pytest.mark.parametrize("only", [["gw-c"], "gw-b", ["gw-b", "x"]])
def test_only_names_gateways(only):
    assert "is not a list of gateways" in refused(only=only)


def test_the_settings_filter_names_itself_in_errors():
    assert plugin.dr_entry_check_settings(dict(CONFIG)) == CONFIG
    with pytest.raises(AnsibleFilterError, match="^dr_entry_check_settings: rise must be"):
        plugin.dr_entry_check_settings(dict(CONFIG, rise=0))


def test_the_role_ships_the_health_check_built_from_the_current_module_utils():
    if "MUTANT_UNDER_TEST" in os.environ:
        pytest.skip("under mutmut, plugins/module_utils is not the source the command is built from")
    root = Path(__file__).resolve().parents[4]
    spec = importlib.util.spec_from_file_location("build_keywrap", root / "tools" / "build_keywrap.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    built = root / "roles" / "dr" / "files" / "onprem_deepseek_dr_entry.py"
    target = next(t for t in builder.TARGETS if t.path == built)
    assert built.read_text() == builder.build(target)


# Exact messages: each names the setting and shows the value.
@pytest.mark.parametrize("change, message", [
    ({"url": "http://x/v1/chat/completions"},
     "url must be https://127.0.0.1[:port]/v1/chat/completions (the local gateway), got 'http://x/v1/chat/completions'"),
    ({"server_name": "a b"}, "server_name must be the gateway certificate's DNS name, got 'a b'"),
    ({"ca_file": "ca.pem"}, "ca_file must be an absolute path, got 'ca.pem'"),
    ({"metrics_file": "m"}, "metrics_file must be an absolute path or empty, got 'm'"),
    ({"model": ""}, "model must be a model name the gateway serves, got ''"),
    ({"protocol": "1x"}, "protocol must be the BIRD protocol name, got '1x'"),
    ({"interval_s": True}, "interval_s must be a number from 0.2 to 60.0, got True"),
    ({"interval_s": 0.5, "timeout_s": 0.6}, "timeout_s (0.6) must not exceed interval_s (0.5)"),
    ({"rise": 0}, "rise must be a whole number from 1 to 100, got 0"),
    ({"fall": 101}, "fall must be a whole number from 1 to 100, got 101"),
    ({"address": "10.0.100.0/24"}, "address: '10.0.100.0/24' must be one address (a /32), not a network"),
    ({"extra": 1}, "unknown setting extra"),
])
def test_each_bad_setting_has_its_own_message(change, message):
    with pytest.raises(DrEntryError) as caught:
        check_config(dict(CONFIG, **change))
    assert str(caught.value) == message


def test_every_problem_is_named_at_once():
    with pytest.raises(DrEntryError) as caught:
        check_config(dict(CONFIG, rise=0, fall=0))
    assert str(caught.value) == ("rise must be a whole number from 1 to 100, got 0; "
                                 "fall must be a whole number from 1 to 100, got 0")
    config = dict(CONFIG)
    del config["model"]
    with pytest.raises(DrEntryError) as caught:
        check_config(config)
    assert str(caught.value) == "model is missing"
    with pytest.raises(DrEntryError) as caught:
        check_config("x")
    assert str(caught.value) == "the settings must be a JSON object"


@pytest.mark.parametrize("change", [{"rise": 1}, {"rise": 100}, {"fall": 1}, {"fall": 100},
                                    {"server_name": "GW.Example.TEST"}, {"interval_s": 60.0, "timeout_s": 0.1}])
def test_settings_at_their_bounds_pass(change):
    assert check_config(dict(CONFIG, **change))["model"] == "deepseek-r1"


@pytest.mark.parametrize("change, message", [
    ({"gateways": []}, "the group deepseek_gateways has no host: the service address needs a gateway to announce it"),
    ({"peers": []}, "dr_entry_peers: must map each gateway to its BGP peers"),
    ({"only": "gw-b"}, "'gw-b' is not a list of gateways of deepseek_gateways"),
    ({"gateways": [{"site": "site_a", "router_id": "10.0.1.21"}]}, "a gateway must have a name, got {'site': 'site_a', 'router_id': '10.0.1.21'}"),
    ({"gateways": ["gw-a"]}, "a gateway must have a name, got 'gw-a'"),
    ({"gateways": [{"name": "", "site": "site_a"}]}, "a gateway must have a name, got {'name': '', 'site': 'site_a'}"),
    ({"gateways": [{"name": "gw-a", "site": "site_a", "router_id": "x"}], "peers": {"gw-a": PEERS["gw-a"]}},
     "gw-a: the router id (its address): 'x' is not an IPv4 address"),
    ({"peers": dict(PEERS, **{"gw-a": [{"address": "10.0.1.1", "asn": 65001}]})},
     "gw-a: dr_entry_peers[0].asn: 65001 is dr_entry_asn; the gateways speak eBGP to the site routers, so the "
     "routers need their own AS"),
])
def test_each_refusal_of_the_plan_has_its_own_message(change, message):
    assert refused(**change) == message


@pytest.mark.parametrize("asn, ok", [(0, False), (1, True), (4294967295, True), (4294967296, False)])
def test_a_peers_asn_on_both_sides_of_its_bounds(asn, ok):
    peers = dict(PEERS, **{"gw-a": [{"address": "10.0.1.1", "asn": asn}]})
    if ok:
        assert plan(peers=peers)["gw-a"]["peers"] == [{"address": "10.0.1.1", "asn": asn}]
    else:
        assert refused(peers=peers).startswith("gw-a: dr_entry_peers[0].asn: %d must be a whole number" % asn)


@pytest.mark.parametrize("rise, fall, message", [(0, 1, "rise: 0 must be"), (1, 0, "fall: 0 must be")])
def test_rise_and_fall_errors_name_them(rise, fall, message):
    with pytest.raises(DrEntryError, match="^" + message):
        EntryHealth(rise, fall)


def test_a_new_health_has_counted_nothing():
    health = EntryHealth(2, 2)
    assert (health.announced, health.passed, health.failed) == (False, 0, 0)


def test_the_included_protocol_says_announced_when_it_is():
    assert bird_protocol("dr_entry", "10.0.100.10", True).splitlines()[0] == (
        "# Managed by the onprem.deepseek dr role's health check: announced.")


def test_the_metrics_are_exactly_the_textfile_format():
    assert metrics_text("10.0.100.10", True, True, 5.5, 1) == (
        '# HELP onprem_deepseek_dr_entry_announced 1 while this gateway announces the service address.\n'
        '# TYPE onprem_deepseek_dr_entry_announced gauge\n'
        'onprem_deepseek_dr_entry_announced{address="10.0.100.10"} 1\n'
        '# HELP onprem_deepseek_dr_entry_check_ok 1 when the last authenticated completion through this gateway passed.\n'
        '# TYPE onprem_deepseek_dr_entry_check_ok gauge\n'
        'onprem_deepseek_dr_entry_check_ok{address="10.0.100.10"} 1\n'
        '# HELP onprem_deepseek_dr_entry_check_timestamp_seconds When the last check ended.\n'
        '# TYPE onprem_deepseek_dr_entry_check_timestamp_seconds gauge\n'
        'onprem_deepseek_dr_entry_check_timestamp_seconds{address="10.0.100.10"} 5.500\n'
        '# HELP onprem_deepseek_dr_entry_transitions_total Announcements and withdrawals since the check started.\n'
        '# TYPE onprem_deepseek_dr_entry_transitions_total counter\n'
        'onprem_deepseek_dr_entry_transitions_total{address="10.0.100.10"} 1\n')


def test_unknown_and_missing_settings_are_named_together():
    config = dict(CONFIG, extra=1)
    del config["rise"]
    with pytest.raises(DrEntryError) as caught:
        check_config(config)
    assert str(caught.value) == "unknown setting extra; rise is missing"
