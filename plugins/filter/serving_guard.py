# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: serving_guard
short_description: The inference units a host may not stop because no host outside its batch runs them
version_added: 0.2.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - A model's instances have the same unit name on every node that serves it, so a unit that no host outside
    the batch runs is the model's last server.
  - The O(nvidia_driver) role refuses a driver change that would stop such a unit.
positional: _input, others, serving
options:
  _input:
    description: The units this host would stop.
    type: list
    elements: str
    required: true
  others:
    description: The hosts of the play outside this batch.
    type: list
    elements: str
    required: true
  serving:
    description: Host to the units it runs, for the hosts whose units were read; a host left out is unknown.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Decide what this host may stop
  ansible.builtin.set_fact:
    guard: >-
      {{ ['deepseek-inference-r1.service'] | onprem.deepseek.serving_guard(['node2'],
         {'node2': ['deepseek-inference-r1.service']}) }}
"""

RETURN = r"""
_value:
  description: What the guard found.
  type: dict
  contains:
    unserved:
      description: Units to stop that no host outside the batch runs.
      type: list
      elements: str
    served_by:
      description: For each other unit to stop, the hosts outside the batch that run it.
      type: dict
    unknown:
      description: Hosts outside the batch whose units were not read.
      type: list
      elements: str
  sample: {unserved: [], served_by: {deepseek-inference-r1.service: [node2]}, unknown: []}
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.module_utils._serving_guard import (
    ServingGuardError,
    serving_guard as _serving_guard,
)


def serving_guard(stopping, others, serving):
    try:
        return _serving_guard(stopping, others, serving)
    except ServingGuardError as exc:
        raise AnsibleFilterError('serving_guard: %s' % exc)


class FilterModule(object):
    def filters(self):
        return {'serving_guard': serving_guard}
