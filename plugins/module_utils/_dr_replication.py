# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Audit replication between the sites: who sends to whom, what the replica files hold, how far
behind they are, and what a lost site took with it.

Every gateway's rsyslog reads its audit chain and sends each line over RELP to every gateway of
the other sites (``replication_peers``), with the sender's own time of the line (when its rsyslog
read it, microseconds) and its tag. The receiver writes one replica file per sending host, a line
``RECEIVED SENT TAG JSON``: both times RFC 3339, the receiver's clock first (``parse_replica_line``).

Records only come with traffic, so each sender also writes a heartbeat every ``interval_s``
through the same queue. The lag of a sender (``lag_seconds``) is then the larger of how long the
newest line took to arrive (received - sent) and how long the next one is overdue (now - sent of
the newest - interval_s): a lower bound on how far behind the replica is, which an idle sender
does not raise and a cut link raises by a second every second. Times of two hosts are compared:
the sites' clocks must be synchronised (the baseline role runs chrony).

``replication_loss`` gives, for a drill, the records written before a fault that the other site
does not hold, in the shape ``_dr_report.audit_loss`` computes them. Standard library only: the
replication agent runs this file on the gateway hosts.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re

from ansible_collections.onprem.deepseek.plugins.module_utils._dr_report import audit_loss

DEFAULT_PORT = 2514
AUDIT_TAG = "onprem-deepseek-audit"
HEARTBEAT_TAG = "onprem-deepseek-heartbeat"
# Lines of the chain that are not records (the chain's own checkpoints, continuations and heads).
CHAIN_TYPES = ("checkpoint", "continuation", "head")
# A jump of seqs larger than this starts the count of missing records again (bounded memory).
MAX_GAP = 100000
_HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_SITE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_RFC3339 = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d{1,9})?(Z|[+-]\d\d:\d\d)\Z")
_AGENT_SETTINGS = ("interval_s", "heartbeat_file", "heartbeat_max_bytes", "replica_dir", "senders", "metrics_file")


class DrReplicationError(ValueError):
    pass


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _queue_name(name):
    """An rsyslog object name for the action towards ``name``, unique per host name."""
    return "dr_to_%s_%s" % (re.sub(r"[^A-Za-z0-9]", "_", name), hashlib.sha256(name.encode()).hexdigest()[:8])


def replication_peers(gateways, host, port=DEFAULT_PORT):
    """This gateway's part of the replication: the gateways of the other sites, which it sends its
    audit to (``targets``: name, site, address, port and the rsyslog queue's name) and receives
    theirs from (``senders``: name and site; ``sender_addresses`` for the firewall).

    ``gateways``: every gateway, each ``{name, site, address}`` (inventory name, deepseek_site,
    ansible_host). Every error names the variable.
    """
    if not _is_int(port) or not 1 <= port <= 65535:
        raise DrReplicationError("dr_replication_port: must be a TCP port (1 to 65535), got %r" % (port,))
    if not isinstance(gateways, list) or not gateways:
        raise DrReplicationError("deepseek_gateways: no gateway to replicate between")
    seen = {}
    for gateway in gateways:
        name = gateway.get("name") if isinstance(gateway, dict) else None
        if not isinstance(name, str) or not _HOST_RE.match(name):
            raise DrReplicationError("deepseek_gateways: %r is not a host name the replica files can be named after "
                                     "(letters, digits, '.', '_', '-')" % (name,))
        if name in seen:
            raise DrReplicationError("deepseek_gateways: %s is listed twice" % name)
        site = gateway.get("site")
        if not isinstance(site, str) or not site:
            raise DrReplicationError("deepseek_site: gateway %s has no site" % name)
        if not _SITE_RE.match(site):
            raise DrReplicationError("deepseek_site: %r of gateway %s is not a site name (letters, digits, '.', '_', "
                                     "'-')" % (site, name))
        address = gateway.get("address")
        if not isinstance(address, str) or not address or any(c.isspace() or c in "\"'\\" for c in address):
            raise DrReplicationError("ansible_host: gateway %s has no address to send to (got %r)" % (name, address))
        seen[name] = {"name": name, "site": site, "address": address}
    if host not in seen:
        raise DrReplicationError("deepseek_gateways: %s is not a gateway" % (host,))
    sites = sorted({gateway["site"] for gateway in seen.values()})
    if len(sites) < 2:
        raise DrReplicationError("deepseek_site: every gateway is in %s; replication needs a gateway in another site"
                                 % sites[0])
    mine = seen[host]["site"]
    others = [seen[name] for name in sorted(seen) if seen[name]["site"] != mine]
    return {
        "site": mine,
        "port": port,
        "senders": [{"name": peer["name"], "site": peer["site"]} for peer in others],
        # The addresses the receiving port admits (the same gateways send and receive).
        "sender_addresses": sorted({peer["address"] for peer in others}),
        "targets": [dict(peer, port=port, queue=_queue_name(peer["name"])) for peer in others],
    }


