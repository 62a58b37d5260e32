# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Built by tools/build_keywrap.py from plugins/module_utils/{_textfile.py,_dr_entry.py,_dr_entry_health.py}:
# edit those, then run it.
"""onprem-deepseek-dr-entry: announce the global entry point while the local gateway answers.

    python3 onprem_deepseek_dr_entry.py {serve,check,withdraw} --config FILE
"""

from __future__ import annotations

# ---- _textfile.py

import json
import os
import tempfile


def write_atomically(path, text):
    """Readers see the old file or the new one, never a part. An empty path writes nothing."""
    if not path:
        return
    directory = os.path.dirname(path)
    handle, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def load_checked_json(path, check, error):
    """The JSON settings file ``path`` as ``check`` returns it; a fault is raised as ``error``
    (the exception class ``check`` raises) with the file's name in front."""
    try:
        with open(path) as handle:
            config = json.load(handle)
    except (OSError, ValueError) as exc:
        raise error("%s: %s" % (path, exc))
    try:
        return check(config)
    except error as exc:
        raise error("%s: %s" % (path, exc))


# ---- _dr_entry.py

import ipaddress
import json
import re

MAX_ASN = 4294967295
_NAME_RE = re.compile(r'^[A-Za-z][A-Za-z0-9_]{0,31}$')
_MODEL_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._:/-]{0,254}$')


class DrEntryError(ValueError):
    pass


def _ipv4(value, where):
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError:
        raise DrEntryError('%s: %r is not an IPv4 address' % (where, value))


def _int(value, low, high, where):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DrEntryError('%s: %r must be a whole number from %d to %d' % (where, value, low, high))
    return value


def _service_address(address):
    """The service address as a /32: an IPv4 address, or an IPv4 network of exactly one address."""
    try:
        network = ipaddress.IPv4Network(str(address))
    except ValueError:
        raise DrEntryError('dr_entry_address: %r is not an IPv4 address' % (address,))
    if network.prefixlen != 32:
        raise DrEntryError('dr_entry_address: %r must be one address (a /32), not a network' % (address,))
    if network.network_address.is_loopback or network.network_address.is_multicast \
            or network.network_address.is_unspecified:
        raise DrEntryError('dr_entry_address: %s cannot be announced (loopback, multicast or unspecified)'
                           % network.network_address)
    return str(network.network_address)


def _peers(peers, asn, where):
    if not isinstance(peers, list) or not peers:
        raise DrEntryError('%s: needs at least one BGP peer (address and asn)' % where)
    out, seen = [], set()
    for index, peer in enumerate(peers):
        at = '%s[%d]' % (where, index)
        if not isinstance(peer, dict) or set(peer) - {'address', 'asn'}:
            raise DrEntryError('%s: must be a mapping with address and asn only, got %r' % (at, peer))
        address = str(_ipv4(peer.get('address'), at + '.address'))
        peer_asn = _int(peer.get('asn'), 1, MAX_ASN, at + '.asn')
        if peer_asn == asn:
            raise DrEntryError('%s.asn: %d is dr_entry_asn; the gateways speak eBGP to the site routers, so the '
                               'routers need their own AS' % (at, peer_asn))
        if address in seen:
            raise DrEntryError('%s.address: %s is listed twice' % (at, address))
        seen.add(address)
        out.append({'address': address, 'asn': peer_asn})
    return out


