# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Built by tools/build_keywrap.py from plugins/module_utils/{_textfile.py,_dr_report.py,_dr_replication.py,_dr_replication_agent.py}:
# edit those, then run it.
"""onprem-deepseek-dr-replication: the audit replication's heartbeat and lag metrics on a gateway.

    python3 onprem_deepseek_dr_replication.py {serve,check} --config FILE
"""

from __future__ import annotations

# ---- _textfile.py

import json
import os
import tempfile


def write_atomically(path, text):
    """Readers see the old file or the new one, never a part. An empty path writes nothing."""
    if not path:
        return
    directory = os.path.dirname(path)
    handle, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def load_checked_json(path, check, error):
    """The JSON settings file ``path`` as ``check`` returns it; a fault is raised as ``error``
    (the exception class ``check`` raises) with the file's name in front."""
    try:
        with open(path) as handle:
            config = json.load(handle)
    except (OSError, ValueError) as exc:
        raise error("%s: %s" % (path, exc))
    try:
        return check(config)
    except error as exc:
        raise error("%s: %s" % (path, exc))


# ---- _dr_report.py

DEFAULT_STABLE_SUCCESSES = 5
SAMPLE_FIELDS = ("start", "end", "ok", "site", "streamed")


class DrReportError(ValueError):
    pass


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _seconds(value):
    return None if value is None else round(value, 3)


def _time(value, where):
    if not _is_number(value):
        raise DrReportError("%s: must be a time in seconds (a number), not %r" % (where, value))
    return value


def _check_samples(samples):
    if not isinstance(samples, list):
        raise DrReportError("samples: must be a list of requests, not %r" % (samples,))
    checked = []
    for i, sample in enumerate(samples):
        where = "samples[%d]" % i
        if not isinstance(sample, dict):
            raise DrReportError("%s: must be a dict with %s, not %r" % (where, ", ".join(SAMPLE_FIELDS), sample))
        missing = [name for name in SAMPLE_FIELDS if name not in sample]
        unknown = sorted(set(sample) - set(SAMPLE_FIELDS), key=str)
        if missing or unknown:
            raise DrReportError("%s: %s" % (where, "; ".join(
                (["missing " + ", ".join(missing)] if missing else [])
                + (["unknown %s (known: %s)" % (", ".join(map(str, unknown)), ", ".join(SAMPLE_FIELDS))] if unknown else []))))
        start = _time(sample["start"], where + ".start")
        if _time(sample["end"], where + ".end") < start:
            raise DrReportError("%s.end: %r is before its start %r" % (where, sample["end"], start))
        for name in ("ok", "streamed"):
            if not isinstance(sample[name], bool):
                raise DrReportError("%s.%s: must be true or false, not %r" % (where, name, sample[name]))
        site = sample["site"]
        if site is not None and (not isinstance(site, str) or not site):
            raise DrReportError("%s.site: must be the site that answered or null, not %r" % (where, site))
        if sample["ok"] and site is None:
            raise DrReportError("%s.site: a successful request names the site that answered it" % where)
        checked.append((start, sample["end"], i, sample))
    # Start order; ties by end, then by the order recorded.
    return [entry[3] for entry in sorted(checked, key=lambda entry: entry[:3])]


def _check_records(written, present, fault_time):
    if not isinstance(written, list):
        raise DrReportError("audit_written: must be a list of {seq, time}, not %r" % (written,))
    times = {}
    for i, record in enumerate(written):
        where = "audit_written[%d]" % i
        if not isinstance(record, dict) or "seq" not in record or set(record) - {"seq", "time"}:
            raise DrReportError("%s: must be a dict with seq and optionally time, not %r" % (where, record))
        seq = record["seq"]
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise DrReportError("%s.seq: must be a sequence number (an integer, 0 or more), not %r" % (where, seq))
        if seq in times:
            raise DrReportError("%s.seq: %d is listed twice" % (where, seq))
        time = record.get("time")
        if time is not None and _time(time, where + ".time") > fault_time:
            raise DrReportError("%s.time: %r is after the fault (%r): only records written before it count"
                                % (where, time, fault_time))
        times[seq] = time
    if not isinstance(present, list):
        raise DrReportError("audit_present: must be a list of sequence numbers, not %r" % (present,))
    for i, seq in enumerate(present):
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise DrReportError("audit_present[%d]: must be a sequence number (an integer, 0 or more), not %r" % (i, seq))
    return times, set(present)


