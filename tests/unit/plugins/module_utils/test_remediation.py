"""The guard rails of the automatic engine restart on HostMemoryHigh: which alerts act, the cooldown,
the hourly maximum, a restart in progress, and the settings."""
import json

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils._remediation import (
    HOUR,
    RemediationError,
    audit_line,
    check_config,
    command_for,
    decide,
    load_state,
    parse_webhook,
    prune,
    refusal,
    save_state,
    subject_of,
)

CONFIG = {
    "alertname": "HostMemoryHigh", "target_label": "instance",
    "targets": {"10.0.0.1:9100": "node1", "10.0.0.2:9100": "node2", "10.0.0.3:9100": "node3"},
    "cooldown_s": 1800, "max_per_hour": 2, "command_timeout_s": 900,
    "command": ["ansible-playbook", "-e", "rolling_update_hosts={node}", "rolling_update.yml"],
    "allowed_subjects": ["CN=alertmanager,O=onprem.deepseek"],
    "listen_host": "10.0.0.9", "listen_port": 9443, "cert_file": "/c.pem", "key_file": "/k.pem", "ca_file": "/ca.pem",
    "state_file": "/var/lib/r/state.json", "audit_file": "/var/log/r/audit.log",
}


def alert(instance, status="firing", name="HostMemoryHigh", **labels):
    return {"status": status, "labels": dict(labels, alertname=name, instance=instance), "startsAt": "T0"}


def webhook(*alerts, version="4"):
    return json.dumps({"version": version, "status": "firing", "alerts": list(alerts)}).encode()


NOW = 100000.0


def test_a_firing_alert_for_a_known_instance_restarts_its_node_and_is_recorded():
    decisions, state = decide([alert("10.0.0.1:9100")], CONFIG, {"actions": []}, NOW)
    assert decisions == [{"node": "node1", "instance": "10.0.0.1:9100", "alertname": "HostMemoryHigh",
                          "action": "restart", "reason": "firing since T0"}]
    assert state == {"actions": [{"node": "node1", "at": NOW}]}


def test_resolved_alerts_and_other_alerts_ask_for_nothing():
    alerts = [alert("10.0.0.1:9100", status="resolved"), alert("10.0.0.2:9100", name="GPUTemperatureHigh")]
    assert decide(alerts, CONFIG, {"actions": []}, NOW) == ([], {"actions": []})


def test_an_unknown_instance_is_refused_once_and_named():
    decisions, state = decide([alert("10.9.9.9:9100"), alert("10.9.9.9:9100")], CONFIG, {"actions": []}, NOW)
    assert decisions == [{"node": "", "instance": "10.9.9.9:9100", "alertname": "HostMemoryHigh", "action": "refused",
                          "reason": "no node is known for instance='10.9.9.9:9100'"}]
    assert state == {"actions": []}


def test_an_alert_without_the_label_is_refused():
    decisions, _state = decide([{"status": "firing", "labels": {"alertname": "HostMemoryHigh"}}], CONFIG, {"actions": []}, NOW)
    assert [d["reason"] for d in decisions] == ["no node is known for instance=''"]


def test_two_alerts_for_one_node_restart_it_once():
    decisions, state = decide([alert("10.0.0.1:9100", job="a"), alert("10.0.0.1:9100", job="b")], CONFIG,
                              {"actions": []}, NOW)
    assert [d["action"] for d in decisions] == ["restart"]
    assert len(state["actions"]) == 1


@pytest.mark.parametrize("ago, action", [(1799, "refused"), (1800, "restart"), (1801, "restart"), (0, "refused")])
def test_the_cooldown_on_both_sides_of_its_boundary(ago, action):
    decisions, _state = decide([alert("10.0.0.1:9100")], CONFIG, {"actions": [{"node": "node1", "at": NOW - ago}]}, NOW)
    assert decisions[0]["action"] == action


def test_the_cooldown_is_per_node_and_says_when():
    state = {"actions": [{"node": "node1", "at": NOW - 10}]}
    decisions, _state = decide([alert("10.0.0.1:9100"), alert("10.0.0.2:9100")], CONFIG, state, NOW)
    assert [(d["node"], d["action"]) for d in decisions] == [("node1", "refused"), ("node2", "restart")]
    assert decisions[0]["reason"] == "cooldown: node1 was restarted 10 s ago, less than 1800 s"


def test_the_cooldown_counts_from_the_last_restart():
    state = {"actions": [{"node": "node1", "at": NOW - 5000}, {"node": "node1", "at": NOW - 100}]}
    assert refusal("node1", CONFIG, prune(state, NOW), NOW).startswith("cooldown: node1 was restarted 100 s ago")


