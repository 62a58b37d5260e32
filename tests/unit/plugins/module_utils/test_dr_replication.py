"""Audit replication between the sites: the peers of each gateway, the replica file's lines, the lag
(both sides of every bound), the missing-records count, the agent's settings and files, and the RPO
of a fault from the sender's chain and the receiver's replica."""
import importlib.util
import json
import os
from pathlib import Path

import pytest
import yaml

from ansible_collections.onprem.deepseek.plugins.module_utils import _dr_replication_agent as agent
from ansible_collections.onprem.deepseek.plugins.module_utils._dr_report import audit_loss
from ansible_collections.onprem.deepseek.plugins.module_utils._dr_replication import (
    AUDIT_TAG,
    HEARTBEAT_TAG,
    MAX_GAP,
    DrReplicationError,
    SenderView,
    chain_written,
    check_agent_config,
    heartbeat_line,
    lag_seconds,
    metrics_text,
    parse_replica_line,
    record_seq,
    replica_seqs,
    replication_loss,
    replication_peers,
    rfc3339_seconds,
)

ROOT = Path(__file__).resolve().parents[4]
GATEWAYS = [{"name": "gw-b1", "site": "site_b", "address": "10.0.2.21"},
            {"name": "gw-a1", "site": "site_a", "address": "10.0.1.21"},
            {"name": "gw-a2", "site": "site_a", "address": "10.0.1.22"}]
T0 = 1796470000.0


def stamp(seconds):
    """RFC 3339 with microseconds in UTC, as rsyslog's date-rfc3339 writes it."""
    whole = int(seconds)
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + ".%06d+00:00" % round((seconds - whole) * 1e6)


def record(seq, when=None, **extra):
    body = dict(extra, seq=seq, prev="0" * 64, hash="%064x" % seq)
    if when is not None:
        body["time"] = when
    return json.dumps(body, sort_keys=True)


def line(received, sent, tag, body):
    return "%s %s %s %s" % (stamp(received), stamp(sent), tag, body)


# -- peers -----------------------------------------------------------------------------------------

def test_each_gateway_sends_to_and_receives_from_the_other_sites_gateways():
    plan = replication_peers(GATEWAYS, "gw-a1", 2514)
    assert plan["site"] == "site_a" and plan["port"] == 2514
    assert plan["senders"] == [{"name": "gw-b1", "site": "site_b"}]
    assert plan["sender_addresses"] == ["10.0.2.21"]
    assert [(t["name"], t["address"], t["port"]) for t in plan["targets"]] == [("gw-b1", "10.0.2.21", 2514)]
    plan = replication_peers(GATEWAYS, "gw-b1", 2514)
    assert [s["name"] for s in plan["senders"]] == ["gw-a1", "gw-a2"]
    assert plan["sender_addresses"] == ["10.0.1.21", "10.0.1.22"]


def test_queue_names_are_rsyslog_names_and_unique_per_host():
    gateways = [{"name": "a.b", "site": "x", "address": "h1"}, {"name": "a-b", "site": "x", "address": "h2"},
                {"name": "c", "site": "y", "address": "h3"}]
    queues = [t["queue"] for t in replication_peers(gateways, "c")["targets"]]
    assert len(set(queues)) == 2 and all(q.replace("_", "").isalnum() for q in queues)
    assert queues == [t["queue"] for t in replication_peers(gateways, "c")["targets"]]


@pytest.mark.parametrize("port", [1, 65535])
def test_ports_at_the_bounds_are_taken(port):
    assert replication_peers(GATEWAYS, "gw-a1", port)["port"] == port


@pytest.mark.parametrize("port", [0, 65536, True, "2514", None, 2514.0])
def test_other_ports_are_refused_naming_the_variable(port):
    with pytest.raises(DrReplicationError, match="^dr_replication_port: must be a TCP port"):
        replication_peers(GATEWAYS, "gw-a1", port)


@pytest.mark.parametrize("change, message", [
    ({"site": ""}, "^deepseek_site: gateway gw-b1 has no site"),
    ({"site": None}, "^deepseek_site: gateway gw-b1 has no site"),
    ({"site": "site b"}, "^deepseek_site: 'site b' of gateway gw-b1 is not a site name"),
    ({"address": ""}, "^ansible_host: gateway gw-b1 has no address"),
    ({"address": 'x" y'}, "^ansible_host: gateway gw-b1 has no address"),
    ({"name": "gw/b1"}, "^deepseek_gateways: 'gw/b1' is not a host name"),
    ({"name": "gw-a1"}, "^deepseek_gateways: gw-a1 is listed twice"),
])
def test_a_wrong_gateway_is_refused_naming_the_variable(change, message):
    gateways = [dict(GATEWAYS[0], **change)] + GATEWAYS[1:]
    with pytest.raises(DrReplicationError, match=message):
        replication_peers(gateways, "gw-a1")