def audit_loss(audit_written, audit_present, fault_time):
    """The RPO figures alone: ``records_written``, ``records_lost``, ``lost_seqs`` and ``rpo_s`` (see
    the module's documentation); the replication's own measure uses it too."""
    _time(fault_time, "fault_time")
    times, present = _check_records(audit_written, audit_present, fault_time)
    lost = sorted(seq for seq in times if seq not in present)
    lost_times = [times[seq] for seq in lost]
    if not lost:
        rpo = 0
    elif any(time is None for time in lost_times):
        rpo = None
    else:
        rpo = fault_time - min(lost_times)
    return {"records_written": len(times), "records_lost": len(lost), "lost_seqs": lost, "rpo_s": _seconds(rpo)}


def _recovery(after, stable_successes):
    """The first success that begins a run of stable_successes successes, or None."""
    run = 0
    for index, sample in enumerate(after):
        run = run + 1 if sample["ok"] else 0
        if run == stable_successes:
            return after[index - stable_successes + 1]
    return None


def _traffic_moved(after, surviving_site):
    moved = None
    for sample in after:
        if not sample["ok"]:
            continue
        if sample["site"] != surviving_site:
            moved = None
        elif moved is None:
            moved = sample
    return moved


def drill_report(samples, fault_time, detection_time, surviving_site, audit_written, audit_present,
                 stable_successes=DEFAULT_STABLE_SUCCESSES):
    """The drill's figures (see the module's documentation) as a dict."""
    ordered = _check_samples(samples)
    _time(fault_time, "fault_time")
    if detection_time is not None and _time(detection_time, "detection_time") < fault_time:
        raise DrReportError("detection_time: %r is before fault_time %r" % (detection_time, fault_time))
    if not isinstance(surviving_site, str) or not surviving_site:
        raise DrReportError("surviving_site: must be a site name, not %r" % (surviving_site,))
    if isinstance(stable_successes, bool) or not isinstance(stable_successes, int) or stable_successes < 1:
        raise DrReportError("stable_successes: must be an integer, 1 or more, not %r" % (stable_successes,))
    loss = audit_loss(audit_written, audit_present, fault_time)

    after = [sample for sample in ordered if sample["start"] >= fault_time]
    recovered = _recovery(after, stable_successes)
    recovery_time = None if recovered is None else recovered["start"]
    in_window = [sample for sample in ordered
                 if not sample["ok"] and sample["end"] >= fault_time
                 and (recovery_time is None or sample["start"] <= recovery_time)]
    moved = _traffic_moved(after, surviving_site)
    failed = [sample for sample in ordered if not sample["ok"]]
    return {
        "surviving_site": surviving_site,
        "stable_successes": stable_successes,
        "requests": len(ordered),
        "streamed": sum(1 for sample in ordered if sample["streamed"]),
        "succeeded": len(ordered) - len(failed),
        "failed": len(failed),
        "detection_s": None if detection_time is None else _seconds(detection_time - fault_time),
        "rto_s": None if recovery_time is None else _seconds(recovery_time - fault_time),
        "failed_in_window": len(in_window),
        "failed_in_window_streamed": sum(1 for sample in in_window if sample["streamed"]),
        "traffic_moved_s": None if moved is None else _seconds(moved["start"] - fault_time),
        "records_written": loss["records_written"],
        "records_lost": loss["records_lost"],
        "lost_seqs": loss["lost_seqs"],
        "rpo_s": loss["rpo_s"],
    }


def _or(value, text, unit=" s"):
    return text if value is None else "%s%s" % (value, unit)


