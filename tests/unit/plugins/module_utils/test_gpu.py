# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parser and readiness policy on recorded nvidia-smi captures."""
from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils._gpu_facts import (
    GpuError,
    build_gpu_facts,
    collect_gpu_facts,
    compare_versions,
    parse_nvidia_smi_xml,
    parse_proc_driver_version,
    parse_systemctl_is_active,
    to_number,
    version_tuple,
)
from ansible_collections.onprem.deepseek.plugins.module_utils._gpu_readiness import (
    evaluate_readiness,
    failure_message,
)

FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures' / 'nvidia_smi'
PROC_535 = 'proc-driver-version-535.161.08.txt'
PROC_550_OPEN = 'proc-driver-version-550.54.15-open.txt'
PROC_590_OPEN = 'proc-driver-version-590.44.01-open.txt'


def read(name):
    return (FIXTURES / name).read_text()


def facts_for(xml, proc=PROC_535, fabric_manager=(True, 'active')):
    return build_gpu_facts(xml_text=read(xml), proc_version_text=read(proc), fabric_manager=fabric_manager)


def failed(result):
    return [(check['name'], check['gpu']) for check in result['failed']]


def check(result, name, gpu):
    matches = [c for c in result['checks'] if c['name'] == name and c['gpu'] == gpu]
    assert len(matches) == 1, (name, gpu, result['checks'])
    return matches[0]


# ---------------------------------------------------------------- value helpers

@pytest.mark.parametrize('text, value', [
    ('81559 MiB', 81559),
    ('45 C', 45),
    ('350.00 W', 350.0),
    ('16x', 16),
    ('0 %', 0),
    ('-5 C', -5),
    ('N/A', None),
    ('[N/A]', None),
    ('Not Supported', None),
    ('Requested functionality has been deprecated', None),
    (None, None),
])
def test_to_number(text, value):
    assert to_number(text) == value


@pytest.mark.parametrize('left, right, expected', [
    ('550.54.15', '535.161.08', 1),
    ('535.161.08', '535.161.8', 0),
    ('535.54.03', '535.161.08', -1),
    ('550', '550.0.0', 0),
    ('590.44.01', '590.44.1', 0),
    ('9.0', '10.0', -1),
])
def test_compare_versions_is_numeric_per_part(left, right, expected):
    assert compare_versions(left, right) == expected


def test_proc_version_proprietary():
    assert parse_proc_driver_version(read(PROC_535)) == {'version': '535.161.08', 'type': 'proprietary'}


def test_proc_version_open():
    assert parse_proc_driver_version(read(PROC_550_OPEN)) == {'version': '550.54.15', 'type': 'open'}
    assert parse_proc_driver_version(read(PROC_590_OPEN)) == {'version': '590.44.01', 'type': 'open'}


def test_proc_version_aarch64_and_missing():
    line = 'NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  580.65.06  Release Build\n'
    assert parse_proc_driver_version(line) == {'version': '580.65.06', 'type': 'open'}
    assert parse_proc_driver_version(None) == {'version': None, 'type': None}
    assert parse_proc_driver_version('garbage\n') == {'version': None, 'type': None}


@pytest.mark.parametrize('rc, out, expected', [
    (0, 'active\n', (True, 'active')),
    (3, 'inactive\n', (False, 'inactive')),
    (3, 'failed\n', (False, 'failed')),
    (1, '', (None, None)),
    (1, 'System has not been booted with systemd as init system (PID 1).\n', (None, None)),
])
def test_systemctl_is_active(rc, out, expected):
    assert parse_systemctl_is_active(rc, out) == expected


# ---------------------------------------------------------------- parser, per generation

def test_h100_sxm_facts():
    facts = facts_for('h100-sxm-8gpu.xml')
    assert facts['driver_version'] == '535.161.08'
    assert facts['cuda_version'] == '12.2'
    assert facts['kernel_module_version'] == '535.161.08'
    assert facts['kernel_module_type'] == 'proprietary'
    assert facts['nvswitch_present'] is True
    assert facts['gpu_count'] == 8
    assert facts['reason'] is None
    assert [g['pci_bus_id'][9:11] for g in facts['gpus']] == ['18', '2A', '3A', '5D', '9A', 'AB', 'BA', 'DB']
    gpu = facts['gpus'][0]
    assert gpu['index'] == 0
    assert gpu['name'] == 'NVIDIA H100 80GB HBM3'
    assert gpu['uuid'] == 'GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e801'
    assert gpu['pci_bus_id'] == '00000000:18:00.0'
    assert gpu['memory_total_mib'] == 81559
    assert gpu['memory_used_mib'] == 1
    assert gpu['persistence_mode'] is True
    assert gpu['ecc_enabled'] is True
    assert gpu['ecc_errors'] == {'volatile_uncorrectable': 0, 'volatile_correctable': 0,
                                 'aggregate_uncorrectable': 0, 'aggregate_correctable': 0}
    assert gpu['retired_pages'] is None
    assert gpu['remapped_rows'] == {'correctable': 0, 'uncorrectable': 0, 'pending': False, 'failure': False}
    assert gpu['temperature_c'] == 31
    assert gpu['memory_temperature_c'] == 40
    assert gpu['power_draw_w'] == 71.52
    assert gpu['power_limit_w'] == 700.0
    assert (gpu['pcie_link_gen_current'], gpu['pcie_link_gen_max']) == (5, 5)
    assert (gpu['pcie_link_width_current'], gpu['pcie_link_width_max']) == (16, 16)
    assert gpu['mig_enabled'] is False
    assert gpu['fabric_state'] == 'Completed'
    assert gpu['fabric_status'] == 'Success'
    assert gpu['fabric_clique_id'] is None


