"""A drill's figures from recorded requests, computed by hand on small timelines; the Markdown report."""
import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.filter import dr_report as plugin
from ansible_collections.onprem.deepseek.plugins.module_utils._dr_report import (
    DrReportError,
    drill_report,
    render_markdown,
)


def req(start, end, ok, site=None, streamed=False):
    return {"start": start, "end": end, "ok": ok, "site": site, "streamed": streamed}


# Unplanned loss of site_a at 100.0; site_b survives.
LOSS = [
    req(98.0, 98.3, True, "site_a"),
    req(99.0, 99.2, True, "site_b"),
    req(99.5, 101.0, False, "site_a", streamed=True),  # a stream in flight at the fault, cut: in the window
    req(99.8, 99.9, False),  # failed and ended before the fault: not in the window
    req(100.0, 100.2, False),  # failed exactly at the fault time: in the window
    req(100.5, 100.7, True, "site_b"),
    req(101.0, 101.1, True, "site_b"),
    req(101.5, 104.5, False, streamed=True),  # breaks the run; starts before the recovery: in the window
    req(102.0, 102.2, True, "site_b"),  # the first of five successes: recovery
    req(102.5, 102.6, True, "site_b"),
    req(103.0, 103.1, True, "site_b"),
    req(103.5, 103.6, True, "site_b"),
    req(104.0, 104.1, True, "site_b"),
    req(104.2, 104.3, False),  # after the recovery: counted in the run's total only
]
WRITTEN = [{"seq": 1, "time": 95.0}, {"seq": 2, "time": 96.0}, {"seq": 3, "time": 97.0},
           {"seq": 4, "time": 98.0}, {"seq": 5, "time": 99.0}, {"seq": 6, "time": 99.9}]
PRESENT = [1, 2, 3, 4, 7, 8]

# Planned cutover from site_a to site_b starting at 200.0: no failure; site_a drains until 201.0.
CUTOVER = [
    req(199.0, 199.1, True, "site_a"),
    req(199.5, 199.6, True, "site_b"),
    req(200.0, 200.1, True, "site_a"),
    req(200.5, 203.0, True, "site_b", streamed=True),
    req(201.0, 201.1, True, "site_a"),  # the last answer of the old primary
    req(201.5, 201.6, True, "site_b"),  # from here on every success is site_b's
    req(202.0, 202.1, True, "site_b"),
    req(202.5, 202.6, True, "site_b"),
    req(203.0, 203.1, True, "site_b"),
]


def loss(**changes):
    args = {"samples": LOSS, "fault_time": 100.0, "detection_time": 101.25, "surviving_site": "site_b",
            "audit_written": WRITTEN, "audit_present": PRESENT}
    args.update(changes)
    return drill_report(**args)


def test_unplanned_loss_figures_by_hand():
    assert loss() == {
        "surviving_site": "site_b",
        "stable_successes": 5,
        "requests": 14,
        "streamed": 2,
        "succeeded": 9,
        "failed": 5,  # 99.5, 99.8, 100.0, 101.5, 104.2
        "detection_s": 1.25,  # 101.25 - 100.0
        "rto_s": 2.0,  # 102.0 begins 102.0..104.0, five successes; 100.5 and 101.0 were two only
        "failed_in_window": 3,  # 99.5 (in flight), 100.0 (at the fault), 101.5 (before 102.0)
        "failed_in_window_streamed": 2,  # 99.5 and 101.5
        "traffic_moved_s": 0.5,  # every success from 100.5 on is site_b's
        "records_written": 6,
        "records_lost": 2,
        "lost_seqs": [5, 6],
        "rpo_s": 1.0,  # the oldest lost record, seq 5, written at 99.0
    }


