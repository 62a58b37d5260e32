"""playbooks/check_inputs.yml lists every role with the roles whose published facts it reads, and
each scenario's converge checks the roles it applies.

A role publishes facts from its read-only preflight (``<role>_*`` set there); check_inputs.yml runs
the preflight of the roles a run applies, so a role that reads another's facts must name it in its
``needs``, or a run with --tags for the reader alone would find them undefined.
"""
import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.onprem.deepseek.plugins.module_utils._check_inputs import select
from test_role_phases import SET_FACT, closure, load, tasks_in

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'check_inputs.yml'
ROLES = sorted(p.name for p in (ROOT / 'roles').iterdir() if (p / 'tasks' / 'preflight.yml').is_file())
COMMENTS = (re.compile(r'^\s*#[^\n]*$', re.M), re.compile(r'\{#.*?#\}', re.S))


def listed():
    [play] = yaml.safe_load(PLAYBOOK.read_text())
    return play['vars']['check_inputs_roles']


def published(role):
    """The public facts a role's preflight (and the task files it includes) sets."""
    facts = set()
    for name in closure(ROOT / 'roles' / role, 'preflight.yml'):
        for task in tasks_in(load(ROOT / 'roles' / role, name)):
            for key in SET_FACT:
                if isinstance(task.get(key), dict):
                    facts |= {fact for fact in task[key] if fact.startswith(role + '_')}
    return facts


def code_of(role):
    """The role's tasks, handlers, templates, defaults and vars without comments (meta/ is documentation)."""
    files = [p for p in (ROOT / 'roles' / role).rglob('*')
             if p.is_file() and p.suffix in ('.yml', '.j2') and 'meta' not in p.relative_to(ROOT / 'roles' / role).parts]
    text = '\n'.join(p.read_text(errors='replace') for p in files)
    for comment in COMMENTS:
        text = comment.sub('', text)
    return text


def needs_closure(role, entries):
    needs = {entry['role']: entry.get('needs', []) for entry in entries}
    seen, pending = set(), [role]
    while pending:
        for provider in needs[pending.pop()]:
            if provider not in seen:
                seen.add(provider)
                pending.append(provider)
    return seen


def test_every_role_with_a_preflight_is_listed_once():
    assert sorted(entry['role'] for entry in listed()) == ROLES


def test_the_list_is_well_formed_and_every_role_alone_selects_it():
    entries = listed()
    assert select(entries, ['all'], []) == entries
    for entry in entries:
        assert entry in select(entries, [entry['role']], [])


def test_the_scan_finds_published_facts_and_their_readers():
    assert 'hsm_token' in published('hsm') and 'gpu_host_stack_lock' in published('gpu_host')
    assert re.search(r'\bhsm_token\b', code_of('pki'))
    assert re.search(r'\binference_metrics_targets\b', code_of('monitoring'))
    # Named in the gateway's comments and argument spec only: playbooks/gateway.yml passes it.
    assert not re.search(r'\bdr_server_weights\b', code_of('gateway'))


@pytest.mark.parametrize('reader', ROLES)
def test_a_role_that_reads_another_roles_facts_needs_it(reader):
    entries = listed()
    code = code_of(reader)
    missing = sorted(f'{provider}.{fact}' for provider in ROLES if provider != reader
                     for fact in published(provider)
                     if re.search(r'\b%s\b' % re.escape(fact), code) and provider not in needs_closure(reader, entries))
    assert not missing, f'{reader} reads facts of roles it does not need in {PLAYBOOK.name}: {missing}'


def roles_applied(path, seen=None):
    """The collection's roles a playbook applies: its plays' roles and imported playbooks' (entry points
    of other roles that a play includes only read, so they do not count)."""
    seen = set() if seen is None else seen
    for play in yaml.safe_load(path.read_text()):
        target = play.get('ansible.builtin.import_playbook')
        if target:
            roles_applied((path.parent / target).resolve(), seen)
            continue
        for role in play.get('roles', []):
            name = role['role'] if isinstance(role, dict) else role
            seen.add(name.rsplit('.', 1)[-1])
    return seen


def check_inputs_import(path):
    plays = yaml.safe_load(path.read_text())
    found = [play for play in plays if isinstance(play, dict)
             and str(play.get('ansible.builtin.import_playbook', '')).endswith('/check_inputs.yml')]
    return found[0] if found else None


# The scenarios' deployments (converge.yml, pki's deploy.yml) that start with the input checks.
DEPLOYMENTS = sorted(p for p in (ROOT / 'molecule').glob('*/*.yml') if check_inputs_import(p))


def test_the_scenarios_deployments_are_found():
    assert {f'{p.parent.name}/{p.name}' for p in DEPLOYMENTS} >= {'gpu_stack/converge.yml', 'pki/deploy.yml'}


@pytest.mark.parametrize('playbook', DEPLOYMENTS, ids=[f'{p.parent.name}/{p.name}' for p in DEPLOYMENTS])
def test_a_scenario_deployment_checks_exactly_the_roles_it_applies(playbook):
    only = check_inputs_import(playbook).get('vars', {}).get('check_inputs_only')
    applied = roles_applied(playbook) & set(ROLES)
    assert only is not None and sorted(only) == sorted(applied), (only, sorted(applied))
