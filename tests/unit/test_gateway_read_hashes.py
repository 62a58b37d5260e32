# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gateway's read of the stored API key hashes (roles/gateway/tasks/read_hashes.yml) run by
ansible-playbook on this machine against a temporary key directory: one read for every key, each
hash under its key's name, and a missing or empty file, a key id or a name that is no file name
left out (the policy's compiler then refuses the key, naming it)."""
from __future__ import annotations

import json
import sys

from playbook_runs import ROOT, needs_playbook, run_playbook

PLAY = '''---
- name: The gateway's read of the stored hashes alone
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Read them
      ansible.builtin.import_tasks: %s
    - name: Show them
      ansible.builtin.debug:
        msg: {hashes: "{{ __gateway_hashes }}", argv: "{{ __gateway_hash_files.cmd | default(None) }}"}
''' % (ROOT / 'roles' / 'gateway' / 'tasks' / 'read_hashes.yml')

pytestmark = [needs_playbook]


def read(tmp_path, principals, check=False):
    (tmp_path / 'play.yml').write_text(PLAY)
    # A directory name with characters that mean something in a regular expression.
    keys = tmp_path / 'keys+[1].d'
    extra = {'gateway_api_key_dir': str(keys), 'gateway_principals': principals,
             'ansible_python_interpreter': sys.executable}
    (tmp_path / 'vars.json').write_text(json.dumps(extra))
    proc = run_playbook(['-i', 'localhost,', '-c', 'local', '-e', '@vars.json', 'play.yml'] + (['--check'] if check else []),
                        cwd=tmp_path, ANSIBLE_STDOUT_CALLBACK='ansible.builtin.json')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tasks = json.loads(proc.stdout)['plays'][0]['tasks']
    return tasks[-1]['hosts']['localhost']['msg']


def keydir(tmp_path, files):
    keys = tmp_path / 'keys+[1].d'
    keys.mkdir()
    for name, content in files.items():
        (keys / name).write_text(content)
    return keys


def test_each_stored_hash_under_its_name_in_one_read_missing_and_empty_files_left_out(tmp_path):
    keys = keydir(tmp_path, {'admin.hash': 'scrypt$16384$8$1$c2FsdA==$a:b\n', 'ci.bot-1.hash': 'scrypt$x\n',
                             'empty.hash': '', 'other.hash': 'scrypt$not-named\n'})
    principals = [{'name': 'ops', 'keys': ['admin', 'empty', 'missing', '0123456789ab', '../etc/x', 7]},
                  {'name': 'ci', 'keys': ['ci.bot-1'], 'revoked_keys': ['admin', 'fedcba987654']}]
    for check in (False, True):
        got = read(tmp_path, principals, check=check)
        assert got['hashes'] == {'admin': 'scrypt$16384$8$1$c2FsdA==$a:b', 'ci.bot-1': 'scrypt$x'}
        # One command for the names that can be files, each once; none for key ids or other values.
        assert got['argv'][:6] == ['grep', '-H', '-s', '-e', '', '--']
        assert got['argv'][6:] == ['%s/%s.hash' % (keys, n) for n in ('admin', 'empty', 'missing', 'ci.bot-1')]


def test_no_named_key_reads_nothing(tmp_path):
    keydir(tmp_path, {'admin.hash': 'scrypt$x\n'})
    got = read(tmp_path, [{'name': 'ops', 'keys': ['0123456789ab']}, {'name': 'none'}])
    assert got == {'hashes': {}, 'argv': None}


def test_no_file_at_all_is_no_hash_and_no_failure(tmp_path):
    got = read(tmp_path, [{'name': 'ops', 'keys': ['admin']}])
    assert got['hashes'] == {} and got['argv'][-1].endswith('/admin.hash')