def test_a_single_site_is_refused():
    with pytest.raises(DrReplicationError, match="^deepseek_site: every gateway is in site_a; replication needs"):
        replication_peers(GATEWAYS[1:], "gw-a1")


@pytest.mark.parametrize("gateways, host, message", [
    (GATEWAYS, "gw-c1", "^deepseek_gateways: gw-c1 is not a gateway"),
    ([], "gw-a1", "^deepseek_gateways: no gateway"),
    ("gw-a1", "gw-a1", "^deepseek_gateways: no gateway"),
])
def test_a_host_that_is_not_a_gateway_is_refused(gateways, host, message):
    with pytest.raises(DrReplicationError, match=message):
        replication_peers(gateways, host)


# -- replica lines ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    ("2026-12-05T11:26:54Z", 1796470014.0),
    ("2026-12-05T11:26:54.639718+00:00", 1796470014.639718),
    ("2026-12-05T13:26:54.5+02:00", 1796470014.5),
    ("2026-12-05T05:56:54-05:30", 1796470014.0),
])
def test_rfc3339_times(text, seconds):
    assert rfc3339_seconds(text) == pytest.approx(seconds, abs=1e-6)


@pytest.mark.parametrize("text", ["2026-12-05 11:26:54Z", "2026-12-05T11:26:54", "", None, 5])
def test_not_rfc3339_times(text):
    with pytest.raises(DrReplicationError, match="not an RFC 3339 time"):
        rfc3339_seconds(text)


def test_a_replica_line_is_received_sent_tag_and_the_chain_line():
    body = record(3, "2026-12-05T11:26:54+00:00")
    parsed = parse_replica_line(line(T0 + 0.004, T0, AUDIT_TAG, body) + "\n")
    assert parsed == {"received": pytest.approx(T0 + 0.004), "sent": pytest.approx(T0), "tag": AUDIT_TAG, "body": body}
    assert parse_replica_line(line(T0, T0, AUDIT_TAG, body).encode())["body"] == body


@pytest.mark.parametrize("text", ["", "one two three", "x %s tag {}" % stamp(T0), "%s y tag {}" % stamp(T0)])
def test_other_lines_are_skipped(text):
    assert parse_replica_line(text) is None


@pytest.mark.parametrize("body, seq", [
    (record(7), 7),
    (record(1), 1),
    (json.dumps({"type": "checkpoint", "seq": 7, "head_hash": "0" * 64}), None),
    (json.dumps({"type": "continuation", "seq": 7, "head_hash": "0" * 64}), None),
    (json.dumps({"seq": 7}), None),
    (json.dumps({"seq": 0, "hash": "x"}), None),
    (json.dumps({"seq": True, "hash": "x"}), None),
    (json.dumps([1]), None),
    ("{not json", None),
])
def test_record_seqs(body, seq):
    assert record_seq(body) == seq


# -- lag -------------------------------------------------------------------------------------------

def view_after(*lines):
    view = SenderView("gw-a1", "site_a")
    for text in lines:
        view.observe(parse_replica_line(text))
    return view


def test_lag_is_the_newest_lines_delivery_while_the_next_is_not_due():
    view = view_after(line(T0 + 0.02, T0, HEARTBEAT_TAG, heartbeat_line(T0).strip()))
    assert lag_seconds(view, T0 + 0.5, 1.0, T0 - 100) == pytest.approx(0.02)
    # Due at T0 + 1: at T0 + 1.02 it is as late as the delivery took, then it grows.
    assert lag_seconds(view, T0 + 1.02, 1.0, T0 - 100) == pytest.approx(0.02)
    assert lag_seconds(view, T0 + 1.05, 1.0, T0 - 100) == pytest.approx(0.05)
    assert lag_seconds(view, T0 + 300, 1.0, T0 - 100) == pytest.approx(299)


def test_the_lag_is_never_negative():
    view = view_after(line(T0 - 0.001, T0, HEARTBEAT_TAG, "{}"))  # the receiver's clock slightly behind
    assert lag_seconds(view, T0, 1.0, T0) == 0.0