@pytest.mark.parametrize("count, action", [(1, "restart"), (2, "refused"), (3, "refused"), (0, "restart")])
def test_the_hourly_maximum_on_both_sides_of_its_boundary(count, action):
    state = {"actions": [{"node": "node3", "at": NOW - 3000 - i} for i in range(count)]}
    config = dict(CONFIG, cooldown_s=0)
    decisions, _state = decide([alert("10.0.0.1:9100")], config, state, NOW)
    assert decisions[0]["action"] == action
    if action == "refused":
        assert decisions[0]["reason"] == "hourly maximum: %d restart(s) in the last hour, at most 2" % count


@pytest.mark.parametrize("age, action", [(HOUR - 1, "refused"), (HOUR, "restart"), (HOUR + 1, "restart")])
def test_a_restart_leaves_the_hour_after_exactly_an_hour(age, action):
    state = {"actions": [{"node": "node2", "at": NOW - 10}, {"node": "node3", "at": NOW - age}]}
    decisions, _state = decide([alert("10.0.0.1:9100")], CONFIG, state, NOW)
    assert decisions[0]["action"] == action


def test_restarts_of_one_webhook_count_towards_the_maximum():
    alerts = [alert("10.0.0.1:9100"), alert("10.0.0.2:9100"), alert("10.0.0.3:9100")]
    decisions, state = decide(alerts, CONFIG, {"actions": []}, NOW)
    assert [d["action"] for d in decisions] == ["restart", "restart", "refused"]
    assert [a["node"] for a in state["actions"]] == ["node1", "node2"]


def test_a_node_whose_restart_is_queued_or_running_is_refused():
    decisions, state = decide([alert("10.0.0.1:9100")], CONFIG, {"actions": []}, NOW, busy={"node1"})
    assert decisions[0]["reason"] == "a restart of node1 is already queued or running"
    assert state == {"actions": []}


def test_prune_keeps_the_last_hour_and_each_nodes_last_restart():
    state = {"actions": [{"node": "a", "at": NOW - 9000}, {"node": "a", "at": NOW - 8000},
                         {"node": "b", "at": NOW - 100}, {"node": "b", "at": NOW - HOUR - 1}, {"bad": 1}]}
    assert prune(state, NOW) == {"actions": [{"node": "a", "at": NOW - 8000}, {"node": "b", "at": NOW - 100}]}
    assert prune({}, NOW) == {"actions": []}


@pytest.mark.parametrize("raw, message", [
    (b"{", "the body is not JSON"),
    (None, "the body is not JSON"),
    (webhook(version="3"), "not an Alertmanager webhook of version 4"),
    (b"[]", "not an Alertmanager webhook of version 4"),
    (b'{"version": "4"}', "the webhook has no list of alerts"),
    (json.dumps({"version": "4", "alerts": [{"status": "pending", "labels": {}}]}).encode(), "status firing or resolved"),
    (json.dumps({"version": "4", "alerts": [{"status": "firing", "labels": []}]}).encode(), "and labels"),
    (json.dumps({"version": "4", "alerts": ["x"]}).encode(), "an alert must have"),
])
def test_a_body_that_is_not_a_webhook_is_refused(raw, message):
    with pytest.raises(RemediationError, match=message):
        parse_webhook(raw)


def test_a_webhook_gives_its_alerts():
    assert parse_webhook(webhook(alert("a"))) == [alert("a")]


def test_the_settings_pass_as_given():
    assert check_config(dict(CONFIG)) == CONFIG


@pytest.mark.parametrize("change, message", [
    ({"alertname": ""}, "alertname must be an alert name"),
    ({"target_label": None}, "target_label must be a label name"),
    ({"targets": {"a": "bad name!"}}, "targets must map label values to node names"),
    ({"targets": []}, "targets must map"),
    ({"cooldown_s": -1}, "cooldown_s must be an integer >= 0, not -1"),
    ({"cooldown_s": True}, "cooldown_s must be an integer >= 0, not True"),
    ({"max_per_hour": 0}, "max_per_hour must be an integer >= 1, not 0"),
    ({"command_timeout_s": "9"}, "command_timeout_s must be an integer >= 1, not '9'"),
    ({"command": ["ansible-playbook", "x.yml"]}, "command must be a list of arguments, one of them holding {node}"),
    ({"command": "ansible-playbook {node}"}, "command must be a list"),
    ({"command": []}, "command must be a list"),
    ({"allowed_subjects": []}, "allowed_subjects must list at least one client certificate subject"),
    ({"allowed_subjects": [""]}, "allowed_subjects must list"),
    ({"listen_host": ""}, "listen_host must be an address"),
    ({"listen_port": 0}, "listen_port must be a port number, not 0"),
    ({"listen_port": 65536}, "listen_port must be a port number, not 65536"),
    ({"listen_port": True}, "listen_port must be a port number"),
    ({"state_file": "state.json"}, "state_file must be an absolute path, not 'state.json'"),
    ({"ca_file": None}, "ca_file must be an absolute path, not None"),
])
def test_each_bad_setting_is_named(change, message):
    with pytest.raises(RemediationError) as err:
        check_config(dict(CONFIG, **change))
    assert message in str(err.value)


