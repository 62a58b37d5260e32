# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The GPU stack version lock: one structure naming driver, Fabric Manager, CUDA and TensorRT,
checked for consistency before any host changes, and the package versions that follow from it."""

from __future__ import annotations

import re

from ansible_collections.onprem.deepseek.plugins.module_utils._gpu_facts import compare_versions, version_tuple

# CUDA toolkit release -> minimum Linux x86_64 driver: "Table 3 CUDA Toolkit and Corresponding
# Driver Versions" of NVIDIA's "CUDA Toolkit 13.2 Update 2 - Release Notes" (checked row by row).
CUDA_TOOLKIT_MIN_DRIVER = {
    '12.0.0': '525.60.13',
    '12.0.1': '525.85.12',
    '12.1.0': '530.30.02',
    '12.1.1': '530.30.02',
    '12.2.0': '535.54.03',
    '12.2.1': '535.86.09',
    '12.2.2': '535.104.05',
    '12.3.0': '545.23.06',
    '12.3.1': '545.23.08',
    '12.3.2': '545.23.08',
    '12.4.0': '550.54.14',
    '12.4.1': '550.54.15',
    '12.5.0': '555.42.02',
    '12.5.1': '555.42.06',
    '12.6.0': '560.28.03',
    '12.6.1': '560.35.03',
    '12.6.2': '560.35.03',
    '12.6.3': '560.35.05',
    '12.8.0': '570.26',
    '12.8.1': '570.124.06',
    '12.9.0': '575.51.03',
    '12.9.1': '575.57.08',
    '13.0.0': '580.65.06',
    '13.0.1': '580.82.07',
    '13.0.2': '580.95.05',
    '13.1.0': '590.44.01',
    '13.1.1': '590.48.01',
    '13.2.0': '595.45.04',
    '13.2.1': '595.58.03',
    '13.2.2': '595.71.05',
}

# CUDA major -> minimum driver for CUDA minor version compatibility (same release notes, "Table 2
# CUDA Toolkit and Minimum Required Driver Version for CUDA Minor Version Compatibility": 12.x
# >= 525, 13.x >= 580; here the first release of each branch, 525.60.13 being CUDA 12.0 GA's and
# 580.65.06 CUDA 13.0 GA's): an application built with any toolkit of that major runs on it, with
# the limits described there.
CUDA_MINOR_COMPAT_MIN_DRIVER = {
    '12': '525.60.13',
    '13': '580.65.06',
}

# From this branch on, NVIDIA's Debian/Ubuntu CUDA repositories name the Fabric Manager package
# without the branch suffix (nvidia-fabricmanager_580.65.06-1_amd64.deb in debian12/x86_64); up to
# R575 it is nvidia-fabricmanager-<branch> (nvidia-fabricmanager-575_575.57.08-1_amd64.deb).
FABRICMANAGER_UNSUFFIXED_FROM_BRANCH = 580

# DCGM 4 packages (datacenter-gpu-manager-4-core, -4-cuda<major>) carry epoch 1 in NVIDIA's Debian
# repositories; the exporter (datacenter-gpu-manager-exporter, packaged from DCGM 4 on) carries none.
# An exporter release is built against one DCGM release of the same major (its image tag names both:
# <dcgm>-<exporter>), so the lock names both and the two majors must agree.
DCGM_MAJORS = ('4',)
DCGM_CUDA_MAJORS = ('12', '13')
DCGM_EPOCH = '1'
DCGM_EXPORTER_PACKAGE = 'datacenter-gpu-manager-exporter'

LOCK_KEYS = ('driver', 'fabricmanager', 'cuda', 'tensorrt', 'dcgm', 'dcgm_exporter', 'package_revision',
             'cuda_compat')
COMPAT_MODES = ('toolkit', 'minor')

_DRIVER_RE = re.compile(r'^(\d{3})\.(\d{1,3})(?:\.(\d{1,3}))?$')
_CUDA_RE = re.compile(r'^(\d{2})\.(\d{1,2})(?:\.(\d{1,2}))?$')
# TensorRT Debian package versions look like 10.0.1.6-1+cuda12.4.
_TENSORRT_RE = re.compile(r'^(\d+)\.(\d+)\.(\d+)\.(\d+)-(\d+)\+cuda(\d{2})\.(\d{1,2})$')
_REVISION_RE = re.compile(r'^[0-9][0-9A-Za-z.+~]*$')
_DCGM_RE = re.compile(r'^(\d+)\.(\d+)\.(\d+)$')


class GpuStackError(Exception):
    """The lock is not a mapping of version strings."""


def normalize_cuda(version):
    """'12.4' -> '12.4.0'; None when not a CUDA version."""
    match = _CUDA_RE.match(str(version))
    if not match:
        return None
    return '%s.%s.%s' % (match.group(1), match.group(2), match.group(3) or '0')


def cuda_min_driver(cuda, compat='toolkit'):
    """Minimum driver for a CUDA release, or None when the release is not in the table."""
    full = normalize_cuda(cuda)
    if full is None:
        return None
    if compat == 'minor':
        return CUDA_MINOR_COMPAT_MIN_DRIVER.get(full.split('.')[0])
    return CUDA_TOOLKIT_MIN_DRIVER.get(full)


def fabricmanager_package(branch):
    if int(branch) >= FABRICMANAGER_UNSUFFIXED_FROM_BRANCH:
        return 'nvidia-fabricmanager'
    return 'nvidia-fabricmanager-%s' % branch


def _text(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise GpuStackError('gpu_stack_versions values must be version strings, got %r' % (value,))
    return str(value).strip() or None


def evaluate_lock(lock):
    """Check a lock for consistency and derive package names and versions.

    Returns a dict with ``valid`` (bool), ``problems`` (every inconsistency, one sentence each,
    naming the versions) and the derived values. Raises GpuStackError only when the lock is not
    a mapping at all.
    """
    if not isinstance(lock, dict):
        raise GpuStackError('gpu_stack_versions must be a mapping (driver, fabricmanager, cuda, tensorrt), '
                            'got %s' % type(lock).__name__)
    problems = []
    unknown = sorted(set(lock) - set(LOCK_KEYS))
    if unknown:
        problems.append('gpu_stack_versions has unknown key(s): %s (known: %s)'
                        % (', '.join(unknown), ', '.join(LOCK_KEYS)))

    driver = _text(lock.get('driver'))
    fabricmanager = _text(lock.get('fabricmanager'))
    cuda = _text(lock.get('cuda'))
    tensorrt = _text(lock.get('tensorrt'))
    revision = _text(lock.get('package_revision')) or '1'
    compat = _text(lock.get('cuda_compat')) or 'toolkit'

    result = dict(driver=driver, driver_branch=None, fabricmanager=fabricmanager or driver,
                  fabricmanager_package=None, cuda=None, cuda_package=None, cuda_min_driver=None,
                  cuda_compat=compat, tensorrt=tensorrt, tensorrt_cuda=None, dcgm=None, dcgm_packages=[],
                  dcgm_exporter=None, dcgm_exporter_package=None, deb_versions={}, rpm_versions={})

    if compat not in COMPAT_MODES:
        problems.append('gpu_stack_versions.cuda_compat is %s; it must be one of %s'
                        % (compat, ', '.join(COMPAT_MODES)))
        compat = 'toolkit'
    if not _REVISION_RE.match(revision):
        problems.append('gpu_stack_versions.package_revision %s is not a Debian revision' % revision)

    driver_ok = False
    if driver is None:
        problems.append('gpu_stack_versions.driver is not set (for example 550.54.15)')
    elif not _DRIVER_RE.match(driver):
        problems.append('gpu_stack_versions.driver %s is not a driver version such as 550.54.15' % driver)
    else:
        driver_ok = True
        branch = _DRIVER_RE.match(driver).group(1)
        result['driver_branch'] = branch
        result['fabricmanager_package'] = fabricmanager_package(branch)
        result['deb_versions']['driver'] = '%s-%s' % (driver, revision)
        result['deb_versions']['fabricmanager'] = '%s-%s' % (driver, revision)
        # An RPM's VERSION field: its release (1.el9) and epoch are the repository's own.
        result['rpm_versions']['driver'] = driver

    # Fabric Manager refuses to start unless its version is exactly the driver's.
    if fabricmanager is not None and driver is not None and fabricmanager != driver:
        problems.append('gpu_stack_versions.fabricmanager %s differs from driver %s: Fabric Manager must be '
                        'exactly the driver version' % (fabricmanager, driver))

    cuda_full = None
    if cuda is not None:
        cuda_full = normalize_cuda(cuda)
        if cuda_full is None:
            problems.append('gpu_stack_versions.cuda %s is not a CUDA version such as 12.4.1' % cuda)
        else:
            major, minor = cuda_full.split('.')[:2]
            result['cuda'] = cuda_full
            result['cuda_package'] = 'cuda-toolkit-%s-%s' % (major, minor)
            result['deb_versions']['cuda'] = '%s-%s' % (cuda_full, revision)
            need = cuda_min_driver(cuda_full, compat)
            result['cuda_min_driver'] = need
            if need is None:
                problems.append('no driver compatibility data for CUDA %s (known: %s); add it to the table in '
                                'plugins/module_utils/_gpu_stack.py from the CUDA release notes'
                                % (cuda_full, ', '.join(sorted(CUDA_TOOLKIT_MIN_DRIVER, key=version_tuple))))
            elif driver_ok and compare_versions(driver, need) < 0:
                problems.append('CUDA %s needs driver %s or newer%s; the lock has driver %s'
                                % (cuda_full, need, ' (minor version compatibility)' if compat == 'minor' else '',
                                   driver))

    if tensorrt is not None:
        match = _TENSORRT_RE.match(tensorrt)
        if not match:
            problems.append('gpu_stack_versions.tensorrt %s is not a TensorRT package version such as '
                            '10.0.1.6-1+cuda12.4' % tensorrt)
        else:
            built_for = '%s.%s' % (match.group(6), match.group(7))
            result['tensorrt_cuda'] = built_for
            result['deb_versions']['tensorrt'] = tensorrt
            if cuda_full is None:
                if cuda is None:
                    problems.append('gpu_stack_versions.tensorrt %s needs gpu_stack_versions.cuda' % tensorrt)
            else:
                major, minor = cuda_full.split('.')[:2]
                if match.group(6) != major:
                    problems.append('TensorRT %s is built for CUDA %s, but the lock has CUDA %s (another major)'
                                    % (tensorrt, built_for, cuda_full))
                elif int(match.group(7)) > int(minor):
                    problems.append('TensorRT %s is built for CUDA %s, newer than the lock\'s CUDA %s'
                                    % (tensorrt, built_for, cuda_full))
            need = cuda_min_driver(built_for, compat)
            if need is not None and driver_ok and compare_versions(driver, need) < 0:
                problems.append('TensorRT %s (built for CUDA %s) needs driver %s or newer; the lock has driver %s'
                                % (tensorrt, built_for, need, driver))

    _evaluate_dcgm(lock, result, problems, cuda_full, revision)
    result['problems'] = problems
    result['valid'] = not problems
    return result


def _evaluate_dcgm(lock, result, problems, cuda_full, revision):
    """DCGM and its Prometheus exporter: packages and versions, or the problems with them."""
    dcgm = _text(lock.get('dcgm'))
    exporter = _text(lock.get('dcgm_exporter'))
    dcgm_major = None
    if dcgm is not None:
        match = _DCGM_RE.match(dcgm)
        if not match:
            problems.append('gpu_stack_versions.dcgm %s is not a DCGM version such as 4.5.3' % dcgm)
        elif match.group(1) not in DCGM_MAJORS:
            problems.append('gpu_stack_versions.dcgm %s: only DCGM %s is supported (its packages are named '
                            'datacenter-gpu-manager-<major>-...)' % (dcgm, ', '.join(DCGM_MAJORS)))
        elif cuda_full is None:
            problems.append('gpu_stack_versions.dcgm %s needs gpu_stack_versions.cuda: its CUDA part '
                            '(datacenter-gpu-manager-%s-cuda<major>) follows the CUDA major' % (dcgm, match.group(1)))
        elif cuda_full.split('.')[0] not in DCGM_CUDA_MAJORS:
            problems.append('gpu_stack_versions.dcgm %s has no package for CUDA %s (known: CUDA %s)'
                            % (dcgm, cuda_full, ', '.join(DCGM_CUDA_MAJORS)))
        else:
            dcgm_major = match.group(1)
            result['dcgm'] = dcgm
            result['dcgm_packages'] = ['datacenter-gpu-manager-%s-core' % dcgm_major,
                                       'datacenter-gpu-manager-%s-cuda%s' % (dcgm_major, cuda_full.split('.')[0])]
            result['deb_versions']['dcgm'] = '%s:%s-%s' % (DCGM_EPOCH, dcgm, revision)
    if exporter is None:
        return
    match = _DCGM_RE.match(exporter)
    if not match:
        problems.append('gpu_stack_versions.dcgm_exporter %s is not an exporter version such as 4.8.2' % exporter)
    elif dcgm is None:
        problems.append('gpu_stack_versions.dcgm_exporter %s needs gpu_stack_versions.dcgm (the DCGM release it '
                        'was built against)' % exporter)
    elif dcgm_major is not None and match.group(1) != dcgm_major:
        problems.append('gpu_stack_versions.dcgm_exporter %s is built against DCGM %s.x, but the lock has DCGM %s'
                        % (exporter, match.group(1), dcgm))
    elif dcgm_major is not None:
        result['dcgm_exporter'] = exporter
        result['dcgm_exporter_package'] = DCGM_EXPORTER_PACKAGE
        result['deb_versions']['dcgm_exporter'] = '%s-%s' % (exporter, revision)
