# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Prometheus scrape jobs from the inventory: each host brings the targets its parts publish.

Every monitored host is described by what the roles' read-only preflights publish about it
(``node_exporter_target``, ``dcgm_exporter_target``, ``inference_metrics_targets``,
``gateway_metrics_target``). A host of a
monitored group whose fact is missing was not read in this run (left out by ``--limit``): the plan
refuses it instead of writing a configuration that silently drops its targets.
"""

from __future__ import annotations

import re

# Job names: the alert rules (roles/monitoring/files/prometheus/rules) select on them.
JOB_PROMETHEUS = "prometheus"
JOB_ALERTMANAGER = "alertmanager"
JOB_NODE = "node"
# NVIDIA's DCGM exporter on the GPU hosts (an empty dcgm_exporter_target: no exporter there).
JOB_DCGM = "dcgm"
JOB_INFERENCE = "inference"
JOB_GATEWAY = "gateway"
# Each pool's vllm-router, through its gateway's metrics server (gateway_router_metrics).
JOB_GATEWAY_ROUTER = "gateway_router"
# The blackbox exporter's authenticated completion through each probed gateway (SiteDown uses it).
JOB_GATEWAY_PROBE = "deepseek_gateway_probe"

# host:port, host a name, an IPv4 address or a bracketed IPv6 address.
_TARGET = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):([0-9]{1,5})$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9_.:/-]*$")
_LOOPBACK = ("127.0.0.1", "[::1]", "localhost")
# https://host[:port]/path, host as in _TARGET.
_HTTPS_URL = re.compile(r"^https://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*)(?::([0-9]{1,5}))?(/[A-Za-z0-9_./-]*)?$")


class ScrapePlanError(ValueError):
    pass


def check_target(target, what, loopback=False):
    """Return target (host:port) when well formed, else raise naming what it is. Loopback only
    where ``loopback`` (a part that runs beside Prometheus)."""
    m = _TARGET.match(target) if isinstance(target, str) else None
    if not m or not 1 <= int(m.group(2)) <= 65535:
        raise ScrapePlanError("%s: %r is not host:port (a port from 1 to 65535)" % (what, target))
    if not loopback and m.group(1) in _LOOPBACK:
        raise ScrapePlanError("%s: %r listens on loopback only, which Prometheus on another host cannot reach" % (what, target))
    return target


def _label(value, what):
    if not isinstance(value, str) or not _LABEL_VALUE.match(value):
        raise ScrapePlanError("%s: %r is not a label value of letters, digits and _.:/-" % (what, value))
    return value


def _fact_of(by_name, name, job, fact, published=None):
    """The public fact a host of a job's group published, refusing a host not in the inventory
    or not read in this run; ``published`` names the fact the role publishes, when ``fact`` is
    read from inside it."""
    host = by_name.get(name)
    if host is None:
        raise ScrapePlanError("host %s of the %s targets is not in the inventory's hosts" % (name, job))
    value = host.get(fact)
    if value is None:
        raise ScrapePlanError(
            "%s: %s is unknown: its read-only preflight did not run in this play (left out by --limit?); "
            "run with every monitored host, or without --limit" % (name, published or fact))
    return host, value


def check_probe_url(url, what):
    """Return url when it is an https URL of a host other than loopback, else raise naming what it is."""
    m = _HTTPS_URL.match(url) if isinstance(url, str) else None
    if not m or (m.group(2) is not None and not 1 <= int(m.group(2)) <= 65535):
        raise ScrapePlanError("%s: %r is not an https://host[:port]/path URL" % (what, url))
    if m.group(1) in _LOOPBACK:
        raise ScrapePlanError("%s: %r is on loopback, which the blackbox exporter on another host cannot reach" % (what, url))
    return url


def router_job(hosts_by_name, names):
    """The routers' job: for each gateway that publishes ``gateway_router_metrics``, one target per
    pool on its metrics server (``gateway_metrics_target``), at the pool's path."""
    configs = []
    for name in sorted(set(names)):
        host = hosts_by_name[name]
        if not host.get("gateway_metrics_target"):
            continue
        for item in host.get("gateway_router_metrics") or []:
            pool = _label(item.get("pool"), "%s: gateway_router_metrics pool" % name)
            path = item.get("path")
            if not isinstance(path, str) or not re.match(r"^/[A-Za-z0-9_./-]*$", path):
                raise ScrapePlanError("%s: gateway_router_metrics[%s]: %r is not a URL path" % (name, pool, path))
            configs.append({"targets": [host["gateway_metrics_target"]],
                            "labels": {"__metrics_path__": path, "host": name, "instance": "%s/%s" % (name, pool),
                                       "pool": pool, "site": host.get("site") or ""}})
    if not configs:
        return None
    return {"job_name": JOB_GATEWAY_ROUTER, "static_configs": configs}


