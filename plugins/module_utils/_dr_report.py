# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A disaster recovery drill's figures, from what a bounded load generator recorded.

Inputs are times in seconds on one clock (the load generator's): each request's ``start`` and
``end``, whether it was ``ok``, the ``site`` that answered (None when no site did) and whether it
was ``streamed``; the fault time; the detection time (monitoring or the health check marked the
site down; None when it never did); the audit records written at the failed site before the fault
(``seq`` and ``time``) and the sequence numbers present at the other site after recovery.

The figures, in seconds rounded to milliseconds:

- ``detection_s``: detection time - fault time.
- ``rto_s``: from the fault until the start of the first success that begins a run of
  ``stable_successes`` consecutive successes, requests taken in start order among those started
  at or after the fault. None when no such run happened.
- ``failed_in_window``: failed requests in flight at some moment of [fault, recovery] (end at or
  after the fault, start at or before the recovery; to the end of the run without recovery).
- ``traffic_moved_s``: from the fault until the start of the first successful request after which
  every successful request (in start order, started at or after the fault) was answered by the
  surviving site. None when the last success came from another site, or none came.
- ``records_lost``, ``lost_seqs``: the records written before the fault and absent after recovery.
- ``rpo_s``: the age at the fault of the oldest lost record: everything written since may be lost,
  so this is the window of data lost. 0 when none is lost; None when a lost record has no time.
"""

from __future__ import annotations

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
