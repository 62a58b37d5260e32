# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Taking one node's engines out of the gateways' pools for a change, and knowing when they are idle.

A pool server is ``address:port`` (``[v6]:port`` for IPv6). A node's servers are those whose
address is one of the node's own (its inventory name, ``ansible_host``, its interface addresses).
A drain never leaves a pool of any gateway without a server: that would fail every request the
pool gets, which is what a rolling change exists to avoid.
"""

from __future__ import annotations

import math
import re

# The engines' gauges of requests being served or queued (vLLM, SGLang).
IN_FLIGHT_GAUGES = (
    'vllm:num_requests_running',
    'vllm:num_requests_waiting',
    'sglang:num_running_reqs',
    'sglang:num_queue_reqs',
)

# One Prometheus text sample: name, {labels}, value, optional timestamp (also _model_release).
SAMPLE_RE = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+\S+)?$')


class DrainError(ValueError):
    pass


def server_address(server):
    """The address part of ``address:port`` or ``[v6]:port``."""
    if not isinstance(server, str):
        raise DrainError('a pool server must be a string address:port, not %r' % (server,))
    match = re.match(r'^\[([^\]]+)\]:(\d+)$', server) or re.match(r'^([^:\[\]]+):(\d+)$', server)
    if not match:
        raise DrainError("pool server %r is not address:port (or [v6 address]:port)" % (server,))
    return match.group(1)


def _pools(gateway, pools):
    if not isinstance(pools, list):
        raise DrainError('gateway %s: gateway_pools must be a list of pools, not %r' % (gateway, pools))
    for pool in pools:
        if not isinstance(pool, dict) or not isinstance(pool.get('name'), str) \
                or not isinstance(pool.get('servers'), list):
            raise DrainError('gateway %s: a pool must be a mapping with a name and a list of servers, not %r'
                             % (gateway, pool))
    return pools


def drain_plan(gateways, node, addresses):
    """The servers of ``node`` to drain from every gateway, refusing a drain that empties a pool.

    gateways: gateway host -> its ``gateway_pools`` fact (a list of ``{name, servers}``).
    node: the node's inventory name (for messages).
    addresses: the node's addresses; a server on any of them is the node's.

    Returns ``{servers, gateways}``: the node's servers (sorted, each once) and, per gateway, the
    pools that hold any of them with the servers each keeps.
    """
    if not isinstance(gateways, dict) or not gateways:
        raise DrainError('no gateway published gateway_pools: run the gateway preflight on deepseek_gateways first')
    if not isinstance(addresses, (list, tuple)) or not addresses:
        raise DrainError('node %s: no address to match pool servers against' % node)
    own = set(a for a in addresses if isinstance(a, str) and a)
    servers = set()
    touched = {}
    problems = []
    for gateway in sorted(gateways):
        for pool in _pools(gateway, gateways[gateway]):
            mine = [s for s in pool['servers'] if server_address(s) in own]
            if not mine:
                continue
            servers.update(mine)
            keep = [s for s in pool['servers'] if s not in mine]
            touched.setdefault(gateway, {})[pool['name']] = keep
            if not keep:
                problems.append('gateway %s pool %s: every server (%s) is on %s, so draining it would leave the pool '
                                'without an engine; add a server on another node to the pool first'
                                % (gateway, pool['name'], ', '.join(mine), node))
    if problems:
        raise DrainError('; '.join(problems))
    return {'servers': sorted(servers), 'gateways': touched}


def in_flight(text, server=''):
    """Requests an engine serves or queues, from its Prometheus ``/metrics`` text.

    Sums every sample of ``IN_FLIGHT_GAUGES``; an answer with none of them is an error, since
    "idle" could then never be known.
    """
    if not isinstance(text, str):
        raise DrainError('%smetrics must be text, not %r' % (server + ': ' if server else '', text))
    total = 0.0
    seen = False
    for line in text.splitlines():
        match = SAMPLE_RE.match(line.strip())
        if not match or match.group(1) not in IN_FLIGHT_GAUGES:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            raise DrainError('%s%s has the value %r, not a number'
                             % (server + ': ' if server else '', match.group(1), match.group(3)))
        if math.isnan(value) or value < 0:
            raise DrainError('%s%s has the value %r, not a count'
                             % (server + ': ' if server else '', match.group(1), match.group(3)))
        total += value
        seen = True
    if not seen:
        raise DrainError('%sthe engine\'s metrics have none of %s, so whether it is idle cannot be known'
                         % (server + ': ' if server else '', ', '.join(IN_FLIGHT_GAUGES)))
    return int(total)