def test_a100_mig_facts():
    facts = facts_for('a100-sxm4-80gb-mig-4gpu.xml')
    assert facts['driver_version'] == '535.54.03'
    assert facts['nvswitch_present'] is False
    gpu = facts['gpus'][0]
    assert gpu['name'] == 'NVIDIA A100-SXM4-80GB'
    assert gpu['mig_enabled'] is True
    assert gpu['mig_pending_enabled'] is True
    assert gpu['mig_device_count'] == 4
    assert gpu['persistence_mode'] is False
    assert gpu['utilization_gpu_pct'] is None  # N/A while MIG is enabled
    assert gpu['remapped_rows'] is None  # <remapped_rows>N/A</remapped_rows>
    assert gpu['retired_pages'] is None
    assert gpu['fabric_state'] is None
    assert gpu['memory_total_mib'] == 81920
    assert gpu['power_draw_w'] == 67.03


def test_h100_pcie_facts():
    facts = facts_for('h100-pcie.xml')
    assert facts['nvswitch_present'] is False
    gpu = facts['gpus'][0]
    assert gpu['name'] == 'NVIDIA H100 PCIe'
    assert gpu['power_limit_w'] == 310.0
    assert gpu['pci_bus_id'] == '00000000:C1:00.0'


def test_h200_v13_layout():
    facts = facts_for('h200-sxm-8gpu.xml', proc=PROC_590_OPEN)
    assert facts['driver_version'] == '590.44.01'
    assert facts['cuda_version'] == '13.1'
    assert facts['kernel_module_type'] == 'open'
    gpu = facts['gpus'][1]
    assert gpu['name'] == 'NVIDIA H200'
    assert gpu['memory_total_mib'] == 143771
    # instant_power_draw is preferred to average_power_draw
    assert gpu['power_draw_w'] == 74.93
    assert gpu['ecc_errors']['aggregate_correctable'] == 3
    assert gpu['ecc_errors']['volatile_uncorrectable'] == 0
    assert gpu['remapped_rows']['correctable'] == 1
    assert gpu['memory_repair_pending'] is False
    assert gpu['fabric_clique_id'] == '0'
    assert gpu['fabric_health'] == 'Healthy'


def test_l40s_facts():
    gpu = facts_for('l40s.xml')['gpus'][0]
    assert gpu['name'] == 'NVIDIA L40S'
    assert gpu['performance_state'] == 'P8'
    assert (gpu['pcie_link_gen_current'], gpu['pcie_link_gen_max']) == (1, 4)
    assert gpu['memory_total_mib'] == 46068


def test_v11_layout_power_readings_and_retired_pages():
    gpu = facts_for('v100-sxm2-v11-fault-retire-pending.xml')['gpus'][0]
    assert gpu['power_draw_w'] == 42.17
    assert gpu['power_limit_w'] == 300.0
    assert gpu['retired_pages'] == {'single_bit_count': 0, 'double_bit_count': 1, 'pending': True}
    assert gpu['remapped_rows'] is None
    assert gpu['ecc_errors']['aggregate_uncorrectable'] == 1


def test_pre_2020_ecc_layout():
    xml = ('<nvidia_smi_log><driver_version>418.67</driver_version><gpu id="0000:3B:00.0">'
           '<ecc_mode><current_ecc>Enabled</current_ecc></ecc_mode><ecc_errors><volatile>'
           '<single_bit><device_memory>3</device_memory><total>3</total></single_bit>'
           '<double_bit><device_memory>1</device_memory><total>1</total></double_bit>'
           '</volatile></ecc_errors></gpu></nvidia_smi_log>')
    gpu = parse_nvidia_smi_xml(xml)['gpus'][0]
    assert gpu['ecc_errors']['volatile_uncorrectable'] == 1
    assert gpu['ecc_errors']['volatile_correctable'] == 3
    assert gpu['ecc_errors']['aggregate_uncorrectable'] is None
    assert gpu['pci_bus_id'] == '0000:3B:00.0'


def test_missing_elements_are_none():
    gpu = parse_nvidia_smi_xml('<nvidia_smi_log><gpu><product_name>X</product_name></gpu></nvidia_smi_log>')['gpus'][0]
    assert gpu['name'] == 'X'
    assert gpu['temperature_c'] is None
    assert gpu['pcie_link_width_max'] is None
    assert gpu['power_draw_w'] is None
    assert gpu['ecc_errors']['volatile_uncorrectable'] is None