@pytest.mark.parametrize("value", [0, 1800])
def test_a_cooldown_of_zero_and_the_edges_of_the_ports_pass(value):
    assert check_config(dict(CONFIG, cooldown_s=value, listen_port=1, max_per_hour=1, command_timeout_s=1))
    assert check_config(dict(CONFIG, listen_port=65535))


def test_every_problem_is_reported_at_once():
    with pytest.raises(RemediationError) as err:
        check_config({})
    assert str(err.value).count(";") >= 10


def test_the_command_names_the_node_in_its_arguments_only():
    assert command_for(CONFIG["command"], "node1") == [
        "ansible-playbook", "-e", "rolling_update_hosts=node1", "rolling_update.yml"]


@pytest.mark.parametrize("node", ["a b", "-e", "x;rm", "", None, "a" * 254])
def test_a_node_name_that_is_not_a_host_name_is_refused(node):
    with pytest.raises(RemediationError, match="is not a host name"):
        command_for(CONFIG["command"], node)


def test_a_subject_reads_as_nginx_prints_it():
    peer = ((("organizationName", "onprem.deepseek"),), (("commonName", "alertmanager"),))
    assert subject_of(peer) == "CN=alertmanager,O=onprem.deepseek"
    assert subject_of(((("commonName", "a"), ("serialNumber", "7")),)) == "CN=a+serialNumber=7"
    assert subject_of(None) == ""


def test_the_state_is_saved_whole_and_read_back(tmp_path):
    path = tmp_path / "state.json"
    assert load_state(str(path)) == {"actions": []}
    save_state(str(path), {"actions": [{"node": "n", "at": 1.0}]})
    assert load_state(str(path)) == {"actions": [{"node": "n", "at": 1.0}]}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


@pytest.mark.parametrize("text", ["{", "[]", '{"actions": 3}'])
def test_a_state_file_that_is_not_the_receivers_is_refused(tmp_path, text):
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(RemediationError, match="is not the receiver's state"):
        load_state(str(path))


def test_a_failed_save_leaves_the_old_state_and_no_temporary_file(tmp_path):
    path = tmp_path / "state.json"
    save_state(str(path), {"actions": []})
    with pytest.raises(TypeError):
        save_state(str(path), {"actions": [object()]})
    assert load_state(str(path)) == {"actions": []}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_an_audit_line_is_one_sorted_json_line():
    assert audit_line({"b": 1, "a": "x"}) == '{"a":"x","b":1}\n'


# --- Cases from the mutation run: whole messages, loop exits, boundaries, the state file. ---------

@pytest.mark.parametrize("raw, message", [
    (webhook(version="3"), "not an Alertmanager webhook of version 4"),
    (b'{"version": "4"}', "the webhook has no list of alerts"),
    (json.dumps({"version": "4", "alerts": ["x"]}).encode(), "an alert must have status firing or resolved and labels: 'x'"),
])
def test_webhook_messages_whole(raw, message):
    with pytest.raises(RemediationError) as err:
        parse_webhook(raw)
    assert str(err.value) == message


def test_the_json_message_names_the_parse_error():
    with pytest.raises(RemediationError) as err:
        parse_webhook(b"{")
    assert str(err.value).startswith("the body is not JSON: Expecting property name")
    assert str(err.value).endswith("(char 1)")


def test_a_resolved_alert_is_a_valid_alert():
    assert parse_webhook(webhook(alert("a", status="resolved")))[0]["status"] == "resolved"


def test_every_bad_setting_at_once_word_for_word():
    with pytest.raises(RemediationError) as err:
        check_config({})
    assert str(err.value).split("; ") == [
        "alertname must be an alert name", "target_label must be a label name",
        "targets must map label values to node names",
        "cooldown_s must be an integer >= 0, not None", "max_per_hour must be an integer >= 1, not None",
        "command_timeout_s must be an integer >= 1, not None",
        "command must be a list of arguments, one of them holding {node}",
        "listen_host must be an address", "listen_port must be a port number, not None",
        "cert_file must be an absolute path, not None", "key_file must be an absolute path, not None",
        "ca_file must be an absolute path, not None", "state_file must be an absolute path, not None",
        "audit_file must be an absolute path, not None",
        "allowed_subjects must list at least one client certificate subject"]


@pytest.mark.parametrize("change", [
    {"target_label": ""}, {"target_label": 7},
    {"command": ["{node}", 3]}, {"command": [3]},
])
def test_an_empty_label_and_a_command_with_a_non_string_are_refused(change):
    with pytest.raises(RemediationError):
        check_config(dict(CONFIG, **change))


