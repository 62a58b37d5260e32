# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The remediation receiver: Alertmanager's webhook over mutual TLS, the guard rails of
_remediation, one command at a time, an audit line per decision and per result.

    python3 onprem_deepseek_remediation.py serve --config FILE
    python3 onprem_deepseek_remediation.py check --config FILE
"""

from __future__ import annotations

import argparse
import http.server
import json
import queue
import ssl
import subprocess
import sys
import threading
import time
from ansible_collections.onprem.deepseek.plugins.module_utils._remediation import (
    MAX_BODY,
    RemediationError,
    audit_line,
    check_config,
    command_for,
    decide,
    load_state,
    parse_webhook,
    save_state,
    subject_of,
)


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
