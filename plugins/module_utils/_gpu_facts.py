# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""GPU facts, private to the onprem.deepseek collection: what the host reports about its GPUs.

Parsing is pure functions over text, unit-tested on recorded ``nvidia-smi -q -x`` outputs.
``collect_gpu_facts`` is the only part that touches the host. The readiness policy over these
facts is ``_gpu_readiness``.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET

PROC_DRIVER_VERSION = '/proc/driver/nvidia/version'
FABRIC_MANAGER_UNIT = 'nvidia-fabricmanager'

# Argument spec of the option documented by the onprem.deepseek.nvidia_smi doc fragment.
NVIDIA_SMI_ARGUMENT_SPEC = dict(nvidia_smi_path=dict(type='str', default='nvidia-smi'))

# Values nvidia-smi prints when a field does not apply or cannot be read.
_ABSENT = frozenset((
    '', 'n/a', '[n/a]', 'not supported', '[not supported]', 'unknown error', '[unknown error]',
    'requested functionality has been deprecated', 'insufficient permissions',
))
_TRUE = frozenset(('enabled', 'yes', 'active', 'true', 'on'))
_FALSE = frozenset(('disabled', 'no', 'not active', 'false', 'off'))
_NUMBER = re.compile(r'^\s*(-?\d+(?:\.\d+)?)')
_DOCTYPE = re.compile(r'<!DOCTYPE[^>\[]*>', re.IGNORECASE)
_KERNEL_MODULE = re.compile(
    r'NVRM version:.*?\bKernel Module(?:\s+for\s+\S+)?\s+(\d+(?:\.\d+)+)')
_SYSTEMD_STATES = frozenset((
    'active', 'inactive', 'failed', 'activating', 'deactivating', 'reloading', 'refreshing',
    'maintenance', 'unknown',
))


class GpuError(Exception):
    """A GPU probe output could not be understood."""


# ---------------------------------------------------------------- value helpers

def _clean(text):
    if text is None:
        return None
    text = ' '.join(text.split())
    if text.lower() in _ABSENT:
        return None
    return text


def _text(element, path):
    if element is None:
        return None
    found = element.find(path)
    if found is None:
        return None
    return _clean(found.text)


def to_number(text):
    """Turn ``"81559 MiB"``, ``"45 C"``, ``"350.00 W"``, ``"16x"`` into a number; absent -> None."""
    text = _clean(text)
    if text is None:
        return None
    match = _NUMBER.match(text)
    if not match:
        return None
    value = match.group(1)
    return float(value) if '.' in value else int(value)


def to_bool(text):
    text = _clean(text)
    if text is None:
        return None
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    return None


def _num(element, path):
    return to_number(_text(element, path))


def _bool(element, path):
    return to_bool(_text(element, path))


def _first(*values):
    for value in values:
        if value is not None:
            return value
    return None


def _sum_present(values):
    values = [v for v in values if v is not None]
    return sum(values) if values else None


def version_tuple(version):
    """Numeric tuple per dotted part: ``"550.54.15"`` -> (550, 54, 15)."""
    parts = []
    for part in str(version).strip().split('.'):
        match = re.match(r'\d+', part)
        parts.append(int(match.group(0)) if match else 0)
    return tuple(parts)


def compare_versions(left, right):
    """Return -1, 0 or 1; missing trailing parts count as zero (``"550" == "550.0"``)."""
    a, b = list(version_tuple(left)), list(version_tuple(right))
    width = max(len(a), len(b))
    a += [0] * (width - len(a))
    b += [0] * (width - len(b))
    return (a > b) - (a < b)


# ---------------------------------------------------------------- parsers

def parse_proc_driver_version(text):
    """Parse /proc/driver/nvidia/version into ``{'version', 'type'}`` (type: open/proprietary)."""
    if not text:
        return {'version': None, 'type': None}
    for line in text.splitlines():
        match = _KERNEL_MODULE.search(line)
        if match:
            kind = 'open' if 'Open Kernel Module' in line else 'proprietary'
            return {'version': match.group(1), 'type': kind}
    return {'version': None, 'type': None}


def _ecc_counts(block):
    """Sum uncorrectable / correctable counters of one ``volatile`` or ``aggregate`` block."""
    if block is None:
        return None, None
    # Pre-2020 layout: <single_bit>/<double_bit> with a <total>.
    if block.find('double_bit') is not None or block.find('single_bit') is not None:
        return _num(block, 'double_bit/total'), _num(block, 'single_bit/total')
    unc, corr = [], []
    for child in block:
        tag = child.tag
        if 'uncorrectable' in tag:
            unc.append(to_number(child.text))
        elif 'correctable' in tag:
            corr.append(to_number(child.text))
    return _sum_present(unc), _sum_present(corr)


