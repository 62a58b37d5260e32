# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: engine_in_flight
short_description: How many requests an engine serves or queues, from its Prometheus metrics
version_added: 0.2.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - Sums the samples of vLLM's C(vllm:num_requests_running) and C(vllm:num_requests_waiting) and SGLang's
    C(sglang:num_running_reqs) and C(sglang:num_queue_reqs).
  - Fails when the text has none of them, since idleness could then never be known.
positional: _input, server
options:
  _input:
    description: The body of the engine's C(/metrics).
    type: str
    required: true
  server:
    description: The engine's V(address:port), for the messages.
    type: str
    default: ''
"""

EXAMPLES = r"""
- name: Read whether the engine is idle
  ansible.builtin.debug:
    msg: "{{ metrics.content | onprem.deepseek.engine_in_flight('10.0.0.1:8000') == 0 }}"
"""

RETURN = r"""
_value:
  description: The requests running and waiting, summed.
  type: int
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.module_utils._drain import DrainError, in_flight


def engine_in_flight(text, server=''):
    try:
        return in_flight(text, server)
    except DrainError as exc:
        raise AnsibleFilterError('engine_in_flight: %s' % exc)


class FilterModule(object):
    def filters(self):
        return {'engine_in_flight': engine_in_flight}
