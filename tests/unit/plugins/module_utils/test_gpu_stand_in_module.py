# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stand-in kernel module and nvidia-smi of the gpu_stack / gpu_reboot scenarios speak the
formats that _gpu_facts parses, and the nvidia-smi stand-in fails like the real one on a module mismatch.
The repository builder keeps each package by its control file and the files it packs, so builds that
differ elsewhere share it, and any change to what the package holds is a new entry."""
from __future__ import annotations

import importlib.util
import os
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


# --- the DCGM stand-ins -----------------------------------------------------------------------

DCGM_LOCK = {'driver': '535.161.08', 'cuda': '12.2.2', 'tensorrt': '8.6.1.6-1+cuda12.0', 'dcgm': '4.5.3',
             'dcgm_exporter': '4.8.2'}
COUNTERS = REPO / 'roles' / 'dcgm_exporter' / 'files' / 'onprem-deepseek-counters.csv'


def test_dcgm_stand_ins_carry_the_names_and_versions_the_lock_derives():
    from ansible_collections.onprem.deepseek.plugins.module_utils._gpu_stack import evaluate_lock

    lock = evaluate_lock(DCGM_LOCK)
    built = {p['name']: p for p in BUILD_REPO.dcgm_packages('4.5.3', '4.8.2', '12.2.2')}
    assert sorted(built) == sorted(lock['dcgm_packages'] + [lock['dcgm_exporter_package']])
    assert {built[name]['version'] for name in lock['dcgm_packages']} == {lock['deb_versions']['dcgm']}
    exporter = built[lock['dcgm_exporter_package']]
    assert exporter['version'] == lock['deb_versions']['dcgm_exporter']
    assert exporter['depends'] == 'datacenter-gpu-manager-4-core (= 1:4.5.3-1)'
    assert ('dcgm-exporter', '/usr/bin/') in exporter['files']
    assert 'ExecStart=/usr/bin/dcgm-exporter -f /etc/dcgm-exporter/default-counters.csv' in BUILD_REPO.DCGM_EXPORTER_UNIT


def counter_fields(path):
    return [line.split(',')[0].strip() for line in path.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith('#')]


def test_dcgm_exporter_stand_in_serves_each_field_of_its_file_for_each_replayed_gpu(tmp_path):
    import socket
    import time
    import urllib.request

    smi = tmp_path / 'nvidia-smi'
    smi.write_text('#!/bin/sh\ncat %s\n' % CAPTURE)
    smi.chmod(0o755)
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = {'PATH': '%s:/usr/bin:/bin' % tmp_path}
    proc = subprocess.Popen([sys.executable, str(BUILD_REPO.DCGM_EXPORTER), '-f', str(COUNTERS), '-a',
                             '127.0.0.1:%d' % port, '-c', '15000'], env=env, stdout=subprocess.PIPE, text=True)
    try:
        deadline, text = time.monotonic() + 20, None
        while text is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % port, timeout=2) as answer:
                    text = answer.read().decode()
            except OSError:
                time.sleep(0.1)
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
    assert text is not None, out
    typed = [line.split()[2] for line in text.splitlines() if line.startswith('# TYPE ')]
    assert typed == counter_fields(COUNTERS) and len(typed) == 36
    xid = [line for line in text.splitlines() if line.startswith('DCGM_FI_DEV_XID_ERRORS{')]
    assert len(xid) == 8
    assert re.match(r'DCGM_FI_DEV_XID_ERRORS\{gpu="0",UUID="GPU-[0-9a-f-]+",pci_bus_id="[0-9A-F:.]+",device="nvidia0",'
                    r'modelName="NVIDIA H100[^"]*",Hostname="[^"]+"\} 0$', xid[0]), xid[0]
    assert '36 fields for 8 GPUs on 127.0.0.1:%d' % port in out


# --- the builder's package cache ----------------------------------------------------------------

SMI_PKG = dict(name='nvidia-smi', version='535.161.08-1', files=[('nvidia-smi', '/usr/bin/')])


def cache_key(path, smi='#!/bin/sh\necho 535.161.08\n', mode=0o755, others=None, pkg=None):
    path.mkdir()
    (path / 'nvidia-smi').write_text(smi)
    os.chmod(path / 'nvidia-smi', mode)
    for name, text in (others or {}).items():
        (path / name).write_text(text)
    return BUILD_REPO._cache_key(pkg or SMI_PKG, path)


def test_files_the_package_does_not_pack_leave_its_key_alone(tmp_path):
    # A DCGM build, or another driver's module loader, beside it: the same nvidia-smi package.
    assert cache_key(tmp_path / 'a') == cache_key(tmp_path / 'b', others={'dcgm-exporter': 'x', 'version.json': '{}'})


@pytest.mark.parametrize('change', [{'smi': '#!/bin/sh\necho 535.183.01\n'}, {'mode': 0o644},
                                    {'pkg': dict(SMI_PKG, version='535.183.01-1')}])
def test_the_content_or_mode_of_a_packed_file_or_the_control_file_changes_its_key(tmp_path, change):
    assert cache_key(tmp_path / 'a') != cache_key(tmp_path / 'b', **change)


def test_a_package_without_files_is_kept_by_its_control_file(tmp_path):
    pkg = dict(name='libnvinfer8', version='8.6.1.6-1+cuda12.0')
    assert BUILD_REPO._cache_key(pkg, tmp_path) == BUILD_REPO._cache_key(pkg, tmp_path / 'elsewhere')


def test_a_cache_entry_is_stored_once_and_copied_back(tmp_path, monkeypatch):
    monkeypatch.setattr(BUILD_REPO, 'DEB_CACHE', str(tmp_path / 'cache'))
    built, other = tmp_path / 'built', tmp_path / 'other'
    built.mkdir()
    other.mkdir()
    assert not BUILD_REPO._from_cache('k1', other)
    (built / 'nvidia-smi_535.161.08-1_amd64.deb').write_bytes(b'deb')
    BUILD_REPO._to_cache('nvidia-smi', 'k1', built)
    (built / 'nvidia-smi_535.161.08-1_amd64.deb').write_bytes(b'another build')
    BUILD_REPO._to_cache('nvidia-smi', 'k1', built)  # an entry is never replaced
    assert BUILD_REPO._from_cache('k1', other)
    assert (other / 'nvidia-smi_535.161.08-1_amd64.deb').read_bytes() == b'deb'
