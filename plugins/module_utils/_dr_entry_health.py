# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The gateway host's health check of the global entry point, as a service.

Every ``interval_s`` it sends one authenticated chat completion (one token) through the local
gateway, checking the gateway's certificate against the CA for ``server_name``, and keeps BIRD's
protocol that exports the service address enabled while the checks pass (``rise`` in a row
announce, ``fall`` in a row withdraw: _dr_entry.EntryHealth), starting from the state the include
holds, so restarting the check moves no traffic. On a change it first rewrites the
protocol's definition that BIRD's configuration includes (``bird_include``), so a reload keeps it;
it sets BIRD's state on every check, so a BIRD restarted in between follows within one interval. Transitions go
to stderr (the journal); the node exporter reads the textfile of ``metrics_file``.
Standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import ssl
import subprocess
import sys
import time
from urllib.parse import urlsplit
from ansible_collections.onprem.deepseek.plugins.module_utils._textfile import load_checked_json, write_atomically
from ansible_collections.onprem.deepseek.plugins.module_utils._dr_entry import (
    DrEntryError, EntryHealth, bird_protocol, check_config, completion_ok, metrics_text)


def probe(config, key, context):
    """One completion through the local gateway: True when it was answered."""
    parts = urlsplit(config['url'])
    body = json.dumps({'model': config['model'], 'max_tokens': 1,
                       'messages': [{'role': 'user', 'content': 'health check'}]})
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 443, timeout=config['timeout_s'])
    try:
        raw = socket.create_connection((parts.hostname, parts.port or 443), timeout=config['timeout_s'])
        conn.sock = context.wrap_socket(raw, server_hostname=config['server_name'])
        conn.request('POST', parts.path, body=body,
                     headers={'Authorization': 'Bearer ' + key, 'Content-Type': 'application/json',
                              'Host': config['server_name']})
        answer = conn.getresponse()
        return completion_ok(answer.status, answer.read(1024 * 1024))
    except (OSError, http.client.HTTPException, ssl.SSLError):
        return False
    finally:
        conn.close()


def set_bird(config, announce):
    """Enable or disable the exporting protocol; False when birdc failed (BIRD not running)."""
    try:
        done = subprocess.run([config['birdc'], '-s', config['bird_socket'], 'enable' if announce else 'disable',
                               config['protocol']], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and 'syntax error' not in done.stdout.lower()


def read_announced(path):
    """Whether the include announces: a restarted check goes on from there, so restarting it moves
    no traffic."""
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError:
        return False
    return 'protocol static' in text and 'disabled;' not in text


def withdraw(config):
    """Stop announcing, and keep it so across a reload of BIRD (the service's stop)."""
    write_atomically(config['bird_include'], bird_protocol(config['protocol'], config['address'], False))
    if not set_bird(config, False):
        sys.stderr.write('birdc could not disable %s\n' % config['protocol'])


def serve(config, checks=None, clock=time.monotonic, sleep=time.sleep, wall=time.time):
    """Check until stopped (or ``checks`` times, for tests)."""
    with open(config['key_file']) as handle:
        key = handle.read().strip()
    context = ssl.create_default_context(cafile=config['ca_file'])
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    health = EntryHealth(config['rise'], config['fall'])
    health.announced = read_announced(config['bird_include'])
    transitions, done, metrics_failed = 0, 0, False
    address = config['address']
    write_atomically(config['bird_include'], bird_protocol(config['protocol'], address, health.announced))
    while checks is None or done < checks:
        started = clock()
        ok = probe(config, key, context)
        if health.observe(ok):
            transitions += 1
            write_atomically(config['bird_include'], bird_protocol(config['protocol'], address, health.announced))
            sys.stderr.write('%s the service address after %d %s check(s) in a row\n'
                             % ('announcing' if health.announced else 'withdrawing',
                                health.passed if ok else health.failed, 'passed' if ok else 'failed'))
            sys.stderr.flush()
        if not set_bird(config, health.announced):
            sys.stderr.write('birdc could not %s %s\n' % ('enable' if health.announced else 'disable', config['protocol']))
            sys.stderr.flush()
        try:
            write_atomically(config['metrics_file'], metrics_text(address, health.announced, ok, wall(), transitions))
        except OSError as exc:
            # No textfile directory (no node exporter on this host): the check goes on without metrics.
            if not metrics_failed:
                sys.stderr.write('cannot write %s: %s\n' % (config['metrics_file'], exc))
                sys.stderr.flush()
            metrics_failed = True
        done += 1
        sleep(max(0.0, config['interval_s'] - (clock() - started)))
    return health


def main(argv=None):
    parser = argparse.ArgumentParser(prog='onprem_deepseek_dr_entry.py',
                                     description='The global entry point\'s health check on a gateway host.')
    parser.add_argument('command', choices=('serve', 'check', 'withdraw'))
    parser.add_argument('--config', required=True, help='the settings (JSON)')
    args = parser.parse_args(argv)
    try:
        config = load_checked_json(args.config, check_config, DrEntryError)
    except DrEntryError as exc:
        sys.stderr.write('onprem_deepseek_dr_entry: %s\n' % exc)
        return 2
    if args.command == 'check':
        return 0
    if args.command == 'withdraw':
        withdraw(config)
        return 0
    serve(config)
    return 0