def entry_plan(gateways, address, primary_site, asn, peers, standby_prepend=3, hold_time=3, bfd=True, only=None):
    """Each gateway's announcement of the service address.

    gateways: a list of ``{name, site, router_id}`` (every gateway host; router_id its IPv4 address).
    peers: gateway name to its BGP peers, a list of ``{address, asn}`` (its site's routers).
    only: None, or the names of the gateways to plan (the others are still checked, but need no
    peers): a gateway host plans its own announcement.
    Returns gateway name to ``{site, role, prepend, router_id, address, asn, peers, hold_time,
    keepalive_time, bfd}``: the primary site's gateways prepend nothing, the others
    ``standby_prepend`` times. Every error names the variable.
    """
    address = _service_address(address)
    asn = _int(asn, 1, MAX_ASN, 'dr_entry_asn')
    standby_prepend = _int(standby_prepend, 1, 16, 'dr_entry_standby_prepend')
    # BGP's hold time is 0 (never) or at least 3 s; a gateway that dies must be noticed.
    hold_time = _int(hold_time, 3, 65535, 'dr_entry_hold_time')
    if not isinstance(bfd, bool):
        raise DrEntryError('dr_entry_bfd: %r must be true or false' % (bfd,))
    if not isinstance(gateways, list) or not gateways:
        raise DrEntryError('the group deepseek_gateways has no host: the service address needs a gateway to announce it')
    if not isinstance(peers, dict):
        raise DrEntryError('dr_entry_peers: must map each gateway to its BGP peers')
    if only is not None and (not isinstance(only, list) or set(only) - {g.get('name') for g in gateways if isinstance(g, dict)}):
        raise DrEntryError('%r is not a list of gateways of deepseek_gateways' % (only,))
    sites = set()
    for gateway in gateways:
        if not isinstance(gateway, dict) or not isinstance(gateway.get('name'), str) or not gateway['name']:
            raise DrEntryError('a gateway must have a name, got %r' % (gateway,))
        site = gateway.get('site')
        if not isinstance(site, str) or not _NAME_RE.match(site):
            raise DrEntryError('%s: deepseek_site %r must name its site (a letter, then letters, digits or _)'
                               % (gateway['name'], site))
        sites.add(site)
    if primary_site not in sites:
        raise DrEntryError('dr_primary_site: %r has no gateway (the gateways\' sites: %s)'
                           % (primary_site, ', '.join(sorted(sites))))
    plan, router_ids = {}, {}
    for gateway in sorted(gateways, key=lambda g: g['name']):
        name = gateway['name']
        router_id = str(_ipv4(gateway.get('router_id'), '%s: the router id (its address)' % name))
        if router_id in router_ids:
            raise DrEntryError('%s: router id %s is also %s\'s; each gateway needs its own address'
                               % (name, router_id, router_ids[router_id]))
        router_ids[router_id] = name
        if only is not None and name not in only:
            continue
        primary = gateway['site'] == primary_site
        plan[name] = {
            'site': gateway['site'], 'role': 'primary' if primary else 'standby',
            'prepend': 0 if primary else standby_prepend, 'router_id': router_id, 'address': address,
            'asn': asn, 'peers': _peers(peers.get(name), asn, '%s: dr_entry_peers' % name),
            'hold_time': hold_time, 'keepalive_time': max(1, hold_time // 3), 'bfd': bfd,
        }
    return plan


class EntryHealth(object):
    """Whether to announce, from the checks so far: ``rise`` passes in a row announce, ``fall``
    failures in a row withdraw. It starts withdrawn: a gateway announces only once it has served."""

    def __init__(self, rise, fall):
        self.rise = _int(rise, 1, 100, 'rise')
        self.fall = _int(fall, 1, 100, 'fall')
        self.announced = False
        self.passed = 0
        self.failed = 0

    def observe(self, ok):
        """Count one check; True when the announcement changes."""
        if ok:
            self.passed, self.failed = self.passed + 1, 0
            if not self.announced and self.passed >= self.rise:
                self.announced = True
                return True
        else:
            self.passed, self.failed = 0, self.failed + 1
            if self.announced and self.failed >= self.fall:
                self.announced = False
                return True
        return False


def completion_ok(status, body):
    """A check passes on an answered completion: status 200 and a JSON object with choices."""
    if status != 200:
        return False
    try:
        answer = json.loads(body)
    except (TypeError, ValueError):
        return False
    return isinstance(answer, dict) and isinstance(answer.get('choices'), list) and len(answer['choices']) > 0


_CHECK_SETTINGS = ('address', 'url', 'server_name', 'ca_file', 'key_file', 'model', 'interval_s', 'timeout_s', 'rise', 'fall',
                   'birdc', 'bird_socket', 'bird_include', 'protocol', 'metrics_file')


def check_config(config):
    """The health check's settings, or an error naming each wrong one."""
    if not isinstance(config, dict):
        raise DrEntryError('the settings must be a JSON object')
    problems = ['unknown setting %s' % key for key in sorted(set(config) - set(_CHECK_SETTINGS))]
    problems += ['%s is missing' % key for key in _CHECK_SETTINGS if key not in config]
    if problems:
        raise DrEntryError('; '.join(problems))
    try:
        _service_address(config['address'])
    except DrEntryError as exc:
        problems.append(str(exc).replace('dr_entry_address', 'address'))
    url = config['url']
    if not isinstance(url, str) or not re.match(r'^https://(127\.0\.0\.1|\[::1\]|localhost)(:[0-9]{1,5})?/v1/chat/completions$', url):
        problems.append('url must be https://127.0.0.1[:port]/v1/chat/completions (the local gateway), got %r' % (url,))
    if not isinstance(config['server_name'], str) or not re.match(r'^[A-Za-z0-9.-]{1,253}$', config['server_name']):
        problems.append('server_name must be the gateway certificate\'s DNS name, got %r' % (config['server_name'],))
    for key in ('ca_file', 'key_file', 'birdc', 'bird_socket', 'bird_include'):
        if not isinstance(config[key], str) or not config[key].startswith('/'):
            problems.append('%s must be an absolute path, got %r' % (key, config[key]))
    if not isinstance(config['metrics_file'], str) or (config['metrics_file'] and not config['metrics_file'].startswith('/')):
        problems.append('metrics_file must be an absolute path or empty, got %r' % (config['metrics_file'],))
    if not isinstance(config['model'], str) or not _MODEL_RE.match(config['model']):
        problems.append('model must be a model name the gateway serves, got %r' % (config['model'],))
    if not isinstance(config['protocol'], str) or not _NAME_RE.match(config['protocol']):
        problems.append('protocol must be the BIRD protocol name, got %r' % (config['protocol'],))
    numbers = {}
    for key, low, high in (('interval_s', 0.2, 60.0), ('timeout_s', 0.1, 60.0)):
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            problems.append('%s must be a number from %s to %s, got %r' % (key, low, high, value))
        else:
            numbers[key] = float(value)
    if len(numbers) == 2 and numbers['timeout_s'] > numbers['interval_s']:
        problems.append('timeout_s (%s) must not exceed interval_s (%s)' % (config['timeout_s'], config['interval_s']))
    for key in ('rise', 'fall'):
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
            problems.append('%s must be a whole number from 1 to 100, got %r' % (key, value))
    if problems:
        raise DrEntryError('; '.join(problems))
    return config


def bird_protocol(protocol, address, announced):
    """BIRD's static protocol that exports the service address, enabled or disabled."""
    return ('# Managed by the onprem.deepseek dr role\'s health check: %s.\n'
            'protocol static %s {%s ipv4; route %s/32 unreachable; }\n'
            % ('announced' if announced else 'withdrawn', protocol, '' if announced else ' disabled;', address))


def metrics_text(address, announced, ok, checked_at, transitions):
    """The node exporter textfile of the health check."""
    labels = '{address="%s"}' % address
    return (
        '# HELP onprem_deepseek_dr_entry_announced 1 while this gateway announces the service address.\n'
        '# TYPE onprem_deepseek_dr_entry_announced gauge\n'
        'onprem_deepseek_dr_entry_announced%s %d\n'
        '# HELP onprem_deepseek_dr_entry_check_ok 1 when the last authenticated completion through this gateway passed.\n'
        '# TYPE onprem_deepseek_dr_entry_check_ok gauge\n'
        'onprem_deepseek_dr_entry_check_ok%s %d\n'
        '# HELP onprem_deepseek_dr_entry_check_timestamp_seconds When the last check ended.\n'
        '# TYPE onprem_deepseek_dr_entry_check_timestamp_seconds gauge\n'
        'onprem_deepseek_dr_entry_check_timestamp_seconds%s %.3f\n'
        '# HELP onprem_deepseek_dr_entry_transitions_total Announcements and withdrawals since the check started.\n'
        '# TYPE onprem_deepseek_dr_entry_transitions_total counter\n'
        'onprem_deepseek_dr_entry_transitions_total%s %d\n'
    ) % (labels, 1 if announced else 0, labels, 1 if ok else 0, labels, checked_at, labels, transitions)


# ---- _dr_entry_health.py

import argparse
import http.client
import json
import socket
import ssl
import subprocess
import sys
import time
from urllib.parse import urlsplit


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


if __name__ == "__main__":
    sys.exit(main())
