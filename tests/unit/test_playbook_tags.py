# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Partial runs select what docs/operations.md says: read from `ansible-playbook --list-tasks` over
playbooks/site.yml (no host is contacted), every task of a role answers to the role's name and to
one of its phase tags, and the read-only plays that verify a run (the input checks, the readiness
report, the summary) run whatever --tags selects."""
from __future__ import annotations

import re

import pytest

from playbook_runs import ROOT, needs_playbook, run_playbook

SITE_ROLES = {'site_mirror', 'baseline', 'tls_policy', 'hsm', 'pki', 'storage_tiers', 'gpu_host', 'nvidia_driver',
              'cuda_toolkit', 'tensorrt', 'dcgm_exporter', 'model_store', 'inference', 'gateway', 'dr', 'node_exporter',
              'monitoring', 'remediation'}
# Plays (by name) that must run under any --tags, and the tag that names each.
ALWAYS_PLAYS = {"Check every role's inputs": None, 'Report GPU readiness': 'validate',
                'Summarise what is running where': 'summary',
                'Read which nodes serve inference before the first batch': None}

pytestmark = needs_playbook


def _listing(*args):
    proc = run_playbook(['-i', str(ROOT / 'inventories' / 'sandbox'), '--list-tasks', *args,
                         str(ROOT / 'playbooks' / 'site.yml')], cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def parse(text):
    """[(play name, play tags, [(task name, task tags)])] from --list-tasks output."""
    plays = []
    for line in text.splitlines():
        play = re.match(r'\s+play #\d+ \(.*?\): (.*)\tTAGS: \[(.*)\]$', line)
        task = re.match(r'\s{6}(\S.*)\tTAGS: \[(.*)\]$', line)
        if play:
            plays.append((play.group(1), set(filter(None, play.group(2).split(','))), []))
        elif task and plays:
            plays[-1][2].append((task.group(1), {t.strip() for t in task.group(2).split(',') if t.strip()}))
    return plays


@pytest.fixture(scope='module')
def site():
    return parse(_listing())


def test_the_parser_reads_plays_and_tasks():
    text = ('  play #1 (all): Report GPU readiness\tTAGS: [always,validate]\n    tasks:\n'
            '      Print the readiness report\tTAGS: [always, validate]\n')
    assert parse(text) == [('Report GPU readiness', {'always', 'validate'},
                            [('Print the readiness report', {'always', 'validate'})])]


def test_every_role_of_site_yml_is_there(site):
    roles = {m.group(1) for play in site for name, tags in play[2]
             for m in [re.match(r'onprem\.deepseek\.(\w+) : ', name)] if m}
    assert roles == SITE_ROLES


def test_every_role_task_answers_to_the_role_and_to_a_phase(site):
    wrong = []
    for play in site:
        for name, tags in play[2]:
            m = re.match(r'onprem\.deepseek\.(\w+) : (.*)', name)
            if not m:
                continue
            role, task = m.groups()
            if task.startswith('Validating arguments against arg spec'):
                if tags != {'always', role}:
                    wrong.append((name, sorted(tags)))
            elif role not in tags or not any(t.startswith(role + '_') for t in tags):
                wrong.append((name, sorted(tags)))
    assert wrong == []


def test_the_verifying_plays_run_under_any_tags(site):
    found = {name: (play_tags, tasks) for name, play_tags, tasks in site if name in ALWAYS_PLAYS}
    assert set(found) == set(ALWAYS_PLAYS)
    for name, tag in ALWAYS_PLAYS.items():
        play_tags, tasks = found[name]
        assert tasks, name
        assert all('always' in tags for task, tags in tasks), (name, tasks)
        if tag:
            assert tag in play_tags, (name, play_tags)


def test_one_phase_selects_that_phase_and_the_verifying_plays():
    plays = parse(_listing('--tags', 'inference_run'))
    role_tasks = [name for play in plays for name, tags in play[2]
                  if name.startswith('onprem.deepseek.') and 'Validating arguments' not in name]
    assert role_tasks and all(name.startswith('onprem.deepseek.inference : ') for name in role_tasks)
    assert {play[0] for play in plays if play[2]} >= set(ALWAYS_PLAYS)
