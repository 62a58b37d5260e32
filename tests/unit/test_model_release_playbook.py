# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/model_release.yml up to its first change, on this machine: two "nodes" that are
local connections, each with its own model store in a temporary directory. What it refuses
before any change, what it does when there is nothing to do, and a candidate that fails its
verification while staging (no node switched). The canary and promotion need engines: they run
in molecule/inference."""
from __future__ import annotations

import os

import pytest

from playbook_runs import ROOT, needs_playbook, run_playbook
from plugins.modules.test_model_artifact import publish

PLAYBOOK = str(ROOT / 'playbooks' / 'model_release.yml')

INVENTORY = '''
all:
  vars:
    ansible_connection: local
    ansible_become: false
    model_store_group: inference_nodes
    model_store_tiers: [hot]
    model_store_model: DeepSeek-V3
    # The deployed version, as a real inventory names it.
    model_store_version: v1
    model_store_source: "file://{base}/src"
    model_store_space_margin: "0"
    model_store_owner: "{uid}"
    model_store_group_owner: "{gid}"
  children:
    inference_nodes:
      hosts:
        node1: {{model_store_root: "{base}/node1"}}
        node2: {{model_store_root: "{base}/node2"}}
'''


def store(tmp_path, node):
    return tmp_path / node / 'hot' / 'models' / 'DeepSeek-V3'


def activate(tmp_path, node, version):
    """Make `version` current on the node's store, as the model_store role leaves it."""
    model = store(tmp_path, node)
    (model / 'versions').mkdir(parents=True, exist_ok=True)
    os.symlink(tmp_path / 'src' / 'DeepSeek-V3' / version, model / 'versions' / version)
    if os.path.lexists(model / 'current'):
        os.unlink(model / 'current')
    os.symlink(os.path.join('versions', version), model / 'current')


@pytest.fixture
def site(tmp_path):
    for version in ('v0', 'v1', 'v2'):
        publish(tmp_path / 'src', version)
    (tmp_path / 'hosts.yml').write_text(INVENTORY.format(base=tmp_path, uid=os.getuid(), gid=os.getgid()))
    return tmp_path


def release(site, *extra):
    args = ['-i', str(site / 'hosts.yml'), PLAYBOOK, '-e', 'ansible_python_interpreter=%s' % os.sys.executable,
            '-e', 'model_release_report_dir=%s' % (site / 'reports')]
    for item in extra:
        args += ['-e', item]
    return run_playbook(args, cwd=site)


def listing(site):
    return {node: sorted(os.listdir(store(site, node))) + sorted(os.listdir(store(site, node) / 'versions'))
            for node in ('node1', 'node2')}


@needs_playbook
def test_refuses_a_missing_version_and_a_bad_threshold_before_any_host(site):
    result = release(site)
    assert result.returncode == 2
    assert 'model_release_version must name the version to release' in result.stdout
    assert 'node1' not in result.stdout
    result = release(site, 'model_release_version=v2', 'model_release_canary_percent=60')
    assert result.returncode == 2
    assert 'model_release_canary_percent: must be from 1 to 50 (is 60)' in result.stdout
    assert 'node1' not in result.stdout


@needs_playbook
def test_refuses_nodes_on_different_versions_and_an_unknown_canary_naming_them(site):
    activate(site, 'node1', 'v1')
    activate(site, 'node2', 'v0')
    before = listing(site)
    result = release(site, 'model_release_version=v2')
    assert result.returncode == 2
    assert 'the nodes serve different versions (v0 on node2; v1 on node1)' in result.stdout
    activate(site, 'node2', 'v1')
    result = release(site, 'model_release_version=v2', '{"model_release_canary_hosts": ["node9"]}')
    assert result.returncode == 2
    assert "model_release_canary_hosts: node9 is not among the release's nodes (node1, node2)" in result.stdout
    assert listing(site)['node1'] == before['node1']
    assert 'Stage the candidate' not in result.stdout


@needs_playbook
def test_nothing_to_do_when_every_node_serves_the_candidate(site):
    activate(site, 'node1', 'v2')
    activate(site, 'node2', 'v2')
    result = release(site, 'model_release_version=v2')
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'every node serves it already: nothing to do' in result.stdout
    assert 'changed=0' in result.stdout and 'changed=1' not in result.stdout
    assert not (site / 'reports').exists()


@needs_playbook
def test_a_candidate_that_fails_verification_switches_no_node(site):
    activate(site, 'node1', 'v1')
    activate(site, 'node2', 'v1')
    (site / 'src' / 'DeepSeek-V3' / 'v2' / 'config.json').write_bytes(b'tampered')
    result = release(site, 'model_release_version=v2')
    assert result.returncode != 0
    assert 'config.json' in result.stdout
    for node in ('node1', 'node2'):
        assert os.readlink(store(site, node) / 'current') == 'versions/v1'
        assert sorted(os.listdir(store(site, node) / 'versions')) == ['v1']
    assert 'Switch the model version behind the performance gate' not in result.stdout
