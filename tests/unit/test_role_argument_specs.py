# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every role starts on its own: the argument spec check that opens each role must not depend on
variables another role or a later task sets.

Ansible templates the argument spec (its defaults and descriptions) and the role's defaults when it
validates them, so a ``{{ var }}`` there that only a later task defines stops the role before its
first task ("'__nvidia_driver_repo_dist' is undefined"). Only the validation runs here (every other
task is skipped by tag); nothing on this machine is changed.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / 'roles').iterdir() if (p / 'meta' / 'argument_specs.yml').is_file())
PLAYBOOK = Path(sys.executable).with_name('ansible-playbook')


@pytest.mark.skipif(not PLAYBOOK.exists() and not shutil.which('ansible-playbook'), reason='needs ansible-playbook')
def test_each_role_validates_its_arguments_alone(tmp_path):
    plays = ['- name: Gather facts once\n  hosts: localhost\n  gather_facts: true\n  tasks: []\n']
    plays += ['- name: Role %s alone\n  hosts: localhost\n  gather_facts: false\n  roles:\n'
              '    - role: onprem.deepseek.%s\n' % (role, role) for role in ROLES]
    (tmp_path / 'roles.yml').write_text('---\n' + ''.join(plays))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    result = subprocess.run(
        [str(PLAYBOOK) if PLAYBOOK.exists() else 'ansible-playbook', '-i', 'localhost,', '-c', 'local',
         '-e', 'ansible_python_interpreter=%s' % sys.executable, '--tags', 'onprem_no_such_tag', 'roles.yml'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    validated = re.findall(r'TASK \[onprem\.deepseek\.(\w+) : Validating arguments against arg spec', result.stdout)
    assert validated == ROLES