def test_with_nothing_received_the_wait_beyond_one_interval_is_the_lag():
    view = SenderView("gw-a1", "site_a")
    assert lag_seconds(view, T0 + 1.0, 1.0, T0) == 0.0
    assert lag_seconds(view, T0 + 1.06, 1.0, T0) == pytest.approx(0.06)


def test_the_alerts_threshold_both_sides():
    """DRReplicationLagHigh fires above 0.05 s: a heartbeat 50 ms late is not above, 51 ms is."""
    view = view_after(line(T0 + 0.001, T0, HEARTBEAT_TAG, "{}"))
    assert lag_seconds(view, T0 + 1.05, 1.0, T0) <= 0.05
    assert lag_seconds(view, T0 + 1.051, 1.0, T0) > 0.05


def test_missing_records_are_counted_until_they_arrive():
    view = view_after(*[line(T0, T0, AUDIT_TAG, record(seq)) for seq in (4, 5, 8, 9)])
    assert view.highest == 9 and view.holes == {6, 7}
    view.observe(parse_replica_line(line(T0, T0, AUDIT_TAG, record(7))))
    view.observe(parse_replica_line(line(T0, T0, AUDIT_TAG, record(9))))  # a resent one
    assert view.holes == {6}
    # Heartbeats, checkpoints and other tags do not count.
    view.observe(parse_replica_line(line(T0, T0, HEARTBEAT_TAG, record(20))))
    view.observe(parse_replica_line(line(T0, T0, AUDIT_TAG, json.dumps({"type": "checkpoint", "seq": 30}))))
    view.observe(None)
    assert view.highest == 9 and view.holes == {6}


def test_a_jump_past_the_largest_gap_starts_the_count_again():
    view = view_after(line(T0, T0, AUDIT_TAG, record(1)), line(T0, T0, AUDIT_TAG, record(1 + MAX_GAP)))
    assert len(view.holes) == MAX_GAP - 1
    view = view_after(line(T0, T0, AUDIT_TAG, record(1)), line(T0, T0, AUDIT_TAG, record(2 + MAX_GAP)))
    assert view.holes == set() and view.highest == 2 + MAX_GAP


def test_metrics_name_each_sender_and_leave_out_what_is_not_known():
    seen = view_after(line(T0 + 0.003, T0, AUDIT_TAG, record(5)), line(T0 + 0.004, T0 + 0.001, AUDIT_TAG, record(7)))
    unseen = SenderView("gw-a2", "site_a")
    text = metrics_text([seen, unseen], T0 + 0.5, 1.0, T0 - 10)
    labels = '{from_site="site_a",from_host="gw-a1"}'
    assert "onprem_deepseek_dr_replication_lag_seconds%s 0.003000\n" % labels in text
    assert 'onprem_deepseek_dr_replication_lag_seconds{from_site="site_a",from_host="gw-a2"} 9.500000\n' in text
    assert "onprem_deepseek_dr_replication_last_record_timestamp_seconds%s %.6f\n" % (labels, T0 + 0.001) in text
    assert "onprem_deepseek_dr_replication_last_seq%s 7\n" % labels in text
    assert "onprem_deepseek_dr_replication_missing_records%s 1\n" % labels in text
    assert text.count("gw-a2") == 1
    assert text.count("# TYPE ") == 4


# -- the agent's settings and files ----------------------------------------------------------------

SETTINGS = {"interval_s": 1, "heartbeat_file": "/var/lib/x/heartbeat.log", "heartbeat_max_bytes": 1048576,
            "replica_dir": "/var/log/x", "senders": [{"name": "gw-b1", "site": "site_b"}],
            "metrics_file": "/var/lib/prometheus/node-exporter/x.prom"}


def test_good_settings_pass():
    assert check_agent_config(SETTINGS)["interval_s"] == 1.0
    assert check_agent_config(dict(SETTINGS, metrics_file="", senders=[]))["metrics_file"] == ""


@pytest.mark.parametrize("change, message", [
    ({"interval_s": 0.1}, None), ({"interval_s": 60}, None),
    ({"interval_s": 0.09}, "interval_s must be a number from 0.1 to 60"),
    ({"interval_s": 60.1}, "interval_s must be a number from 0.1 to 60"),
    ({"interval_s": True}, "interval_s must be a number"),
    ({"heartbeat_max_bytes": 4096}, None),
    ({"heartbeat_max_bytes": 4095}, "heartbeat_max_bytes must be a whole number from 4096"),
    ({"heartbeat_file": "relative"}, "heartbeat_file must be an absolute path"),
    ({"replica_dir": None}, "replica_dir must be an absolute path"),
    ({"metrics_file": "x.prom"}, "metrics_file must be an absolute path or empty"),
    ({"senders": [{"name": "a b", "site": "s"}]}, "senders must be a list of"),
    ({"senders": [{"name": "a", "site": "s", "address": "h"}]}, "senders must be a list of"),
    ({"extra": 1}, "unknown setting extra"),
])
def test_each_setting_is_checked_at_its_bounds(change, message):
    if message is None:
        check_agent_config(dict(SETTINGS, **change))
    else:
        with pytest.raises(DrReplicationError, match=message):
            check_agent_config(dict(SETTINGS, **change))


