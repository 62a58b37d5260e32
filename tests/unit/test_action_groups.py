# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""meta/runtime.yml's action groups reach the modules: module_defaults for a group sets their options."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(sys.executable).with_name('ansible-playbook')


def test_every_group_member_is_a_module_of_the_collection():
    groups = yaml.safe_load((ROOT / 'meta' / 'runtime.yml').read_text())['action_groups']
    assert set(groups) == {'pkcs11', 'gpu'}
    for members in groups.values():
        for name in members:
            assert (ROOT / 'plugins' / 'modules' / (name + '.py')).is_file(), name


def test_module_defaults_for_a_group_reach_its_modules(tmp_path):
    play = (
        '- hosts: localhost\n  gather_facts: false\n'
        '  module_defaults:\n    group/onprem.deepseek.gpu:\n      nvidia_smi_path: /nonexistent/by-group/nvidia-smi\n'
        '    group/onprem.deepseek.pkcs11:\n      module_path: /nonexistent/by-group/libpkcs11.so\n'
        '      token_label: t\n      pin_file: "{{ playbook_dir }}/pin"\n'
        '  tasks:\n'
        '    - onprem.deepseek.gpu_facts:\n      register: facts\n'
        '    - onprem.deepseek.pkcs11_key:\n        label: k\n        key_type: aes\n'
        '      register: key\n      ignore_errors: true\n'
        '    - ansible.builtin.copy:\n        content: "{{ {\'facts\': facts, \'key\': key} | to_json }}"\n'
        '        dest: "{{ playbook_dir }}/out.json"\n        mode: "0600"\n'
    )
    (tmp_path / 'play.yml').write_text(play)
    (tmp_path / 'pin').write_text('1234\n')
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    result = subprocess.run(
        [str(PLAYBOOK), '-i', 'localhost,', '-c', 'local',
         '-e', 'ansible_python_interpreter=%s' % sys.executable, 'play.yml'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    out = json.loads((tmp_path / 'out.json').read_text())
    assert '/nonexistent/by-group/nvidia-smi' in out['facts']['ansible_facts']['gpu']['reason']
    assert out['key']['failed'] is True
    assert '/nonexistent/by-group/' in out['key']['msg'], out['key']['msg']