@pytest.mark.parametrize('text, message', [
    ('', 'no output'),
    ('not xml at all', 'not valid XML'),
    ('<other/>', 'unexpected root element'),
    ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><nvidia_smi_log>&e;</nvidia_smi_log>', 'unexpected DTD'),
])
def test_parser_errors(text, message):
    with pytest.raises(GpuError, match=message):
        parse_nvidia_smi_xml(text)


def test_facts_without_nvidia_smi():
    facts = build_gpu_facts(smi_error='nvidia-smi not found')
    assert facts['gpus'] == []
    assert facts['gpu_count'] == 0
    assert facts['reason'] == 'nvidia-smi not found'
    assert facts['driver_version'] is None
    assert facts['fabric_manager_active'] is None


def test_facts_with_unparseable_output_do_not_raise():
    facts = build_gpu_facts(xml_text='<oops')
    assert facts['gpus'] == []
    assert 'not valid XML' in facts['reason']


# ---------------------------------------------------------------- readiness policy

H100_POLICY = {'expected_count': 8, 'expected_model': 'H100', 'min_driver_version': '535.104',
               'min_memory_mib': 80000}


def test_h100_sxm_is_ready():
    result = evaluate_readiness(facts_for('h100-sxm-8gpu.xml'), H100_POLICY)
    assert result['ready'] is True
    assert result['failed'] == []
    names = [c['name'] for c in result['checks'] if c['gpu'] == 0]
    assert names == ['model', 'memory', 'persistence_mode', 'ecc', 'memory_repair', 'pcie_link',
                     'temperature', 'fabric']
    host = [c['name'] for c in result['checks'] if c['gpu'] is None]
    assert host == ['gpu_count', 'driver_version', 'kernel_module_match', 'fabric_manager']
    assert len(result['checks']) == 4 + 8 * 8


def test_h200_is_ready_and_v13_fabric_checked():
    facts = facts_for('h200-sxm-8gpu.xml', proc=PROC_590_OPEN)
    result = evaluate_readiness(facts, {'expected_count': 8, 'expected_model': 'h200', 'min_memory_mib': 140000})
    assert result['ready'] is True
    assert check(result, 'fabric', 7)['detail'] == 'fabric state Completed, status Success'
    assert check(result, 'kernel_module_match', None)['detail'] == 'kernel module 590.44.01 (open) matches userland driver'


def test_fault_ecc_fails_only_gpu3():
    result = evaluate_readiness(facts_for('h100-sxm-8gpu-fault-ecc.xml'), H100_POLICY)
    assert result['ready'] is False
    assert failed(result) == [('ecc', 3)]
    assert check(result, 'ecc', 3)['detail'] == 'ECC enabled; volatile uncorrectable 2, aggregate uncorrectable 2'


def test_volatile_ecc_errors_fail_even_when_ecc_not_required():
    result = evaluate_readiness(facts_for('h100-sxm-8gpu-fault-ecc.xml'), {'require_ecc': False})
    assert failed(result) == [('ecc', 3)]


def test_fault_remap_pending_and_failure():
    result = evaluate_readiness(facts_for('h100-sxm-8gpu-fault-remap.xml'), H100_POLICY)
    assert failed(result) == [('memory_repair', 5), ('memory_repair', 6)]
    assert check(result, 'memory_repair', 5)['detail'].startswith('row remap pending (reset the GPU)')
    assert check(result, 'memory_repair', 6)['detail'].startswith('row remap failure (replace the GPU)')


def test_fault_retired_pages_pending_on_v11():
    result = evaluate_readiness(facts_for('v100-sxm2-v11-fault-retire-pending.xml'),
                                {'require_kernel_module_match': False})
    assert failed(result) == [('memory_repair', 0)]
    assert 'page retirement pending' in check(result, 'memory_repair', 0)['detail']


def test_fault_pcie_width_and_busy_generation():
    result = evaluate_readiness(facts_for('h100-sxm-8gpu-fault-pcie.xml'), H100_POLICY)
    assert failed(result) == [('pcie_link', 2), ('pcie_link', 4)]
    assert check(result, 'pcie_link', 2)['detail'] == 'gen 5 x8 (max gen 5 x16): link width x8 below x16'
    assert check(result, 'pcie_link', 4)['detail'] == (
        'gen 3 x16 (max gen 5 x16): link generation 3 below 5 while busy (P0, util 35%)')


def test_allow_degraded_pcie_reports_but_passes():
    result = evaluate_readiness(facts_for('h100-sxm-8gpu-fault-pcie.xml'),
                                dict(H100_POLICY, allow_degraded_pcie=True))
    assert result['ready'] is True
    assert check(result, 'pcie_link', 2)['detail'].endswith('(accepted: allow_degraded_pcie)')


