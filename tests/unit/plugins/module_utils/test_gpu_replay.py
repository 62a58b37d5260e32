# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nvidia-smi replay stand-in used on sandbox hosts without GPUs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
REPLAY = REPO / 'tests' / 'fixtures' / 'bin' / 'nvidia-smi-replay'
CAPTURE = REPO / 'tests' / 'unit' / 'fixtures' / 'nvidia_smi' / 'l40s.xml'


def replay(*args, capture=''):
    env = dict(os.environ, NVIDIA_SMI_REPLAY=str(capture))
    return subprocess.run([sys.executable, str(REPLAY)] + list(args), env=env, capture_output=True,
                          text=True, timeout=30, check=False)


def test_is_executable_and_marked_as_stand_in():
    assert os.access(REPLAY, os.X_OK)
    assert 'TEST STAND-IN' in REPLAY.read_text()


@pytest.mark.parametrize('args', [('-q', '-x'), ('-x', '-q'), ('--query', '--xml-format')])
def test_prints_capture(args):
    proc = replay(*args, capture=CAPTURE)
    assert proc.returncode == 0
    assert proc.stdout == CAPTURE.read_text()


@pytest.mark.skipif(os.path.exists('/etc/nvidia-smi-replay.path'), reason='host has a replay configured')
def test_without_capture_behaves_like_missing_driver():
    proc = replay('-q', '-x')
    assert proc.returncode == 9
    assert proc.stdout.startswith("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")


def test_other_arguments_are_refused():
    proc = replay('-L', capture=CAPTURE)
    assert proc.returncode == 2
    assert 'only "-q -x" is replayed' in proc.stderr


def test_unreadable_capture():
    proc = replay('-q', '-x', capture=CAPTURE.with_name('does-not-exist.xml'))
    assert proc.returncode == 2
    assert 'cannot read' in proc.stderr
