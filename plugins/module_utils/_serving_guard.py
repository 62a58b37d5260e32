# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Whether a host may stop its inference units: each must go on running on a host outside the batch.

A model's instances carry the same unit name on every node that serves it
(``deepseek-inference-<instance>.service``), so "the last hosts serving a model" are the last hosts
running that unit.
"""

from __future__ import annotations


class ServingGuardError(ValueError):
    pass


def _names(value, what):
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ServingGuardError('%s must be a list of names, not %r' % (what, value))
    return list(value)


def serving_guard(stopping, others, serving):
    """Which of ``stopping`` no host of ``others`` runs, and which of ``others`` are not known.

    stopping: the units this host would stop.
    others: the hosts of the play outside this batch.
    serving: host -> the units it runs, for the hosts whose units were read (a host missing here is
    "unknown" and counts as serving nothing).
    """
    stopping = _names(stopping, 'stopping')
    others = _names(others, 'others')
    if not isinstance(serving, dict):
        raise ServingGuardError('serving must be a mapping of host to units, not %r' % (serving,))
    served_by = {}
    for host in others:
        for unit in _names(serving.get(host, []), 'serving[%s]' % host):
            served_by.setdefault(unit, set()).add(host)
    return {
        'unserved': sorted(unit for unit in set(stopping) if unit not in served_by),
        'served_by': {unit: sorted(served_by[unit]) for unit in sorted(set(stopping)) if unit in served_by},
        'unknown': sorted(host for host in set(others) if host not in serving),
    }