def test_idle_generation_downshift_passes_on_l40s():
    facts = facts_for('l40s.xml', proc=PROC_535)
    facts['kernel_module_version'] = '550.127.05'
    result = evaluate_readiness(facts, {'expected_count': 1, 'expected_model': 'L40S'})
    assert result['ready'] is True
    detail = check(result, 'pcie_link', 0)['detail']
    assert detail.startswith('gen 1 x16 (max gen 4 x16)')
    assert 'idle links downshift to save power' in detail
    assert 'fabric' not in [c['name'] for c in result['checks']]


def test_fabric_in_progress_fails_every_gpu():
    result = evaluate_readiness(facts_for('h100-sxm-8gpu-fault-fabric-in-progress.xml'), H100_POLICY)
    assert failed(result) == [('fabric', i) for i in range(8)]
    assert check(result, 'fabric', 0)['detail'] == (
        'fabric state In Progress, status unknown (need Completed / Success)')


def test_fabric_manager_inactive_and_unknown():
    result = evaluate_readiness(facts_for('h100-sxm-8gpu.xml', fabric_manager=(False, 'inactive')), H100_POLICY)
    assert failed(result) == [('fabric_manager', None)]
    assert check(result, 'fabric_manager', None)['detail'] == 'nvidia-fabricmanager is inactive'
    result = evaluate_readiness(facts_for('h100-sxm-8gpu.xml', fabric_manager=(None, None)), H100_POLICY)
    assert failed(result) == [('fabric_manager', None)]
    assert 'systemctl not available' in check(result, 'fabric_manager', None)['detail']


def test_require_fabric_false_skips_fabric_checks():
    facts = facts_for('h100-sxm-8gpu-fault-fabric-in-progress.xml', fabric_manager=(False, 'inactive'))
    result = evaluate_readiness(facts, dict(H100_POLICY, require_fabric=False))
    assert result['ready'] is True
    assert not [c for c in result['checks'] if c['name'] in ('fabric', 'fabric_manager')]


def test_require_fabric_true_on_pcie_node_fails():
    result = evaluate_readiness(facts_for('h100-pcie.xml', proc=PROC_535, fabric_manager=(False, 'inactive')),
                                {'require_fabric': True, 'require_kernel_module_match': False})
    assert failed(result) == [('fabric_manager', None), ('fabric', 0)]


def test_driver_mismatch_against_proc_fixture():
    facts = facts_for('h100-sxm-8gpu.xml', proc=PROC_550_OPEN)
    result = evaluate_readiness(facts, H100_POLICY)
    assert failed(result) == [('kernel_module_match', None)]
    assert check(result, 'kernel_module_match', None)['detail'] == (
        'kernel module 550.54.15 does not match userland driver 535.161.08 (reload the nvidia modules or reboot)')


def test_missing_proc_version_fails_match_check():
    facts = build_gpu_facts(xml_text=read('h100-pcie.xml'))
    result = evaluate_readiness(facts, {})
    assert failed(result) == [('kernel_module_match', None)]


def test_a100_mig_node_reports_persistence_and_count_and_driver():
    facts = facts_for('a100-sxm4-80gb-mig-4gpu.xml')
    facts['kernel_module_version'] = '535.54.03'
    result = evaluate_readiness(facts, {'expected_count': 8, 'expected_model': 'H100',
                                        'min_driver_version': '535.104.05'})
    assert failed(result) == (
        [('gpu_count', None), ('driver_version', None)]
        + [item for i in range(4) for item in (('model', i), ('persistence_mode', i))])
    assert check(result, 'gpu_count', None)['detail'] == 'found 4 GPU(s), expected 8'
    assert check(result, 'driver_version', None)['detail'] == 'driver 535.54.03, minimum 535.104.05'
    assert check(result, 'memory_repair', 0)['passed'] is True
    # MIG reports no utilization; P0 alone marks it busy, and the link is at max anyway
    assert check(result, 'pcie_link', 0)['detail'] == 'gen 4 x16 (max gen 4 x16)'


def test_temperature_limit():
    result = evaluate_readiness(facts_for('h100-sxm-8gpu.xml'), dict(H100_POLICY, max_temperature_c=30))
    assert failed(result) == [('temperature', 0), ('temperature', 3), ('temperature', 6)]
    assert check(result, 'temperature', 3)['detail'] == 'temperature 32 C, maximum 30 C'


def test_no_gpus_without_expected_count_is_not_ready():
    facts = build_gpu_facts(smi_error='nvidia-smi not found')
    result = evaluate_readiness(facts, {})
    assert result['ready'] is False
    assert result['checks'] == [{
        'name': 'gpu_count', 'gpu': None, 'passed': False,
        'detail': 'no NVIDIA GPUs found (nvidia-smi not found); set expected_count: 0 for a CPU-only node'}]


def test_no_gpus_with_expected_zero_is_ready():
    facts = build_gpu_facts(smi_error='nvidia-smi not found')
    result = evaluate_readiness(facts, {'expected_count': 0, 'min_driver_version': '550'})
    assert result['ready'] is True
    assert [c['name'] for c in result['checks']] == ['gpu_count']


