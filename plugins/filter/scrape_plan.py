# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: scrape_plan
short_description: Prometheus scrape jobs from the targets each monitored host publishes
version_added: 0.2.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - "Builds the C(scrape_configs) of C(prometheus.yml): Prometheus and Alertmanager themselves, then one job per part
    (V(node), V(dcgm), V(inference), V(gateway)) with a target per host of that part's group, labelled C(instance) (the host,
    or host/instance for engines), C(host), C(site) and, for engines, C(engine)."
  - "The targets are the public facts the roles' read-only preflights publish: C(node_exporter_target),
    C(dcgm_exporter_target) (empty on hosts without the exporter), C(inference_metrics_targets), C(gateway_metrics_target) (and C(gateway_url) for O(probe)).
    A gateway's C(gateway_router_metrics) (C(pool), C(path) of each vllm-router) adds the job V(gateway_router): one
    target per pool on the gateway's metrics server, at that path, labelled C(pool) and C(instance) host/pool.
    A host of a group whose fact is missing (None) was not read in this run, for example left out by C(--limit):
    the filter fails naming the host and the fact rather than dropping its targets. Malformed, loopback and
    duplicate targets fail naming the variable they come from."
  - Used by the C(monitoring) role.
positional: _input
options:
  _input:
    description:
      - One dict per inventory host with C(name), C(site) and the three facts above (None when unknown).
    type: list
    elements: dict
    required: true
  groups:
    description: Job name (V(node), V(inference), V(gateway)) to the names of the hosts that must bring targets.
    type: dict
    required: true
  self_target:
    description: Where Prometheus scrapes itself.
    type: str
    default: 127.0.0.1:9090
  alertmanager_target:
    description: Where Prometheus scrapes Alertmanager.
    type: str
    default: 127.0.0.1:9093
  probe:
    description:
      - "The blackbox exporter that probes the gateways: C(exporter) (host:port, loopback allowed) and C(module).
        Adds the job V(deepseek_gateway_probe): for each host of O(groups)'s V(deepseek_gateway_probe) list, the
        target C(<gateway_url>/chat/completions) (the C(gateway_url) of its C(_input) entry, from the gateway's
        C(gateway_endpoint) fact), labelled C(instance) and C(host) (the host) and C(site)."
      - A missing C(gateway_url) fails like a missing fact above; a URL that is not https, or on loopback, fails
        naming the host.
    type: dict
    version_added: 0.2.0
  tls:
    description:
      - "Prometheus' client certificate: C(ca_file), C(cert_file), C(key_file) (absolute paths). A V(node) target
        whose host publishes C(node_exporter_tls) true, or a V(dcgm) target whose host publishes C(dcgm_exporter_tls)
        true, is scraped over https (target label C(__scheme__)) with it as the job's C(tls_config)."
      - Such a target without O(tls) fails naming the host and the variable.
    type: dict
    version_added: 0.2.0
"""

EXAMPLES = r"""
- name: Plan the scrape jobs
  ansible.builtin.set_fact:
    jobs: >-
      {{ hosts | onprem.deepseek.scrape_plan(groups={'node': groups['deepseek_nodes'],
                                                     'inference': groups['inference_nodes'] | default([])}) }}
"""

RETURN = r"""
_value:
  description: The scrape_configs, in job order, each target in a static_config of its own with its labels.
  type: list
  elements: dict
  sample:
    - job_name: node
      static_configs:
        - targets: ["10.77.1.11:9100"]
          labels: {host: ds-a-node1, instance: ds-a-node1, site: site_a}
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.module_utils._scrape_plan import (
    ScrapePlanError,
    scrape_jobs,
)


def scrape_plan(hosts, groups, self_target="127.0.0.1:9090", alertmanager_target="127.0.0.1:9093", probe=None,
                tls=None):
    try:
        return scrape_jobs(hosts, groups, self_target, alertmanager_target, probe=probe, tls=tls)
    except ScrapePlanError as exc:
        raise AnsibleFilterError("scrape_plan: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {'scrape_plan': scrape_plan}
