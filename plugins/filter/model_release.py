# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: model_release
short_description: Model release decisions (settings, plan, performance gate, canary weights and verdict)
version_added: 0.2.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - "The decisions of C(playbooks/model_release.yml), computed from what the play read; nothing is read from the
    network. See C(docs/operations.md)."
  - "C(model_release_settings): on a dict of the release's thresholds without their C(model_release_) prefix
    (V(null) or V('') for a default), the checked thresholds; a value out of range fails naming its variable."
  - "C(model_release_plan(candidate, canary_hosts=[], resume=false)): on the nodes (C([{host, version}]), the version
    each serves), C({action, candidate, from_version, done, pending, canary, rest}). C(action) V(none) when every node
    serves the candidate. Refuses a node that serves nothing, nodes on different versions, a canary host that is not
    a node, and (without O(resume)) a release that stopped half way."
  - "C(model_release_gate(candidate, settings)): on the current version's C(inference_probe) result, the performance
    gate C({passed, reasons, figures}): median time per request and to the first token at most C(max_latency_ratio)
    and C(max_ttft_ratio) times the current version's, median tokens per second at least C(min_throughput_ratio)
    times (equal passes)."
  - "C(model_release_canary_split(canary_servers, percent)): on a gateway's pools (C(gateway_pools)),
    C({weights, pools, stable}): nginx's weight of each server of the pools that hold canary servers and others (the
    canary getting O(percent) of each, split evenly, divided by the greatest common divisor, at most 100), the names
    of the pools that hold a canary server, and their other servers."
  - "C(model_release_pool_weights(servers)): on the text of a gateway's C(nginx.conf), the weight each server has now
    (V(0) for C(backup), V(default) where none is written), to put back after the canary."
  - "C(model_release_engine_totals(server='')): on an engine's C(/metrics), C({requests, seconds}) of its end-to-end
    latency histogram (vLLM or SGLang)."
  - "C(model_release_gateway_totals(pools, gateway='')): on a gateway's C(/metrics), C({requests, errors}): model
    requests, and those answered 5xx plus failed engine attempts of O(pools)."
  - "C(model_release_canary_verdict(settings)): on what the canary window read, C({canary_servers, engines_before,
    engines_after, gateways}) (each engine server to its C(/metrics) text; each gateway to C({before, after, pools})),
    C({passed, reasons, figures}): the canary fails with fewer than C(canary_min_requests) requests, a gateway error
    rate (5xx answers and failed engine attempts of those pools per model request) above C(canary_max_error_rate), or
    a mean time per request above C(canary_max_latency_ratio) times the other engines' (equal passes)."
positional: _input
options:
  _input:
    description: See each filter above.
    type: raw
    required: true
  candidate:
    description: C(model_release_plan) - the version to release; C(model_release_gate) - its probe result.
    type: raw
  canary_hosts:
    description: C(model_release_plan) - the nodes that take the candidate first; empty means the first pending node.
    type: list
    elements: str
  resume:
    description: C(model_release_plan) - roll the rest of a release that stopped half way, without a new canary.
    type: bool
    default: false
  settings:
    description: C(model_release_gate), C(model_release_canary_verdict) - the result of C(model_release_settings).
    type: dict
  canary_servers:
    description: C(model_release_canary_split) - the canary nodes' engine servers (V(host:port)).
    type: list
    elements: str
  percent:
    description: C(model_release_canary_split) - the canary's share of each pool, 1 to 50.
    type: int
  servers:
    description: C(model_release_pool_weights) - the servers to read.
    type: list
    elements: str
  server:
    description: C(model_release_engine_totals) - the engine, for the messages.
    type: str
  pools:
    description: C(model_release_gateway_totals) - the pools whose failed engine attempts count.
    type: list
    elements: str
  gateway:
    description: C(model_release_gateway_totals) - the gateway, for the messages.
    type: str
"""

EXAMPLES = r"""
- name: Plan the release
  ansible.builtin.set_fact:
    release: >-
      {{ [{'host': 'node1', 'version': 'v1'}, {'host': 'node2', 'version': 'v1'}]
         | onprem.deepseek.model_release_plan('v2') }}
"""

RETURN = r"""
_value:
  description: See each filter in the description.
  type: raw
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.module_utils._model_release import (
    ReleaseError,
    canary_verdict,
    canary_split,
    engine_totals,
    gate,
    gateway_totals,
    plan,
    pool_weights,
    settings,
)


def _wrap(name, function):
    def call(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ReleaseError as exc:
            raise AnsibleFilterError("%s: %s" % (name, exc))
    call.__name__ = name
    return call


class FilterModule(object):
    def filters(self):
        return {
            'model_release_settings': _wrap('model_release_settings', settings),
            'model_release_plan': _wrap('model_release_plan', plan),
            'model_release_gate': _wrap('model_release_gate', gate),
            'model_release_canary_split': _wrap('model_release_canary_split', canary_split),
            'model_release_pool_weights': _wrap('model_release_pool_weights', pool_weights),
            'model_release_engine_totals': _wrap('model_release_engine_totals', engine_totals),
            'model_release_gateway_totals': _wrap('model_release_gateway_totals', gateway_totals),
            'model_release_canary_verdict': _wrap('model_release_canary_verdict', canary_verdict),
        }
