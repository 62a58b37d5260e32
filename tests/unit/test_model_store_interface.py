# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""model_store's public interface, as other roles use it: the model_store_current fact (from a
staging run, and from preflight alone) and the rollback.yml entry point. Runs the role on this
machine against a store in a temporary directory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from plugins.modules.test_model_artifact import publish

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(sys.executable).with_name('ansible-playbook')

PLAY = '''
- name: Stage v1, then v2
  hosts: localhost
  gather_facts: true
  vars: &store
    model_store_group: all
    model_store_root: "{{ base }}/store"
    model_store_tiers: [hot]
    model_store_model: DeepSeek-V3
    model_store_source: "file://{{ base }}/src"
    model_store_space_margin: "0"
    model_store_owner: "{{ ansible_facts.user_id }}"
    model_store_group_owner: "{{ ansible_facts.user_gid }}"
  tasks:
    - {ansible.builtin.include_role: {name: onprem.deepseek.model_store}, vars: {model_store_version: v1}}
    - {ansible.builtin.include_role: {name: onprem.deepseek.model_store}, vars: {model_store_version: v2}}
    - {ansible.builtin.set_fact: {after_run: "{{ model_store_current }}"}}

- name: Preflight alone, as in check_inputs.yml or a run limited to another role's tags
  hosts: localhost
  gather_facts: false
  vars:
    <<: *store
    model_store_version: v2
  tasks:
    - {ansible.builtin.set_fact: {model_store_current: null}}
    - {ansible.builtin.include_role: {name: onprem.deepseek.model_store, tasks_from: preflight.yml}}
    - {ansible.builtin.set_fact: {after_preflight: "{{ model_store_current }}"}}
    - ansible.builtin.include_role: {name: onprem.deepseek.model_store, tasks_from: rollback.yml}
      vars: {model_store_model: DeepSeek-V3, model_store_root: "{{ base }}/store"}
    - {ansible.builtin.set_fact: {after_rollback: "{{ model_store_current }}"}}
    - ansible.builtin.copy:
        content: "{{ {'run': after_run, 'preflight': after_preflight, 'rollback': after_rollback} | to_json }}"
        dest: "{{ base }}/out.json"
        mode: "0600"
'''


REFUSE = '''
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role: {name: onprem.deepseek.model_store, tasks_from: rollback.yml}
      vars: {model_store_model: "", model_store_root: "{{ base }}/store"}
'''