def rfc3339_seconds(text):
    """Seconds since the epoch of an RFC 3339 time (rsyslog's date-rfc3339, nginx's time_iso8601)."""
    match = _RFC3339.match(text) if isinstance(text, str) else None
    if not match:
        raise DrReplicationError("not an RFC 3339 time: %r" % (text,))
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) + float(match.group(7) or 0)
    zone = match.group(8)
    if zone != "Z":
        offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        seconds -= offset if zone[0] == "+" else -offset
    return seconds


def parse_replica_line(line):
    """``{received, sent, tag, body}`` of a replica line, or None when it is not one (a line cut
    off, a foreign line): the reader skips it."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    parts = line.rstrip("\n").split(" ", 3)
    if len(parts) != 4:
        return None
    try:
        received, sent = rfc3339_seconds(parts[0]), rfc3339_seconds(parts[1])
    except DrReplicationError:
        return None
    return {"received": received, "sent": sent, "tag": parts[2], "body": parts[3]}


def record_seq(body):
    """The seq of an audit record line of the chain; None for a checkpoint, continuation, head, or not a record."""
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    if not isinstance(obj, dict) or obj.get("type") in CHAIN_TYPES or "hash" not in obj:
        return None
    seq = obj.get("seq")
    return seq if _is_int(seq) and seq >= 1 else None


class SenderView:
    """What the receiver holds of one sender: the newest line, the newest audit record, and the
    seqs missing between the first record it saw and the newest (``holes``)."""

    def __init__(self, name, site):
        self.name, self.site = name, site
        self.sent = self.received = None
        self.record_sent = None
        self.highest, self.holes = None, set()

    def observe(self, parsed):
        if parsed is None:
            return
        self.sent, self.received = parsed["sent"], parsed["received"]
        if parsed["tag"] != AUDIT_TAG:
            return
        seq = record_seq(parsed["body"])
        if seq is None:
            return
        self.record_sent = parsed["sent"]
        if self.highest is None or seq - self.highest > MAX_GAP:
            # The first record seen, or a jump too far to be lost records (another chain).
            self.highest, self.holes = seq, set()
        elif seq > self.highest:
            self.holes.update(range(self.highest + 1, seq))
            self.highest = seq
        else:
            # A late or repeated record (RELP resends after a reconnect; a chain started again from 1
            # is not told apart: its gaps below the old newest are not counted).
            self.holes.discard(seq)


def lag_seconds(view, now, interval_s, waiting_since):
    """How far behind the replica of ``view``'s sender is, at least (see the module's documentation).
    With nothing received yet, how long the receiver has waited beyond one interval."""
    if view.sent is None:
        return max(0.0, now - waiting_since - interval_s)
    return max(0.0, view.received - view.sent, now - view.sent - interval_s)


def metrics_text(views, now, interval_s, waiting_since):
    """The node exporter textfile of the receiving host, one series per sender."""
    def labels(view):
        return '{from_site="%s",from_host="%s"}' % (view.site, view.name)

    out = ["# HELP onprem_deepseek_dr_replication_lag_seconds How far behind the replica of the sender's audit is, "
           "at least: the newest line's delivery time or how long the next is overdue.",
           "# TYPE onprem_deepseek_dr_replication_lag_seconds gauge"]
    out += ["onprem_deepseek_dr_replication_lag_seconds%s %.6f" % (labels(v), lag_seconds(v, now, interval_s, waiting_since))
            for v in views]
    out += ["# HELP onprem_deepseek_dr_replication_last_record_timestamp_seconds When the sender read the newest "
            "audit record held here (sender's clock).",
            "# TYPE onprem_deepseek_dr_replication_last_record_timestamp_seconds gauge"]
    out += ["onprem_deepseek_dr_replication_last_record_timestamp_seconds%s %.6f" % (labels(v), v.record_sent)
            for v in views if v.record_sent is not None]
    out += ["# HELP onprem_deepseek_dr_replication_last_seq The highest sequence number of the audit records held here.",
            "# TYPE onprem_deepseek_dr_replication_last_seq gauge"]
    out += ["onprem_deepseek_dr_replication_last_seq%s %d" % (labels(v), v.highest)
            for v in views if v.highest is not None]
    out += ["# HELP onprem_deepseek_dr_replication_missing_records Audit records missing here between the first and "
            "the newest seen.",
            "# TYPE onprem_deepseek_dr_replication_missing_records gauge"]
    out += ["onprem_deepseek_dr_replication_missing_records%s %d" % (labels(v), len(v.holes))
            for v in views if v.highest is not None]
    return "\n".join(out) + "\n"


def heartbeat_line(now):
    return json.dumps({"type": "heartbeat", "time": round(now, 6)}, sort_keys=True) + "\n"


def check_agent_config(config):
    """The replication agent's settings, or an error naming each wrong one."""
    if not isinstance(config, dict):
        raise DrReplicationError("the settings must be a JSON object")
    problems = ["unknown setting %s" % key for key in sorted(set(config) - set(_AGENT_SETTINGS))]
    problems += ["%s is missing" % key for key in _AGENT_SETTINGS if key not in config]
    if problems:
        raise DrReplicationError("; ".join(problems))
    value = config["interval_s"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.1 <= value <= 60:
        problems.append("interval_s must be a number from 0.1 to 60, got %r" % (value,))
    for key in ("heartbeat_file", "replica_dir"):
        if not isinstance(config[key], str) or not config[key].startswith("/"):
            problems.append("%s must be an absolute path, got %r" % (key, config[key]))
    if not isinstance(config["metrics_file"], str) or (config["metrics_file"] and not config["metrics_file"].startswith("/")):
        problems.append("metrics_file must be an absolute path or empty, got %r" % (config["metrics_file"],))
    if not _is_int(config["heartbeat_max_bytes"]) or config["heartbeat_max_bytes"] < 4096:
        problems.append("heartbeat_max_bytes must be a whole number from 4096, got %r" % (config["heartbeat_max_bytes"],))
    senders = config["senders"]
    if not isinstance(senders, list) or not all(
            isinstance(s, dict) and set(s) == {"name", "site"} and isinstance(s["name"], str) and _HOST_RE.match(s["name"])
            and isinstance(s["site"], str) and _SITE_RE.match(s["site"]) for s in senders):
        problems.append("senders must be a list of {name, site} (host and site names), got %r" % (senders,))
    if problems:
        raise DrReplicationError("; ".join(problems))
    return dict(config, interval_s=float(config["interval_s"]))


def replica_seqs(replica_text, tag=AUDIT_TAG):
    """The audit record seqs a replica file holds, ascending, each once."""
    seqs = set()
    for line in replica_text.splitlines():
        parsed = parse_replica_line(line)
        if parsed is not None and parsed["tag"] == tag:
            seq = record_seq(parsed["body"])
            if seq is not None:
                seqs.add(seq)
    return sorted(seqs)


def chain_written(chain_lines, fault_time):
    """``[{seq, time}]`` of the chain's records written at or before ``fault_time`` (nginx's
    ``time``). A record without one (an unparsed line) goes with the next record that has one, with
    None as its time; after the last timed record it counts as written."""
    written, untimed = [], []
    for line in chain_lines:
        seq = record_seq(line)
        if seq is None:
            continue
        obj = json.loads(line)
        try:
            when = rfc3339_seconds(obj.get("time"))
        except DrReplicationError:
            untimed.append({"seq": seq, "time": None})
            continue
        if when > fault_time:
            return written
        written.extend(untimed)
        untimed = []
        written.append({"seq": seq, "time": when})
    return written + untimed


def replication_loss(written, replica_text, fault_time):
    """``{records_written, records_lost, lost_seqs, rpo_s}``: the records of ``written`` (``[{seq,
    time}]`` before the fault) absent from the replica file, as the drill report counts them."""
    try:
        return audit_loss(written, replica_seqs(replica_text), fault_time)
    except ValueError as exc:
        raise DrReplicationError(str(exc))
