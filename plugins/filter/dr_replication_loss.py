# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: dr_replication_loss
short_description: The audit records a lost site took with it (RPO), from its chain and the other site's replica
version_added: 0.2.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - "From the failed gateway's audit chain (its lines) and the replica file the other site's gateway holds of it: the
    records written at or before O(fault_time) (their time is nginx's C(time)) that the replica lacks, and the RPO in
    time, as the C(onprem.deepseek.dr_report) filter counts them (C(records_written), C(records_lost), C(lost_seqs), C(rpo_s))."
  - "C(written) and C(present) are what C(onprem.deepseek.dr_report) takes as C(audit_written) and C(audit_present)."
  - "A record without a time (an unparsed line) counts as written before the next record that has one."
  - See C(docs/dr.md).
positional: _input
options:
  _input:
    description: The failed gateway's chain lines (C(audit.log), rotated files first), as text or a list of lines.
    type: raw
    required: true
  replica:
    description: The content of the other site's replica file of that gateway (C(dr-replica/<host>.log)).
    type: str
    required: true
  fault_time:
    description: When the site was lost (seconds since the epoch).
    type: float
    required: true
"""

EXAMPLES = r"""
- name: Records of site A lost with it
  ansible.builtin.set_fact:
    loss: >-
      {{ (chain_a.content | b64decode) | onprem.deepseek.dr_replication_loss(replica=(replica_b.content | b64decode),
                                                                             fault_time=1796470000.25) }}
"""

RETURN = r"""
_value:
  description: The RPO figures, and the inputs of dr_report.
  type: dict
  contains:
    records_written:
      description: Records written at or before the fault.
      type: int
      returned: always
      sample: 40
    records_lost:
      description: Of which absent from the replica.
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
      sample: 1.25
    written:
      description: The records written before the fault, each C(seq) and C(time).
      type: list
      elements: dict
      returned: always
      sample: [{seq: 1, time: 1796469990.0}]
    present:
      description: The record seqs the replica holds.
      type: list
      elements: int
      returned: always
      sample: [1]
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.module_utils._dr_replication import (
    DrReplicationError,
    chain_written,
    replica_seqs,
    replication_loss,
)


def dr_replication_loss(chain, replica, fault_time):
    lines = chain.splitlines() if isinstance(chain, str) else chain
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise AnsibleFilterError("dr_replication_loss: the chain must be text or a list of lines")
    if not isinstance(replica, str):
        raise AnsibleFilterError("dr_replication_loss: replica must be the replica file's text")
    if isinstance(fault_time, bool) or not isinstance(fault_time, (int, float)):
        raise AnsibleFilterError("dr_replication_loss: fault_time must be seconds since the epoch, not %r" % (fault_time,))
    try:
        written = chain_written(lines, fault_time)
        return dict(replication_loss(written, replica, fault_time), written=written, present=replica_seqs(replica))
    except DrReplicationError as exc:
        raise AnsibleFilterError("dr_replication_loss: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {'dr_replication_loss': dr_replication_loss}
