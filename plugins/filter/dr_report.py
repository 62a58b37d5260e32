# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: dr_report
short_description: A disaster recovery drill's figures (detection, RTO, failed requests, RPO) and its Markdown report
version_added: 0.2.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - "From the requests a bounded load generator recorded (times in seconds on its clock): C(detection_s) is detection
    time - fault time; C(rto_s) runs from the fault to the start of the first success that begins a run of
    O(stable_successes) consecutive successes, requests in start order among those started at or after the fault
    (V(null) when none)."
  - "C(failed_in_window) counts the failed requests in flight at some moment between the fault and that recovery
    (to the end of the run without one); C(failed) counts all. C(traffic_moved_s) runs from the fault to the start of
    the first success after which every success came from O(surviving_site)."
  - "RPO: the records written at the failed site before the fault and missing at the other site after recovery
    (C(records_lost), C(lost_seqs)), and C(rpo_s), the age at the fault of the oldest lost record."
  - "Seconds are rounded to milliseconds. C(markdown) is the report's table; it holds no clock time, so the same
    inputs give the same file. A malformed input fails naming the field (V(samples[3].end), V(audit_written[0].time))."
  - See C(docs/dr.md).
positional: _input
options:
  _input:
    description:
      - "The requests, each C(start), C(end) (seconds), C(ok) (bool), C(site) (the site that answered, V(null) when
        none did; a success names one) and C(streamed) (bool)."
    type: list
    elements: dict
    required: true
  fault_time:
    description: When the fault was injected (or the planned cutover began).
    type: float
    required: true
  detection_time:
    description: When monitoring or the health check marked the site down; V(null) when it never did.
    type: float
  surviving_site:
    description: The site that carries the traffic after the fault.
    type: str
    required: true
  audit_written:
    description: The audit records written at the failed site before the fault, each C(seq) and C(time) (may be V(null)).
    type: list
    elements: dict
    default: []
  audit_present:
    description: The sequence numbers of those records present at the other site after recovery.
    type: list
    elements: int
    default: []
  stable_successes:
    description: How many consecutive successes make a recovery (1 or more).
    type: int
    default: 5
  title:
    description: The Markdown report's title.
    type: str
    default: Disaster recovery drill
"""

EXAMPLES = r"""
- name: The drill's figures and report
  ansible.builtin.set_fact:
    dr_drill: >-
      {{ dr_loadgen.samples | onprem.deepseek.dr_report(fault_time=dr_loadgen.fault_time,
                                                        detection_time=dr_loadgen.detection_time,
                                                        surviving_site='site_b',
                                                        audit_written=dr_audit_before, audit_present=dr_audit_after) }}

- name: Write the Markdown report
  ansible.builtin.copy:
    content: "{{ dr_drill.markdown }}"
    dest: /var/lib/onprem-deepseek/dr/drill.md
    mode: "0644"
"""

RETURN = r"""
_value:
  description: The figures, and the report as Markdown.
  type: dict
  contains:
    surviving_site:
      description: The site given.
      type: str
      returned: always
      sample: site_b
    stable_successes:
      description: The run length that counts as a recovery.
      type: int
      returned: always
      sample: 5
    requests:
      description: Requests recorded.
      type: int
      returned: always
      sample: 120
    streamed:
      description: Of which streamed.
      type: int
      returned: always
      sample: 30
    succeeded:
      description: Requests that succeeded.
      type: int
      returned: always
      sample: 112
    failed:
      description: Requests that failed, whole run.
      type: int
      returned: always
      sample: 8
    detection_s:
      description: Fault to detection; V(null) when not detected.
      type: float
      returned: always
      sample: 1.5
    rto_s:
      description: Fault to the first success of a stable run; V(null) when not recovered.
      type: float
      returned: always
      sample: 4.2
    failed_in_window:
      description: Failed requests in flight between the fault and the recovery.
      type: int
      returned: always
      sample: 7
    failed_in_window_streamed:
      description: Of which streamed.
      type: int
      returned: always
      sample: 2
    traffic_moved_s:
      description: Fault to the first success after which every success came from the surviving site; V(null) if never.
      type: float
      returned: always
      sample: 4.2
    records_written:
      description: Audit records written at the failed site before the fault.
      type: int
      returned: always
      sample: 40
    records_lost:
      description: Of which missing at the other site after recovery.
      type: int
      returned: always
      sample: 2
    lost_seqs:
      description: Their sequence numbers, ascending.
      type: list
      elements: int
      returned: always
      sample: [39, 40]
    rpo_s:
      description: The age at the fault of the oldest lost record; 0 when none is lost, V(null) when one has no time.
      type: float
      returned: always
      sample: 0.4
    markdown:
      description: The report, a title and a table of the figures.
      type: str
      returned: always
      sample: "# Disaster recovery drill\n\n| Figure | Value |\n|---|---|\n| Requests sent | 120 (30 streamed) |\n"
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.module_utils._dr_report import (
    DEFAULT_STABLE_SUCCESSES,
    DrReportError,
    drill_report,
    render_markdown,
)


def dr_report(samples, fault_time, surviving_site, detection_time=None, audit_written=None, audit_present=None,
              stable_successes=DEFAULT_STABLE_SUCCESSES, title="Disaster recovery drill"):
    try:
        report = drill_report(samples, fault_time, detection_time, surviving_site,
                              [] if audit_written is None else audit_written,
                              [] if audit_present is None else audit_present, stable_successes)
        return dict(report, markdown=render_markdown(report, title))
    except DrReportError as exc:
        raise AnsibleFilterError("dr_report: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {'dr_report': dr_report}