@pytest.mark.parametrize("stable, rto, in_window", [
    (1, 0.5, 2),  # 100.5 is a success; failures in [100.0, 100.5]: 99.5 (in flight) and 100.0
    (2, 0.5, 2),  # 100.5 and 101.0
    (3, 2.0, 3),  # 100.5, 101.0 then a failure: the run starts again at 102.0
    (5, 2.0, 3),  # 102.0 .. 104.0, exactly five
    (6, None, 4),  # only five in a row before 104.2 fails: never recovered, every failure from the fault on counts
])
def test_stable_successes_on_both_sides_of_the_run_length(stable, rto, in_window):
    report = loss(stable_successes=stable)
    assert (report["rto_s"], report["failed_in_window"]) == (rto, in_window)


def test_planned_cutover_figures_by_hand():
    report = drill_report(CUTOVER, 200.0, None, "site_b", [], [])
    assert report == {
        "surviving_site": "site_b", "stable_successes": 5, "requests": 9, "streamed": 1, "succeeded": 9, "failed": 0,
        "detection_s": None,
        "rto_s": 0.0,  # the request at 200.0 begins five successes
        "failed_in_window": 0, "failed_in_window_streamed": 0,
        "traffic_moved_s": 1.5,  # site_a answered until 201.0; site_b alone from 201.5
        "records_written": 0, "records_lost": 0, "lost_seqs": [], "rpo_s": 0,
    }


def test_traffic_never_moved_when_the_last_success_is_another_sites():
    samples = CUTOVER + [req(203.5, 203.6, True, "site_a")]
    assert drill_report(samples, 200.0, None, "site_b", [], [])["traffic_moved_s"] is None
    assert drill_report([req(100.5, 101.0, False)], 100.0, None, "site_b", [], [])["traffic_moved_s"] is None


def test_requests_before_the_fault_do_not_count_for_recovery_or_traffic():
    samples = [req(90.0 + i, 90.5 + i, True, "site_a") for i in range(5)] + [req(100.0, 100.1, False)]
    report = drill_report(samples, 100.0, None, "site_b", [], [])
    assert (report["rto_s"], report["traffic_moved_s"], report["failed_in_window"]) == (None, None, 1)


@pytest.mark.parametrize("end, counted", [(99.999, 0), (100.0, 1), (100.001, 1)])
def test_a_failure_ending_at_the_fault_is_in_the_window_and_one_ending_before_is_not(end, counted):
    samples = [req(99.0, end, False)] + [req(100.0 + i, 100.1 + i, True, "site_b") for i in range(5)]
    assert drill_report(samples, 100.0, None, "site_b", [], [])["failed_in_window"] == counted


@pytest.mark.parametrize("start, end, counted", [
    (101.0, 101.05, 1),  # starts with the recovering request (ends first, so it is ordered before it): counted
    (105.001, 105.5, 0),  # starts after the run of five: not counted
])
def test_a_failure_starting_at_the_recovery_is_in_the_window_and_one_after_is_not(start, end, counted):
    samples = [req(101.0 + i, 101.1 + i, True, "site_b") for i in range(5)] + [req(start, end, False)]
    report = drill_report(samples, 100.0, None, "site_b", [], [])
    assert (report["rto_s"], report["failed_in_window"], report["failed"]) == (1.0, counted, 1)


def test_a_failure_between_two_successes_of_the_same_start_breaks_the_run():
    samples = [req(101.0, 101.1, True, "site_b"), req(101.0, 101.5, False)]
    samples += [req(102.0 + i, 102.1 + i, True, "site_b") for i in range(5)]
    assert drill_report(samples, 100.0, None, "site_b", [], [])["rto_s"] == 2.0


def test_order_is_by_start_time_not_by_the_order_recorded():
    samples = list(reversed(LOSS))
    assert drill_report(samples, 100.0, 101.25, "site_b", WRITTEN, PRESENT) == loss()


def test_rpo_is_the_age_of_the_oldest_lost_record_even_with_gaps():
    written = [{"seq": 1, "time": 90.0}, {"seq": 2, "time": 91.0}, {"seq": 3, "time": 92.0}, {"seq": 4, "time": 93.5}]
    report = loss(audit_written=written, audit_present=[1, 3])
    assert (report["records_lost"], report["lost_seqs"], report["rpo_s"]) == (2, [2, 4], 9.0)