def probe_job(hosts_by_name, names, exporter, module):
    """The blackbox job: one authenticated completion per gateway in ``names`` through the
    exporter at ``exporter`` (host:port) with ``module``; each target keeps host, site and
    instance (the host) as labels."""
    targets = {}
    for name in sorted(set(names)):
        host, url = _fact_of(hosts_by_name, name, JOB_GATEWAY_PROBE, "gateway_url", "gateway_endpoint")
        what = "%s: gateway_endpoint.url (from gateway_url)" % name
        target = check_probe_url(url.rstrip("/") + "/chat/completions" if isinstance(url, str) else url, what)
        if target in targets:
            raise ScrapePlanError("%s: %s is also probed for %s" % (name, target, targets[target]["host"]))
        targets[target] = {"host": name, "instance": name,
                           "site": _label(host.get("site") or "", "%s: deepseek_site" % name)}
    if not targets:
        return None
    job = _group(JOB_GATEWAY_PROBE, targets)
    job.update({"metrics_path": "/probe", "params": {"module": [_label(module, "probe module")]},
                "relabel_configs": [
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"target_label": "__address__", "replacement": check_target(exporter, "blackbox exporter", loopback=True)}]})
    return job


def _group(job, targets):
    """One static_config per target, so each keeps its own labels; sorted for a stable file."""
    configs = [{"targets": [t], "labels": dict(sorted(labels.items()))} for t, labels in sorted(targets.items())]
    return {"job_name": job, "static_configs": configs}


# Exporters that serve /metrics over TLS with client certificates: job, the host's fact saying so, and
# the variable that turns it on.
TLS_EXPORTERS = {JOB_NODE: ("node_exporter_tls", "node_exporter_tls_certificate"),
                 JOB_DCGM: ("dcgm_exporter_tls", "dcgm_exporter_tls_certificate")}
_TLS_KEYS = ("ca_file", "cert_file", "key_file")


def _tls_config(tls):
    """The job's tls_config from ``tls`` (ca_file, cert_file, key_file: absolute paths)."""
    if not isinstance(tls, dict) or sorted(tls) != sorted(_TLS_KEYS):
        raise ScrapePlanError("the scrape client certificate must name exactly %s, got %r" % (", ".join(_TLS_KEYS), tls))
    for key in _TLS_KEYS:
        if not isinstance(tls[key], str) or not tls[key].startswith("/"):
            raise ScrapePlanError("the scrape client certificate's %s must be an absolute path, got %r" % (key, tls[key]))
    return {key: tls[key] for key in _TLS_KEYS}


