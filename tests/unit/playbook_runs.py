# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running ansible-playbook from the unit tests: the one beside this Python (the toolchain's venv),
with the project's ansible.cfg and plain output."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(sys.executable).with_name('ansible-playbook')

needs_playbook = pytest.mark.skipif(not PLAYBOOK.exists() and not shutil.which('ansible-playbook'),
                                    reason='needs ansible-playbook')


def run_playbook(args, cwd, timeout=300, **env):
    """ansible-playbook ARGS in cwd; env adds to the environment. Returns the CompletedProcess."""
    environment = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
                       ANSIBLE_FORCE_COLOR='0', **env)
    return subprocess.run([str(PLAYBOOK) if PLAYBOOK.exists() else 'ansible-playbook', *args], cwd=cwd,
                          env=environment, capture_output=True, text=True, timeout=timeout, check=False)