def play(tmp_path, text, *extra):
    (tmp_path / 'play.yml').write_text(text)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    return subprocess.run(
        [str(PLAYBOOK), '-i', 'localhost,', '-c', 'local', '-e', 'ansible_python_interpreter=%s' % sys.executable,
         '-e', 'base=%s' % tmp_path] + list(extra) + ['play.yml'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_rollback_entry_point_refuses_without_a_model(tmp_path):
    result = play(tmp_path, REFUSE)
    assert result.returncode == 2
    assert 'model_store_model: name the model to roll back' in result.stdout
    assert not (tmp_path / 'store').exists()


def test_model_store_current_from_run_preflight_and_rollback(tmp_path):
    src = tmp_path / 'src'
    publish(src, 'v1')
    publish(src, 'v2')
    result = play(tmp_path, PLAY)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    out = json.loads((tmp_path / 'out.json').read_text())
    versions = tmp_path / 'store' / 'hot' / 'models' / 'DeepSeek-V3' / 'versions'
    store = str(tmp_path / 'store' / 'hot' / 'models')
    assert out['run'] == {'name': 'DeepSeek-V3', 'version': 'v2', 'path': str(versions / 'v2'), 'store': store,
                          'previous': 'v1', 'changed': True}
    assert out['preflight'] == {'name': 'DeepSeek-V3', 'version': 'v2', 'path': str(versions / 'v2'), 'store': store,
                                'previous': None, 'changed': False}
    assert out['rollback']['version'] == 'v1' and out['rollback']['path'] == str(versions / 'v1')
    assert out['rollback']['changed'] is True
    assert os.readlink(tmp_path / 'store' / 'hot' / 'models' / 'DeepSeek-V3' / 'current').endswith('v1')


# One play on a store in the test's directory; the tasks follow.
STORE_PLAY = '''
- hosts: localhost
  gather_facts: true
  vars:
    model_store_group: all
    model_store_root: "{{ base }}/store"
    model_store_tiers: [hot]
    model_store_model: DeepSeek-V3
    model_store_source: "file://{{ base }}/src"
    model_store_space_margin: "0"
    model_store_owner: "{{ ansible_facts.user_id }}"
    model_store_group_owner: "{{ ansible_facts.user_gid }}"
  tasks:
'''

STAGE = STORE_PLAY + '''\
    - {ansible.builtin.include_role: {name: onprem.deepseek.model_store}, vars: {model_store_version: v1}}
    - {ansible.builtin.include_role: {name: onprem.deepseek.model_store, tasks_from: stage.yml}, vars: {model_store_version: v2}}
    - {ansible.builtin.set_fact: {staged: "{{ model_store_staged }}"}}
    - {ansible.builtin.include_role: {name: onprem.deepseek.model_store, tasks_from: preflight.yml}, vars: {model_store_version: v2}}
    - ansible.builtin.copy:
        content: "{{ {'staged': staged, 'current': model_store_current} | to_json }}"
        dest: "{{ base }}/out.json"
        mode: "0600"
'''


def test_stage_entry_point_fetches_beside_the_live_version_without_switching(tmp_path):
    src = tmp_path / 'src'
    publish(src, 'v1')
    publish(src, 'v2')
    result = play(tmp_path, STAGE)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    out = json.loads((tmp_path / 'out.json').read_text())
    model = tmp_path / 'store' / 'hot' / 'models' / 'DeepSeek-V3'
    assert out['staged']['changed'] is True and out['staged']['version'] == 'v2' and out['staged']['fetched']
    assert out['current']['version'] == 'v1'
    assert os.readlink(model / 'current').endswith('v1')
    assert sorted(os.listdir(model / 'versions')) == ['v1', 'v2']


RELEASED = STORE_PLAY + '''\
    - {ansible.builtin.include_role: {name: onprem.deepseek.model_store}, vars: {model_store_version: v1}}
    # What the inference role's release.yml does.
    - {ansible.builtin.include_role: {name: onprem.deepseek.model_store}, vars: {model_store_version: v2, model_store_release: true}}
    - {ansible.builtin.include_role: {name: onprem.deepseek.model_store}, vars: {model_store_version: "{{ inventory_version }}"}}
'''


def test_a_run_naming_the_version_a_release_replaced_is_refused_in_the_preflight_unless_asked(tmp_path):
    src = tmp_path / 'src'
    publish(src, 'v1')
    publish(src, 'v2')
    model = tmp_path / 'store' / 'hot' / 'models' / 'DeepSeek-V3'

    def run(*extra):
        return play(tmp_path, RELEASED, '-e', 'inventory_version=v1', *extra)

    result = run()
    assert result.returncode == 2
    words = ' '.join((result.stdout + result.stderr).split())
    assert ('model_store_version: localhost serves DeepSeek-V3 v2, which playbooks/model_release.yml made current, '
            'and this run names v1. Set model_store_version: v2 to keep it, or model_store_replace_release: true '
            'to switch back to v1. Nothing was changed.') in words
    assert 'Check the run does not switch back from a released version unasked' in result.stdout
    assert os.readlink(model / 'current') == 'versions/v2'
    assert json.loads((model / '.release.json').read_text()) == {'inventory': 'v1', 'release': 'v2'}

    result = run('-e', 'model_store_replace_release=true')
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert os.readlink(model / 'current') == 'versions/v1'
    assert json.loads((model / '.release.json').read_text()) == {'inventory': 'v1', 'release': None}
