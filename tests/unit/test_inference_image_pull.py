# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inference role's image tasks (read from roles/inference/tasks/install.yml) run by
ansible-playbook on this machine against a STAND-IN podman: a script first on PATH that records
its arguments and answers `image exists` with the exit status the test chooses. Check mode must
predict a pull of a missing image (also when podman is not installed yet) and never pull."""
from __future__ import annotations

import json
import os
import sys

import pytest
import yaml

from playbook_runs import ROOT, needs_playbook, run_playbook

IMAGE = 'registry.internal/vllm/vllm-openai@sha256:' + '1' * 64
TASKS = ('Check whether the pinned image is present', 'Pull the image pinned by digest',
         'Say that the image would be pulled (check mode)')
STANDIN = '''#!/bin/sh
# STAND-IN podman (test only): records its arguments, answers `image exists` with $STANDIN_EXISTS_RC.
echo "$*" >> "$STANDIN_LOG"
case "$1 $2" in
  "image exists") exit "$STANDIN_EXISTS_RC" ;;
esac
exit 0
'''

pytestmark = needs_playbook


def _tasks():
    tasks = yaml.safe_load((ROOT / 'roles/inference/tasks/install.yml').read_text())
    found = [t for t in tasks if t.get('name') in TASKS]
    assert [t['name'] for t in found] == list(TASKS)
    return found


def _run(tmp_path, check, exists_rc=None):
    """The image tasks, in check mode or not; exists_rc None: podman is not installed."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    log = tmp_path / 'podman.log'
    if exists_rc is not None:
        (bin_dir / 'podman').write_text(STANDIN)
        (bin_dir / 'podman').chmod(0o755)
    play = [{'name': 'The image tasks', 'hosts': 'localhost', 'gather_facts': False,
             'vars': {'__inference_container': True, 'inference_container_image': IMAGE},
             'tasks': _tasks()}]
    (tmp_path / 'image.yml').write_text(yaml.safe_dump(play, sort_keys=False))
    args = ['-i', 'localhost,', '-c', 'local', '-e', 'ansible_python_interpreter=%s' % sys.executable, 'image.yml']
    proc = run_playbook(args + (['--check'] if check else []), cwd=tmp_path,
                        ANSIBLE_STDOUT_CALLBACK='ansible.builtin.json', STANDIN_LOG=str(log),
                        STANDIN_EXISTS_RC=str(exists_rc), PATH='%s:%s' % (bin_dir, os.environ['PATH']))
    result = json.loads(proc.stdout)
    outcome = {task['task']['name']: task['hosts']['localhost'] for play in result['plays'] for task in play['tasks']}
    calls = log.read_text().splitlines() if log.exists() else []
    return proc.returncode, outcome, calls


def changed(outcome):
    return [name for name, res in outcome.items() if res.get('changed') and not res.get('skipped')]


def test_check_mode_predicts_the_pull_of_a_missing_image_and_pulls_nothing(tmp_path):
    rc, outcome, calls = _run(tmp_path, check=True, exists_rc=1)
    assert rc == 0
    assert calls == ['image exists ' + IMAGE]
    assert changed(outcome) == [TASKS[2]]
    assert outcome[TASKS[2]]['msg'] == 'would pull ' + IMAGE


def test_check_mode_of_a_first_deployment_without_podman_predicts_the_pull(tmp_path):
    rc, outcome, calls = _run(tmp_path, check=True, exists_rc=None)
    assert rc == 0
    assert calls == []
    assert changed(outcome) == [TASKS[2]]


def test_check_mode_with_the_image_present_predicts_nothing(tmp_path):
    rc, outcome, calls = _run(tmp_path, check=True, exists_rc=0)
    assert rc == 0
    assert calls == ['image exists ' + IMAGE]
    assert changed(outcome) == []


def test_a_run_pulls_a_missing_image(tmp_path):
    rc, outcome, calls = _run(tmp_path, check=False, exists_rc=1)
    assert rc == 0
    assert calls == ['image exists ' + IMAGE, 'pull ' + IMAGE]
    assert changed(outcome) == [TASKS[1]]


def test_a_run_with_the_image_present_pulls_nothing(tmp_path):
    rc, outcome, calls = _run(tmp_path, check=False, exists_rc=0)
    assert rc == 0
    assert calls == ['image exists ' + IMAGE]
    assert changed(outcome) == []


@pytest.mark.parametrize('check', [False, True])
def test_a_podman_error_fails_a_run_and_is_not_read_as_missing(tmp_path, check):
    rc, outcome, calls = _run(tmp_path, check=check, exists_rc=125)
    if check:
        # A check of a first deployment cannot tell a broken podman from none: it predicts the pull.
        assert rc == 0 and changed(outcome) == [TASKS[2]]
    else:
        assert rc != 0
        assert outcome[TASKS[0]]['failed']
        assert TASKS[1] not in outcome
    assert calls == ['image exists ' + IMAGE]