def _retired_pages(gpu):
    block = gpu.find('retired_pages')
    if block is None:
        return None
    info = {
        'single_bit_count': _num(block, 'multiple_single_bit_retirement/retired_count'),
        'double_bit_count': _num(block, 'double_bit_retirement/retired_count'),
        'pending': _first(_bool(block, 'pending_retirement'), _bool(block, 'pending_blacklist')),
    }
    if all(value is None for value in info.values()):
        return None
    return info


def _remapped_rows(gpu):
    block = gpu.find('remapped_rows')
    if block is None or len(block) == 0:
        return None
    info = {
        'correctable': _num(block, 'remapped_row_corr'),
        'uncorrectable': _num(block, 'remapped_row_unc'),
        'pending': _bool(block, 'remapped_row_pending'),
        'failure': _bool(block, 'remapped_row_failure'),
    }
    if all(value is None for value in info.values()):
        return None
    return info


def _repair_pending(gpu):
    # Blackwell-era drivers report HBM channel and TPC repairs that need a GPU reset.
    values = [_bool(gpu, 'ecc_errors/channel_repair_pending'), _bool(gpu, 'ecc_errors/tpc_repair_pending')]
    if all(value is None for value in values):
        return None
    return any(values)


def _power(gpu):
    # Driver >= 535 splits readings into gpu_/module_power_readings; >= 570 has instant/average.
    draw = limit = None
    for block_name in ('gpu_power_readings', 'power_readings', 'module_power_readings'):
        block = gpu.find(block_name)
        if block is None:
            continue
        draw = _first(draw, _num(block, 'power_draw'), _num(block, 'instant_power_draw'),
                      _num(block, 'average_power_draw'))
        limit = _first(limit, _num(block, 'current_power_limit'),
                       _num(block, 'enforced_power_limit'), _num(block, 'power_limit'))
    return draw, limit


def _mig_device_count(gpu):
    block = gpu.find('mig_devices')
    if block is None:
        return 0
    return len(block.findall('mig_device'))


def _parse_gpu(index, gpu):
    vol_unc, vol_corr = _ecc_counts(gpu.find('ecc_errors/volatile'))
    agg_unc, agg_corr = _ecc_counts(gpu.find('ecc_errors/aggregate'))
    power_draw, power_limit = _power(gpu)
    link = gpu.find('pci/pci_gpu_link_info')
    return {
        'index': index,
        'minor_number': _num(gpu, 'minor_number'),
        'name': _text(gpu, 'product_name'),
        'architecture': _text(gpu, 'product_architecture'),
        'uuid': _text(gpu, 'uuid'),
        'pci_bus_id': _first(_text(gpu, 'pci/pci_bus_id'), _clean(gpu.get('id'))),
        'vbios_version': _text(gpu, 'vbios_version'),
        'memory_total_mib': _num(gpu, 'fb_memory_usage/total'),
        'memory_used_mib': _num(gpu, 'fb_memory_usage/used'),
        'persistence_mode': _bool(gpu, 'persistence_mode'),
        'performance_state': _text(gpu, 'performance_state'),
        'utilization_gpu_pct': _num(gpu, 'utilization/gpu_util'),
        'ecc_enabled': _bool(gpu, 'ecc_mode/current_ecc'),
        'ecc_pending_enabled': _bool(gpu, 'ecc_mode/pending_ecc'),
        'ecc_errors': {
            'volatile_uncorrectable': vol_unc,
            'volatile_correctable': vol_corr,
            'aggregate_uncorrectable': agg_unc,
            'aggregate_correctable': agg_corr,
        },
        'retired_pages': _retired_pages(gpu),
        'memory_repair_pending': _repair_pending(gpu),
        'remapped_rows': _remapped_rows(gpu),
        'temperature_c': _num(gpu, 'temperature/gpu_temp'),
        'memory_temperature_c': _num(gpu, 'temperature/memory_temp'),
        'power_draw_w': power_draw,
        'power_limit_w': power_limit,
        'pcie_link_gen_current': _num(link, 'pcie_gen/current_link_gen'),
        'pcie_link_gen_max': _num(link, 'pcie_gen/max_link_gen'),
        'pcie_link_gen_device_max': _num(link, 'pcie_gen/max_device_link_gen'),
        'pcie_link_width_current': _num(link, 'link_widths/current_link_width'),
        'pcie_link_width_max': _num(link, 'link_widths/max_link_width'),
        'mig_enabled': _bool(gpu, 'mig_mode/current_mig'),
        'mig_pending_enabled': _bool(gpu, 'mig_mode/pending_mig'),
        'mig_device_count': _mig_device_count(gpu),
        'fabric_state': _text(gpu, 'fabric/state'),
        'fabric_status': _text(gpu, 'fabric/status'),
        'fabric_clique_id': _text(gpu, 'fabric/cliqueId'),
        'fabric_cluster_uuid': _text(gpu, 'fabric/clusterUuid'),
        'fabric_health': _text(gpu, 'fabric/health/summary'),
    }


