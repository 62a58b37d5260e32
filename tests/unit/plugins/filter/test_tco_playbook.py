# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/capacity_report.yml on localhost: a wrong value stops the run before anything is
written, naming the variable (a few seconds: the run stops at its second task).

A full run writing both reports and a second run changing nothing take longer than a unit test
should on a busy machine; docs/capacity-report.md says what they write. The inventory is
localhost alone, so no GPU server is contacted.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
PLAYBOOK = Path(sys.executable).with_name('ansible-playbook')


def run(out_dir, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    return subprocess.run(
        [str(PLAYBOOK) if PLAYBOOK.exists() else 'ansible-playbook', '-i', 'localhost,', '-c', 'local',
         '-e', 'ansible_python_interpreter=%s' % sys.executable, '-e', 'capacity_report_profile=h100_8x_sxm',
         '-e', 'capacity_report_dir=%s' % out_dir, *extra, str(ROOT / 'playbooks' / 'capacity_report.yml')],
        cwd=out_dir.parent, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_a_wrong_value_writes_nothing(tmp_path):
    out = tmp_path / 'report'
    proc = run(out, '-e', 'capacity_report_years=11')
    assert proc.returncode != 0
    assert 'capacity_report_years: must be a whole number from 1 to 10, not 11' in proc.stdout + proc.stderr
    assert not out.exists()
