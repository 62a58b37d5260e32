# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The decisions of disaster recovery between two active sites: consistency, pre-checks, weights.

Each site is described by the facts gathered on it (``SITE_FACTS``):

- ``models``: model name to the version its engines serve;
- ``policy_hash``, ``revocations_hash``, ``config_hash``: hashes of the gateway's compiled policy,
  of its revocation lists and of the configuration the playbooks pushed;
- ``ca_fingerprint``: the root CA's certificate fingerprint;
  (these four are None when unknown, as for a site whose gateways cannot be read: a difference,
  which ``force`` may override);
- ``server_certificates``: certificate name to fingerprint, for the certificates the gateways serve
  on the global entry point (the same on both sites);
- ``engines``: engine name to its health, True when an authenticated completion was answered
  (an open port is not health);
- ``gateway_healthy``: the same check through the site's gateway;
- ``replication_lag_s``: how many seconds the audit records written at this site are behind at
  the other site (the direction this site -> the other), None when unknown.

Nothing here reads the network: the roles gather the facts, these functions decide.
"""

from __future__ import annotations

# The replication target of the design (the DRReplicationLagHigh alert's threshold), seconds.
DEFAULT_MAX_LAG_S = 0.05
DEFAULT_PRIMARY_WEIGHT = 80

# Facts that must be the same on both sites, in the order differences are listed.
CONSISTENCY_FACTS = ("models", "policy_hash", "ca_fingerprint", "server_certificates", "revocations_hash", "config_hash")
SITE_FACTS = CONSISTENCY_FACTS + ("engines", "gateway_healthy", "replication_lag_s")
_MAPPING_FACTS = ("models", "server_certificates")


class DrPlanError(ValueError):
    pass


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _site_name(value, where):
    if not isinstance(value, str) or not value:
        raise DrPlanError("%s: %r is not a site name (a non-empty string)" % (where, value))
    return value


def _check_site(site, facts):
    where = "facts.%s" % site
    if not isinstance(facts, dict):
        raise DrPlanError("%s: must be a dict of the site's facts" % where)
    missing = [name for name in SITE_FACTS if name not in facts]
    if missing:
        raise DrPlanError("%s: missing %s" % (where, ", ".join(missing)))
    unknown = sorted(set(facts) - set(SITE_FACTS))
    if unknown:
        raise DrPlanError("%s: unknown facts %s (known: %s)" % (where, ", ".join(unknown), ", ".join(SITE_FACTS)))
    for name in CONSISTENCY_FACTS:
        value = facts[name]
        if name in _MAPPING_FACTS:
            if not isinstance(value, dict) or not all(isinstance(k, str) and k and isinstance(v, str) and v
                                                      for k, v in value.items()):
                raise DrPlanError("%s.%s: must be a dict of names to non-empty strings, not %r" % (where, name, value))
        elif value is not None and (not isinstance(value, str) or not value):
            raise DrPlanError("%s.%s: must be a non-empty string or null (unknown), not %r" % (where, name, value))
    engines = facts["engines"]
    if not isinstance(engines, dict) or not all(isinstance(k, str) and k and isinstance(v, bool) for k, v in engines.items()):
        raise DrPlanError("%s.engines: must be a dict of engine names to true or false (answered an "
                          "authenticated completion), not %r" % (where, engines))
    if not isinstance(facts["gateway_healthy"], bool):
        raise DrPlanError("%s.gateway_healthy: must be true or false, not %r" % (where, facts["gateway_healthy"]))
    lag = facts["replication_lag_s"]
    if lag is not None and (not _is_number(lag) or lag < 0):
        raise DrPlanError("%s.replication_lag_s: must be seconds (0 or more) or null (unknown), not %r" % (where, lag))
    return facts


def _check_facts(facts):
    if not isinstance(facts, dict) or len(facts) != 2:
        raise DrPlanError("facts: must be a dict of exactly two sites to their facts, not %r"
                          % (sorted(facts) if isinstance(facts, dict) else facts,))
    for site in facts:
        _site_name(site, "facts")
        _check_site(site, facts[site])
    return sorted(facts)


def compare_sites(facts):
    """Every fact that differs between the two sites: [{fact, values: {site: value}, message}].

    A model served on one site only, or a certificate present on one only, differs with None
    (missing) on the other. Sorted by fact, then by model or certificate name.
    """
    first, second = _check_facts(facts)
    differences = []

    def differ(fact, value_1, value_2):
        differences.append({
            "fact": fact,
            "values": {first: value_1, second: value_2},
            "message": "%s differs: %s has %s, %s has %s" % (fact, first, _shown(value_1), second, _shown(value_2)),
        })

    for name in CONSISTENCY_FACTS:
        value_1, value_2 = facts[first][name], facts[second][name]
        if name in _MAPPING_FACTS:
            for key in sorted(set(value_1) | set(value_2)):
                if value_1.get(key) != value_2.get(key):
                    differ("%s[%s]" % (name, key), value_1.get(key), value_2.get(key))
        elif value_1 != value_2:
            differ(name, value_1, value_2)
    return differences


def _shown(value):
    return "none" if value is None else repr(value)


def _healthy_engines(engines):
    return sorted(name for name, ok in engines.items() if ok)


def precheck(primary, target, facts, max_lag_s=DEFAULT_MAX_LAG_S, force=False):
    """Whether the primary role may move from ``primary`` to ``target``: {ok, refusals, warnings}.

    Every reason is returned at once, each naming the site and the fact. Reasons that cannot be
    forced: an unknown site, the same site twice, a target without a healthy engine, an unhealthy
    target gateway (traffic cannot be forced onto nothing). Reasons that ``force`` turns into
    warnings: a difference between the sites (compare_sites), a replication lag above
    ``max_lag_s`` (equal is allowed) or unknown, in either direction.
    """
    if not _is_number(max_lag_s) or max_lag_s < 0:
        raise DrPlanError("max_lag_s: must be seconds (0 or more), not %r" % (max_lag_s,))
    if not isinstance(force, bool):
        raise DrPlanError("force: must be true or false, not %r" % (force,))
    known = _check_facts(facts)
    hard = []
    soft = []
    for role, site in (("primary", primary), ("target", target)):
        _site_name(site, role)
        if site not in facts:
            hard.append("%s: unknown site %r (known: %s)" % (role, site, ", ".join(known)))
    if primary == target:
        hard.append("target: %s is already the primary site" % target)
    if hard:
        return {"ok": False, "refusals": hard, "warnings": []}

    target_facts = facts[target]
    engines = target_facts["engines"]
    if not _healthy_engines(engines):
        failed = ", ".join(sorted(engines)) or "none listed"
        hard.append("%s: engines: no healthy engine (none answered an authenticated completion; engines: %s)"
                    % (target, failed))
    if not target_facts["gateway_healthy"]:
        hard.append("%s: gateway_healthy: the gateway did not answer an authenticated completion" % target)

    soft.extend(difference["message"] for difference in compare_sites(facts))
    for source, dest in ((primary, target), (target, primary)):
        lag = facts[source]["replication_lag_s"]
        if lag is None:
            soft.append("%s: replication_lag_s: the lag of %s -> %s is unknown" % (source, source, dest))
        elif lag > max_lag_s:
            soft.append("%s: replication_lag_s: the lag of %s -> %s is %ss, above max_lag_s %ss"
                        % (source, source, dest, lag, max_lag_s))

    if force:
        return {"ok": not hard, "refusals": hard, "warnings": ["forced: " + reason for reason in soft]}
    refusals = hard + soft
    return {"ok": not refusals, "refusals": refusals, "warnings": []}


def _weight(value, where):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise DrPlanError("%s: must be an integer from 0 to 100, not %r" % (where, value))
    return value


def _two_sites(sites):
    if not isinstance(sites, (list, tuple)) or len(sites) != 2:
        raise DrPlanError("sites: must be a list of the two site names, not %r" % (sites,))
    for i, site in enumerate(sites):
        _site_name(site, "sites[%d]" % i)
    if sites[0] == sites[1]:
        raise DrPlanError("sites: %s is listed twice" % sites[0])
    return sorted(sites)


def _pools(pools, sites):
    if pools is None:
        return {site: site for site in sites}
    if not isinstance(pools, dict):
        raise DrPlanError("pools: must be a dict of site names to gateway_upstreams names, not %r" % (pools,))
    for site in sites:
        if not isinstance(pools.get(site), str) or not pools.get(site):
            raise DrPlanError("pools.%s: must name the site's pool in gateway_upstreams, not %r" % (site, pools.get(site)))
    unknown = sorted(set(pools) - set(sites))
    if unknown:
        raise DrPlanError("pools: unknown sites %s (known: %s)" % (", ".join(map(str, unknown)), ", ".join(sites)))
    return pools


def _plan(primary, sites, site_weights, pools, reasons):
    return {
        "primary": primary,
        "weights": dict((site, site_weights[site]) for site in sites),
        # In site name order on every step, so a change of weights moves the fewest principals
        # between the gateway split's variants.
        "variants": [{"name": pools[site], "weight": site_weights[site]} for site in sites],
        "reasons": reasons,
    }


def weights(primary, sites, health, primary_weight=DEFAULT_PRIMARY_WEIGHT, pools=None):
    """The two sites' weights in the gateways' pools: {primary, weights, variants, reasons}.

    ``health``: site to {engine: True when it answered an authenticated completion}. The primary
    gets ``primary_weight``, the other site the rest of 100. A site without a healthy engine gets 0
    and the other 100; both without one is an error. ``variants`` is the gateway split's list
    (``gateway_splits[].variants``), each site's pool named by ``pools`` (default: the site name).
    """
    ordered = _two_sites(sites)
    _site_name(primary, "primary")
    if primary not in ordered:
        raise DrPlanError("primary: %r is not one of the sites (%s)" % (primary, ", ".join(ordered)))
    _weight(primary_weight, "primary_weight")
    pool_names = _pools(pools, ordered)
    if not isinstance(health, dict):
        raise DrPlanError("health: must be a dict of sites to {engine: true or false}, not %r" % (health,))
    unknown = sorted(set(health) - set(ordered), key=str)
    if unknown:
        raise DrPlanError("health: unknown sites %s (known: %s)" % (", ".join(map(str, unknown)), ", ".join(ordered)))
    healthy = {}
    for site in ordered:
        engines = health.get(site)
        if not isinstance(engines, dict) or not all(isinstance(k, str) and isinstance(v, bool) for k, v in engines.items()):
            raise DrPlanError("health.%s: must be a dict of engine names to true or false, not %r" % (site, engines))
        healthy[site] = bool(_healthy_engines(engines))
    other = ordered[1] if ordered[0] == primary else ordered[0]
    if not healthy[primary] and not healthy[other]:
        raise DrPlanError("health: no healthy engine on %s nor on %s: no site can serve" % (ordered[0], ordered[1]))
    if not healthy[primary]:
        return _plan(primary, ordered, {primary: 0, other: 100}, pool_names,
                     ["%s: no healthy engine: weight 0, %s 100" % (primary, other)])
    if not healthy[other]:
        return _plan(primary, ordered, {primary: 100, other: 0}, pool_names,
                     ["%s: no healthy engine: weight 0, %s 100" % (other, primary)])
    return _plan(primary, ordered, {primary: primary_weight, other: 100 - primary_weight}, pool_names, [])


def cutover_steps(old_primary, new_primary, primary_weight=DEFAULT_PRIMARY_WEIGHT, pools=None):
    """A planned cutover's steps, applied in order on every gateway of both sites.

    1. ``steady``: the old primary at ``primary_weight``, the new one at the rest;
    2. ``cutover``: the new primary at ``primary_weight``, the old one at the rest.

    Between the steps in-flight requests and streams drain (the caller waits for them, and moves the
    preferred announcement of the global entry point); a failback is the same call with the sites
    swapped. Each step is shaped as weights() returns it.
    """
    _site_name(old_primary, "old_primary")
    _site_name(new_primary, "new_primary")
    if old_primary == new_primary:
        raise DrPlanError("new_primary: %s is already the primary site" % new_primary)
    ordered = sorted((old_primary, new_primary))
    _weight(primary_weight, "primary_weight")
    pool_names = _pools(pools, ordered)
    steps = []
    for name, primary, other in (("steady", old_primary, new_primary), ("cutover", new_primary, old_primary)):
        step = _plan(primary, ordered, {primary: primary_weight, other: 100 - primary_weight}, pool_names, [])
        del step["reasons"]
        steps.append(dict(step, step=name))
    return steps


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def server_weights(site_weights, pools, server_sites):
    """nginx's weight of each server in the pools that hold engines of both sites: {server: weight}.

    ``site_weights``: site to its share (0 to 100, as weights() returns them); ``pools``: the
    gateway's pools, each {name, servers}; ``server_sites``: the host part of a server
    (``host:port``) to its site. A site's share is split evenly over its servers in the pool, and
    the pool's weights are divided by their greatest common divisor (80/20 over one server each is
    4 and 1). A server whose site has share 0 gets 0: nginx's ``backup``, used only when every other
    server of the pool has failed. A pool whose servers are all on one site is left out (the split
    is between sites); a server on no known site fails, naming the pool and the server.
    """
    if not isinstance(site_weights, dict) or not site_weights:
        raise DrPlanError("site_weights: must be a dict of site names to weights, not %r" % (site_weights,))
    for site, value in site_weights.items():
        _site_name(site, "site_weights")
        _weight(value, "site_weights.%s" % site)
    if sum(site_weights.values()) == 0:
        raise DrPlanError("site_weights: every site has weight 0: no server could serve")
    if not isinstance(pools, (list, tuple)):
        raise DrPlanError("pools: must be a list of the gateway's pools ({name, servers}), not %r" % (pools,))
    if not isinstance(server_sites, dict):
        raise DrPlanError("server_sites: must be a dict of server hosts to site names, not %r" % (server_sites,))
    out = {}
    for i, pool in enumerate(pools):
        where = "pools[%d]" % i
        if not isinstance(pool, dict) or not isinstance(pool.get("servers"), (list, tuple)):
            raise DrPlanError("%s: must be a dict with servers (a list of host:port), not %r" % (where, pool))
        where = "pools[%d] (%s)" % (i, pool.get("name", "?"))
        sites = {}
        for server in pool["servers"]:
            if not isinstance(server, str) or ":" not in server:
                raise DrPlanError("%s: server %r is not host:port" % (where, server))
            site = server_sites.get(server.rsplit(":", 1)[0])
            if site is None:
                raise DrPlanError("%s: server %s is on no host of a site (no inventory host with deepseek_site has "
                                  "that name or ansible_host)" % (where, server))
            if site not in site_weights:
                raise DrPlanError("%s: server %s is on site %s, which has no weight (sites: %s)"
                                  % (where, server, site, ", ".join(sorted(site_weights))))
            sites.setdefault(site, []).append(server)
        if len(sites) < 2:
            continue
        if all(site_weights[site] == 0 for site in sites):
            raise DrPlanError("%s: every site of the pool (%s) has weight 0" % (where, ", ".join(sorted(sites))))
        # Each server's share as a fraction with the common denominator: the product of the counts.
        denominator = 1
        for servers in sites.values():
            denominator *= len(servers)
        raw = {}
        for site, servers in sites.items():
            for server in servers:
                raw[server] = site_weights[site] * denominator // len(servers)
        divisor = 0
        for value in raw.values():
            divisor = _gcd(divisor, value)
        for server, value in raw.items():
            out[server] = value // divisor
    return out


def primary_in_force(recorded, configured, sites, allow_split=False):
    """The primary site in force: {site, entry_site, source, since, differs}.

    ``recorded``: each gateway's record of the last cutover or failback (host to the record, a dict
    with ``primary_site``, ``since`` and optionally ``entry_site``, where the global entry point is
    preferred, by default the primary; or None where the host has none or could not be read).
    ``configured``: ``dr_primary_site``, the primary of a first deployment. Every record must name
    the same site, one of ``sites``: a cutover stopped half way is an error naming each host, as is
    a record naming an unknown site. With no record the configured site is in force. ``differs``
    is true when a record overrides ``dr_primary_site`` (a run of the playbooks then keeps the
    recorded primary: only dr_cutover or dr_failback move it). ``allow_split`` (a cutover that
    repairs a stopped one) returns site "" and source "split" instead of the error.
    """
    if not isinstance(recorded, dict):
        raise DrPlanError("recorded: must be a dict of gateway hosts to their records, not %r" % (recorded,))
    if not isinstance(sites, (list, tuple)):
        raise DrPlanError("sites: must be a list of site names, not %r" % (sites,))
    # Refused even where a record overrides it: it is what a rebuilt site would start from.
    if configured and configured not in sites:
        raise DrPlanError("dr_primary_site: %r has no gateway (the gateways' sites: %s)"
                          % (configured, ", ".join(sorted(sites))))
    found = {}
    for host in sorted(recorded):
        record = recorded[host]
        if record is None:
            continue
        if not isinstance(record, dict) or not isinstance(record.get("primary_site"), str):
            raise DrPlanError("%s: the primary site record is not {primary_site, since}: %r" % (host, record))
        entry = record.get("entry_site") or record["primary_site"]
        for name in (record["primary_site"], entry):
            if name not in sites:
                raise DrPlanError("%s: the primary site record names %s, which is not a site of the gateways (%s)"
                                  % (host, name, ", ".join(sorted(sites))))
        found[host] = dict(record, entry_site=entry)
    named = sorted(set((record["primary_site"], record["entry_site"]) for record in found.values()))
    if len(named) > 1 and allow_split:
        return {"site": "", "entry_site": "", "source": "split", "since": None, "differs": True}
    if len(named) > 1:
        raise DrPlanError("the gateways' primary site records differ (a cutover stopped half way?): %s; run "
                          "dr_cutover.yml to the site that should be primary"
                          % ", ".join("%s: %s" % (host, _shown_record(record)) for host, record in sorted(found.items())))
    if not named:
        return {"site": configured, "entry_site": configured, "source": "inventory", "since": None, "differs": False}
    since = max((record.get("since") or "") for record in found.values()) or None
    site, entry = named[0]
    return {"site": site, "entry_site": entry, "source": "record", "since": since,
            "differs": site != configured or entry != configured}


def _shown_record(record):
    if record["entry_site"] == record["primary_site"]:
        return record["primary_site"]
    return "%s (entry point at %s)" % (record["primary_site"], record["entry_site"])
