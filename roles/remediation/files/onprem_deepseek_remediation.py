# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Built by tools/build_keywrap.py from plugins/module_utils/{_remediation.py,_remediation_server.py}:
# edit those, then run it.
"""onprem-deepseek-remediation: Alertmanager's webhook over mutual TLS to a guarded engine restart.

    python3 onprem_deepseek_remediation.py {serve,check} --config FILE
"""

from __future__ import annotations

# ---- _remediation.py

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


# ---- _remediation_server.py

import argparse
import http.server
import json
import queue
import ssl
import subprocess
import sys
import threading
import time


class Receiver:
    """Decisions under one lock; commands run by one worker thread, in order."""

    def __init__(self, config, clock=time.time, run=subprocess.run):
        self.config = check_config(config)
        self.clock = clock
        self.run = run
        self.lock = threading.Lock()
        self.busy = set()
        self.jobs = queue.Queue()
        self.state = load_state(config['state_file'])

    def audit(self, record):
        with open(self.config['audit_file'], 'a') as f:
            f.write(audit_line(dict(record, time=round(self.clock(), 3))))

    def receive(self, raw, client):
        """Decide on a webhook body from ``client`` (its certificate subject); queue the restarts."""
        alerts = parse_webhook(raw)
        with self.lock:
            decisions, state = decide(alerts, self.config, self.state, self.clock(), self.busy)
            save_state(self.config['state_file'], state)
            self.state = state
            for decision in decisions:
                self.audit(dict(decision, event='decision', client=client))
                if decision['action'] == 'restart':
                    self.busy.add(decision['node'])
                    self.jobs.put(decision['node'])
        return decisions

    def work_once(self):
        node = self.jobs.get()
        if node is None:
            return False
        argv = command_for(self.config['command'], node)
        started = self.clock()
        try:
            done = self.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            timeout=self.config['command_timeout_s'], check=False)
            rc, tail = done.returncode, (done.stdout or b'')[-2000:].decode('utf-8', 'replace')
        except subprocess.TimeoutExpired:
            rc, tail = None, 'timed out after %d s' % self.config['command_timeout_s']
        except OSError as exc:
            rc, tail = None, 'could not run: %s' % exc
        self.audit({'event': 'result', 'node': node, 'rc': rc, 'seconds': round(self.clock() - started, 1),
                    'result': 'restarted' if rc == 0 else 'failed', 'output_tail': tail})
        with self.lock:
            self.busy.discard(node)
        return True

    def work(self):
        while self.work_once():
            pass


def handler_for(receiver):
    allowed = set(receiver.config['allowed_subjects'])

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'
        # A client that stalls (in the handshake too) holds only its own thread, for 10 s.
        timeout = 10

        def log_message(self, *args):
            pass

        def _answer(self, status, data):
            raw = (json.dumps(data, sort_keys=True) + '\n').encode()
            self.send_response(status)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self):
            if self.path == '/health':
                self._answer(200, {'status': 'ok'})
            else:
                self._answer(404, {'error': 'no route'})

        def do_POST(self):
            client = subject_of(self.connection.getpeercert().get('subject'))
            if client not in allowed:
                receiver.audit({'event': 'refused_client', 'client': client})
                self._answer(403, {'error': 'client certificate %s is not allowed' % client})
                return
            if self.path != '/alerts':
                self._answer(404, {'error': 'no route'})
                return
            length = int(self.headers.get('Content-Length') or 0)
            if length > MAX_BODY:
                self._answer(413, {'error': 'body larger than %d bytes' % MAX_BODY})
                return
            try:
                decisions = receiver.receive(self.rfile.read(length), client)
            except RemediationError as exc:
                self._answer(400, {'error': str(exc)})
                return
            self._answer(200, {'decisions': decisions})

    return Handler


def tls_context(config):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(config['cert_file'], config['key_file'])
    context.load_verify_locations(config['ca_file'])
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A refused handshake (no certificate of the CA, TLS 1.2) is one line, not a traceback.
        sys.stderr.write('onprem-deepseek-remediation: connection from %s ended: %s\n'
                         % (client_address[0], sys.exc_info()[1]))


def serve(config, ready=None):
    receiver = Receiver(config)
    server = Server((config['listen_host'], config['listen_port']), handler_for(receiver))
    # The handshake happens in the request's thread, not in the loop that accepts connections.
    server.socket = tls_context(config).wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    worker = threading.Thread(target=receiver.work, daemon=True)
    worker.start()
    if ready is not None:
        ready(server, receiver)
    try:
        server.serve_forever()
    finally:
        receiver.jobs.put(None)
        server.server_close()


def main(argv=None):
    parser = argparse.ArgumentParser(prog='onprem-deepseek-remediation')
    parser.add_argument('action', choices=['serve', 'check'])
    parser.add_argument('--config', required=True)
    args = parser.parse_args(argv)
    try:
        with open(args.config) as f:
            config = json.load(f)
        check_config(config)
        load_state(config['state_file'])
    except (OSError, ValueError) as exc:
        sys.stderr.write('onprem-deepseek-remediation: %s: %s\n' % (args.config, exc))
        return 2
    if args.action == 'check':
        return 0
    serve(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