def test_missing_settings_are_named():
    with pytest.raises(DrReplicationError, match="interval_s is missing; heartbeat_file is missing"):
        check_agent_config({})
    with pytest.raises(DrReplicationError, match="JSON object"):
        check_agent_config([])


def test_the_roles_settings_and_tags_are_the_programs():
    variables = yaml.safe_load((ROOT / "roles" / "dr" / "vars" / "main.yml").read_text())
    assert set(variables["__dr_replication_agent_settings"]) == set(SETTINGS)
    assert variables["__dr_replication_audit_tag"] == AUDIT_TAG
    assert variables["__dr_replication_heartbeat_tag"] == HEARTBEAT_TAG


def test_the_reader_takes_complete_lines_and_follows_a_new_file(tmp_path):
    path = tmp_path / "gw-a1.log"
    view = SenderView("gw-a1", "site_a")
    reader = agent.ReplicaReader(str(path), view)
    reader.poll()  # no file yet
    assert view.sent is None
    first = line(T0 + 0.1, T0, AUDIT_TAG, record(1)) + "\n"
    half = line(T0 + 1.1, T0 + 1, AUDIT_TAG, record(2))
    path.write_text(first + half[:20])
    reader.poll()
    assert view.highest == 1
    with open(path, "a") as handle:
        handle.write(half[20:] + "\n")
    reader.poll()
    assert view.highest == 2 and view.sent == pytest.approx(T0 + 1)
    # logrotate: a new, shorter file is read from its start.
    path.unlink()
    path.write_text(line(T0 + 2.1, T0 + 2, HEARTBEAT_TAG, "{}") + "\n")
    reader.poll()
    assert view.sent == pytest.approx(T0 + 2) and view.highest == 2


def test_a_starting_reader_reads_back_only_the_end_of_a_large_file(tmp_path, monkeypatch):
    monkeypatch.setattr(agent, "BACKLOG_BYTES", 300)
    path = tmp_path / "gw-a1.log"
    path.write_text("".join(line(T0 + seq, T0 + seq, AUDIT_TAG, record(seq)) + "\n" for seq in range(1, 21)))
    view = SenderView("gw-a1", "site_a")
    agent.ReplicaReader(str(path), view).poll()
    assert view.highest == 20 and view.holes == set()


def test_the_heartbeat_file_is_emptied_past_its_size(tmp_path):
    path = tmp_path / "heartbeat.log"
    agent.beat(str(path), 4096, T0)
    agent.beat(str(path), 4096, T0 + 1)
    assert [json.loads(x)["time"] for x in path.read_text().splitlines()] == [T0, T0 + 1]
    path.write_text("x" * 4097)
    agent.beat(str(path), 4096, T0 + 2)
    assert path.read_text() == heartbeat_line(T0 + 2)


def test_serve_beats_reads_and_writes_the_metrics(tmp_path, capsys):
    replica = tmp_path / "replica"
    replica.mkdir()
    (replica / "gw-b1.log").write_text(line(T0 + 0.002, T0, AUDIT_TAG, record(4)) + "\n")
    config = check_agent_config(dict(SETTINGS, heartbeat_file=str(tmp_path / "hb.log"), replica_dir=str(replica),
                                     metrics_file=str(tmp_path / "m" / "x.prom")))
    clock = iter(range(100))
    views = agent.serve(config, passes=2, clock=lambda: next(clock), sleep=lambda s: None, wall=lambda: T0 + 0.5)
    assert views[0].highest == 4
    assert len((tmp_path / "hb.log").read_text().splitlines()) == 2
    # No textfile directory: said once, and the agent goes on.
    assert capsys.readouterr().err.count("metrics:") == 1
    (tmp_path / "m").mkdir()
    agent.serve(config, passes=1, clock=lambda: 0, sleep=lambda s: None, wall=lambda: T0 + 0.5)
    assert 'onprem_deepseek_dr_replication_last_seq{from_site="site_b",from_host="gw-b1"} 4' in \
        (tmp_path / "m" / "x.prom").read_text()


