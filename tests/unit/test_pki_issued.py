# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pki role's issued entry point: the record of an earlier run, published read-only.

A consumer's role that runs without pki (site.yml --tags gateway, playbooks/gateway.yml alone)
takes pki_issued from the record that the issuing run wrote in pki_cert_dir. Runs on localhost
against a record in a temporary directory; nothing else on this machine is read or changed.
"""
from __future__ import annotations

import json
import sys

import pytest

from playbook_runs import needs_playbook, run_playbook

PLAY = '''---
- name: The pki role's issued entry point
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run it
      ansible.builtin.include_role:
        name: onprem.deepseek.pki
        tasks_from: issued
    - name: Show what it published
      ansible.builtin.debug:
        msg: "PUBLISHED {{ {'issued': pki_issued, 'keys': pki_api_key_files} | to_json }} END"
'''


def entry(name, key_file=True):
    """A record entry as certificate.yml publishes it (a file key, or a token key)."""
    return {'certificate': '/etc/deepseek/pki/%s.crt' % name, 'chain': '/etc/deepseek/pki/%s.chain.pem' % name,
            'key_file': '/etc/deepseek/pki/%s.key' % name if key_file else None,
            'key_uri': None if key_file else 'pkcs11:token=t;id=%%01;object=%s;type=private' % name,
            'key_engine_uri': None if key_file else 'pkcs11:token=t;object=%s?pin-source=file:/p' % name,
            'openssl_conf': None if key_file else '/etc/ssl/pkcs11.cnf',
            'public_key_sha256': None if key_file else 'ab' * 32, 'predicted': False}


RECORD = {'gateway': entry('gateway', key_file=False), 'exporter': entry('exporter'), 'gone': entry('gone')}


def issued(tmp_path, record, certificates, api_keys=(), check=False):
    certs = tmp_path / 'pki'
    certs.mkdir()
    if record is not None:
        (certs / 'issued.json').write_text(json.dumps(record))
    (tmp_path / 'play.yml').write_text(PLAY)
    (tmp_path / 'vars.json').write_text(json.dumps({
        'pki_cert_dir': str(certs), 'pki_api_key_output_dir': '/keys',
        'pki_certificates': [{'name': n, 'common_name': n} for n in certificates], 'pki_api_keys': list(api_keys)}))
    run = run_playbook(['-i', 'localhost,', '-c', 'local', '-e', 'ansible_python_interpreter=%s' % sys.executable,
                        '-e', '@vars.json', 'play.yml'] + (['--check'] if check else []), cwd=tmp_path)
    out = ' '.join((run.stdout + run.stderr).split())
    published = json.loads(out.split('PUBLISHED ', 1)[1].split(' END', 1)[0]) if 'PUBLISHED ' in out else None
    return run, out, published


@needs_playbook
@pytest.mark.parametrize('check', [False, True])
def test_the_record_is_published_as_recorded_for_this_hosts_certificates_and_nothing_changes(tmp_path, check):
    run, out, published = issued(tmp_path, RECORD, ['gateway', 'exporter'],
                                 api_keys=[{'name': 'admin', 'shared': True}, {'name': 'local'}], check=check)
    assert run.returncode == 0, out[-3000:]
    # Exactly the recorded entries, token key URIs and public key hashes included; not 'gone',
    # which this host's pki_certificates no longer list.
    assert published['issued'] == {'gateway': RECORD['gateway'], 'exporter': RECORD['exporter']}
    assert published['keys'] == {'admin': '/keys/admin.key', 'local': '/keys/localhost-local.key'}
    assert 'changed=0' in out and 'failed=0' in out


@needs_playbook
def test_a_certificate_the_record_lacks_is_refused_naming_it_and_the_record(tmp_path):
    run, out, published = issued(tmp_path, RECORD, ['gateway', 'prometheus', 'exporter'])
    assert run.returncode != 0 and published is None
    assert ('pki_certificates: prometheus not issued on localhost (no entry in %s/pki/issued.json)' % tmp_path) in out
    assert 'run the pki role first' in out


@needs_playbook
def test_no_record_is_refused_naming_every_certificate(tmp_path):
    run, out, published = issued(tmp_path, None, ['gateway', 'exporter'])
    assert run.returncode != 0 and published is None
    assert 'pki_certificates: exporter, gateway not issued on localhost' in out


@needs_playbook
def test_a_host_without_certificates_needs_no_record(tmp_path):
    run, out, published = issued(tmp_path, None, [], api_keys=[{'name': 'probe', 'shared': False}])
    assert run.returncode == 0, out[-3000:]
    assert published == {'issued': {}, 'keys': {'probe': '/keys/localhost-probe.key'}}
