# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: port_filter
short_description: The clients allowed to some ports, by address family, for an nftables table
version_added: 0.2.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - Loopback (127.0.0.0/8, ::1) and the given clients as networks, split by family and each once, with the ports sorted.
  - Fails naming O(variable) on an entry that is not an address or CIDR network, on a network that admits every
    address (/0), on a port outside 1-65535 and when no port is given.
positional: _input
options:
  _input:
    description: Addresses or CIDR networks allowed to connect, besides loopback.
    type: list
    elements: str
    required: true
  variable:
    description: The variable the clients come from, named in errors.
    type: str
    required: true
  ports:
    description: The TCP ports the filter guards.
    type: list
    elements: int
    required: true
"""

EXAMPLES = r"""
- name: Decide the exporter's firewall sets
  ansible.builtin.set_fact:
    sets: "{{ ['10.77.2.11'] | onprem.deepseek.port_filter(variable='node_exporter_allowed_clients', ports=[9100]) }}"
"""

RETURN = r"""
_value:
  description: The allowed networks by family and the ports.
  type: dict
  sample: {ipv4: [127.0.0.0/8, 10.77.2.11/32], ipv6: ["::1/128"], ports: [9100]}
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.module_utils._port_filter import (
    PortFilterError,
    port_filter as _port_filter,
)


def port_filter(clients, variable, ports):
    try:
        return _port_filter(variable, clients, ports)
    except PortFilterError as exc:
        raise AnsibleFilterError("port_filter: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {'port_filter': port_filter}
