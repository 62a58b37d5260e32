# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Decisions of a model release, ``playbooks/model_release.yml`` (private to the collection).

- ``settings()``: the release's thresholds, checked, each error naming its variable.
- ``plan()``: which nodes take the candidate first (the canary) and which after, from the version
  each node serves now; what to refuse (no version, several versions, a release stopped half way).
- ``gate()``: the candidate's probe figures against the current version's, measured on the same
  drained node one after the other, so the hardware and the load are the same.
- ``canary_weights()``, ``canary_split()``: nginx weights that give the canary's servers their share
  of each pool, and the pools and other servers the canary window compares it with.
- ``pool_weights()``: the weights a gateway's ``nginx.conf`` gives servers now, to put them back.
- ``canary_verdict()``: what the canary window showed: the canary's requests and mean latency
  against the other engines', and the gateways' failed requests.
"""

from __future__ import annotations

import math
import re

from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_manifest import (
    ArtifactError,
    validate_component,
)
from ansible_collections.onprem.deepseek.plugins.module_utils._drain import SAMPLE_RE


class ReleaseError(Exception):
    pass


# name: (default, minimum, maximum, integer)
SETTINGS = {
    "canary_percent": (10, 1, 50, True),
    "canary_seconds": (300, 0, 86400, True),
    "canary_min_requests": (20, 1, 10 ** 9, True),
    "canary_max_error_rate": (0.01, 0.0, 1.0, False),
    "canary_max_latency_ratio": (1.5, 1.0, 100.0, False),
    # Below 1 (latency) or above 1 (throughput): the candidate must be faster, as a quantised one should.
    "max_latency_ratio": (1.25, 0.01, 100.0, False),
    "max_ttft_ratio": (1.25, 0.01, 100.0, False),
    "min_throughput_ratio": (0.8, 0.01, 100.0, False),
    "probe_requests": (6, 2, 1000, True),
}

PREFIX = "model_release_"


def settings(given):
    """The thresholds with their defaults, each checked against its range: {name: value}."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise ReleaseError("the release settings must be a dict, not %r" % (given,))
    unknown = sorted(set(given) - set(SETTINGS))
    if unknown:
        raise ReleaseError("unknown setting(s): %s" % ", ".join(PREFIX + n for n in unknown))
    out = {}
    for name, (default, low, high, integer) in SETTINGS.items():
        value = given.get(name)
        if value is None or value == "":
            value = default
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if integer and number != int(number):
                raise ValueError
        except (TypeError, ValueError):
            raise ReleaseError("%s%s: must be a%s number, not %r" % (PREFIX, name, "n integer" if integer else "", value))
        if math.isnan(number) or not low <= number <= high:
            raise ReleaseError("%s%s: must be from %s to %s (is %s)" % (PREFIX, name, low, high, value))
        out[name] = int(number) if integer else number
    return out


def plan(nodes, candidate, canary_hosts=None, resume=False):
    """What the release does, from ``nodes`` ([{host, version}] in inventory order, version the one
    ``current`` points at, None when none).

    Returns {action: "none" | "release", candidate, from_version, done, pending, canary, rest}.
    ``done`` already serve the candidate; ``canary`` take it first, behind the performance gate and
    the canary window; ``rest`` follow node by node. ``canary_hosts`` empty means the first pending
    node. With ``resume`` a release that stopped after some nodes took the candidate rolls the rest
    without a new canary.
    """
    try:
        validate_component("version", candidate)
    except ArtifactError as exc:
        raise ReleaseError("model_release_version: %s" % exc)
    if not isinstance(nodes, (list, tuple)) or not nodes:
        raise ReleaseError("model_release_hosts: no node to release to (the pattern matched no host)")
    versions = {}
    for node in nodes:
        if not isinstance(node, dict) or not isinstance(node.get("host"), str):
            raise ReleaseError("nodes: each must be a dict with host and version, not %r" % (node,))
        if not node.get("version"):
            raise ReleaseError("%s serves no version of the model (its store has no current): a release replaces "
                               "a served version; deploy the node first (playbooks/site.yml)" % node["host"])
        versions[node["host"]] = node["version"]
    hosts = [n["host"] for n in nodes]
    canary_hosts = list(canary_hosts or [])
    strange = [h for h in canary_hosts if h not in versions]
    if strange:
        raise ReleaseError("model_release_canary_hosts: %s %s not among the release's nodes (%s)"
                           % (", ".join(strange), "is" if len(strange) == 1 else "are", ", ".join(hosts)))
    done = [h for h in hosts if versions[h] == candidate]
    pending = [h for h in hosts if versions[h] != candidate]
    result = {"action": "none", "candidate": candidate, "from_version": None, "done": done, "pending": pending,
              "canary": [], "rest": []}
    if not pending:
        return result
    olds = sorted(set(versions[h] for h in pending))
    if len(olds) > 1:
        raise ReleaseError("the nodes serve different versions (%s): release to one group of nodes at a time "
                           "(model_release_hosts)" % "; ".join(
                               "%s on %s" % (v, ", ".join(h for h in pending if versions[h] == v)) for v in olds))
    if done and not resume:
        raise ReleaseError("%s already serve%s %s and %s still serve%s %s: a release stopped half way. Set "
                           "model_release_resume=true to roll the rest without a new canary, or go back by "
                           "releasing %s to %s (model_release_hosts)"
                           % (", ".join(done), "s" if len(done) == 1 else "", candidate, ", ".join(pending),
                              "s" if len(pending) == 1 else "", olds[0], olds[0], ", ".join(done)))
    if done:
        canary = []
    else:
        canary = [h for h in hosts if h in canary_hosts] if canary_hosts else pending[:1]
    result.update(action="release", from_version=olds[0], canary=canary,
                  rest=[h for h in pending if h not in canary])
    return result


