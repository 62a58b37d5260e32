# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nvidia_driver's serving guard, the task itself (read from roles/nvidia_driver/tasks/install.yml)
run by ansible-playbook on three inventory hosts of this machine: a host may stop a unit only while
a host outside its batch runs the same unit, so the last hosts serving one model are kept even when
others serve another. Nothing on this machine is changed (the task is an assert)."""
from __future__ import annotations

import json
import sys

import yaml

from playbook_runs import ROOT, needs_playbook, run_playbook

GUARD = 'Refuse to stop the last hosts serving a model'
R1 = 'deepseek-inference-r1.service'
V3 = 'deepseek-inference-v3.service'

pytestmark = needs_playbook


def _guard_task():
    tasks = yaml.safe_load((ROOT / 'roles/nvidia_driver/tasks/install.yml').read_text())
    return next(t for t in tasks if t.get('name') == GUARD)


def _run(tmp_path, stopping, serving, outage=False):
    """n1 (its own batch: serial 1) would stop `stopping`; `serving` is what n2 and n3 were read to run
    (a host left out was not read)."""
    hosts = {'n1': {}, 'n2': {}, 'n3': {}}
    for host, units in serving.items():
        hosts[host]['nvidia_driver_serving_units'] = units
    inventory = {'all': {'hosts': hosts, 'vars': {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}}}
    (tmp_path / 'inventory.yml').write_text(yaml.safe_dump(inventory))
    play = [{'name': 'The guard, one host per batch', 'hosts': 'all', 'gather_facts': False, 'serial': 1,
             'vars': {'__nvidia_driver_stopped_units': stopping, 'nvidia_driver_allow_inference_outage': outage},
             'tasks': [{'name': 'Only n1 changes its driver', 'when': "inventory_hostname == 'n1'",
                        'block': [_guard_task()]}]}]
    (tmp_path / 'guard.yml').write_text(yaml.safe_dump(play, sort_keys=False))
    proc = run_playbook(['-i', 'inventory.yml', 'guard.yml'], cwd=tmp_path,
                        ANSIBLE_STDOUT_CALLBACK='ansible.builtin.json')
    result = json.loads(proc.stdout)
    n1 = [task['hosts']['n1'] for play in result['plays'] for task in play['tasks'] if 'n1' in task['hosts']]
    assert len(n1) == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    return n1[0]


def test_a_unit_another_host_runs_may_stop(tmp_path):
    assert not _run(tmp_path, [R1], {'n2': [R1], 'n3': []}).get('failed')


def test_the_last_host_of_a_model_is_kept_while_others_serve_another(tmp_path):
    outcome = _run(tmp_path, [R1, V3], {'n2': [V3], 'n3': [V3]})
    assert outcome['failed']
    assert outcome['msg'].startswith('Refusing to stop %s, %s on n1 for the driver change: no host outside this batch '
                                     '(n1) serves inference with %s, so that model would go down.' % (R1, V3, R1))
    assert 'nvidia_driver_allow_inference_outage: true' in outcome['msg']


def test_hosts_not_read_are_named(tmp_path):
    outcome = _run(tmp_path, [R1], {'n2': []})
    assert outcome['failed']
    assert 'serves inference with %s; not known for n3: playbooks/gpu_stack.yml reads it first' % R1 in outcome['msg']


def test_an_accepted_outage_passes(tmp_path):
    assert not _run(tmp_path, [R1], {'n2': [], 'n3': []}, outage=True).get('failed')