def test_rpo_in_time_is_unknown_when_a_lost_record_has_no_time_and_zero_when_none_is_lost():
    written = [{"seq": 1, "time": 90.0}, {"seq": 2}, {"seq": 3, "time": None}]
    assert loss(audit_written=written, audit_present=[1, 3])["rpo_s"] is None
    assert loss(audit_written=written, audit_present=[1, 2, 3])["rpo_s"] == 0
    assert loss(audit_written=[{"seq": 9, "time": 100.0}], audit_present=[])["rpo_s"] == 0.0


def test_seconds_are_rounded_to_milliseconds():
    report = loss(fault_time=100.0, detection_time=101.3004)
    assert report["detection_s"] == 1.3


def test_detection_at_the_fault_time_is_zero():
    assert loss(detection_time=100.0)["detection_s"] == 0.0


@pytest.mark.parametrize("changes, text", [
    ({"samples": {}}, "samples: must be a list of requests"),
    ({"samples": [1]}, "samples[0]: must be a dict with start, end, ok, site, streamed"),
    ({"samples": [{"start": 1, "end": 2, "ok": True, "site": "a"}]}, "samples[0]: missing streamed"),
    ({"samples": [dict(req(1, 2, True, "a"), code=200)]}, "samples[0]: unknown code (known: start, end, ok,"),
    ({"samples": [req(1, 2, True, "a"), req("1", 2, True, "a")]}, "samples[1].start: must be a time in seconds"),
    ({"samples": [req(1, None, True, "a")]}, "samples[0].end: must be a time in seconds"),
    ({"samples": [req(2, 1.5, True, "a")]}, "samples[0].end: 1.5 is before its start 2"),
    ({"samples": [req(1, 2, 1, "a")]}, "samples[0].ok: must be true or false, not 1"),
    ({"samples": [req(1, 2, True, "a", streamed=None)]}, "samples[0].streamed: must be true or false"),
    ({"samples": [req(1, 2, True, "")]}, "samples[0].site: must be the site that answered or null"),
    ({"samples": [req(1, 2, True)]}, "samples[0].site: a successful request names the site that answered it"),
    ({"fault_time": None}, "fault_time: must be a time in seconds (a number), not None"),
    ({"fault_time": True}, "fault_time: must be a time in seconds"),
    ({"detection_time": 99.9}, "detection_time: 99.9 is before fault_time 100.0"),
    ({"detection_time": "101"}, "detection_time: must be a time in seconds"),
    ({"surviving_site": None}, "surviving_site: must be a site name, not None"),
    ({"stable_successes": 0}, "stable_successes: must be an integer, 1 or more, not 0"),
    ({"stable_successes": True}, "stable_successes: must be an integer, 1 or more, not True"),
    ({"audit_written": {}}, "audit_written: must be a list of {seq, time}"),
    ({"audit_written": [{"time": 1.0}]}, "audit_written[0]: must be a dict with seq and optionally time"),
    ({"audit_written": [{"seq": 1, "host": "a"}]}, "audit_written[0]: must be a dict with seq and optionally time"),
    ({"audit_written": [{"seq": -1}]}, "audit_written[0].seq: must be a sequence number"),
    ({"audit_written": [{"seq": True}]}, "audit_written[0].seq: must be a sequence number"),
    ({"audit_written": [{"seq": 1}, {"seq": 1}]}, "audit_written[1].seq: 1 is listed twice"),
    ({"audit_written": [{"seq": 1, "time": "99"}]}, "audit_written[0].time: must be a time in seconds"),
    ({"audit_written": [{"seq": 1, "time": 100.5}]}, "audit_written[0].time: 100.5 is after the fault (100.0)"),
    ({"audit_present": None}, "audit_present: must be a list of sequence numbers"),
    ({"audit_present": [1, "2"]}, "audit_present[1]: must be a sequence number"),
])
def test_malformed_inputs_are_errors_naming_the_field(changes, text):
    with pytest.raises(DrReportError) as err:
        loss(**changes)
    assert str(err.value).startswith(text)


