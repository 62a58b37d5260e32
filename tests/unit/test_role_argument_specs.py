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

import json
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


# Inputs the argument spec accepts (it turns a string or a number into a one-item list when it checks
# it) but the roles would misuse: each must stop the read-only preflight that check_inputs.yml runs on
# every host, with a message naming the variable. One inventory host (on this machine) per group of
# bad values; the checks of one role's assert are looped, so each bad value gets its own message.
BAD_INPUTS = {
    'baseline_1': ({'baseline_ntp_servers': '10.77.0.1', 'baseline_audit_extra_watches': ['etc/ssh'],
                    'baseline_data_dir': 'srv/deepseek', 'baseline_service_user': 'Deep Seek',
                    'baseline_sysctl_extra': {'x y': 1}},
                   ['baseline_ntp_servers: "10.77.0.1" is not a list',
                    'baseline_audit_extra_watches: ["etc/ssh"] is not a list of absolute paths',
                    'baseline_data_dir: "srv/deepseek" is not an absolute path',
                    'baseline_service_user: "Deep Seek" is not a user name',
                    'baseline_sysctl_extra: {"x y": 1} is not a mapping of sysctl names']),
    'baseline_2': ({'baseline_ntp_servers': 5, 'baseline_audit_extra_watches': '/etc/ssh',
                    'baseline_key_dir': '/etc/deep seek', 'baseline_sysctl_extra': {'vm.dirty_ratio': '5\nkernel.panic=1'}},
                   ['baseline_ntp_servers: 5 is not a list',
                    'baseline_audit_extra_watches: "/etc/ssh" is not a list',
                    'baseline_key_dir: "/etc/deep seek" is not an absolute path',
                    'baseline_sysctl_extra: {"vm.dirty_ratio": "5\\nkernel.panic=1"} is not a mapping']),
    # A newline would add a chrony directive.
    'baseline_3': ({'baseline_ntp_servers': ['10.77.0.1\nallow all']}, ['baseline_ntp_servers: ["10.77.0.1\\nallow all"] is not']),
    'gpu_host_1': ({'gpu_host_free_disk_paths': '/var', 'gpu_host_pci_devices_path': 'sys/bus/pci',
                    'gpu_host_min_kernel': 'five'},
                   ['gpu_host_free_disk_paths: "/var" is not a non-empty list of absolute paths',
                    'gpu_host_pci_devices_path: "sys/bus/pci" is not an absolute path',
                    'gpu_host_min_kernel: "five" is not a kernel version']),
    'gpu_host_2': ({'gpu_host_free_disk_paths': ['/', 'var']}, ['gpu_host_free_disk_paths: ["/", "var"] is not']),
    # A host without GPUs checks the repository URLs too (issue 16: they passed there).
    'nvidia_driver_1': ({'nvidia_driver_repo_url': 'not-a-url'},
                        ['nvidia_driver_repo_url: "not-a-url" is not an http:// or https:// URL']),
    'nvidia_driver_2': ({'nvidia_driver_repo_url': 'http://10.77.0.1/nvidia', 'nvidia_driver_repo_key_url': 'ftp://mirror/key.pub'},
                        ['nvidia_driver_repo_key_url: "ftp://mirror/key.pub" is not an http:// or https:// URL']),
    'nvidia_driver_3': ({'nvidia_driver_readiness': {'min_memory': 1}},
                        ['nvidia_driver_readiness: {"min_memory": 1} is not a mapping of']),
    # 39 and 41 digits, and a letter that is not hexadecimal.
    'nvidia_driver_4': ({'nvidia_driver_repo_key_fingerprint': 'EB69 3B30 35CD 5710 E231 E123 A4B4 6996 3BF8 63C'},
                        ['nvidia_driver_repo_key_fingerprint: "EB69 3B30 35CD 5710 E231 E123 A4B4 6996 3BF8 63C" is not an '
                         'OpenPGP fingerprint (40 hexadecimal digits)']),
    'nvidia_driver_5': ({'nvidia_driver_repo_key_fingerprint': 'EB693B3035CD5710E231E123A4B469963BF863CC0'},
                        ['nvidia_driver_repo_key_fingerprint: "EB693B3035CD5710E231E123A4B469963BF863CC0" is not an OpenPGP']),
    'nvidia_driver_6': ({'nvidia_driver_repo_key_fingerprint': 'GB693B3035CD5710E231E123A4B469963BF863CC'},
                        ['nvidia_driver_repo_key_fingerprint: "GB693B3035CD5710E231E123A4B469963BF863CC" is not an OpenPGP']),
}
# The other side of each check: values that must pass.
GOOD_INPUTS = {
    'defaults': {},
    'good_values': {'baseline_ntp_servers': ['10.77.0.1', 'ntp1.example.org', 'fd00::1'],
                    'baseline_audit_extra_watches': ['/etc/ssh/sshd_config'],
                    'baseline_sysctl_extra': {'net.ipv4.tcp_rmem': '4096 87380 16777216', 'kernel/panic': 10},
                    'gpu_host_free_disk_paths': ['/'], 'gpu_host_min_kernel': '5.15.0',
                    'nvidia_driver_readiness': {'min_memory_mib': 1, 'require_ecc': True},
                    'nvidia_driver_repo_url': 'http://10.77.0.1:8080/artifacts/nvidia/cuda/debian12/x86_64',
                    'nvidia_driver_repo_key_url': 'https://mirror.example.org/key.pub',
                    # Grouped as gpg prints it, lower case.
                    'nvidia_driver_repo_key_fingerprint': 'eb69 3b30 35cd 5710 e231  e123 a4b4 6996 3bf8 63cc'},
    'mirror_set': {'site_mirror_artifact_url': 'http://10.77.0.1:8080/artifacts'},
}


