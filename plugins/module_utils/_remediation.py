# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The automatic engine restart on HostMemoryHigh: which alerts act, and the guard rails.

Alertmanager posts its webhook (version 4) to the remediation receiver over TLS with a client
certificate. A firing alert of the configured name, for an instance the receiver knows, asks for
one restart of that node's engines, which the receiver's command does (by default
``playbooks/rolling_update.yml`` with ``rolling_update_change=restart``: drain from the gateways,
restart, check, put back, and never a pool's last engine). Refused, each with its reason: a node
restarted less than the cooldown ago, a node whose restart is queued or running, and any restart
once the hourly maximum is reached. Every decision and every result is one audit line.

Standard library only: the receiver runs this file on the automation host.
"""

from __future__ import annotations

import json
import os
import re
import tempfile

HOUR = 3600
MAX_BODY = 1024 * 1024
_NODE_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$')


class RemediationError(ValueError):
    pass


def parse_webhook(raw):
    """The alerts of an Alertmanager webhook body (version 4), each with status and labels."""
    try:
        payload = json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise RemediationError('the body is not JSON: %s' % exc)
    if not isinstance(payload, dict) or payload.get('version') != '4':
        raise RemediationError('not an Alertmanager webhook of version 4')
    alerts = payload.get('alerts')
    if not isinstance(alerts, list):
        raise RemediationError('the webhook has no list of alerts')
    for alert in alerts:
        if not isinstance(alert, dict) or alert.get('status') not in ('firing', 'resolved') \
                or not isinstance(alert.get('labels'), dict):
            raise RemediationError('an alert must have status firing or resolved and labels: %r' % (alert,))
    return alerts


def check_config(config):
    """The receiver's settings, or an error naming the setting."""
    problems = []
    if not isinstance(config.get('alertname'), str) or not config.get('alertname'):
        problems.append('alertname must be an alert name')
    if not isinstance(config.get('target_label'), str) or not config.get('target_label'):
        problems.append('target_label must be a label name')
    targets = config.get('targets')
    if not isinstance(targets, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and _NODE_RE.match(v) for k, v in targets.items()):
        problems.append('targets must map label values to node names')
    for name, low in (('cooldown_s', 0), ('max_per_hour', 1), ('command_timeout_s', 1)):
        value = config.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            problems.append('%s must be an integer >= %d, not %r' % (name, low, value))
    command = config.get('command')
    if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command) \
            or not any('{node}' in a for a in command):
        problems.append('command must be a list of arguments, one of them holding {node}')
    if not isinstance(config.get('listen_host'), str) or not config.get('listen_host'):
        problems.append('listen_host must be an address')
    port = config.get('listen_port')
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        problems.append('listen_port must be a port number, not %r' % (port,))
    for name in ('cert_file', 'key_file', 'ca_file', 'state_file', 'audit_file'):
        if not isinstance(config.get(name), str) or not config[name].startswith('/'):
            problems.append('%s must be an absolute path, not %r' % (name, config.get(name)))
    subjects = config.get('allowed_subjects')
    if not isinstance(subjects, list) or not subjects or not all(isinstance(s, str) and s for s in subjects):
        problems.append('allowed_subjects must list at least one client certificate subject')
    if problems:
        raise RemediationError('; '.join(problems))
    return config


def command_for(template, node):
    """The command's arguments for ``node`` (arguments, never a shell line)."""
    if not isinstance(node, str) or not _NODE_RE.match(node):
        raise RemediationError('node name %r is not a host name' % (node,))
    return [arg.replace('{node}', node) for arg in template]


def subject_of(peer_subject):
    """A certificate subject as nginx prints it (RFC 2253, most specific first): CN=a,O=b."""
    short = {'commonName': 'CN', 'organizationName': 'O', 'organizationalUnitName': 'OU', 'countryName': 'C',
             'localityName': 'L', 'stateOrProvinceName': 'ST', 'domainComponent': 'DC'}
    parts = []
    for rdn in peer_subject or ():
        parts.append('+'.join('%s=%s' % (short.get(k, k), v) for k, v in rdn))
    return ','.join(reversed(parts))


def prune(state, now):
    """Actions of the last hour, and each node's last action (for its cooldown)."""
    actions = [a for a in state.get('actions', []) if isinstance(a, dict) and 'node' in a and 'at' in a]
    last = {}
    for action in actions:
        if action['at'] >= last.get(action['node'], {'at': float('-inf')})['at']:
            last[action['node']] = action
    keep = [a for a in actions if now - a['at'] < HOUR or last.get(a['node']) is a]
    return {'actions': sorted(keep, key=lambda a: a['at'])}


def decide(alerts, config, state, now, busy=()):
    """What to do with the webhook's alerts: one decision per node asked for, in order.

    Returns ``(decisions, state)``; a decision is ``{node, instance, action, reason}`` with action
    ``restart`` or ``refused``. Alerts of other names and resolved alerts ask for nothing. ``busy``:
    nodes whose restart is queued or running.
    """
    state = prune(state, now)
    decisions = []
    seen = set()
    for alert in alerts:
        labels = alert['labels']
        if alert['status'] != 'firing' or labels.get('alertname') != config['alertname']:
            continue
        instance = labels.get(config['target_label'], '')
        node = config['targets'].get(instance)
        decision = {'node': node or '', 'instance': instance, 'alertname': config['alertname']}
        if node is None:
            key = ('instance', instance)
            reason = 'no node is known for %s=%r' % (config['target_label'], instance)
        else:
            key = ('node', node)
            reason = refusal(node, config, state, now, busy)
        if key in seen:
            continue
        seen.add(key)
        if reason:
            decisions.append(dict(decision, action='refused', reason=reason))
        else:
            decisions.append(dict(decision, action='restart', reason='firing since %s' % alert.get('startsAt', '?')))
            state['actions'].append({'node': node, 'at': now})
    return decisions, state


def refusal(node, config, state, now, busy=()):
    """Why ``node`` may not be restarted now, or '' when it may."""
    if node in busy:
        return 'a restart of %s is already queued or running' % node
    mine = [a['at'] for a in state['actions'] if a['node'] == node]
    if mine and now - max(mine) < config['cooldown_s']:
        return 'cooldown: %s was restarted %d s ago, less than %d s' % (node, now - max(mine), config['cooldown_s'])
    recent = [a for a in state['actions'] if now - a['at'] < HOUR]
    if len(recent) >= config['max_per_hour']:
        return 'hourly maximum: %d restart(s) in the last hour, at most %d' % (len(recent), config['max_per_hour'])
    return ''


def load_state(path):
    try:
        with open(path) as f:
            state = json.load(f)
    except FileNotFoundError:
        return {'actions': []}
    except ValueError as exc:
        raise RemediationError('%s is not the receiver\'s state: %s' % (path, exc))
    if not isinstance(state, dict) or not isinstance(state.get('actions'), list):
        raise RemediationError('%s is not the receiver\'s state' % path)
    return state


def save_state(path, state):
    """Atomically: a crash leaves the old state or the new, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or '.', prefix='.state.')
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump(state, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def audit_line(record):
    return json.dumps(record, sort_keys=True, separators=(',', ':')) + '\n'