def test_no_gpus_with_expected_count_names_reason():
    facts = build_gpu_facts(smi_error="nvidia-smi -q -x failed (rc=9): NVIDIA-SMI has failed")
    result = evaluate_readiness(facts, {'expected_count': 8})
    assert check(result, 'gpu_count', None)['detail'] == (
        'found 0 GPU(s), expected 8 (nvidia-smi -q -x failed (rc=9): NVIDIA-SMI has failed)')


def test_failure_message_lists_every_failed_check():
    result = evaluate_readiness(facts_for('h100-sxm-8gpu-fault-remap.xml', proc=PROC_550_OPEN), H100_POLICY)
    message = failure_message(result)
    assert message.startswith('GPU node not ready (3 failed check(s)): host kernel_module_match: ')
    assert '; gpu 5 memory_repair: row remap pending' in message
    assert '; gpu 6 memory_repair: row remap failure' in message


def test_unknown_policy_key_is_rejected():
    with pytest.raises(GpuError, match='unknown readiness policy key: bogus'):
        evaluate_readiness({'gpus': []}, {'bogus': 1})


# ---------------------------------------------------------------- faults each check must see
# Each case below failed to fail on a plausible bug (a mutation probe of this module), so each
# names the bug it guards against.

def test_more_gpus_than_expected_fails():
    # 8 GPUs where 7 are expected is a wrong inventory or a wrong node, not "enough".
    result = evaluate_readiness(facts_for('h100-sxm-8gpu.xml'), dict(H100_POLICY, expected_count=7))
    assert failed(result) == [('gpu_count', None)]
    assert check(result, 'gpu_count', None)['detail'] == 'found 8 GPU(s), expected 7'


def test_idle_narrow_link_width_fails():
    # Idle (P8, 0 %): the generation downshift is accepted, the x8 width is not.
    facts = facts_for('l40s-fault-pcie-width-idle.xml')
    facts['kernel_module_version'] = '550.127.05'
    result = evaluate_readiness(facts, {'expected_count': 1})
    assert failed(result) == [('pcie_link', 0)]
    assert check(result, 'pcie_link', 0)['detail'].endswith(': link width x8 below x16')


def test_host_capped_generation_fails_while_idle():
    # A gen 5 GPU in a gen 4 host: the current generation (1, idle) tells nothing, the maximums do.
    facts = facts_for('h100-pcie-fault-gen4-host-idle.xml')
    assert facts['gpus'][0]['pcie_link_gen_device_max'] == 5
    result = evaluate_readiness(facts, {'require_kernel_module_match': False})
    assert failed(result) == [('pcie_link', 0)]
    assert check(result, 'pcie_link', 0)['detail'] == (
        "gen 1 x16 (max gen 4 x16); GPU capable of gen 5; generation below max is accepted while idle (P8, util 0%): "
        "idle links downshift to save power: host or slot allows gen 4 only, below the GPU's gen 5")
    accepted = evaluate_readiness(facts, {'require_kernel_module_match': False, 'allow_degraded_pcie': True})
    assert accepted['ready'] is True


def test_link_at_device_maximum_passes_without_capability_note():
    gpu = facts_for('h100-pcie.xml')['gpus'][0]
    assert gpu['pcie_link_gen_device_max'] == 5
    result = evaluate_readiness(facts_for('h100-pcie.xml'), {'require_kernel_module_match': False})
    assert check(result, 'pcie_link', 0) == {
        'name': 'pcie_link', 'gpu': 0, 'passed': True, 'detail': 'gen 5 x16 (max gen 5 x16)'}


@pytest.mark.parametrize('util, pstate, busy', [
    (0, 'P8', False),   # idle: downshift accepted
    (1, 'P8', True),    # any utilization counts as busy
    (None, 'P8', False),
    (None, 'P0', True),  # P0 alone counts as busy (MIG reports no utilization)
])
def test_busy_boundary_for_generation_downshift(util, pstate, busy):
    facts = facts_for('l40s.xml')
    facts['kernel_module_version'] = '550.127.05'
    facts['gpus'][0].update(utilization_gpu_pct=util, performance_state=pstate)
    result = evaluate_readiness(facts, {})
    assert check(result, 'pcie_link', 0)['passed'] is not busy


def test_unknown_ecc_state_fails_when_ecc_required():
    facts = facts_for('h100-pcie.xml')
    facts['gpus'][0]['ecc_enabled'] = None  # nvidia-smi printed N/A
    result = evaluate_readiness(facts, {'require_kernel_module_match': False})
    assert failed(result) == [('ecc', 0)]
    assert check(result, 'ecc', 0)['detail'] == 'ECC not supported or not reported (required)'
    result = evaluate_readiness(facts, {'require_kernel_module_match': False, 'require_ecc': False})
    assert check(result, 'ecc', 0)['passed'] is True


def test_disabled_ecc_fails_when_required():
    facts = facts_for('h100-pcie.xml')
    facts['gpus'][0]['ecc_enabled'] = False
    result = evaluate_readiness(facts, {'require_kernel_module_match': False})
    assert check(result, 'ecc', 0)['detail'] == 'ECC disabled (required)'


