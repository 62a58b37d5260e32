# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""GPU readiness policy, private to the onprem.deepseek collection: whether a host's GPU facts
(``_gpu_facts``) are fit to serve, with every failed check listed. Pure functions.
"""

from __future__ import annotations

from ansible_collections.onprem.deepseek.plugins.module_utils._gpu_facts import (
    FABRIC_MANAGER_UNIT,
    PROC_DRIVER_VERSION,
    GpuError,
    compare_versions,
)

DEFAULT_POLICY = {
    'expected_count': None,
    'expected_model': None,
    'min_driver_version': None,
    'min_memory_mib': None,
    'require_persistence_mode': True,
    'require_ecc': True,
    'max_temperature_c': 85,
    'require_fabric': None,
    'allow_degraded_pcie': False,
    'require_kernel_module_match': True,
}

FABRIC_READY_STATE = 'Completed'
FABRIC_READY_STATUS = 'Success'


def _check(name, gpu, passed, detail):
    return {'name': name, 'gpu': gpu, 'passed': bool(passed), 'detail': detail}


def _fmt(value, unit=''):
    if value is None:
        return 'unknown'
    if value is True or value is False:
        return 'yes' if value else 'no'
    return '%s%s' % (value, unit)


def _count_check(facts, expected):
    found = len(facts['gpus'])
    why = facts.get('reason')
    if expected is None:
        if found:
            return _check('gpu_count', None, True, 'found %d GPU(s)' % found)
        return _check('gpu_count', None, False,
                      'no NVIDIA GPUs found (%s); set expected_count: 0 for a CPU-only node'
                      % (why or 'no reason given'))
    if found == expected:
        return _check('gpu_count', None, True, 'found %d GPU(s), expected %d' % (found, expected))
    detail = 'found %d GPU(s), expected %d' % (found, expected)
    if not found and why:
        detail += ' (%s)' % why
    return _check('gpu_count', None, False, detail)


def _pcie_check(gpu, allow_degraded):
    idx = gpu['index']
    gen, gen_max = gpu['pcie_link_gen_current'], gpu['pcie_link_gen_max']
    width, width_max = gpu['pcie_link_width_current'], gpu['pcie_link_width_max']
    if None in (gen, gen_max, width, width_max):
        return _check('pcie_link', idx, True, 'PCIe link not reported')
    link = 'gen %s x%s (max gen %s x%s)' % (gen, width, gen_max, width_max)
    util = gpu['utilization_gpu_pct']
    pstate = gpu['performance_state']
    busy = (util is not None and util > 0) or pstate == 'P0'
    problems = []
    # max_link_gen is what GPU and host together allow, max_device_link_gen what the GPU alone
    # can do. Both are capabilities, not the link's current state, so a host or slot that caps
    # the GPU shows at idle too, when the current generation says nothing (idle links downshift).
    gen_device = gpu.get('pcie_link_gen_device_max')
    if gen_device is not None and gen_max < gen_device:
        link += '; GPU capable of gen %s' % gen_device
        problems.append('host or slot allows gen %s only, below the GPU\'s gen %s' % (gen_max, gen_device))
    if width < width_max:
        problems.append('link width x%s below x%s' % (width, width_max))
    if gen < gen_max:
        if busy:
            problems.append('link generation %s below %s while busy (%s, util %s)'
                            % (gen, gen_max, _fmt(pstate), _fmt(util, '%')))
        else:
            link += '; generation below max is accepted while idle (%s, util %s): idle links downshift to save power' % (
                _fmt(pstate), _fmt(util, '%'))
    if not problems:
        return _check('pcie_link', idx, True, link)
    detail = '%s: %s' % (link, '; '.join(problems))
    if allow_degraded:
        return _check('pcie_link', idx, True, detail + ' (accepted: allow_degraded_pcie)')
    return _check('pcie_link', idx, False, detail)


def _ecc_check(gpu, require_ecc):
    idx = gpu['index']
    errors = gpu['ecc_errors']
    vol = errors['volatile_uncorrectable']
    agg = errors['aggregate_uncorrectable']
    counts = 'volatile uncorrectable %s, aggregate uncorrectable %s' % (_fmt(vol), _fmt(agg))
    if vol:
        return _check('ecc', idx, False, 'ECC %s; %s' % (
            {True: 'enabled', False: 'disabled', None: 'unknown'}[gpu['ecc_enabled']], counts))
    if require_ecc and gpu['ecc_enabled'] is not True:
        state = 'disabled' if gpu['ecc_enabled'] is False else 'not supported or not reported'
        return _check('ecc', idx, False, 'ECC %s (required)' % state)
    detail = 'ECC %s; %s' % ('enabled' if gpu['ecc_enabled'] else 'not required', counts)
    if gpu['ecc_enabled'] and gpu['ecc_pending_enabled'] is False:
        detail += '; ECC is pending disable at next reset'
    return _check('ecc', idx, True, detail)


def _memory_repair_check(gpu):
    idx = gpu['index']
    rows, pages = gpu['remapped_rows'], gpu['retired_pages']
    problems, seen = [], []
    if rows is not None:
        seen.append('remapped rows: %s correctable, %s uncorrectable, pending %s, failure %s' % (
            _fmt(rows['correctable']), _fmt(rows['uncorrectable']),
            _fmt(rows['pending']), _fmt(rows['failure'])))
        if rows['pending']:
            problems.append('row remap pending (reset the GPU)')
        if rows['failure']:
            problems.append('row remap failure (replace the GPU)')
    if pages is not None:
        seen.append('retired pages: %s single-bit, %s double-bit, pending %s' % (
            _fmt(pages['single_bit_count']), _fmt(pages['double_bit_count']), _fmt(pages['pending'])))
        if pages['pending']:
            problems.append('page retirement pending (reset the GPU)')
    if gpu.get('memory_repair_pending'):
        problems.append('channel or TPC repair pending (reset the GPU)')
    if not seen:
        if problems:
            return _check('memory_repair', idx, False, '; '.join(problems))
        return _check('memory_repair', idx, True,
                      'row remapping and page retirement not reported (MIG mode or not supported)')
    detail = '; '.join(seen)
    if problems:
        return _check('memory_repair', idx, False, '%s: %s' % ('; '.join(problems), detail))
    return _check('memory_repair', idx, True, detail)


def _fabric_check(gpu):
    idx = gpu['index']
    state, status = gpu['fabric_state'], gpu['fabric_status']
    detail = 'fabric state %s, status %s' % (_fmt(state), _fmt(status))
    ok = state == FABRIC_READY_STATE and status == FABRIC_READY_STATUS
    if not ok:
        detail += ' (need %s / %s)' % (FABRIC_READY_STATE, FABRIC_READY_STATUS)
    return _check('fabric', idx, ok, detail)


def normalize_policy(policy=None):
    merged = dict(DEFAULT_POLICY)
    for key, value in (policy or {}).items():
        if key not in DEFAULT_POLICY:
            raise GpuError('unknown readiness policy key: %s' % key)
        if value is not None or key in ('require_fabric', 'expected_count'):
            merged[key] = value
    return merged


def evaluate_readiness(facts, policy=None):
    """Evaluate the readiness policy; return ``{'ready', 'checks', 'failed'}``.

    Every check is reported for every GPU so an operator sees all problems at once.
    """
    policy = normalize_policy(policy)
    gpus = facts.get('gpus') or []
    checks = [_count_check(facts, policy['expected_count'])]

    if gpus:
        driver = facts.get('driver_version')
        if policy['min_driver_version'] is not None:
            minimum = str(policy['min_driver_version'])
            ok = driver is not None and compare_versions(driver, minimum) >= 0
            checks.append(_check('driver_version', None, ok,
                                 'driver %s, minimum %s' % (_fmt(driver), minimum)))
        if policy['require_kernel_module_match']:
            kernel = facts.get('kernel_module_version')
            if kernel is None:
                checks.append(_check('kernel_module_match', None, False,
                                     'loaded kernel module version not readable from %s' % PROC_DRIVER_VERSION))
            elif driver is None or compare_versions(kernel, driver) != 0:
                checks.append(_check('kernel_module_match', None, False,
                                     'kernel module %s does not match userland driver %s '
                                     '(reload the nvidia modules or reboot)' % (kernel, _fmt(driver))))
            else:
                checks.append(_check('kernel_module_match', None, True,
                                     'kernel module %s (%s) matches userland driver'
                                     % (kernel, _fmt(facts.get('kernel_module_type')))))

    require_fabric = policy['require_fabric']
    fabric_required = bool(gpus) and (facts.get('nvswitch_present') if require_fabric is None else require_fabric)
    if fabric_required:
        active = facts.get('fabric_manager_active')
        state = facts.get('fabric_manager_state')
        if active is None:
            detail = '%s state unknown (systemctl not available)' % FABRIC_MANAGER_UNIT
        else:
            detail = '%s is %s' % (FABRIC_MANAGER_UNIT, state)
        checks.append(_check('fabric_manager', None, active is True, detail))

    for gpu in gpus:
        idx = gpu['index']
        if policy['expected_model']:
            want = policy['expected_model']
            name = gpu['name'] or ''
            checks.append(_check('model', idx, want.lower() in name.lower(),
                                 'model %s, expected to contain %s' % (_fmt(gpu['name']), want)))
        if policy['min_memory_mib'] is not None:
            total = gpu['memory_total_mib']
            checks.append(_check('memory', idx, total is not None and total >= policy['min_memory_mib'],
                                 'memory %s, minimum %s MiB' % (_fmt(total, ' MiB'), policy['min_memory_mib'])))
        if policy['require_persistence_mode']:
            checks.append(_check('persistence_mode', idx, gpu['persistence_mode'] is True,
                                 'persistence mode %s' % {True: 'enabled', False: 'disabled',
                                                          None: 'unknown'}[gpu['persistence_mode']]))
        checks.append(_ecc_check(gpu, policy['require_ecc']))
        checks.append(_memory_repair_check(gpu))
        checks.append(_pcie_check(gpu, policy['allow_degraded_pcie']))
        if policy['max_temperature_c'] is not None:
            temp = gpu['temperature_c']
            if temp is None:
                checks.append(_check('temperature', idx, True, 'temperature not reported'))
            else:
                checks.append(_check('temperature', idx, temp <= policy['max_temperature_c'],
                                     'temperature %s C, maximum %s C' % (temp, policy['max_temperature_c'])))
        if fabric_required:
            checks.append(_fabric_check(gpu))

    failed = [check for check in checks if not check['passed']]
    return {'ready': not failed, 'checks': checks, 'failed': failed}


def failure_message(result):
    """One line naming every failed check."""
    parts = []
    for check in result['failed']:
        where = 'host' if check['gpu'] is None else 'gpu %s' % check['gpu']
        parts.append('%s %s: %s' % (where, check['name'], check['detail']))
    return 'GPU node not ready (%d failed check(s)): %s' % (len(parts), '; '.join(parts))
