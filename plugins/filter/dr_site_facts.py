# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: dr_site_facts
short_description: Each site's disaster recovery facts, from what its gateways read (dr_site_view, dr_site_facts)
version_added: 0.2.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - "C(dr_site_view(...)), on the gateway's site name: that gateway's view of its site from what the dr role's
    C(site_facts.yml) read, the facts of O(onprem.deepseek.dr_plan#filter:_input) plus C(site) and C(received_lag_s)
    (sending site to the largest replication lag of its hosts as received here). C(models) maps each model the
    answering engines list to the version they serve - the last part of the directory the engine loaded
    (C(root) in C(/v1/models)) when it lies in a model store's C(versions/), the whole directory otherwise,
    V(unknown) when the engine names none, several versions comma-separated. The gateway is healthy when its entry
    health check passed less than 10 seconds before O(now). A missing or damaged textfile counts as no health and
    an unknown lag; a missing policy gives V(null) hashes."
  - "C(dr_site_facts(sites, down)), on host to its view: each site's facts for C(dr_precheck). Facts the gateways of
    one site disagree on become a text naming each value (so they differ from the other site's); engines are the
    union of the views; the gateway is healthy when one of the site's is; the replication lag of the records
    written at a site is the largest any other site's gateway received (V(null) when none did). A site without a
    view gets O(down)."
  - Errors (a malformed view, policy or argument) fail naming it. See C(docs/dr.md).
positional: _input
options:
  _input:
    description: "C(dr_site_view): the gateway's site. C(dr_site_facts): host to its view."
    type: raw
    required: true
  policy:
    description: C(dr_site_view) - the gateway's compiled policy (C(policy.json)), V(null) when it has none.
    type: raw
  ca_fingerprint:
    description: C(dr_site_view) - the SHA-256 checksum of the CA chain file the entry check trusts.
    type: str
  certificate:
    description: C(dr_site_view) - what C(community.crypto.get_certificate) returned for the entry point's name.
    type: raw
  server_name:
    description: C(dr_site_view) - the entry point's name (C(dr_entry_check_server_name)).
    type: str
  check_text:
    description: C(dr_site_view) - the entry health check's node exporter textfile, V("") when absent.
    type: str
  lag_text:
    description: C(dr_site_view) - the audit replication's node exporter textfile, V("") when absent.
    type: str
  now:
    description: C(dr_site_view) - the gateway's clock, seconds since the epoch.
    type: float
  probes:
    description: C(dr_site_view) - C(onprem.deepseek.inference_probe) results of this site's engines, each with C(server).
    type: list
    elements: dict
  config:
    description: C(dr_site_view) - the configuration the playbooks pushed, hashed as C(config_hash).
    type: dict
  sites:
    description: C(dr_site_facts) - the sites to give facts for.
    type: list
    elements: str
  down:
    description: C(dr_site_facts) - the facts of a site none of whose gateways gave a view.
    type: dict
"""

EXAMPLES = r"""
- name: Gather each site's facts (as playbooks/dr_cutover.yml does)
  ansible.builtin.set_fact:
    dr_cutover_facts: >-
      {{ dict(viewers | zip(viewers | map('extract', hostvars, 'dr_site_facts_host')))
         | onprem.deepseek.dr_site_facts(['site_a', 'site_b'], down_facts) }}
  vars:
    viewers: "{{ ansible_play_hosts | map('extract', hostvars) | selectattr('dr_site_facts_host', 'defined') | map(attribute='inventory_hostname') | list }}"
  run_once: true
"""

RETURN = r"""
_value:
  description:
    - "C(dr_site_view): C(site), C(models), C(policy_hash), C(revocations_hash), C(ca_fingerprint),
      C(server_certificates), C(config_hash), C(received_lag_s), C(engines), C(gateway_healthy)."
    - "C(dr_site_facts): site name to its facts (those of C(dr_precheck))."
  type: dict
  sample:
    site_a:
      models: {deepseek-r1: "2025-05-28"}
      policy_hash: 5f0c...
      engines: {"10.0.1.21:8000": true}
      gateway_healthy: true
      replication_lag_s: 0.01
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.module_utils._dr_site_facts import (
    SiteFactsError,
    host_view,
    site_facts,
)


def dr_site_view(site, policy, ca_fingerprint, certificate, server_name, check_text, lag_text, now, probes, config):
    try:
        return host_view(site, policy, ca_fingerprint, certificate, server_name, check_text, lag_text, now, probes, config)
    except SiteFactsError as exc:
        raise AnsibleFilterError("dr_site_view: %s" % exc)


def dr_site_facts(views, sites, down):
    try:
        return site_facts(views, sites, down)
    except SiteFactsError as exc:
        raise AnsibleFilterError("dr_site_facts: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {
            'dr_site_view': dr_site_view,
            'dr_site_facts': dr_site_facts,
        }