def test_channel_and_tpc_repair_pending_fail():
    facts = facts_for('h200-sxm-8gpu-fault-repair-pending.xml', proc=PROC_590_OPEN)
    assert [g['memory_repair_pending'] for g in facts['gpus']] == [False, False, True, False, False, True,
                                                                   False, False]
    result = evaluate_readiness(facts, {'expected_count': 8})
    assert failed(result) == [('memory_repair', 2), ('memory_repair', 5)]
    assert check(result, 'memory_repair', 2)['detail'].startswith('channel or TPC repair pending (reset the GPU): ')


def test_repair_pending_without_row_or_page_data_fails():
    facts = facts_for('h100-pcie.xml')
    gpu = facts['gpus'][0]
    gpu.update(remapped_rows=None, retired_pages=None, memory_repair_pending=True)
    result = evaluate_readiness(facts, {'require_kernel_module_match': False})
    assert check(result, 'memory_repair', 0) == {
        'name': 'memory_repair', 'gpu': 0, 'passed': False,
        'detail': 'channel or TPC repair pending (reset the GPU)'}


def test_fabric_completed_with_error_status_fails():
    result = evaluate_readiness(facts_for('h100-sxm-8gpu-fault-fabric-status.xml'), H100_POLICY)
    assert failed(result) == [('fabric', 1), ('fabric', 6)]
    assert check(result, 'fabric', 1)['detail'] == (
        'fabric state Completed, status Insufficient Resources (need Completed / Success)')
    # "Unknown Error" is one of nvidia-smi's absent values: reported as unknown, still a failure
    assert check(result, 'fabric', 6)['detail'] == 'fabric state Completed, status unknown (need Completed / Success)'


@pytest.mark.parametrize('minimum, ok', [('535.161.08', True), ('535.161.09', False), ('535.161', True)])
def test_min_driver_version_boundary(minimum, ok):
    result = evaluate_readiness(facts_for('h100-sxm-8gpu.xml'), dict(H100_POLICY, min_driver_version=minimum))
    assert check(result, 'driver_version', None)['passed'] is ok


@pytest.mark.parametrize('minimum, ok', [(81559, True), (81560, False)])
def test_min_memory_boundary(minimum, ok):
    result = evaluate_readiness(facts_for('h100-sxm-8gpu.xml'), dict(H100_POLICY, min_memory_mib=minimum))
    assert check(result, 'memory', 0)['passed'] is ok


@pytest.mark.parametrize('maximum, ok', [(31, True), (30, False)])
def test_max_temperature_boundary(maximum, ok):
    # GPU 0 of the H100 capture reads 31 C
    result = evaluate_readiness(facts_for('h100-sxm-8gpu.xml'), dict(H100_POLICY, max_temperature_c=maximum))
    assert check(result, 'temperature', 0)['passed'] is ok


# ---------------------------------------------------------------- versions

def test_version_parts_that_are_not_numbers_count_as_zero():
    assert version_tuple('550.x.15') == (550, 0, 15)
    assert version_tuple(' 535.161.08-open ') == (535, 161, 8)


@pytest.mark.parametrize('left, right', [('550.54.0', '550.54'), ('550.54', '550.54.0'), ('550', '550.0.0')])
def test_missing_trailing_parts_are_zero_on_either_side(left, right):
    assert compare_versions(left, right) == 0


# ---------------------------------------------------------------- host probe

class ModuleStandIn:
    """Stands in for AnsibleModule: answers get_bin_path from a dict and run_command from a script."""

    def __init__(self, bins, answers):
        self.bins = bins
        self.answers = answers
        self.commands = []

    def get_bin_path(self, name):
        return self.bins.get(name)

    def run_command(self, argv):
        self.commands.append(argv)
        return self.answers[argv[0]]


def test_collect_runs_one_nvidia_smi_and_asks_systemd_about_fabric_manager(tmp_path):
    proc = tmp_path / 'version'
    proc.write_text(read(PROC_535))
    module = ModuleStandIn({'systemctl': '/bin/systemctl', 'nvidia-smi': '/usr/bin/nvidia-smi'},
                           {'/bin/systemctl': (0, 'active\n', ''),
                            '/usr/bin/nvidia-smi': (0, read('h100-sxm-8gpu.xml'), '')})
    facts = collect_gpu_facts(module, proc_version_path=str(proc))
    assert module.commands == [['/bin/systemctl', 'is-active', 'nvidia-fabricmanager'],
                               ['/usr/bin/nvidia-smi', '-q', '-x']]
    assert (facts['fabric_manager_active'], facts['fabric_manager_state']) == (True, 'active')
    assert facts['gpu_count'] == 8 and facts['reason'] is None
    assert facts['kernel_module_version'] == '535.161.08'


def test_collect_without_systemctl_or_nvidia_smi(tmp_path):
    module = ModuleStandIn({}, {})
    facts = collect_gpu_facts(module, proc_version_path=str(tmp_path / 'absent'))
    assert module.commands == []
    assert facts['reason'] == 'nvidia-smi not found'
    assert (facts['fabric_manager_active'], facts['kernel_module_version']) == (None, None)


