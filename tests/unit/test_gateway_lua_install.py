# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gateway's Lua package (roles/gateway/tasks/lua.yml) run by ansible-playbook on this machine,
into a temporary directory: the first run copies it, a run with everything in place copies nothing,
and a file that was edited, removed or given another mode is put back. nginx's handlers are made
harmless here (its test command is `true`, and the reload is left out as for a first deployment)."""
from __future__ import annotations

import filecmp
import json
import os
import sys

import pytest

from playbook_runs import ROOT, needs_playbook, run_playbook

PLAY = '''---
- name: The gateway's Lua package alone
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run it
      ansible.builtin.include_role:
        name: onprem.deepseek.gateway
        tasks_from: lua.yml
'''
SOURCE = ROOT / 'roles' / 'gateway' / 'files' / 'lua'

pytestmark = [needs_playbook, pytest.mark.skipif(os.geteuid() != 0, reason='the package is owned by root')]


def run(tmp_path, check=False):
    (tmp_path / 'lua.yml').write_text(PLAY)
    extra = {'__gateway_lua_dir': str(tmp_path / 'lua'), '__gateway_nginx_test': 'true',
             '__gateway_nginx_missing': True, 'ansible_python_interpreter': sys.executable}
    (tmp_path / 'vars.json').write_text(json.dumps(extra))
    proc = run_playbook(['-i', 'localhost,', '-c', 'local', '-e', '@vars.json', 'lua.yml'] + (['--check'] if check else []),
                        cwd=tmp_path, ANSIBLE_STDOUT_CALLBACK='ansible.builtin.json')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tasks = json.loads(proc.stdout)['plays'][0]['tasks']
    # Role tasks are named "<role> : <task>"; the handlers, run outside this file, are left out.
    return {t['task']['name'].split(' : ')[-1]: ('skipped' if r.get('skipped') else 'changed' if r.get('changed') else 'ok')
            for t in tasks for r in t['hosts'].values() if 'Lua' in t['task']['name']}


def same_tree(dest):
    comparison = filecmp.dircmp(SOURCE, dest)
    pending = [comparison]
    while pending:
        c = pending.pop()
        if c.left_only or c.diff_files or c.funny_files:
            return False
        pending.extend(c.subdirs.values())
    return True


def test_a_check_run_predicts_the_copy_the_first_run_copies_and_the_next_copies_nothing(tmp_path):
    predicted = run(tmp_path, check=True)
    assert predicted == {"Create the Lua package's directory": 'changed', 'Read the installed Lua package': 'skipped',
                         'Install the Lua package': 'changed'}
    assert not (tmp_path / 'lua').exists()
    first = run(tmp_path)
    assert first['Install the Lua package'] == 'changed'
    assert same_tree(tmp_path / 'lua')
    assert run(tmp_path) == {"Create the Lua package's directory": 'ok', 'Read the installed Lua package': 'ok',
                             'Install the Lua package': 'skipped'}


def test_an_edited_removed_or_loosened_file_is_put_back(tmp_path):
    run(tmp_path)
    package = tmp_path / 'lua' / 'onprem_gateway'
    lua = sorted(package.glob('*.lua'))
    lua[0].write_text('-- edited on the host\n')
    lua[1].unlink()
    lua[2].chmod(0o666)
    assert run(tmp_path, check=True)['Install the Lua package'] == 'changed'
    assert not lua[1].exists()
    assert run(tmp_path)['Install the Lua package'] == 'changed'
    assert same_tree(tmp_path / 'lua')
    assert {oct(p.stat().st_mode & 0o777) for p in package.glob('*.lua')} == {'0o644'}