def test_markdown_report_of_the_loss():
    assert render_markdown(loss()) == (
        "# Disaster recovery drill\n"
        "\n"
        "| Figure | Value |\n"
        "|---|---|\n"
        "| Requests sent | 14 (2 streamed) |\n"
        "| Succeeded | 9 |\n"
        "| Failed, whole run | 5 |\n"
        "| Detection (fault to site marked down) | 1.25 s |\n"
        "| RTO (fault to the first of 5 consecutive successes) | 2.0 s |\n"
        "| Failed between fault and recovery | 3 (2 streamed) |\n"
        "| All traffic on site_b after | 0.5 s |\n"
        "| Audit records lost (RPO) | 2 of 6: 5, 6 |\n"
        "| RPO in time (age of the oldest lost record) | 1.0 s |\n"
    )


def test_markdown_says_what_did_not_happen_and_is_the_same_for_the_same_inputs():
    report = loss(detection_time=None, stable_successes=6, audit_written=[{"seq": 5}], audit_present=[])
    text = render_markdown(report, title="Drill: site_a lost")
    assert text.startswith("# Drill: site_a lost\n")
    assert "| Detection (fault to site marked down) | not detected |" in text
    assert "| RTO (fault to the first of 6 consecutive successes) | not recovered |" in text
    assert "| Audit records lost (RPO) | 1 of 1: 5 |" in text
    assert "| RPO in time (age of the oldest lost record) | unknown (a lost record has no time) |" in text
    no_loss = render_markdown(drill_report(CUTOVER + [req(203.5, 203.6, True, "site_a")], 200.0, None, "site_b", [], []))
    assert "| All traffic on site_b after | not reached |" in no_loss
    assert "| Audit records lost (RPO) | 0 of 0 |" in no_loss
    assert text == render_markdown(dict(report), title="Drill: site_a lost")


def test_markdown_of_something_else_is_an_error():
    with pytest.raises(DrReportError, match=r"^report: missing rpo_s \(give what drill_report returns\)$"):
        render_markdown({k: v for k, v in loss().items() if k != "rpo_s"})


# the filter

def test_filter_returns_the_figures_and_the_markdown():
    assert plugin.FilterModule().filters()["dr_report"] is plugin.dr_report
    result = plugin.dr_report(LOSS, 100.0, "site_b", detection_time=101.25, audit_written=WRITTEN,
                              audit_present=PRESENT)
    markdown = result.pop("markdown")
    assert result == loss()
    assert markdown == render_markdown(loss())
    assert plugin.dr_report(CUTOVER, 200.0, "site_b")["records_written"] == 0


def test_filter_errors_are_filter_errors():
    with pytest.raises(AnsibleFilterError, match=r"^dr_report: stable_successes: must be an integer, 1 or more, not 0$"):
        plugin.dr_report(LOSS, 100.0, "site_b", stable_successes=0)


def test_documentation_matches_the_options_and_the_result():
    doc = yaml.safe_load(plugin.DOCUMENTATION)
    assert doc["name"] == "dr_report" and doc["positional"] == "_input"
    assert set(doc["options"]) == {"_input", "fault_time", "detection_time", "surviving_site", "audit_written",
                                   "audit_present", "stable_successes", "title"}
    returned = yaml.safe_load(plugin.RETURN)["_value"]["contains"]
    assert set(returned) == set(plugin.dr_report(CUTOVER, 200.0, "site_b"))
    for key, spec in returned.items():
        assert "sample" in spec and spec["returned"] == "always", key
    yaml.safe_load(plugin.EXAMPLES)
