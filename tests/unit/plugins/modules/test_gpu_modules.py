# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpu_facts and gpu_readiness main(), driven through the nvidia-smi replay stand-in."""
from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.onprem.deepseek.plugins.module_utils import _gpu_facts
from ansible_collections.onprem.deepseek.plugins.modules import gpu_facts, gpu_readiness

REPO = Path(__file__).resolve().parents[4]
FIXTURES = REPO / 'tests' / 'unit' / 'fixtures' / 'nvidia_smi'
REPLAY = REPO / 'tests' / 'fixtures' / 'bin' / 'nvidia-smi-replay'


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A fake host: replayed nvidia-smi, a systemctl stub and a /proc version file."""
    state = {'systemctl': tmp_path / 'systemctl', 'fm_state': 'active'}

    def write_systemctl(fm_state):
        script = state['systemctl']
        script.write_text('#!/bin/sh\necho %s\n[ "%s" = active ]\n' % (fm_state, fm_state))
        script.chmod(script.stat().st_mode | stat.S_IXUSR)

    def configure(xml=None, proc='proc-driver-version-535.161.08.txt', fm_state='active', systemctl=True):
        monkeypatch.setenv('NVIDIA_SMI_REPLAY', str(FIXTURES / xml) if xml else '')
        monkeypatch.setattr(_gpu_facts, 'PROC_DRIVER_VERSION',
                            str(FIXTURES / proc) if proc else str(tmp_path / 'absent'))
        write_systemctl(fm_state)
        paths = {'systemctl': str(state['systemctl']) if systemctl else None}

        def get_bin_path(self, arg, required=False, opt_dirs=None):
            return paths.get(arg)
        monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', get_bin_path)

    return configure


def run(module, args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            module.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def test_gpu_facts_from_replayed_h100(host, capsys):
    host(xml='h100-sxm-8gpu.xml')
    rc, out = run(gpu_facts, {'nvidia_smi_path': str(REPLAY)}, capsys)
    assert rc == 0
    assert out['changed'] is False
    facts = out['ansible_facts']['gpu']
    assert facts == out['gpu']
    assert facts['gpu_count'] == 8
    assert facts['driver_version'] == '535.161.08'
    assert facts['kernel_module_version'] == '535.161.08'
    assert facts['fabric_manager_active'] is True
    assert facts['fabric_manager_state'] == 'active'
    assert facts['nvswitch_present'] is True
    assert facts['gpus'][7]['uuid'] == 'GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e808'


def test_gpu_facts_without_nvidia_smi(host, capsys, tmp_path):
    host(systemctl=False, proc=None)
    rc, out = run(gpu_facts, {'nvidia_smi_path': str(tmp_path / 'missing' / 'nvidia-smi')}, capsys)
    assert rc == 0
    facts = out['gpu']
    assert facts['gpus'] == []
    assert facts['reason'] == '%s not found' % (tmp_path / 'missing' / 'nvidia-smi')
    assert facts['fabric_manager_active'] is None
    assert facts['kernel_module_version'] is None


@pytest.mark.skipif(Path('/etc/nvidia-smi-replay.path').exists(), reason='host has a replay configured')
def test_gpu_facts_when_driver_not_loaded(host, capsys):
    host(xml=None)
    rc, out = run(gpu_facts, {'nvidia_smi_path': str(REPLAY)}, capsys)
    assert rc == 0
    assert out['gpu']['gpus'] == []
    assert out['gpu']['reason'] == (
        "%s -q -x failed (rc=9): NVIDIA-SMI has failed because it couldn't communicate with the "
        "NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running." % REPLAY)


def test_gpu_facts_bare_name_not_in_path(host, capsys):
    host(xml='h100-pcie.xml')
    rc, out = run(gpu_facts, {}, capsys)
    assert rc == 0
    assert out['gpu']['reason'] == 'nvidia-smi not found'


def test_gpu_readiness_ready(host, capsys):
    host(xml='h200-sxm-8gpu.xml', proc='proc-driver-version-590.44.01-open.txt')
    rc, out = run(gpu_readiness, {'nvidia_smi_path': str(REPLAY), 'expected_count': 8,
                                  'expected_model': 'H200', 'min_driver_version': '570.86'}, capsys)
    assert rc == 0
    assert out['ready'] is True
    assert out['failed_checks'] == []
    assert len(out["checks"]) == 4 + 8 * 7
    assert out['gpu']['kernel_module_type'] == 'open'


def test_gpu_readiness_fails_listing_every_problem(host, capsys):
    host(xml='h100-sxm-8gpu-fault-remap.xml', fm_state='inactive')
    rc, out = run(gpu_readiness, {'nvidia_smi_path': str(REPLAY), 'expected_count': 8}, capsys)
    assert rc == 1
    assert out['failed'] is True
    assert out['ready'] is False
    assert [(c['name'], c['gpu']) for c in out['failed_checks']] == [
        ('fabric_manager', None), ('memory_repair', 5), ('memory_repair', 6)]
    assert out['msg'].startswith('GPU node not ready (3 failed check(s)): host fabric_manager: '
                                 'nvidia-fabricmanager is inactive; gpu 5 memory_repair: row remap pending')


def test_gpu_readiness_report_only(host, capsys):
    host(xml='h100-sxm-8gpu-fault-pcie.xml')
    rc, out = run(gpu_readiness, {'nvidia_smi_path': str(REPLAY), 'fail_on_not_ready': False}, capsys)
    assert rc == 0
    assert out['ready'] is False
    assert [(c['name'], c['gpu']) for c in out['failed_checks']] == [('pcie_link', 2), ('pcie_link', 4)]


def test_gpu_readiness_cpu_node(host, capsys, tmp_path):
    host(systemctl=False, proc=None)
    missing = str(tmp_path / 'nvidia-smi')
    rc, out = run(gpu_readiness, {'nvidia_smi_path': missing, 'expected_count': 0}, capsys)
    assert rc == 0
    assert out['ready'] is True
    rc, out = run(gpu_readiness, {'nvidia_smi_path': missing}, capsys)
    assert rc == 1
    assert out['checks'][0]['detail'] == (
        'no NVIDIA GPUs found (%s not found); set expected_count: 0 for a CPU-only node' % missing)


def test_gpu_readiness_rejects_negative_count(host, capsys):
    host(xml='h100-pcie.xml')
    rc, out = run(gpu_readiness, {'nvidia_smi_path': str(REPLAY), 'expected_count': -1}, capsys)
    assert rc == 1
    assert out['msg'] == 'expected_count must be 0 or more'


def test_both_modules_document_nvidia_smi_path_through_the_fragment():
    import yaml
    from ansible_collections.onprem.deepseek.plugins.doc_fragments.nvidia_smi import ModuleDocFragment

    fragment = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)['options']
    assert fragment['nvidia_smi_path']['default'] == _gpu_facts.NVIDIA_SMI_ARGUMENT_SPEC['nvidia_smi_path']['default']
    assert fragment['nvidia_smi_path']['type'] == _gpu_facts.NVIDIA_SMI_ARGUMENT_SPEC['nvidia_smi_path']['type']
    for module in (gpu_facts, gpu_readiness):
        doc = yaml.safe_load(module.DOCUMENTATION)
        assert doc['extends_documentation_fragment'] == [
            'onprem.deepseek.attributes', 'onprem.deepseek.attributes.read_only', 'onprem.deepseek.nvidia_smi']
        assert 'nvidia_smi_path' not in (doc.get('options') or {})
