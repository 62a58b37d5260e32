# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""site_mirror's pip phase (roles/site_mirror/tasks/pip.yml) run by ansible-playbook on this
machine, with the role's pip configuration path pointed at a temporary file: with an index it
writes the file; without one it removes only the file it wrote, never a host's own."""
from __future__ import annotations

import json
import sys

from playbook_runs import needs_playbook, run_playbook

PLAY = '''---
- name: site_mirror's pip phase alone
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run it
      ansible.builtin.include_role:
        name: onprem.deepseek.site_mirror
        tasks_from: pip.yml
'''
HOSTS_OWN = '[global]\nindex-url = http://10.77.0.9/simple\n'

pytestmark = needs_playbook


def run(tmp_path, index, check=False):
    (tmp_path / 'pip.yml').write_text(PLAY)
    extra = {'__site_mirror_pip_conf': str(tmp_path / 'pip.conf'), 'site_mirror_pypi_index_url': index,
             'site_mirror_ca_file': '', 'ansible_python_interpreter': sys.executable}
    (tmp_path / 'vars.json').write_text(json.dumps(extra))
    proc = run_playbook(['-i', 'localhost,', '-c', 'local', '-e', '@vars.json', 'pip.yml'] + (['--check'] if check else []),
                        cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    recap = [line for line in proc.stdout.splitlines() if line.startswith('localhost')][-1]
    return int(recap.split('changed=')[1].split()[0])


def test_an_index_writes_the_file_with_its_marker(tmp_path):
    assert run(tmp_path, 'http://10.77.0.1:3141/root/pypi/+simple/') == 1
    text = (tmp_path / 'pip.conf').read_text()
    assert '# Managed by onprem.deepseek.site_mirror' in text
    assert 'index-url = http://10.77.0.1:3141/root/pypi/+simple/' in text
    assert 'trusted-host = 10.77.0.1' in text
    assert run(tmp_path, 'http://10.77.0.1:3141/root/pypi/+simple/') == 0


def test_no_index_removes_the_file_the_role_wrote(tmp_path):
    run(tmp_path, 'https://10.77.0.1/simple/')
    assert run(tmp_path, '', check=True) == 1
    assert (tmp_path / 'pip.conf').exists()
    assert run(tmp_path, '') == 1
    assert not (tmp_path / 'pip.conf').exists()
    assert run(tmp_path, '') == 0


def test_no_index_leaves_a_hosts_own_file(tmp_path):
    (tmp_path / 'pip.conf').write_text(HOSTS_OWN)
    assert run(tmp_path, '') == 0
    assert (tmp_path / 'pip.conf').read_text() == HOSTS_OWN


def test_a_file_that_only_mentions_ansible_is_left_too(tmp_path):
    # Files of earlier releases carried only the generic ansible_managed line: not provably ours.
    own = '# Ansible managed\n' + HOSTS_OWN
    (tmp_path / 'pip.conf').write_text(own)
    assert run(tmp_path, '') == 0
    assert (tmp_path / 'pip.conf').read_text() == own
