# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tools/ansible_plugins/callback/shared_module_cache.py: the runs of one test share their module
payloads, only through a directory this user alone can write."""
from __future__ import annotations

import os
import sys

import pytest
from ansible.errors import AnsibleError
from playbook_runs import ROOT, needs_playbook, run_playbook

import shared_module_cache as smc

PLUGINS = ROOT / 'tools' / 'ansible_plugins' / 'callback'

PLAY = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.stat:
        path: /
    - ansible.builtin.command: 'true'
      changed_when: false
"""


def shared_dir(tmp_path, mode=0o700):
    d = tmp_path / 'shared'
    d.mkdir()
    d.chmod(mode)
    return d


def test_nothing_is_shared_without_the_variable(tmp_path):
    assert smc.share(None, str(tmp_path)) is None
    assert smc.share('', str(tmp_path)) is None
    assert list(tmp_path.iterdir()) == []


def test_the_run_cache_becomes_a_link_to_the_shared_directory(tmp_path):
    shared = shared_dir(tmp_path)
    local = tmp_path / 'ansible-local-1'
    local.mkdir()
    link = smc.share(str(shared), str(local))
    assert link == str(local / 'ansiballz_cache')
    assert os.readlink(link) == str(shared)


def test_a_cache_the_run_already_has_is_kept(tmp_path):
    shared = shared_dir(tmp_path)
    local = tmp_path / 'ansible-local-1'
    (local / 'ansiballz_cache').mkdir(parents=True)
    assert smc.share(str(shared), str(local)) is None
    assert not (local / 'ansiballz_cache').is_symlink()


def test_a_missing_directory_or_a_file_is_refused_naming_the_variable(tmp_path):
    with pytest.raises(AnsibleError, match=r'ONPREM_MODULE_CACHE \(.*/missing\): No such file'):
        smc.share(str(tmp_path / 'missing'), str(tmp_path))
    (tmp_path / 'file').write_text('')
    with pytest.raises(AnsibleError, match=r'ONPREM_MODULE_CACHE \(.*/file\) is not a directory'):
        smc.share(str(tmp_path / 'file'), str(tmp_path))


@pytest.mark.parametrize('mode', [0o770, 0o702, 0o777])
def test_a_directory_others_can_write_is_refused(tmp_path, mode):
    shared = shared_dir(tmp_path, mode)
    with pytest.raises(AnsibleError, match='must be owned by this user and writable by it alone'):
        smc.share(str(shared), str(tmp_path))
    assert not (tmp_path / 'ansiballz_cache').exists()


@pytest.mark.parametrize('mode', [0o700, 0o750, 0o755])
def test_a_directory_only_its_owner_can_write_is_used(tmp_path, mode):
    shared = shared_dir(tmp_path, mode)
    local = tmp_path / 'local'
    local.mkdir()
    assert smc.share(str(shared), str(local))


def run(tmp_path, shared=None):
    """The play on localhost with the plugin; without `shared`, ONPREM_MODULE_CACHE is empty."""
    (tmp_path / 'play.yml').write_text(PLAY)
    return run_playbook(['-i', 'localhost,', '-c', 'local', '-e', f'ansible_python_interpreter={sys.executable}', 'play.yml'],
                        tmp_path, timeout=120, ANSIBLE_CALLBACK_PLUGINS=str(PLUGINS),
                        ANSIBLE_LOCAL_TEMP=str(tmp_path / 'local-tmp'), **{smc.ENV: str(shared or '')})


def payloads(shared):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in shared.iterdir() if not p.name.endswith('.lock')}


@needs_playbook
def test_runs_share_their_payloads_and_the_second_builds_none(tmp_path):
    shared = shared_dir(tmp_path)
    first = run(tmp_path, shared)
    assert first.returncode == 0, first.stdout + first.stderr
    built = payloads(shared)
    assert sorted(n.split('-')[0] for n in built) == ['ansible.modules.command', 'ansible.modules.stat']
    second = run(tmp_path, shared)
    assert second.returncode == 0, second.stdout + second.stderr
    # A payload built again is written to a new file and renamed over the old one.
    assert payloads(shared) == built
    # Each run removed its own temporary directory, and the link with it, not the shared one.
    assert list((tmp_path / 'local-tmp').iterdir()) == []


@needs_playbook
def test_without_the_variable_the_plugin_shares_nothing(tmp_path):
    shared = shared_dir(tmp_path)
    result = run(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(shared.iterdir()) == []


@needs_playbook
def test_a_run_with_a_directory_others_can_write_shares_nothing_and_says_why(tmp_path):
    # ansible-core turns a callback's error into a warning: the run goes on, building its own payloads.
    shared = shared_dir(tmp_path, 0o777)
    result = run(tmp_path, shared)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'ONPREM_MODULE_CACHE' in result.stderr
    assert 'must be owned by this user and writable by it alone' in result.stderr
    assert list(shared.iterdir()) == []
