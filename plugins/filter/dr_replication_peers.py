# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: dr_replication_peers
short_description: A gateway's audit replication peers, the gateways of the other sites
version_added: 0.2.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - "From every gateway's inventory name, C(deepseek_site) and C(ansible_host): the gateways of the other sites, which
    O(host) sends its audit chain to by RELP (C(targets)) and receives theirs from (C(senders))."
  - "Fails naming the variable on a gateway without a site (V(deepseek_site)), gateways all in one site, a port outside
    1-65535 (V(dr_replication_port)), a gateway without an address (V(ansible_host)), a name that cannot name a replica
    file, or a O(host) that is not a gateway."
  - See C(docs/dr.md).
positional: _input
options:
  _input:
    description: Every gateway, each C(name) (inventory name), C(site) (C(deepseek_site)) and C(address) (C(ansible_host)).
    type: list
    elements: dict
    required: true
  host:
    description: The gateway to plan for (C(inventory_hostname)).
    type: str
    required: true
  port:
    description: The RELP port every gateway listens on (the dr role's C(dr_replication_port)).
    type: int
    default: 2514
"""

EXAMPLES = r"""
- name: Plan this gateway's replication
  ansible.builtin.set_fact:
    peers: >-
      {{ [{'name': 'gw-a1', 'site': 'site_a', 'address': '10.87.1.21'},
          {'name': 'gw-b1', 'site': 'site_b', 'address': '10.87.2.21'}]
         | onprem.deepseek.dr_replication_peers(host='gw-a1', port=2514) }}
"""

RETURN = r"""
_value:
  description: This gateway's replication peers.
  type: dict
  contains:
    site:
      description: The host's site.
      type: str
      returned: always
      sample: site_a
    port:
      description: The RELP port.
      type: int
      returned: always
      sample: 2514
    senders:
      description: The gateways whose audit this host receives, each C(name) and C(site), by name.
      type: list
      elements: dict
      returned: always
      sample: [{name: gw-b1, site: site_b}]
    sender_addresses:
      description: Their addresses, each once, for the firewall.
      type: list
      elements: str
      returned: always
      sample: [10.87.2.21]
    targets:
      description: The gateways this host sends its audit to, each C(name), C(site), C(address), C(port) and C(queue) (rsyslog's queue name).
      type: list
      elements: dict
      returned: always
      sample: [{name: gw-b1, site: site_b, address: 10.87.2.21, port: 2514, queue: dr_to_gw_b1_0f1e2d3c}]
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.module_utils._dr_replication import (
    DEFAULT_PORT,
    DrReplicationError,
    replication_peers,
)


def dr_replication_peers(gateways, host, port=DEFAULT_PORT):
    try:
        return replication_peers(gateways, host, port)
    except DrReplicationError as exc:
        raise AnsibleFilterError("dr_replication_peers: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {'dr_replication_peers': dr_replication_peers}
