# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: drain_plan
short_description: The engine servers of one node to take out of every gateway's pools, never a pool's last
version_added: 0.2.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - A pool server (V(address:port)) is the node's when its address is one of the node's addresses.
  - Refuses, naming each gateway and pool, a drain that would leave a pool without a server.
  - C(playbooks/rolling_update.yml) drains each node this way before it changes it.
positional: _input, node, addresses
options:
  _input:
    description: Gateway host to its C(gateway_pools) fact, a list of C({name, servers}).
    type: dict
    required: true
  node:
    description: The node's inventory name, for the messages.
    type: str
    required: true
  addresses:
    description: The node's addresses (inventory name, C(ansible_host), interface addresses).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Plan the drain of this node
  ansible.builtin.set_fact:
    plan: >-
      {{ {'gw-a': [{'name': 'main', 'servers': ['10.0.0.1:8000', '10.0.0.2:8000']}]}
         | onprem.deepseek.drain_plan(inventory_hostname, [ansible_host]) }}
"""

RETURN = r"""
_value:
  description: The drain.
  type: dict
  contains:
    servers:
      description: The node's servers, sorted, each once; empty when no pool has one.
      type: list
      elements: str
    gateways:
      description: Per gateway, the pools that hold any of them, each with the servers it keeps.
      type: dict
  sample: {servers: [10.0.0.1:8000], gateways: {gw-a: {main: [10.0.0.2:8000]}}}
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.module_utils._drain import DrainError, drain_plan as _drain_plan


def drain_plan(gateways, node, addresses):
    try:
        return _drain_plan(gateways, node, addresses)
    except DrainError as exc:
        raise AnsibleFilterError('drain_plan: %s' % exc)


class FilterModule(object):
    def filters(self):
        return {'drain_plan': drain_plan}
