# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stand-in kernel module and nvidia-smi of the gpu_stack / gpu_reboot scenarios speak the
formats that _gpu_facts parses, and the nvidia-smi stand-in fails like the real one on a module mismatch."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils import _gpu_facts

REPO = Path(__file__).resolve().parents[4]
CAPTURE = REPO / 'tests' / 'unit' / 'fixtures' / 'nvidia_smi' / 'h100-sxm-8gpu.xml'


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD_REPO = load(REPO / 'tests' / 'fixtures' / 'nvidia_repo' / 'build_repo.py', 'stand_in_build_repo')
BUILD_SMI = load(REPO / 'molecule' / 'gpu_stack' / 'build_stand_in_repo.py', 'stand_in_build_smi')


@pytest.mark.parametrize('package, kind', [('nvidia-kernel-open-dkms', 'open'), ('nvidia-kernel-dkms', 'proprietary')])
def test_module_stand_in_writes_what_gpu_facts_parses(package, kind):
    script = BUILD_REPO.MODULE_LOAD.format(version='535.183.01', flavour=BUILD_REPO.MODULE_FLAVOURS[package])
    assert 'TEST STAND-IN' in script
    nvrm = re.search(r"'(NVRM version:[^']*)'", script).group(1)
    assert _gpu_facts.parse_proc_driver_version(nvrm + '\nGCC version:  x\n') == {'version': '535.183.01', 'type': kind}


def test_module_stand_in_never_runs_in_containers():
    assert 'ConditionVirtualization=!container' in BUILD_REPO.MODULE_UNIT


def run_smi(tmp_path, smi_version, loaded):
    """Run the per-version nvidia-smi stand-in with its fixed paths moved under tmp_path."""
    source = BUILD_SMI.SMI.format(version=smi_version)
    for fixed in ('/etc/nvidia-smi-replay.path', '/proc/driver/nvidia/version', '/var/log/onprem-stand-in-nvidia-smi.log'):
        source = source.replace(repr(fixed), repr(str(tmp_path / fixed.strip('/').replace('/', '_'))))
    (tmp_path / 'smi').write_text(source)
    (tmp_path / 'etc_nvidia-smi-replay.path').write_text(str(CAPTURE))
    if loaded:
        (tmp_path / 'proc_driver_nvidia_version').write_text(
            'NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  %s  Release Build  (x)\n' % loaded)
    return subprocess.run([sys.executable, str(tmp_path / 'smi'), '-q', '-x'], capture_output=True, text=True,
                          timeout=30, check=False)


@pytest.mark.parametrize('loaded', [None, '535.183.01'])
def test_smi_stand_in_reports_its_own_version(tmp_path, loaded):
    result = run_smi(tmp_path, '535.183.01', loaded)
    assert result.returncode == 0, result.stderr
    assert _gpu_facts.parse_nvidia_smi_xml(result.stdout)['driver_version'] == '535.183.01'


def test_smi_stand_in_fails_like_nvidia_smi_on_a_module_mismatch(tmp_path):
    result = run_smi(tmp_path, '535.183.01', '535.161.08')
    assert result.returncode == 18
    assert result.stdout.splitlines() == ['Failed to initialize NVML: Driver/library version mismatch',
                                          'NVML library version: 535.183']