@pytest.mark.skipif(not PLAYBOOK.exists() and not shutil.which('ansible-playbook'), reason='needs ansible-playbook')
def test_preflight_refuses_values_the_spec_lets_through(tmp_path):
    local = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}
    hosts = {name: dict(case[0], **local) for name, case in BAD_INPUTS.items()}
    hosts.update({name: dict(case, **local) for name, case in GOOD_INPUTS.items()})
    (tmp_path / 'hosts.json').write_text(json.dumps({'all': {'hosts': hosts}}))
    # The role a host's bad values belong to runs first on it: the first failure ends the host.
    (tmp_path / 'preflight.yml').write_text(
        '---\n- name: The read-only preflight phases, as check_inputs.yml runs them\n  hosts: all\n'
        '  gather_facts: true\n  gather_subset: [min, virtual]\n  tasks:\n'
        '    - name: Run a role preflight\n      ansible.builtin.include_role:\n'
        '        name: "onprem.deepseek.{{ __role }}"\n        tasks_from: preflight.yml\n'
        '      loop: "{{ [inventory_hostname[:-2]] if inventory_hostname[:-2] in __roles else __roles }}"\n'
        '      loop_control:\n        loop_var: __role\n'
        '      vars:\n        __roles: [baseline, gpu_host, nvidia_driver]\n')
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_STDOUT_CALLBACK='ansible.builtin.json',
               ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    result = subprocess.run(
        [str(PLAYBOOK) if PLAYBOOK.exists() else 'ansible-playbook', '-i', 'hosts.json', '--check', 'preflight.yml'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    report = json.loads(result.stdout)
    failures = {}
    for task in report['plays'][0]['tasks']:
        for host, res in task['hosts'].items():
            if res.get('failed'):
                failures[host] = failures.get(host, '') + ' | '.join(
                    [str(res.get('msg', ''))] + [str(r.get('msg', '')) for r in res.get('results', []) if r.get('failed')])
    missing = [(name, message, failures.get(name)) for name, (_values, messages) in BAD_INPUTS.items()
               for message in messages if message not in failures.get(name, '')]
    assert not missing, (missing, result.stderr[-2000:])
    assert not set(GOOD_INPUTS) & set(failures), failures
    assert all(report['stats'][name]['ok'] > 0 and report['stats'][name]['changed'] == 0 for name in GOOD_INPUTS)


@pytest.mark.skipif(not PLAYBOOK.exists() and not shutil.which('ansible-playbook'), reason='needs ansible-playbook')
def test_fio_check_is_not_run_in_check_mode(tmp_path):
    """storage_tiers' fio entry point writes a test file on each mounted tier and loads the disks:
    in check mode it runs nothing and says so. /dev/shm stands in for a mounted tier."""
    (tmp_path / 'fio.yml').write_text(
        '---\n- name: The fio check in check mode\n  hosts: localhost\n  gather_facts: false\n  tasks:\n'
        '    - name: Run the fio entry point\n      ansible.builtin.include_role:\n'
        '        name: onprem.deepseek.storage_tiers\n        tasks_from: fio.yml\n'
        '      vars:\n        storage_tiers_root: /dev\n        storage_tiers_tiers: [{name: shm}]\n')
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_STDOUT_CALLBACK='ansible.builtin.json',
               ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    result = subprocess.run(
        [str(PLAYBOOK) if PLAYBOOK.exists() else 'ansible-playbook', '-i', 'localhost,', '-c', 'local',
         '-e', 'ansible_python_interpreter=%s' % sys.executable, '--check', 'fio.yml'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    report = json.loads(result.stdout)
    ran = {task['task']['name'].split(' : ')[-1]: res for task in report['plays'][0]['tasks']
           for host, res in task['hosts'].items() if not res.get('skipped')}
    assert result.returncode == 0, ran
    assert 'check mode: fio is not run on localhost' in str(ran.get('Say that check mode does not measure the tiers'))
    assert not {'Find the mounted tiers', 'Run fio (random 4 KiB reads, then sequential 1 MiB reads)'} & set(ran), ran


def test_entry_points_other_roles_call_have_tasks_and_are_validated(tmp_path):
    """Every entry point in a role's argument spec besides main is a tasks file that others may call
    (include_role tasks_from), and Ansible checks its spec: a wrong type fails before its first task."""
    import yaml
    for role in ROLES:
        specs = yaml.safe_load((ROOT / 'roles' / role / 'meta' / 'argument_specs.yml').read_text())['argument_specs']
        for entry in set(specs) - {'main'}:
            assert (ROOT / 'roles' / role / 'tasks' / (entry + '.yml')).is_file(), (role, entry)
    if not PLAYBOOK.exists() and not shutil.which('ansible-playbook'):
        pytest.skip('needs ansible-playbook')
    (tmp_path / 'entry.yml').write_text(
        '---\n- name: Call pki retire_keys with a wrong type\n  hosts: localhost\n  gather_facts: false\n  tasks:\n'
        '    - name: Delete replaced keys\n      ansible.builtin.include_role:\n        name: onprem.deepseek.pki\n'
        '        tasks_from: retire_keys\n      vars:\n        pki_retired_keys_kept: lots\n')
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    result = subprocess.run(
        [str(PLAYBOOK) if PLAYBOOK.exists() else 'ansible-playbook', '-i', 'localhost,', '-c', 'local',
         '-e', 'ansible_python_interpreter=%s' % sys.executable, 'entry.yml'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    assert "Validating arguments against arg spec 'retire_keys'" in out, out[-3000:]
    assert 'pki_retired_keys_kept' in out, out[-3000:]
    assert 'Read the key records' not in out, out[-3000:]
