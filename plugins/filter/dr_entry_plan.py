# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: dr_entry_plan
short_description: How each gateway announces the global entry point's service address by BGP (dr_entry_plan, dr_entry_check_settings)
version_added: 0.2.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - The primary site's gateways announce the service address (a /32) as it is; the other sites' gateways prepend
    their AS O(standby_prepend) times, so the site routers use them only once the primary's announcements are gone.
  - Refuses, naming the variable, a service address that is not one IPv4 address, a primary site without a
    gateway, a gateway without a BGP peer or with a peer in its own AS, two gateways with one address, and
    AS numbers, prepends or hold times out of range. The C(dr) role renders BIRD's configuration from it.
  - "C(dr_entry_check_settings): the gateway's health check settings (the JSON its program reads) as they are, or an
    error naming every wrong one; the program checks them again at start."
positional: _input, address, primary_site, asn, peers
options:
  _input:
    description: Every gateway, a list of C({name, site, router_id}) (router_id its IPv4 address).
    type: list
    elements: dict
    required: true
  address:
    description: The service address (C(dr_entry_address)).
    type: str
    required: true
  primary_site:
    description: The site whose gateways are preferred (C(dr_primary_site)).
    type: str
    required: true
  asn:
    description: The gateways' AS number (C(dr_entry_asn)).
    type: int
    required: true
  peers:
    description: Gateway name to its BGP peers, a list of C({address, asn}) (C(dr_entry_peers)).
    type: dict
    required: true
  standby_prepend:
    description: How many times the standby sites' gateways prepend their AS (1 to 16).
    type: int
    default: 3
  hold_time:
    description: BGP hold time in seconds (3 to 65535); keepalives every third of it.
    type: int
    default: 3
  bfd:
    description: Ask BFD on every session.
    type: bool
    default: true
  only:
    description: The gateways to plan (the others are checked, but need no peers); default all.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Plan the announcements
  ansible.builtin.set_fact:
    plan: >-
      {{ [{'name': 'gw-a', 'site': 'site_a', 'router_id': '10.0.1.21'}]
         | onprem.deepseek.dr_entry_plan('10.0.100.10', 'site_a', 65001, {'gw-a': [{'address': '10.0.1.1', 'asn': 65000}]}) }}
"""

RETURN = r"""
_value:
  description: Gateway name to its announcement.
  type: dict
  sample:
    gw-a: {site: site_a, role: primary, prepend: 0, router_id: 10.0.1.21, address: 10.0.100.10, asn: 65001,
           peers: [{address: 10.0.1.1, asn: 65000}], hold_time: 3, keepalive_time: 1, bfd: true}
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.module_utils._dr_entry import DrEntryError, check_config, entry_plan


def dr_entry_plan(gateways, address, primary_site, asn, peers, standby_prepend=3, hold_time=3, bfd=True, only=None):
    try:
        return entry_plan(gateways, address, primary_site, asn, peers, standby_prepend=standby_prepend,
                          hold_time=hold_time, bfd=bfd, only=only)
    except DrEntryError as exc:
        raise AnsibleFilterError('dr_entry_plan: %s' % exc)


def dr_entry_check_settings(config):
    try:
        return check_config(config)
    except DrEntryError as exc:
        raise AnsibleFilterError('dr_entry_check_settings: %s' % exc)


class FilterModule(object):
    def filters(self):
        return {'dr_entry_plan': dr_entry_plan, 'dr_entry_check_settings': dr_entry_check_settings}