def _median(figures, key, what):
    latency = figures.get("latency") if isinstance(figures, dict) else None
    if not isinstance(latency, dict):
        raise ReleaseError("%s: not a probe result (no latency figures): %r" % (what, figures))
    value = (latency.get(key) or {}).get("median")
    return None if value is None else float(value)


def gate(current, candidate, config):
    """The performance gate: {passed, reasons, figures}. ``current`` and ``candidate`` are
    inference_probe results on the same node. The candidate passes when its median total time and
    time to first token are at most max_latency_ratio / max_ttft_ratio times the current version's
    and its median tokens per second at least min_throughput_ratio times."""
    checks = (
        ("total_s", "max_latency_ratio", "median time per request", False),
        ("ttft_s", "max_ttft_ratio", "median time to first token", False),
        ("tokens_per_s", "min_throughput_ratio", "median tokens per second", True),
    )
    reasons, figures = [], {}
    for key, limit_name, words, higher_is_better in checks:
        limit = config[limit_name]
        before = _median(current, key, "current")
        after = _median(candidate, key, "candidate")
        if before is None:
            # Nothing to compare with: the current version gave no figure (no streamed request).
            continue
        if after is None:
            reasons.append("%s: the candidate gave no figure (the current version: %.4g)" % (words, before))
            figures[key] = {"current": before, "candidate": None, "ratio": None, "limit": limit}
            continue
        ratio = after / before if before > 0 else (1.0 if after == before else math.inf)
        figures[key] = {"current": before, "candidate": after, "ratio": round(ratio, 4), "limit": limit}
        if higher_is_better and ratio < limit:
            reasons.append("%s: %.4g is %.2f of the current version's %.4g, under %s%s (%s)"
                           % (words, after, ratio, before, PREFIX, limit_name, limit))
        elif not higher_is_better and ratio > limit:
            reasons.append("%s: %.4g s is %.2f times the current version's %.4g s, over %s%s (%s)"
                           % (words, after, ratio, before, PREFIX, limit_name, limit))
    return {"passed": not reasons, "reasons": reasons, "figures": figures}


def _server(value, where):
    if not isinstance(value, str) or not re.match(r"^[^\s:]+:[0-9]{1,5}$|^\[[0-9a-fA-F:.]+\]:[0-9]{1,5}$", value):
        raise ReleaseError("%s: %r is not host:port" % (where, value))
    return value