def test_the_node_name_message_whole():
    with pytest.raises(RemediationError) as err:
        command_for(CONFIG["command"], "a b")
    assert str(err.value) == "node name 'a b' is not a host name"


def test_the_state_message_whole(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("[]")
    with pytest.raises(RemediationError) as err:
        load_state(str(path))
    assert str(err.value) == "%s is not the receiver's state" % path
    path.write_text("{")
    with pytest.raises(RemediationError) as err:
        load_state(str(path))
    assert str(err.value).startswith("%s is not the receiver's state: Expecting property name" % path)


@pytest.mark.parametrize("peer, subject", [
    ((("organizationalUnitName", "ops"),), "OU=ops"),
    ((("countryName", "CN"),), "C=CN"),
    ((("localityName", "Shanghai"),), "L=Shanghai"),
    ((("stateOrProvinceName", "SH"),), "ST=SH"),
    ((("domainComponent", "bank"),), "DC=bank"),
    ((("emailAddress", "a@b"),), "emailAddress=a@b"),
])
def test_each_short_attribute_name(peer, subject):
    assert subject_of((peer,)) == subject


def test_prune_drops_entries_without_a_node_or_a_time():
    assert prune({"actions": [{"at": NOW}, {"node": "a"}, {"node": "b", "at": NOW}]}, NOW) == {
        "actions": [{"node": "b", "at": NOW}]}


def test_prune_of_two_restarts_at_the_same_time_keeps_the_later_recorded():
    old = NOW - 2 * HOUR
    state = {"actions": [{"node": "a", "at": old, "n": 1}, {"node": "a", "at": old, "n": 2}]}
    assert prune(state, NOW) == {"actions": [{"node": "a", "at": old, "n": 2}]}


def test_prune_drops_a_restart_exactly_an_hour_old_unless_it_is_the_nodes_last():
    state = {"actions": [{"node": "a", "at": NOW - HOUR}, {"node": "a", "at": NOW - 10}]}
    assert prune(state, NOW) == {"actions": [{"node": "a", "at": NOW - 10}]}


def test_an_alert_after_a_resolved_one_and_after_a_duplicate_still_counts():
    alerts = [alert("10.0.0.1:9100", status="resolved"), alert("10.0.0.1:9100"), alert("10.0.0.1:9100"),
              alert("10.0.0.2:9100")]
    decisions, _state = decide(alerts, CONFIG, {"actions": []}, NOW)
    assert [d["node"] for d in decisions] == ["node1", "node2"]


def test_two_unknown_instances_are_two_refusals():
    decisions, _state = decide([alert("10.9.9.8:9100"), alert("10.9.9.9:9100")], CONFIG, {"actions": []}, NOW)
    assert [d["instance"] for d in decisions] == ["10.9.9.8:9100", "10.9.9.9:9100"]


def test_an_alert_without_a_start_says_so():
    firing = {"status": "firing", "labels": {"alertname": "HostMemoryHigh", "instance": "10.0.0.1:9100"}}
    decisions, _state = decide([firing], CONFIG, {"actions": []}, NOW)
    assert decisions[0]["reason"] == "firing since ?"


def test_the_state_file_is_sorted_json_and_its_temporary_file_sits_beside_it(tmp_path, monkeypatch):
    import tempfile as _tempfile
    made = []
    real = _tempfile.mkstemp

    def spy(**kwargs):
        made.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(_tempfile, "mkstemp", spy)
    path = tmp_path / "state.json"
    save_state(str(path), {"b": 1, "actions": []})
    assert path.read_text() == '{"actions": [], "b": 1}'
    assert made == [{"dir": str(tmp_path), "prefix": ".state."}]


def test_a_state_path_without_a_directory_is_written_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_state("state.json", {"actions": []})
    assert (tmp_path / "state.json").read_text() == '{"actions": []}'


def test_the_monitoring_role_ships_the_receiver_built_from_the_current_module_utils():
    import importlib.util
    import os
    from pathlib import Path
    if "MUTANT_UNDER_TEST" in os.environ:
        # ./dev mutate: mutmut's copies of module_utils carry its trampolines, never the shipped code.
        pytest.skip("under mutmut, plugins/module_utils is not the source the receiver is built from")
    root = Path(__file__).resolve().parents[4]
    if not (root / "tools" / "build_keywrap.py").exists():
        pytest.skip("the built collection ships no tools/: checked in the source tree")
    spec = importlib.util.spec_from_file_location("build_keywrap", root / "tools" / "build_keywrap.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    built = root / "roles" / "remediation" / "files" / "onprem_deepseek_remediation.py"
    target = next(t for t in builder.TARGETS if t.path == built)
    assert built.read_text() == builder.build(target)
