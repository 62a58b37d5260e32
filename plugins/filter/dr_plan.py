# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: dr_plan
short_description: Disaster recovery decisions between two active sites (precheck, weights, cutover steps, the primary in force)
version_added: 0.2.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - "Four filters over the facts gathered on the two sites; nothing is read from the network. Each site's facts:
    C(models) (model name to the version served), C(policy_hash), C(ca_fingerprint), C(server_certificates)
    (certificate name to fingerprint, the certificates served on the global entry point), C(revocations_hash),
    C(config_hash), C(engines) (engine name to V(true) when it answered an authenticated completion),
    C(gateway_healthy) (the same through the site's gateway) and C(replication_lag_s) (seconds the audit records
    written at this site are behind at the other site, V(null) when unknown)."
  - "C(dr_compare_sites): every consistency fact that differs between the two sites, naming the fact and both values."
  - "C(dr_precheck(primary, target, max_lag_s=0.05, force=false)): whether the primary role may move to O(target).
    Returns every reason at once, each naming the site and the fact. Never allowed: an unknown site, the same site
    twice, a target without a healthy engine, an unhealthy target gateway. With O(force), differences between the
    sites and a replication lag above O(max_lag_s) (equal is allowed) or unknown, in either direction, become
    warnings."
  - "C(dr_weights(primary, sites, primary_weight=80, pools=null)), on C(health) (site to C(engines)): the primary
    site's pool gets O(primary_weight), the other the rest of 100; a site without a healthy engine gets 0 and the
    other 100; both without one fails naming both. C(variants) is ready for a C(gateway_splits) entry."
  - "C(dr_cutover_steps(new_primary, primary_weight=80, pools=null)), on the old primary: the planned cutover's
    weights in order, V(steady) then V(cutover); in-flight requests drain between them. A failback is the same
    with the sites swapped."
  - "C(dr_server_weights(pools, server_sites)), on the sites' weights (C(weights) of C(dr_weights)): nginx's weight of
    each server in the pools (C(gateway_pools)) that hold engines of both sites, a site's share split evenly over its
    servers and divided by the greatest common divisor (80/20 over one server each gives 4 and 1); 0 means nginx's
    C(backup). O(server_sites) maps a server's host part to its site; a server on no known site fails, naming it."
  - "C(dr_primary_in_force(configured, sites)), on each gateway's record of the last cutover or failback (host to
    C({primary_site, since}) or V(null)): the primary in force, C({site, source, since, differs}). Records that name
    different sites (a cutover stopped half way) or an unknown site fail naming each host; with none,
    O(configured) (C(dr_primary_site)) is in force."
  - Errors (a malformed fact, a weight outside 0 to 100 or a boolean) fail naming the field. See C(docs/dr.md).
positional: _input
options:
  _input:
    description:
      - "C(dr_compare_sites), C(dr_precheck): site name to its facts, exactly two sites. C(dr_weights): site name to
        its C(engines) health. C(dr_cutover_steps): the old primary site."
    type: raw
    required: true
  primary:
    description: C(dr_precheck), C(dr_weights) - the site that is primary now.
    type: str
  target:
    description: C(dr_precheck) - the site that would become primary.
    type: str
  max_lag_s:
    description: C(dr_precheck) - the largest replication lag allowed, in seconds (the DRReplicationLagHigh threshold).
    type: float
    default: 0.05
  force:
    description: C(dr_precheck) - turn differences and lag into warnings; never a target that cannot serve.
    type: bool
    default: false
  sites:
    description: C(dr_weights) - the two site names; C(dr_primary_in_force) - the sites of the gateways.
    type: list
    elements: str
  new_primary:
    description: C(dr_cutover_steps) - the site that becomes primary.
    type: str
  server_sites:
    description: C(dr_server_weights) - a server's host (inventory name or C(ansible_host)) to its site.
    type: dict
  configured:
    description: C(dr_primary_in_force) - C(dr_primary_site), in force when no gateway has a record.
    type: str
  allow_split:
    description: C(dr_primary_in_force) - records that differ give C(site) V("") and C(source) V(split) instead of failing.
    type: bool
    default: false
  primary_weight:
    description: C(dr_weights), C(dr_cutover_steps) - the primary's share, an integer from 0 to 100.
    type: int
    default: 80
  pools:
    description:
      - C(dr_weights), C(dr_cutover_steps) - site name to its pool's name in C(gateway_upstreams); V(null) uses the site names.
      - C(dr_server_weights) - the gateway's pools, each C(name) and C(servers) (C(host:port)).
    type: raw
