"""Which roles' input checks a run needs: its tags, its skip tags, the importing playbook's roles,
and the roles whose facts those read."""
import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.onprem.deepseek.plugins.filter.check_inputs_select import check_inputs_select
from ansible_collections.onprem.deepseek.plugins.module_utils._check_inputs import (
    CheckInputsError,
    role_of_tag,
    select,
)

ROLES = [
    {'role': 'site_mirror', 'hosts': 'deepseek_nodes'},
    {'role': 'hsm', 'hosts': 'deepseek_nodes'},
    {'role': 'pki', 'hosts': 'deepseek_nodes', 'needs': ['hsm']},
    {'role': 'gpu_host', 'hosts': 'deepseek_nodes'},
    {'role': 'nvidia_driver', 'hosts': 'deepseek_nodes', 'needs': ['gpu_host']},
    {'role': 'gateway', 'hosts': 'deepseek_gateways', 'needs': ['hsm']},
    {'role': 'dr', 'hosts': 'deepseek_gateways', 'needs': ['gateway']},
    {'role': 'monitoring', 'hosts': 'deepseek_monitoring', 'needs': ['gateway', 'nvidia_driver']},
]
ALL = [entry['role'] for entry in ROLES]


def names(*args, **kwargs):
    return [entry['role'] for entry in select(ROLES, *args, **kwargs)]


@pytest.mark.parametrize('run_tags', [None, [], ['all'], ['tagged'], ['untagged'], ['pki', 'all']])
def test_without_a_role_selection_every_role_is_checked(run_tags):
    assert names(run_tags, []) == ALL


def test_the_entries_come_back_whole_and_in_their_order():
    assert select(ROLES, ['monitoring', 'site_mirror'], []) == [
        ROLES[0], ROLES[1], ROLES[3], ROLES[4], ROLES[5], ROLES[7]]


def test_a_role_tag_checks_that_role():
    assert names(['site_mirror'], []) == ['site_mirror']
    assert names(['gpu_host'], []) == ['gpu_host']


def test_a_phase_tag_or_another_tag_of_the_role_checks_the_role_and_what_it_needs():
    assert names(['nvidia_driver_run'], []) == ['gpu_host', 'nvidia_driver']
    assert names(['gateway_router'], []) == ['hsm', 'gateway']
    assert names(['pki_preflight', 'site_mirror_configure'], []) == ['site_mirror', 'hsm', 'pki']


def test_needs_are_followed_through_providers_of_providers():
    assert names(['dr'], []) == ['hsm', 'gateway', 'dr']
    assert names(['monitoring'], []) == ['hsm', 'gpu_host', 'nvidia_driver', 'gateway', 'monitoring']


def test_a_tag_that_names_no_role_checks_every_role():
    assert names(['validate'], []) == ALL
    assert names(['gpu'], []) == ALL
    assert names(['pki', 'summary'], []) == ALL


def test_always_alone_runs_no_roles_tasks_and_checks_none():
    assert names(['always'], []) == []
    assert names(['always', 'hsm'], []) == ['hsm']


def test_the_longest_role_name_owns_a_tag():
    roles = ['node', 'node_exporter', 'dr']
    assert role_of_tag('node_exporter_run', roles) == 'node_exporter'
    assert role_of_tag('node_run', roles) == 'node'
    assert role_of_tag('node', roles) == 'node'
    assert role_of_tag('nodes', roles) is None
    assert role_of_tag('drain', roles) is None
    assert role_of_tag('dr_x', roles) == 'dr'


def test_a_role_skipped_whole_is_not_checked_unless_a_checked_role_needs_it():
    assert names(None, ['pki', 'monitoring']) == ['site_mirror', 'hsm', 'gpu_host', 'nvidia_driver', 'gateway', 'dr']
    assert names(None, ['hsm']) == ALL
    assert names(['pki', 'site_mirror'], ['site_mirror']) == ['hsm', 'pki']


def test_a_skipped_phase_or_other_tag_leaves_its_role_checked():
    assert names(None, ['pki_run', 'validate', 'summary']) == ALL
    assert names(['pki'], ['pki_install']) == ['hsm', 'pki']


def test_only_keeps_the_importing_playbooks_roles_and_their_needs():
    assert names(None, [], only=['dr']) == ['hsm', 'gateway', 'dr']
    assert names(['pki', 'dr'], [], only=['dr', 'site_mirror']) == ['hsm', 'gateway', 'dr']
    assert names(['validate'], [], only=['nvidia_driver']) == ['gpu_host', 'nvidia_driver']
    assert names(None, ['dr'], only=['dr']) == []


@pytest.mark.parametrize('roles, message', [
    ([], 'check_inputs_roles: must be a non-empty list'),
    ('pki', 'check_inputs_roles: must be a non-empty list'),
    ([{'role': 'pki'}], r"check_inputs_roles: \{'role': 'pki'\} is not \{role: <name>, hosts: <group>\}"),
    (['pki'], "check_inputs_roles: 'pki' is not"),
    ([{'role': 'a', 'hosts': 'g'}, {'role': 'a', 'hosts': 'h'}], 'check_inputs_roles: a is listed twice'),
    ([{'role': 'a', 'hosts': 'g', 'needs': 'b'}], 'needs of a must be a list of roles'),
    ([{'role': 'a', 'hosts': 'g', 'needs': ['b']}], "a needs 'b', which is not listed"),
    ([{'role': 'a', 'hosts': 'g', 'needs': ['b']}, {'role': 'b', 'hosts': 'g'}], 'a needs b, so b must come first'),
    ([{'role': 'a', 'hosts': 'g', 'needs': ['a']}], 'a needs a, so a must come first'),
])
def test_a_malformed_role_list_is_refused_naming_it(roles, message):
    with pytest.raises(CheckInputsError, match=message):
        select(roles, None, None)


@pytest.mark.parametrize('only, message', [
    ([], r'check_inputs_only: must be a non-empty list of roles, not \[\]'),
    ('dr', "check_inputs_only: must be a non-empty list of roles, not 'dr'"),
    (['dr', 'grafana', 'vault'], 'check_inputs_only: grafana, vault not in check_inputs_roles'),
])
def test_a_bad_only_is_refused_naming_the_variable(only, message):
    with pytest.raises(CheckInputsError, match=message):
        select(ROLES, None, None, only)


def test_the_filter_gives_the_selection_and_names_itself_in_errors():
    assert check_inputs_select(ROLES, ['dr'], [], only=None) == [ROLES[1], ROLES[5], ROLES[6]]
    with pytest.raises(AnsibleFilterError, match='^check_inputs_select: check_inputs_only: x not in'):
        check_inputs_select(ROLES, ['all'], [], only=['x'])