def canary_weights(pools, canary_servers, percent):
    """{server: weight} that gives the canary servers ``percent`` of each pool that also has other
    servers (split evenly over each side, reduced by their greatest common divisor, at most 100).
    Pools without a canary server, or with nothing else, are left out."""
    if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 50:
        raise ReleaseError("%scanary_percent: must be an integer from 1 to 50 (is %r)" % (PREFIX, percent))
    canary = set(_server(s, "canary servers") for s in canary_servers)
    out, owner = {}, {}
    for i, pool in enumerate(pools or []):
        if not isinstance(pool, dict) or not isinstance(pool.get("servers"), (list, tuple)):
            raise ReleaseError("pools[%d]: must be a dict with servers, not %r" % (i, pool))
        servers = [_server(s, "pools[%d] (%s)" % (i, pool.get("name", "?"))) for s in pool["servers"]]
        mine = [s for s in servers if s in canary]
        others = [s for s in servers if s not in canary]
        if not mine or not others:
            continue
        a, b = percent * len(others), (100 - percent) * len(mine)
        g = math.gcd(a, b)
        a, b = a // g, b // g
        if max(a, b) > 100:
            scale = 100.0 / max(a, b)
            a, b = max(1, int(round(a * scale))), max(1, int(round(b * scale)))
        for server, weight in [(s, a) for s in mine] + [(s, b) for s in others]:
            if server in out and out[server] != weight:
                raise ReleaseError("server %s is in pools %s and %s, which would need different weights (%d and %d) "
                                   "for the canary: give the canary its own nodes or one pool"
                                   % (server, owner[server], pool.get("name", i), out[server], weight))
            out[server], owner[server] = weight, pool.get("name", i)
    return out


def canary_split(pools, canary_servers, percent):
    """What the canary window changes at one gateway: {weights (canary_weights()), pools (names of
    the pools that hold a canary server), stable (the other servers of those pools)}."""
    weights = canary_weights(pools, canary_servers, percent)
    canary = set(canary_servers)
    names, stable = [], []
    for pool in pools or []:
        if canary.intersection(pool["servers"]):
            names.append(pool.get("name"))
            stable.extend(s for s in pool["servers"] if s not in canary and s not in stable)
    return {"weights": weights, "pools": names, "stable": stable}


_SERVER_LINE = re.compile(r"^\s+server (\S+?)(?: weight=([0-9]+)| (backup))? max_fails=[0-9]+ fail_timeout=\S+?(?: down)?;\s*$")


def pool_weights(conf_text, servers):
    """The weight nginx.conf gives each of ``servers`` now: an integer, 0 for ``backup``, or
    ``default`` where the line names none. A server the file does not list is left out."""
    wanted = set(servers or [])
    out = {}
    for line in (conf_text or "").splitlines():
        match = _SERVER_LINE.match(line)
        if not match or match.group(1) not in wanted:
            continue
        value = 0 if match.group(3) else (int(match.group(2)) if match.group(2) else "default")
        if match.group(1) in out and out[match.group(1)] != value:
            raise ReleaseError("nginx.conf gives server %s two weights (%s and %s)" % (match.group(1), out[match.group(1)], value))
        out[match.group(1)] = value
    return out


_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
LATENCY = ("vllm:e2e_request_latency_seconds", "sglang:e2e_request_latency_seconds")


def _samples(text):
    for line in (text or "").splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE_RE.match(line.strip())
        if not match:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        yield match.group(1), dict(_LABEL.findall(match.group(2) or "")), value


def engine_totals(text, server=""):
    """{requests, seconds}: the requests an engine finished and their summed end-to-end time, from
    its e2e latency histogram (vLLM or SGLang). Fails when the text has neither."""
    count = total = None
    for name, _labels, value in _samples(text):
        for family in LATENCY:
            if name == family + "_count":
                count = (count or 0.0) + value
            elif name == family + "_sum":
                total = (total or 0.0) + value
    if count is None or total is None:
        raise ReleaseError("engine %s: its metrics have no end-to-end latency histogram (%s)"
                           % (server or "?", " or ".join(LATENCY)))
    return {"requests": count, "seconds": total}


def gateway_totals(text, pools, gateway=""):
    """{requests, errors}: the gateway's model requests (routes other than /health and /v1/models)
    and those of them answered 5xx, plus its engine attempts that failed in ``pools``."""
    requests = errors = 0.0
    seen = False
    for name, labels, value in _samples(text):
        if name == "onprem_gateway_requests_total":
            seen = True
            if labels.get("route") in ("/health", "/v1/models"):
                continue
            requests += value
            if labels.get("status", "").startswith("5"):
                errors += value
        elif name == "onprem_gateway_upstream_failures_total" and labels.get("upstream") in (pools or []):
            errors += value
    if not seen:
        raise ReleaseError("gateway %s: its metrics have no onprem_gateway_requests_total" % (gateway or "?"))
    return {"requests": requests, "errors": errors}


def _delta(before, after, key, what):
    if after[key] < before[key]:
        raise ReleaseError("%s: its counters went back (%s from %s to %s): it restarted during the canary window"
                           % (what, key, before[key], after[key]))
    return after[key] - before[key]