"""

EXAMPLES = r"""
- name: Refuse a cutover to site_b with every reason
  ansible.builtin.assert:
    that: check.ok
    fail_msg: "{{ check.refusals }}"
  vars:
    check: "{{ dr_site_facts | onprem.deepseek.dr_precheck(primary='site_a', target='site_b', force=dr_force | default(false)) }}"

- name: The weights of the sites' pools, 80/20 while both serve
  ansible.builtin.set_fact:
    dr_weights: >-
      {{ {'site_a': dr_site_facts.site_a.engines, 'site_b': dr_site_facts.site_b.engines}
         | onprem.deepseek.dr_weights(primary='site_a', sites=['site_a', 'site_b'],
                                      pools={'site_a': 'site-a', 'site_b': 'site-b'}) }}

- name: The gateways' split between the sites' pools
  ansible.builtin.set_fact:
    gateway_splits: [{name: dr, salt: dr, variants: "{{ dr_weights.variants }}"}]

- name: The steps of a planned cutover to site_b
  ansible.builtin.set_fact:
    dr_steps: "{{ 'site_a' | onprem.deepseek.dr_cutover_steps('site_b', primary_weight=80) }}"
"""

RETURN = r"""
_value:
  description:
    - "C(dr_compare_sites): a list of C(fact) (V(policy_hash), V(models[deepseek-r1]), ...), C(values) (site to value,
      V(null) when missing) and C(message)."
    - "C(dr_precheck): C(ok), C(refusals) and C(warnings) (lists of messages)."
    - "C(dr_weights): C(primary), C(weights) (site to weight), C(variants) (C(name) of the pool and C(weight), in site
      name order) and C(reasons) (why a site got 0). C(dr_cutover_steps): a list of the same without C(reasons), with
      C(step)."
  type: raw
  sample:
    ok: false
    refusals: ["site_b: gateway_healthy: the gateway did not answer an authenticated completion"]
    warnings: []
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.module_utils._dr_plan import (
    DEFAULT_MAX_LAG_S,
    DEFAULT_PRIMARY_WEIGHT,
    DrPlanError,
    compare_sites,
    cutover_steps,
    precheck,
    primary_in_force,
    server_weights,
    weights,
)


def dr_compare_sites(facts):
    try:
        return compare_sites(facts)
    except DrPlanError as exc:
        raise AnsibleFilterError("dr_compare_sites: %s" % exc)


def dr_precheck(facts, primary, target, max_lag_s=DEFAULT_MAX_LAG_S, force=False):
    try:
        return precheck(primary, target, facts, max_lag_s, force)
    except DrPlanError as exc:
        raise AnsibleFilterError("dr_precheck: %s" % exc)


def dr_weights(health, primary, sites, primary_weight=DEFAULT_PRIMARY_WEIGHT, pools=None):
    try:
        return weights(primary, sites, health, primary_weight, pools)
    except DrPlanError as exc:
        raise AnsibleFilterError("dr_weights: %s" % exc)


def dr_cutover_steps(old_primary, new_primary, primary_weight=DEFAULT_PRIMARY_WEIGHT, pools=None):
    try:
        return cutover_steps(old_primary, new_primary, primary_weight, pools)
    except DrPlanError as exc:
        raise AnsibleFilterError("dr_cutover_steps: %s" % exc)


def dr_server_weights(site_weights, pools, server_sites):
    try:
        return server_weights(site_weights, pools, server_sites)
    except DrPlanError as exc:
        raise AnsibleFilterError("dr_server_weights: %s" % exc)


def dr_primary_in_force(recorded, configured, sites, allow_split=False):
    try:
        return primary_in_force(recorded, configured, sites, allow_split)
    except DrPlanError as exc:
        raise AnsibleFilterError("dr_primary_in_force: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {
            'dr_compare_sites': dr_compare_sites,
            'dr_precheck': dr_precheck,
            'dr_weights': dr_weights,
            'dr_cutover_steps': dr_cutover_steps,
            'dr_server_weights': dr_server_weights,
            'dr_primary_in_force': dr_primary_in_force,
        }
