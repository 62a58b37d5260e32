# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each phase of a role runs alone (--tags <role>_<phase>): the private variables it reads are set
by the phase itself, by the read-only preflight (which every partial run of site.yml runs through
playbooks/check_inputs.yml), or in vars/ and defaults/, or are read with a default or an
`is defined` test. A phase that reads what another phase registers fails when run alone."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / 'roles').iterdir() if (p / 'tasks' / 'main.yml').is_file())
INCLUDES = ('ansible.builtin.import_tasks', 'ansible.builtin.include_tasks', 'import_tasks', 'include_tasks')
SET_FACT = ('ansible.builtin.set_fact', 'set_fact')


def tasks_in(node):
    if isinstance(node, list):
        for item in node:
            yield from tasks_in(item)
    elif isinstance(node, dict):
        yield node
        for key in ('block', 'rescue', 'always'):
            yield from tasks_in(node.get(key, []))


def load(role_dir, name):
    return yaml.safe_load((role_dir / 'tasks' / name).read_text()) or []


def closure(role_dir, name, seen=None):
    """The task file and every task file it includes or imports by a plain name, in order."""
    seen = [] if seen is None else seen
    if name in seen or not (role_dir / 'tasks' / name).is_file():
        return seen
    seen.append(name)
    for task in tasks_in(load(role_dir, name)):
        for key in INCLUDES:
            arg = task.get(key)
            arg = arg.get('file') if isinstance(arg, dict) else arg
            if isinstance(arg, str) and '{{' not in arg:
                closure(role_dir, arg, seen)
    return seen


def defined_by(role_dir, files):
    names = set()
    for name in files:
        for task in tasks_in(load(role_dir, name)):
            if isinstance(task.get('register'), str):
                names.add(task['register'])
            for key in SET_FACT:
                if isinstance(task.get(key), dict):
                    names.update(task[key])
            if isinstance(task.get('vars'), dict):
                names.update(task['vars'])
            loop_var = (task.get('loop_control') or {}).get('loop_var')
            if loop_var:
                names.add(loop_var)
    return names


def static_vars(role_dir):
    names = set()
    for folder in ('vars', 'defaults'):
        for path in (role_dir / folder).glob('*.yml'):
            data = yaml.safe_load(path.read_text())
            if isinstance(data, dict):
                names.update(data)
    return names


def phases(role_dir):
    return [task[key] for task in tasks_in(load(role_dir, 'main.yml')) for key in INCLUDES
            if isinstance(task.get(key), str) and task[key] != 'preflight.yml']


def guarded(text, name):
    """True when every use of name is followed by `| default` or an `is [not] defined` test."""
    for match in re.finditer(r'\b%s\b' % re.escape(name), text):
        after = text[match.end():match.end() + 80]
        if not re.match(r'(\.[\w.]+|\[[^\]]*\])*\s*(\|\s*default\b|is\s+(not\s+)?(defined|undefined)\b)', after):
            return False
    return True


def unset_reads(role_dir):
    """(phase, file, variable) for each private variable a phase reads but nothing it runs sets."""
    role = role_dir.name
    base = defined_by(role_dir, closure(role_dir, 'preflight.yml')) | static_vars(role_dir)
    found = []
    for phase in phases(role_dir):
        files = closure(role_dir, phase)
        own = defined_by(role_dir, files)
        for name in files:
            text = (role_dir / 'tasks' / name).read_text()
            for var in sorted(set(re.findall(r'\b(__%s_\w+)' % role, text)) - base - own):
                if not guarded(text, var):
                    found.append((phase, name, var))
    return found


@pytest.mark.parametrize('role', ROLES)
def test_each_phase_sets_or_defaults_what_it_reads(role):
    assert unset_reads(ROOT / 'roles' / role) == []


def write_role(tmp_path, files):
    role_dir = tmp_path / 'demo'
    (role_dir / 'tasks').mkdir(parents=True)
    for name, tasks in files.items():
        (role_dir / 'tasks' / name).write_text(yaml.safe_dump(tasks))
    return role_dir


MAIN = [{'name': 'p', 'ansible.builtin.import_tasks': 'preflight.yml'},
        {'name': 'c', 'ansible.builtin.import_tasks': 'configure.yml'},
        {'name': 'r', 'ansible.builtin.import_tasks': 'run.yml'}]


def test_a_read_of_what_another_phase_registers_is_found(tmp_path):
    role_dir = write_role(tmp_path, {
        'main.yml': MAIN, 'preflight.yml': [{'ansible.builtin.set_fact': {'__demo_plan': 1}}],
        'configure.yml': [{'name': 'unit', 'ansible.builtin.template': {'src': 'a', 'dest': 'b'}, 'register': '__demo_unit'}],
        'run.yml': [{'name': 'restart', 'ansible.builtin.debug': {'msg': '{{ __demo_plan }}'},
                     'when': '__demo_unit is changed'}]})
    assert unset_reads(role_dir) == [('run.yml', 'run.yml', '__demo_unit')]


def test_what_the_phase_reads_itself_from_the_host_or_with_a_default_passes(tmp_path):
    role_dir = write_role(tmp_path, {
        'main.yml': MAIN, 'preflight.yml': [],
        'configure.yml': [{'ansible.builtin.stat': {'path': '/x'}, 'register': '__demo_unit'}],
        'run.yml': [{'block': [{'ansible.builtin.include_tasks': 'read.yml'}]},
                    {'ansible.builtin.debug': {'msg': "{{ __demo_unit | default({}) }} {{ __demo_read.stat }}"},
                     'when': '__demo_held is not defined or __demo_unit.stat is defined'}],
        'read.yml': [{'ansible.builtin.stat': {'path': '/x'}, 'register': '__demo_read'}]})
    assert unset_reads(role_dir) == []