def test_collect_with_a_path_that_is_not_executable(tmp_path):
    smi = tmp_path / 'nvidia-smi'
    smi.write_text('#!/bin/sh\n')
    smi.chmod(0o644)
    module = ModuleStandIn({'nvidia-smi': '/usr/bin/nvidia-smi'}, {})
    facts = collect_gpu_facts(module, nvidia_smi_path=str(smi), proc_version_path=str(tmp_path / 'absent'))
    assert facts['reason'] == '%s not found' % smi
    assert module.commands == []


def test_collect_with_an_executable_path_runs_it(tmp_path):
    smi = tmp_path / 'nvidia-smi'
    smi.write_text('#!/bin/sh\n')
    smi.chmod(0o755)
    module = ModuleStandIn({}, {str(smi): (0, read('l40s.xml'), '')})
    facts = collect_gpu_facts(module, nvidia_smi_path=str(smi), proc_version_path=str(tmp_path / 'absent'))
    assert module.commands == [[str(smi), '-q', '-x']]
    assert facts['gpu_count'] == 1


@pytest.mark.parametrize('out, err, said', [
    ('', '', 'no output'),
    ('', '\n  NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.\nmore\n',
     'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'),
    ('Unable to determine the device handle\n', 'ignored', 'Unable to determine the device handle'),
])
def test_collect_when_nvidia_smi_fails_keeps_the_other_probes(tmp_path, out, err, said):
    proc = tmp_path / 'version'
    proc.write_text(read(PROC_550_OPEN))
    module = ModuleStandIn({'systemctl': '/bin/systemctl', 'nvidia-smi': '/usr/bin/nvidia-smi'},
                           {'/bin/systemctl': (3, 'inactive\n', ''), '/usr/bin/nvidia-smi': (9, out, err)})
    facts = collect_gpu_facts(module, proc_version_path=str(proc))
    assert facts['reason'] == '/usr/bin/nvidia-smi -q -x failed (rc=9): %s' % said
    assert (facts['fabric_manager_active'], facts['fabric_manager_state']) == (False, 'inactive')
    assert (facts['kernel_module_version'], facts['kernel_module_type']) == ('550.54.15', 'open')


def test_link_not_reported_passes_and_says_so():
    facts = facts_for('h100-pcie.xml')
    facts['gpus'][0]['pcie_link_width_max'] = None
    result = evaluate_readiness(facts, {'require_kernel_module_match': False})
    assert check(result, 'pcie_link', 0) == {
        'name': 'pcie_link', 'gpu': 0, 'passed': True, 'detail': 'PCIe link not reported'}


def test_memory_repair_detail_names_each_flag():
    result = evaluate_readiness(facts_for('h100-sxm-8gpu-fault-remap.xml'), H100_POLICY)
    assert check(result, 'memory_repair', 0)['detail'] == (
        'remapped rows: 0 correctable, 0 uncorrectable, pending no, failure no')
    assert check(result, 'memory_repair', 5)['detail'] == (
        'row remap pending (reset the GPU): remapped rows: 0 correctable, 1 uncorrectable, pending yes, failure no')
    result = evaluate_readiness(facts_for('v100-sxm2-v11-fault-retire-pending.xml'), {'require_kernel_module_match': False})
    assert check(result, 'memory_repair', 0)['detail'] == (
        'page retirement pending (reset the GPU): retired pages: 0 single-bit, 1 double-bit, pending yes')


@pytest.mark.parametrize('enabled, pending, require, passed, detail', [
    (True, True, True, True, 'ECC enabled; volatile uncorrectable 0, aggregate uncorrectable 0'),
    (True, False, True, True,
     'ECC enabled; volatile uncorrectable 0, aggregate uncorrectable 0; ECC is pending disable at next reset'),
    (False, True, False, True, 'ECC not required; volatile uncorrectable 0, aggregate uncorrectable 0'),
    (None, None, False, True, 'ECC not required; volatile uncorrectable 0, aggregate uncorrectable 0'),
    (False, True, True, False, 'ECC disabled (required)'),
])
def test_ecc_details(enabled, pending, require, passed, detail):
    facts = facts_for('h100-pcie.xml')
    facts['gpus'][0].update(ecc_enabled=enabled, ecc_pending_enabled=pending)
    result = evaluate_readiness(facts, {'require_kernel_module_match': False, 'require_ecc': require})
    assert check(result, 'ecc', 0) == {'name': 'ecc', 'gpu': 0, 'passed': passed, 'detail': detail}


@pytest.mark.parametrize('enabled, word', [(False, 'disabled'), (None, 'unknown')])
def test_volatile_errors_name_the_ecc_state(enabled, word):
    facts = facts_for('h100-sxm-8gpu-fault-ecc.xml')
    facts['gpus'][3]['ecc_enabled'] = enabled
    result = evaluate_readiness(facts, {'require_ecc': False})
    assert check(result, 'ecc', 3)['detail'] == 'ECC %s; volatile uncorrectable 2, aggregate uncorrectable 2' % word


