# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What each gateway sees of its site, and each site's facts from those views (dr_cutover.yml).

``host_view`` turns what the dr role's ``site_facts.yml`` read on one gateway (its compiled
policy, the CA file's checksum, the certificate it serves on the entry point's name, the entry
health check's and the audit replication's node exporter textfiles, its clock, and each engine
probe of its site) into that gateway's view. ``site_facts`` assembles the views of every gateway
into the facts of each site that ``_dr_plan.precheck`` decides on.

Models carry their version: an engine's ``/v1/models`` names, for each model, the directory it
loaded (``root``; vLLM and SGLang report it). Under a model store that directory is
``<store>/<model>/versions/<version>`` (``_artifact_store``), so its last part is the version;
elsewhere the whole directory stands for it. An engine that reports no directory gives
``unknown``, and engines of one site that serve different versions give them all, comma-separated,
so that a site in the middle of a release differs from one that is not.
"""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
import re

# The entry health check counts when it passed less than this long ago.
HEALTH_MAX_AGE_S = 10.0
UNKNOWN_VERSION = "unknown"
UNREADABLE_CERTIFICATE = "unreadable"

ENTRY_OK = "onprem_deepseek_dr_entry_check_ok"
ENTRY_CHECKED_AT = "onprem_deepseek_dr_entry_check_timestamp_seconds"
REPLICATION_LAG = "onprem_deepseek_dr_replication_lag_seconds"

_VIEW_KEYS = ("site", "models", "policy_hash", "revocations_hash", "ca_fingerprint", "server_certificates",
              "config_hash", "received_lag_s", "engines", "gateway_healthy")
# Facts every gateway of a site must agree on; when they do not, the site's value says so.
_AGREED = ("models", "policy_hash", "revocations_hash", "ca_fingerprint", "server_certificates", "config_hash")

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(r"^(%s)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+-?[0-9]+)?[ \t]*$" % _NAME)
_LABEL = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\]|\\.)*)"[ \t]*(,|$)')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


class SiteFactsError(ValueError):
    pass


def parse_metrics(text):
    """Samples of a Prometheus text exposition: [(name, labels, value)].

    Comments and blank lines are skipped. A line that is not a sample raises SiteFactsError
    naming its number, so a damaged file is never read as an absent series.
    """
    if not isinstance(text, str):
        raise SiteFactsError("metrics: must be text, not %r" % (text,))
    samples = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _SAMPLE.match(line.strip())
        if not match:
            raise SiteFactsError("line %d is not a sample: %r" % (number, line))
        name, label_text, value_text = match.groups()
        labels = {}
        position = 0
        label_text = label_text or ""
        while position < len(label_text.rstrip(", \t")):
            pair = _LABEL.match(label_text, position)
            if not pair:
                raise SiteFactsError("line %d: malformed labels %r" % (number, label_text))
            labels[pair.group(1)] = re.sub(r'\\[\\"n]', lambda m: _ESCAPES[m.group(0)], pair.group(2))
            position = pair.end()
        try:
            value = float(value_text)
        except ValueError:
            raise SiteFactsError("line %d: %r is not a number" % (number, value_text))
        samples.append((name, labels, value))
    return samples


def _series(samples, name):
    return [(labels, value) for sample_name, labels, value in samples if sample_name == name]


def gateway_healthy(check_text, now):
    """True when the entry health check's textfile says the last check passed less than 10 s before ``now``.

    No file, a damaged file, a failed check or an older one: False.
    """
    if not check_text:
        return False
    try:
        samples = parse_metrics(check_text)
    except SiteFactsError:
        return False
    passed = [value for _labels, value in _series(samples, ENTRY_OK)]
    checked = [value for _labels, value in _series(samples, ENTRY_CHECKED_AT)]
    if not passed or not checked or any(value != 1 for value in passed):
        return False
    return now - max(checked) < HEALTH_MAX_AGE_S


def received_lag(lag_text):
    """The replication lag received here, per sending site: {site: the largest lag of its hosts}.

    No file, or a damaged one: {} (unknown), which the precheck refuses unless forced.
    """
    if not lag_text:
        return {}
    try:
        samples = parse_metrics(lag_text)
    except SiteFactsError:
        return {}
    out = {}
    for labels, value in _series(samples, REPLICATION_LAG):
        site = labels.get("from_site")
        if site and not math.isnan(value):
            out[site] = max(out.get(site, 0.0), value)
    return out


def model_version(root):
    """The version an engine serves, from the directory it loaded (see the module's docstring)."""
    if not isinstance(root, str) or not root.strip():
        return UNKNOWN_VERSION
    path = posixpath.normpath(root.strip())
    parent, version = posixpath.split(path)
    if posixpath.basename(parent) == "versions" and version:
        return version
    return path


def answered(probe):
    """Whether an inference_probe result is an answered completion.

    The dr role probes with ``failed_when: false`` (an engine that does not answer is a fact, not
    an error), which sets ``failed`` to false on every result: only an answer carries ``model``.
    """
    return isinstance(probe, dict) and not probe.get("failed") and isinstance(probe.get("model"), str)


def _server(probe):
    if isinstance(probe, dict):
        server = probe.get("server") or (probe.get("item") if isinstance(probe.get("item"), dict) else {}).get("server")
        if isinstance(server, str) and server:
            return server
    raise SiteFactsError("probes: each result needs its engine's server (server, or item.server of a loop), not %r"
                         % (probe,))


def models_served(probes):
    """Model name to the version(s) the answering engines serve, from inference_probe results."""
    versions = {}
    for probe in probes:
        if not answered(probe):
            continue
        roots = probe.get("model_roots") or {}
        for name in probe.get("models") or []:
            if isinstance(name, str) and name:
                versions.setdefault(name, set()).add(model_version(roots.get(name)))
    return dict((name, ", ".join(sorted(found))) for name, found in versions.items())


def _digest(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def policy_hashes(policy):
    """(policy_hash, revocations_hash) of a compiled gateway policy, or (None, None) without one.

    Each gateway salts its own hash of a shared key, so the policy hash leaves out the keys'
    salts and digests (and the generation), keeping only which key ids exist.
    """
    if policy is None:
        return None, None
    if not isinstance(policy, dict) or not isinstance(policy.get("keys", {}), dict):
        raise SiteFactsError("policy: must be the gateway's compiled policy (a dict with a dict of keys)")
    shared = dict((k, v) for k, v in policy.items() if k not in ("keys", "generation"))
    shared["key_ids"] = sorted(policy.get("keys", {}))
    revocations = {"keys": policy.get("revoked", []), "certificates": policy.get("revoked_certificates", [])}
    return _digest(shared), _digest(revocations)


def certificate_summary(certificate):
    """What clients of the entry point meet: the issuer, and whether it expired; or ``unreadable``."""
    if not isinstance(certificate, dict) or not isinstance(certificate.get("issuer"), dict):
        return UNREADABLE_CERTIFICATE
    issuer = ",".join("%s=%s" % (k, certificate["issuer"][k]) for k in sorted(certificate["issuer"]))
    return "issuer " + issuer + ("; EXPIRED" if certificate.get("expired") else "")


def host_view(site, policy, ca_fingerprint, certificate, server_name, check_text, lag_text, now, probes, config):
    """One gateway's view of its site (``dr_site_facts_host``)."""
    if not isinstance(site, str) or not site:
        raise SiteFactsError("site: must be the gateway's site name, not %r" % (site,))
    if not isinstance(server_name, str) or not server_name:
        raise SiteFactsError("server_name: must be the entry point's name, not %r" % (server_name,))
    if isinstance(now, bool) or not isinstance(now, (int, float)):
        raise SiteFactsError("now: must be the gateway's clock in seconds, not %r" % (now,))
    if not isinstance(probes, list):
        raise SiteFactsError("probes: must be the list of engine probe results, not %r" % (probes,))
    policy_hash, revocations_hash = policy_hashes(policy)
    engines = dict((_server(probe), answered(probe)) for probe in probes)
    return {
        "site": site,
        "models": models_served(probes),
        "policy_hash": policy_hash,
        "revocations_hash": revocations_hash,
        "ca_fingerprint": ca_fingerprint or None,
        "server_certificates": {server_name: certificate_summary(certificate)},
        "config_hash": _digest(config),
        "received_lag_s": received_lag(lag_text),
        "engines": engines,
        "gateway_healthy": gateway_healthy(check_text, now),
    }


_MAPPINGS = ("models", "server_certificates")


def _one(site, values):
    if all(value == values[0] for value in values):
        return values[0]
    shown = sorted(set("none" if value is None else str(value) for value in values))
    return "differs between the gateways of %s: %s" % (site, " / ".join(shown))


def _agreed(site, fact, views):
    if fact in _MAPPINGS:
        names = sorted(set(name for view in views for name in view[fact]))
        return dict((name, _one(site, [view[fact].get(name) for view in views])) for name in names)
    return _one(site, [view[fact] for view in views])


def site_facts(views, sites, down):
    """Each site's facts for the precheck: {site: facts}.

    ``views``: host to its view (``host_view``); hosts without one are left out. A site without a
    view gets ``down`` (the facts of a site that cannot answer). Facts its gateways disagree on
    become a text naming both values, which differs from the other site's; engines are the union
    of the views, the gateway is healthy when one of the site's gateways is, and the replication
    lag of the records written at a site is the largest that any other site's gateway received.
    """
    if not isinstance(views, dict):
        raise SiteFactsError("views: must map hosts to their views, not %r" % (views,))
    if not isinstance(sites, list) or not all(isinstance(s, str) and s for s in sites):
        raise SiteFactsError("sites: must be a list of site names, not %r" % (sites,))
    for host, view in views.items():
        if not isinstance(view, dict) or sorted(view) != sorted(_VIEW_KEYS):
            raise SiteFactsError("views.%s: not a gateway's view (keys %s)" % (host, ", ".join(_VIEW_KEYS)))
    out = {}
    for site in sites:
        mine = [views[h] for h in sorted(views) if views[h]["site"] == site]
        if not mine:
            out[site] = down
            continue
        facts = dict((fact, _agreed(site, fact, mine)) for fact in _AGREED)
        engines = {}
        for view in mine:
            engines.update(view["engines"])
        lags = [views[h]["received_lag_s"][site] for h in sorted(views)
                if views[h]["site"] != site and site in views[h]["received_lag_s"]]
        facts.update({
            "engines": engines,
            "gateway_healthy": any(view["gateway_healthy"] for view in mine),
            "replication_lag_s": max(lags) if lags else None,
        })
        out[site] = facts
    return out