def test_the_command_checks_its_settings(tmp_path, capsys):
    path = tmp_path / "agent.json"
    path.write_text(json.dumps(dict(SETTINGS, interval_s=0)))
    assert agent.main(["check", "--config", str(path)]) == 2
    assert "interval_s must be a number" in capsys.readouterr().err
    path.write_text(json.dumps(SETTINGS))
    assert agent.main(["check", "--config", str(path)]) == 0
    assert agent.main(["check", "--config", str(tmp_path / "absent.json")]) == 2


# -- RPO -------------------------------------------------------------------------------------------

def chain(*entries):
    """Chain lines: (seq, nginx time or None); a checkpoint after seq 2."""
    out = []
    for seq, when in entries:
        out.append(record(seq, when))
        if seq == 2:
            out.append(json.dumps({"type": "checkpoint", "seq": 2, "count": 2, "head_hash": "0" * 64, "time": when}))
    return out


def test_records_written_before_the_fault_count_at_the_fault_not_after():
    lines = chain((1, "2026-12-05T11:26:50+00:00"), (2, "2026-12-05T11:26:54+00:00"), (3, "2026-12-05T11:26:55+00:00"))
    fault = rfc3339_seconds("2026-12-05T11:26:54Z")
    assert chain_written(lines, fault) == [{"seq": 1, "time": fault - 4}, {"seq": 2, "time": fault}]
    assert [r["seq"] for r in chain_written(lines, fault - 0.001)] == [1]


def test_an_untimed_record_counts_with_the_next_timed_one():
    lines = chain((1, "2026-12-05T11:26:50+00:00"), (2, None), (3, "2026-12-05T11:26:51+00:00"), (4, None),
                  (5, "2026-12-05T11:26:59+00:00"))
    fault = rfc3339_seconds("2026-12-05T11:26:52Z")
    assert [(r["seq"], r["time"] is None) for r in chain_written(lines, fault)] == [(1, False), (2, True), (3, False)]
    # Untimed records at the end are taken as written (their time unknown).
    assert [r["seq"] for r in chain_written(lines[:-1], fault)] == [1, 2, 3, 4]


def test_the_loss_is_what_the_replica_lacks_and_the_rpo_the_oldest_lost_records_age():
    fault = T0 + 10
    written = [{"seq": 1, "time": T0}, {"seq": 2, "time": T0 + 4}, {"seq": 3, "time": T0 + 9.5}]
    replica = "\n".join([line(T0 + 0.01, T0, AUDIT_TAG, record(1)), line(T0 + 9, T0 + 9, HEARTBEAT_TAG, "{}"),
                         "garbage", line(T0 + 4.01, T0 + 4, "other-tag", record(2))])
    assert replica_seqs(replica) == [1]
    assert replication_loss(written, replica, fault) == {"records_written": 3, "records_lost": 2, "lost_seqs": [2, 3],
                                                         "rpo_s": 6.0}
    replica += "\n" + line(T0 + 4.01, T0 + 4, AUDIT_TAG, record(2)) + "\n" + line(T0 + 9.6, T0 + 9.5, AUDIT_TAG, record(3))
    assert replication_loss(written, replica, fault)["rpo_s"] == 0
    assert replication_loss([{"seq": 4, "time": None}], replica, fault)["rpo_s"] is None


def test_the_loss_is_the_drill_reports_own_count():
    written = [{"seq": 1, "time": T0}, {"seq": 2, "time": T0 + 1}]
    assert audit_loss(written, [1], T0 + 3) == {"records_written": 2, "records_lost": 1, "lost_seqs": [2], "rpo_s": 2.0}
    with pytest.raises(DrReplicationError, match=r"audit_written\[0\].time: .* is after the fault"):
        replication_loss([{"seq": 1, "time": T0 + 5}], "", T0)


def test_the_role_ships_the_agent_built_from_the_current_module_utils():
    if "MUTANT_UNDER_TEST" in os.environ:
        pytest.skip("under mutmut, plugins/module_utils is not the source the agent is built from")
    path = ROOT / "tools" / "build_keywrap.py"
    if not path.exists():
        pytest.skip("the built collection ships no tools/: checked in the source tree")
    spec = importlib.util.spec_from_file_location("build_keywrap", path)
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    built = ROOT / "roles" / "dr" / "files" / "onprem_deepseek_dr_replication.py"
    target = next(t for t in builder.TARGETS if t.path == built)
    assert built.read_text() == builder.build(target)