def parse_nvidia_smi_xml(text):
    """Parse ``nvidia-smi -q -x`` output (DTD v10 to v13) into a dict; raise GpuError if not XML."""
    if not text or not text.strip():
        raise GpuError('nvidia-smi printed no output')
    # The DOCTYPE names an external DTD that is never fetched; internal subsets are refused.
    body = _DOCTYPE.sub('', text, count=1)
    if '<!DOCTYPE' in body or '<!ENTITY' in body:
        raise GpuError('nvidia-smi output carries an unexpected DTD')
    try:
        root = ET.fromstring(body.strip())
    except ET.ParseError as exc:
        raise GpuError('nvidia-smi output is not valid XML: %s' % exc)
    if root.tag != 'nvidia_smi_log':
        raise GpuError('unexpected root element <%s>, expected <nvidia_smi_log>' % root.tag)
    gpus = [_parse_gpu(index, gpu) for index, gpu in enumerate(root.findall('gpu'))]
    return {
        'driver_version': _text(root, 'driver_version'),
        'cuda_version': _text(root, 'cuda_version'),
        'attached_gpus': _num(root, 'attached_gpus'),
        'gpus': gpus,
    }


def parse_systemctl_is_active(rc, stdout):
    """Return (active, state) from ``systemctl is-active``; (None, None) when it could not answer."""
    lines = (stdout or '').strip().splitlines()
    state = lines[0].strip() if lines else ''
    if state not in _SYSTEMD_STATES:
        return None, None
    return state == 'active', state


def build_gpu_facts(xml_text=None, smi_error=None, proc_version_text=None, fabric_manager=(None, None)):
    """Assemble the ``gpu`` facts from the probe outputs; never raises for a missing or broken GPU stack."""
    kernel = parse_proc_driver_version(proc_version_text)
    facts = {
        'driver_version': None,
        'cuda_version': None,
        'kernel_module_version': kernel['version'],
        'kernel_module_type': kernel['type'],
        'fabric_manager_active': fabric_manager[0],
        'fabric_manager_state': fabric_manager[1],
        'nvswitch_present': False,
        'gpu_count': 0,
        'gpus': [],
        'reason': None,
    }
    if smi_error is not None:
        facts['reason'] = smi_error
        return facts
    try:
        parsed = parse_nvidia_smi_xml(xml_text)
    except GpuError as exc:
        facts['reason'] = str(exc)
        return facts
    facts['driver_version'] = parsed['driver_version']
    facts['cuda_version'] = parsed['cuda_version']
    facts['gpus'] = parsed['gpus']
    facts['gpu_count'] = len(parsed['gpus'])
    facts['nvswitch_present'] = any(gpu['fabric_state'] is not None for gpu in parsed['gpus'])
    if not parsed['gpus']:
        facts['reason'] = 'nvidia-smi reported no GPUs'
    return facts


# ---------------------------------------------------------------- host probe

def _read_optional(path):
    try:
        with open(path, 'r') as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def _first_line(*texts):
    for text in texts:
        for line in (text or '').splitlines():
            if line.strip():
                return line.strip()
    return ''


def collect_gpu_facts(module, nvidia_smi_path='nvidia-smi', proc_version_path=None):
    """Run the probes on the managed host (one nvidia-smi call) and build the facts."""
    systemctl = module.get_bin_path('systemctl')
    fabric_manager = (None, None)
    if systemctl:
        rc, out, dummy = module.run_command([systemctl, 'is-active', FABRIC_MANAGER_UNIT])
        fabric_manager = parse_systemctl_is_active(rc, out)
    proc_text = _read_optional(proc_version_path or PROC_DRIVER_VERSION)

    if os.sep in nvidia_smi_path:
        smi = nvidia_smi_path if os.access(nvidia_smi_path, os.X_OK) else None
    else:
        smi = module.get_bin_path(nvidia_smi_path)
    if not smi:
        return build_gpu_facts(smi_error='%s not found' % nvidia_smi_path,
                               proc_version_text=proc_text, fabric_manager=fabric_manager)
    rc, out, err = module.run_command([smi, '-q', '-x'])
    if rc != 0:
        return build_gpu_facts(
            smi_error='%s -q -x failed (rc=%d): %s' % (smi, rc, _first_line(out, err) or 'no output'),
            proc_version_text=proc_text, fabric_manager=fabric_manager)
    return build_gpu_facts(xml_text=out, proc_version_text=proc_text, fabric_manager=fabric_manager)