def test_every_pcie_problem_is_named():
    facts = facts_for('h100-sxm-8gpu-fault-pcie.xml')
    facts['gpus'][4]['pcie_link_width_current'] = 4
    result = evaluate_readiness(facts, H100_POLICY)
    assert check(result, 'pcie_link', 4)['detail'] == (
        'gen 3 x4 (max gen 5 x16): link width x4 below x16; link generation 3 below 5 while busy (P0, util 35%)')


def test_mig_gpu_without_row_or_page_data_passes_and_says_why():
    facts = facts_for('a100-sxm4-80gb-mig-4gpu.xml')
    result = evaluate_readiness(facts, {'require_kernel_module_match': False, 'require_persistence_mode': False})
    assert check(result, 'memory_repair', 0)['detail'] == (
        'row remapping and page retirement not reported (MIG mode or not supported)')


def test_every_check_of_a_healthy_h100_says_what_it_saw():
    result = evaluate_readiness(facts_for('h100-sxm-8gpu.xml'), H100_POLICY)
    assert [(c['name'], c['detail']) for c in result['checks'] if c['gpu'] in (None, 0)] == [
        ('gpu_count', 'found 8 GPU(s), expected 8'),
        ('driver_version', 'driver 535.161.08, minimum 535.104'),
        ('kernel_module_match', 'kernel module 535.161.08 (proprietary) matches userland driver'),
        ('fabric_manager', 'nvidia-fabricmanager is active'),
        ('model', 'model NVIDIA H100 80GB HBM3, expected to contain H100'),
        ('memory', 'memory 81559 MiB, minimum 80000 MiB'),
        ('persistence_mode', 'persistence mode enabled'),
        ('ecc', 'ECC enabled; volatile uncorrectable 0, aggregate uncorrectable 0'),
        ('memory_repair', 'remapped rows: 0 correctable, 0 uncorrectable, pending no, failure no'),
        ('pcie_link', 'gen 5 x16 (max gen 5 x16)'),
        ('temperature', 'temperature 31 C, maximum 85 C'),
        ('fabric', 'fabric state Completed, status Success'),
    ]


def test_unreported_values_fail_and_say_unknown():
    facts = build_gpu_facts(xml_text=read('a100-sxm4-80gb-mig-4gpu.xml'), fabric_manager=(None, None))
    facts['gpus'][0].update(name=None, memory_total_mib=None, persistence_mode=None)
    result = evaluate_readiness(facts, {'expected_model': 'H100', 'min_memory_mib': 80000, 'require_fabric': True})
    assert [(c['name'], c['passed'], c['detail']) for c in result['checks'] if c['gpu'] in (None, 0)] == [
        ('gpu_count', True, 'found 4 GPU(s)'),
        ('kernel_module_match', False, 'loaded kernel module version not readable from /proc/driver/nvidia/version'),
        ('fabric_manager', False, 'nvidia-fabricmanager state unknown (systemctl not available)'),
        ('model', False, 'model unknown, expected to contain H100'),
        ('memory', False, 'memory unknown, minimum 80000 MiB'),
        ('persistence_mode', False, 'persistence mode unknown'),
        ('ecc', True, 'ECC enabled; volatile uncorrectable 0, aggregate uncorrectable 0'),
        ('memory_repair', True, 'row remapping and page retirement not reported (MIG mode or not supported)'),
        ('pcie_link', True, 'gen 4 x16 (max gen 4 x16)'),
        ('temperature', True, 'temperature 27 C, maximum 85 C'),
        ('fabric', False, 'fabric state unknown, status unknown (need Completed / Success)'),
    ]
    assert check(result, 'persistence_mode', 1)['detail'] == 'persistence mode disabled'


def test_policy_none_keeps_defaults_except_where_none_means_auto():
    # None for a boolean or limit means "default"; for expected_count / require_fabric it means "any" / "auto".
    result = evaluate_readiness(facts_for('h100-sxm-8gpu.xml'),
                                {'expected_count': None, 'require_fabric': None, 'require_ecc': None,
                                 'max_temperature_c': None})
    assert check(result, 'gpu_count', None)['detail'] == 'found 8 GPU(s)'
    assert check(result, 'temperature', 0)['detail'] == 'temperature 31 C, maximum 85 C'
    assert check(result, 'fabric', 0)['passed'] is True
    facts = facts_for('h100-pcie.xml')
    facts['gpus'][0]['ecc_enabled'] = None
    result = evaluate_readiness(facts, {'require_ecc': None, 'require_kernel_module_match': False})
    assert check(result, 'ecc', 0)['passed'] is False  # the default, require_ecc: true, still applies


def test_temperature_not_reported_passes_and_says_so():
    facts = facts_for('h100-pcie.xml')
    facts['gpus'][0]['temperature_c'] = None
    result = evaluate_readiness(facts, {'require_kernel_module_match': False})
    assert check(result, 'temperature', 0) == {
        'name': 'temperature', 'gpu': 0, 'passed': True, 'detail': 'temperature not reported'}