def scrape_jobs(hosts, groups, self_target="127.0.0.1:9090", alertmanager_target="127.0.0.1:9093", probe=None,
                tls=None):
    """The scrape_configs of prometheus.yml.

    hosts: one dict per inventory host: ``name``, ``site`` and the public facts of its parts
    (``node_exporter_target``, ``inference_metrics_targets``, ``gateway_metrics_target``), None
    when the host was not read in this run.
    groups: job name to the names of the hosts that must bring targets to it (node: every node;
    dcgm: every node, those without the exporter publishing an empty dcgm_exporter_target;
    inference: the inference nodes; gateway: the gateways, whose ``gateway_router_metrics`` (pool
    and path of each vllm-router) also make the job gateway_router; deepseek_gateway_probe: the
    gateways the blackbox exporter probes, whose ``gateway_url`` it calls).
    probe: None, or ``{"exporter": host:port, "module": name}`` of the blackbox exporter that
    probes the gateways of ``groups["deepseek_gateway_probe"]``.
    tls: None, or Prometheus' client certificate (``ca_file``, ``cert_file``, ``key_file``) for the
    exporters of TLS_EXPORTERS whose host publishes its TLS fact true: their targets get
    ``__scheme__: https`` and their job this tls_config. Such a target without ``tls`` is refused.
    """
    by_name = {}
    for host in hosts:
        name = _label(host.get("name"), "host name")
        if name in by_name:
            raise ScrapePlanError("host %s is listed twice" % name)
        by_name[name] = host

    jobs = [
        _group(JOB_PROMETHEUS, {self_target: {"instance": "prometheus"}}),
        _group(JOB_ALERTMANAGER, {alertmanager_target: {"instance": "alertmanager"}}),
    ]
    seen = {}

    def add(targets, target, labels, what):
        check_target(target, what)
        if target in seen:
            raise ScrapePlanError("%s: %s is also %s" % (what, target, seen[target]))
        seen[target] = what
        targets[target] = labels

    for job, fact, source in ((JOB_NODE, "node_exporter_target", "node_exporter_listen"),
                              (JOB_DCGM, "dcgm_exporter_target", "dcgm_exporter_listen"),
                              (JOB_INFERENCE, "inference_metrics_targets", "inference_listen_address, inference_instances"),
                              (JOB_GATEWAY, "gateway_metrics_target", "gateway_metrics_listen")):
        targets = {}
        for name in sorted(set(groups.get(job, []))):
            host, value = _fact_of(by_name, name, job, fact)
            base = {"host": name, "site": _label(host.get("site") or "", "%s: deepseek_site" % name)}
            if job == JOB_INFERENCE:
                for item in value:
                    instance = _label(item.get("instance"), "%s: inference instance name" % name)
                    # "runtime", not "engine": vLLM labels its own series engine (the data-parallel
                    # rank), which a target label of that name would rename to exported_engine.
                    runtime = _label(item.get("engine", ""), "%s: inference engine" % name)
                    add(targets, item.get("target"), dict(base, instance="%s/%s" % (name, instance), runtime=runtime),
                        "%s: %s[%s] (from %s)" % (name, fact, instance, source))
            elif value:
                labels = dict(base, instance=name)
                if job in TLS_EXPORTERS and host.get(TLS_EXPORTERS[job][0]):
                    if tls is None:
                        raise ScrapePlanError(
                            "%s: %s is set, so its %s exporter answers only over TLS to a client certificate: "
                            "give Prometheus one (monitoring_scrape_client_certificate)" % (name, TLS_EXPORTERS[job][1], job))
                    labels["__scheme__"] = "https"
                add(targets, value, labels, "%s: %s (from %s)" % (name, fact, source))
        if targets:
            group = _group(job, targets)
            if any(c["labels"].get("__scheme__") == "https" for c in group["static_configs"]):
                group["tls_config"] = _tls_config(tls)
            jobs.append(group)
    router = router_job(by_name, groups.get(JOB_GATEWAY, []))
    if router is not None:
        jobs.append(router)
    if probe is not None:
        job = probe_job(by_name, groups.get(JOB_GATEWAY_PROBE, []), probe.get("exporter"), probe.get("module"))
        if job is not None:
            jobs.append(job)
    return jobs