def render_markdown(report, title="Disaster recovery drill"):
    """The report as Markdown: a title and a table of the figures; the same report gives the same text."""
    missing = [name for name in ("surviving_site", "stable_successes", "requests", "streamed", "succeeded", "failed",
                                 "detection_s", "rto_s", "failed_in_window", "failed_in_window_streamed",
                                 "traffic_moved_s", "records_written", "records_lost", "lost_seqs", "rpo_s")
               if name not in report]
    if missing:
        raise DrReportError("report: missing %s (give what drill_report returns)" % ", ".join(missing))
    lost = report["records_lost"]
    rows = [
        ("Requests sent", "%d (%d streamed)" % (report["requests"], report["streamed"])),
        ("Succeeded", "%d" % report["succeeded"]),
        ("Failed, whole run", "%d" % report["failed"]),
        ("Detection (fault to site marked down)", _or(report["detection_s"], "not detected")),
        ("RTO (fault to the first of %d consecutive successes)" % report["stable_successes"],
         _or(report["rto_s"], "not recovered")),
        ("Failed between fault and recovery",
         "%d (%d streamed)" % (report["failed_in_window"], report["failed_in_window_streamed"])),
        ("All traffic on %s after" % report["surviving_site"], _or(report["traffic_moved_s"], "not reached")),
        ("Audit records lost (RPO)", "%d of %d%s" % (lost, report["records_written"],
                                                     (": " + ", ".join(map(str, report["lost_seqs"]))) if lost else "")),
        ("RPO in time (age of the oldest lost record)", _or(report["rpo_s"], "unknown (a lost record has no time)")),
    ]
    lines = ["# %s" % title, "", "| Figure | Value |", "|---|---|"]
    lines.extend("| %s | %s |" % row for row in rows)
    return "\n".join(lines) + "\n"


# ---- _dr_replication.py

import calendar
import hashlib
import json
import re


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


# ---- _dr_replication_agent.py

import argparse
import os
import sys
import time


# How much of an existing replica file a starting agent reads back to find the newest record.
BACKLOG_BYTES = 16 * 1024 * 1024


class ReplicaReader:
    """Follows one replica file: complete lines only, from where the last pass stopped; starts
    over when the file is replaced or truncated (logrotate)."""

    def __init__(self, path, view):
        self.path, self.view = path, view
        self.inode = self.offset = None
        self.partial = b""

    def poll(self):
        try:
            handle = open(self.path, "rb")
        except OSError:
            return
        with handle:
            stat = os.fstat(handle.fileno())
            if self.inode != stat.st_ino or stat.st_size < (self.offset or 0):
                self.inode, self.partial = stat.st_ino, b""
                # A first look (or a new file) reads the end back far enough to find the newest record.
                self.offset = max(0, stat.st_size - BACKLOG_BYTES) if self.offset is None else 0
                if self.offset:
                    handle.seek(self.offset)
                    self.offset += len(handle.readline())
            handle.seek(self.offset)
            data = handle.read()
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            self.view.observe(parse_replica_line(line))


def beat(path, max_bytes, now):
    """Append one heartbeat; empty the file first when it has grown past ``max_bytes``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        if os.fstat(fd).st_size > max_bytes:
            os.ftruncate(fd, 0)
        os.write(fd, heartbeat_line(now).encode("ascii"))
    finally:
        os.close(fd)


def serve(config, passes=None, clock=time.monotonic, sleep=time.sleep, wall=time.time):
    """Beat, read and export until stopped (or ``passes`` times, for tests); returns the views."""
    views = [SenderView(s["name"], s["site"]) for s in config["senders"]]
    readers = [ReplicaReader(os.path.join(config["replica_dir"], view.name + ".log"), view) for view in views]
    started, done, failed = wall(), 0, set()
    while passes is None or done < passes:
        tick = clock()
        for what, action in (("heartbeat", lambda: beat(config["heartbeat_file"], config["heartbeat_max_bytes"], wall())),
                             ("replicas", lambda: [reader.poll() for reader in readers]),
                             ("metrics", lambda: config["metrics_file"] and write_atomically(
                                 config["metrics_file"], metrics_text(views, wall(), config["interval_s"], started)))):
            try:
                action()
                failed.discard(what)
            except OSError as exc:
                # Said once per failure, not every second; the next pass tries again.
                if what not in failed:
                    sys.stderr.write("%s: %s\n" % (what, exc))
                    sys.stderr.flush()
                failed.add(what)
        done += 1
        sleep(max(0.0, config["interval_s"] - (clock() - tick)))
    return views


def main(argv=None):
    parser = argparse.ArgumentParser(prog="onprem_deepseek_dr_replication.py",
                                     description="Heartbeat and lag metrics of the audit replication between sites.")
    parser.add_argument("command", choices=("serve", "check"))
    parser.add_argument("--config", required=True, help="the settings (JSON)")
    args = parser.parse_args(argv)
    try:
        config = load_checked_json(args.config, check_agent_config, DrReplicationError)
    except DrReplicationError as exc:
        sys.stderr.write("onprem_deepseek_dr_replication: %s\n" % exc)
        return 2
    if args.command == "check":
        return 0
    serve(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