def canary_verdict(metrics, config):
    """The canary window's verdict from what was read, {passed, reasons, figures} (see judge()).

    ``metrics``: {canary_servers: [host:port], engines_before, engines_after: {server: its /metrics
    text}, gateways: {gateway: {before, after: its /metrics text, pools: [names of the canary's
    pools]}}}. Servers that are not canary servers are the others the canary is compared with.
    """
    if not isinstance(metrics, dict):
        raise ReleaseError("the canary window's metrics must be a dict, not %r" % (metrics,))
    canary = set(metrics.get("canary_servers") or [])
    before, after = metrics.get("engines_before") or {}, metrics.get("engines_after") or {}
    if set(before) != set(after):
        raise ReleaseError("the engines read before the window (%s) differ from those read after (%s)"
                           % (", ".join(sorted(before)), ", ".join(sorted(after))))
    window = {"canary": {}, "stable": {}, "gateways": {}}
    for server in sorted(before):
        window["canary" if server in canary else "stable"][server] = {
            "before": engine_totals(before[server], server), "after": engine_totals(after[server], server)}
    missing = sorted(canary - set(before))
    if missing:
        raise ReleaseError("no metrics were read from the canary server(s) %s" % ", ".join(missing))
    for gateway, pair in sorted((metrics.get("gateways") or {}).items()):
        pools = pair.get("pools") or []
        window["gateways"][gateway] = {"before": gateway_totals(pair.get("before"), pools, gateway),
                                       "after": gateway_totals(pair.get("after"), pools, gateway)}
    return judge(window, config)


def judge(window, config):
    """The canary window's verdict: {passed, reasons, figures}.

    ``window``: {canary: {server: {before, after}}, stable: {server: {before, after}},
    gateways: {gateway: {before, after}}}, each side an engine_totals() or gateway_totals() result.
    The canary fails when it served fewer than canary_min_requests, when the gateways' error rate
    (5xx answers and failed engine attempts per model request) exceeds canary_max_error_rate, or
    when its mean time per request exceeds canary_max_latency_ratio times the other engines'.
    """
    def side(name):
        n = s = 0.0
        for server, pair in sorted((window.get(name) or {}).items()):
            n += _delta(pair["before"], pair["after"], "requests", "engine %s" % server)
            s += _delta(pair["before"], pair["after"], "seconds", "engine %s" % server)
        return n, s

    canary_n, canary_s = side("canary")
    stable_n, stable_s = side("stable")
    requests = errors = 0.0
    for gateway, pair in sorted((window.get("gateways") or {}).items()):
        requests += _delta(pair["before"], pair["after"], "requests", "gateway %s" % gateway)
        errors += _delta(pair["before"], pair["after"], "errors", "gateway %s" % gateway)
    reasons = []
    canary_mean = canary_s / canary_n if canary_n else None
    stable_mean = stable_s / stable_n if stable_n else None
    error_rate = errors / requests if requests else 0.0
    if canary_n < config["canary_min_requests"]:
        reasons.append("the canary served %d request(s) in the window, fewer than %scanary_min_requests (%d): "
                       "too few to judge" % (canary_n, PREFIX, config["canary_min_requests"]))
    if error_rate > config["canary_max_error_rate"]:
        reasons.append("the gateways failed %d of %d model requests (%.4f), over %scanary_max_error_rate (%s)"
                       % (errors, requests, error_rate, PREFIX, config["canary_max_error_rate"]))
    ratio = None
    if canary_n and stable_n and stable_s > 0:
        ratio = (canary_s / canary_n) / (stable_s / stable_n)
        if ratio > config["canary_max_latency_ratio"]:
            reasons.append("the canary's mean time per request, %.3f s, is %.2f times the other engines' %.3f s, "
                           "over %scanary_max_latency_ratio (%s)" % (canary_s / canary_n, ratio, stable_s / stable_n,
                                                                     PREFIX, config["canary_max_latency_ratio"]))
    figures = {
        "canary_requests": int(canary_n), "stable_requests": int(stable_n),
        "canary_share": round(canary_n / (canary_n + stable_n), 4) if canary_n + stable_n else None,
        "canary_mean_s": None if canary_mean is None else round(canary_mean, 4),
        "stable_mean_s": None if stable_mean is None else round(stable_mean, 4),
        "latency_ratio": None if ratio is None else round(ratio, 4),
        "gateway_requests": int(requests), "gateway_errors": int(errors), "error_rate": round(error_rate, 6),
    }
    return {"passed": not reasons, "reasons": reasons, "figures": figures}
