# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.filter.gpu_stack import FilterModule
from ansible_collections.onprem.deepseek.plugins.module_utils._gpu_stack import (
    GpuStackError,
    compare_versions,
    cuda_min_driver,
    evaluate_lock,
    fabricmanager_package,
    normalize_cuda,
)

gpu_stack = FilterModule().filters()['gpu_stack']

# The example locks of docs/gpu-stack.md.
LOCK_535 = {'driver': '535.161.08', 'cuda': '12.2.2', 'tensorrt': '8.6.1.6-1+cuda12.0'}
LOCK_550 = {'driver': '550.54.15', 'fabricmanager': '550.54.15', 'cuda': '12.4.1',
            'tensorrt': '10.0.1.6-1+cuda12.4'}
LOCK_580 = {'driver': '580.95.05', 'cuda': '13.0.2', 'tensorrt': '10.13.3.9-1+cuda13.0'}


@pytest.mark.parametrize('lock', [LOCK_535, LOCK_550, LOCK_580])
def test_documented_locks_are_valid(lock):
    result = gpu_stack(lock)
    assert result['problems'] == []
    assert result['valid'] is True


def test_derived_values_535():
    result = evaluate_lock(LOCK_535)
    assert result['driver_branch'] == '535'
    assert result['fabricmanager'] == '535.161.08'
    assert result['fabricmanager_package'] == 'nvidia-fabricmanager-535'
    assert result['cuda'] == '12.2.2'
    assert result['cuda_package'] == 'cuda-toolkit-12-2'
    assert result['cuda_min_driver'] == '535.104.05'
    assert result['tensorrt_cuda'] == '12.0'
    assert result['deb_versions'] == {'driver': '535.161.08-1', 'fabricmanager': '535.161.08-1',
                                      'cuda': '12.2.2-1', 'tensorrt': '8.6.1.6-1+cuda12.0'}


def test_derived_values_580_unsuffixed_fabricmanager():
    result = evaluate_lock(dict(LOCK_580, package_revision='0ubuntu1'))
    assert result['fabricmanager_package'] == 'nvidia-fabricmanager'
    assert result['cuda_package'] == 'cuda-toolkit-13-0'
    assert result['deb_versions']['driver'] == '580.95.05-0ubuntu1'
    # The Debian revision is not part of an RPM's VERSION.
    assert result['rpm_versions'] == {'driver': '580.95.05'}


def test_cuda_needing_newer_driver_names_both_versions():
    result = evaluate_lock({'driver': '535.161.08', 'cuda': '12.4.1'})
    assert result['valid'] is False
    assert result['problems'] == ['CUDA 12.4.1 needs driver 550.54.15 or newer; the lock has driver 535.161.08']


def test_cuda_13_1_needs_the_r590_driver():
    assert evaluate_lock({'driver': '590.48.01', 'cuda': '13.1.1'})['valid'] is True
    result = evaluate_lock({'driver': '580.95.05', 'cuda': '13.1.0'})
    assert result['problems'] == ['CUDA 13.1.0 needs driver 590.44.01 or newer; the lock has driver 580.95.05']
    assert evaluate_lock({'driver': '580.95.05', 'cuda': '13.1.0', 'cuda_compat': 'minor'})['valid'] is True


def test_minor_version_compatibility_lowers_the_minimum():
    result = evaluate_lock({'driver': '535.161.08', 'cuda': '12.4.1', 'cuda_compat': 'minor'})
    assert result['valid'] is True
    assert result['cuda_min_driver'] == '525.60.13'
    result = evaluate_lock({'driver': '570.124.06', 'cuda': '13.0.2', 'cuda_compat': 'minor'})
    assert result['problems'] == [
        'CUDA 13.0.2 needs driver 580.65.06 or newer (minor version compatibility); the lock has driver 570.124.06']


def test_fabricmanager_must_equal_driver():
    result = evaluate_lock({'driver': '550.54.15', 'fabricmanager': '550.54.14'})
    assert result['problems'] == [
        'gpu_stack_versions.fabricmanager 550.54.14 differs from driver 550.54.15: '
        'Fabric Manager must be exactly the driver version']


def test_tensorrt_for_other_major_and_newer_minor():
    result = evaluate_lock({'driver': '580.95.05', 'cuda': '13.0.2', 'tensorrt': '10.0.1.6-1+cuda12.4'})
    assert result['problems'] == [
        'TensorRT 10.0.1.6-1+cuda12.4 is built for CUDA 12.4, but the lock has CUDA 13.0.2 (another major)']
    result = evaluate_lock({'driver': '550.54.15', 'cuda': '12.2.2', 'tensorrt': '10.0.1.6-1+cuda12.4'})
    assert result['problems'] == [
        "TensorRT 10.0.1.6-1+cuda12.4 is built for CUDA 12.4, newer than the lock's CUDA 12.2.2"]


def test_tensorrt_needs_cuda():
    result = evaluate_lock({'driver': '550.54.15', 'tensorrt': '10.0.1.6-1+cuda12.4'})
    assert result['problems'] == ['gpu_stack_versions.tensorrt 10.0.1.6-1+cuda12.4 needs gpu_stack_versions.cuda']


def test_every_problem_is_listed_at_once():
    result = evaluate_lock({'driver': '535.161.08', 'fabricmanager': '550.54.15', 'cuda': '12.4.1',
                            'tensorrt': 'latest', 'dcgmi': '3.3', 'cuda_compat': 'loose'})
    assert len(result['problems']) == 5
    assert result['problems'][0].startswith('gpu_stack_versions has unknown key(s): dcgmi')
    assert 'cuda_compat is loose' in result['problems'][1]
    assert 'fabricmanager 550.54.15 differs from driver 535.161.08' in result['problems'][2]
    assert 'CUDA 12.4.1 needs driver 550.54.15' in result['problems'][3]
    assert 'tensorrt latest is not a TensorRT package version' in result['problems'][4]


def test_malformed_and_unknown_versions():
    result = evaluate_lock({'driver': '550', 'cuda': '12.7'})
    assert result['problems'][0] == 'gpu_stack_versions.driver 550 is not a driver version such as 550.54.15'
    assert result['problems'][1].startswith('no driver compatibility data for CUDA 12.7.0 (known: 12.0.0, 12.0.1,')
    assert evaluate_lock({})['problems'] == ['gpu_stack_versions.driver is not set (for example 550.54.15)']


def test_not_a_mapping_raises_a_filter_error():
    with pytest.raises(AnsibleFilterError, match='must be a mapping'):
        gpu_stack(['550.54.15'])
    with pytest.raises(AnsibleFilterError, match='version strings'):
        gpu_stack({'driver': ['550.54.15']})


def test_helpers():
    assert normalize_cuda('12.4') == '12.4.0'
    assert normalize_cuda('twelve') is None
    assert cuda_min_driver('12.8') == '570.26'
    assert cuda_min_driver('12.8.1') == '570.124.06'
    assert cuda_min_driver('11.8.0') is None
    # Rows of Table 3 of the CUDA 13.2 Update 2 release notes, including the 13.1 and 13.2 releases.
    assert cuda_min_driver('12.2.2') == '535.104.05'
    assert cuda_min_driver('13.0.2') == '580.95.05'
    assert cuda_min_driver('13.1') == '590.44.01'
    assert cuda_min_driver('13.1.1') == '590.48.01'
    assert cuda_min_driver('13.2.2') == '595.71.05'
    assert cuda_min_driver('13.2.1', 'minor') == '580.65.06'
    assert cuda_min_driver('12.9.1', 'minor') == '525.60.13'
    assert compare_versions('570.26', '570.26.0') == 0
    assert compare_versions('535.161.08', '535.104.05') == 1
    assert fabricmanager_package('570') == 'nvidia-fabricmanager-570'
    assert fabricmanager_package('575') == 'nvidia-fabricmanager-575'
    assert fabricmanager_package('580') == 'nvidia-fabricmanager'
    assert fabricmanager_package('595') == 'nvidia-fabricmanager'


@pytest.mark.parametrize('driver, valid', [
    ('570.26', False),      # 12.8.0's minimum; as strings '570.26' > '570.124.06'
    ('570.124.05', False),
    ('570.124.06', True),   # the table's minimum for 12.8.1 is enough
    ('575.51.03', True),
])
def test_cuda_minimum_driver_is_compared_numerically(driver, valid):
    result = evaluate_lock({'driver': driver, 'cuda': '12.8.1'})
    assert result['valid'] is valid
    if not valid:
        assert result['problems'] == [
            'CUDA 12.8.1 needs driver 570.124.06 or newer; the lock has driver %s' % driver]


@pytest.mark.parametrize('tensorrt_cuda, problem', [
    ('12.4', None),      # built for the lock's own CUDA minor
    ('12.3', None),      # an older minor of the same major
    ('12.5', "TensorRT 10.0.1.6-1+cuda12.5 is built for CUDA 12.5, newer than the lock's CUDA 12.4.1"),
])
def test_tensorrt_cuda_minor_boundary(tensorrt_cuda, problem):
    result = evaluate_lock({'driver': '550.54.15', 'cuda': '12.4.1', 'tensorrt': '10.0.1.6-1+cuda' + tensorrt_cuda})
    assert [p for p in result['problems'] if 'newer than' in p] == ([problem] if problem else [])


@pytest.mark.parametrize('driver, problems', [
    ('555.42.01', ['CUDA 12.5.0 needs driver 555.42.02 or newer; the lock has driver 555.42.01',
                   'TensorRT 10.3.0.26-1+cuda12.5 (built for CUDA 12.5) needs driver 555.42.02 or newer; '
                   'the lock has driver 555.42.01']),
    ('555.42.02', []),
])
def test_tensorrt_minimum_driver_boundary(driver, problems):
    result = evaluate_lock({'driver': driver, 'cuda': '12.5.0', 'tensorrt': '10.3.0.26-1+cuda12.5'})
    assert result['problems'] == problems


def test_fabricmanager_package_name_changes_at_r580():
    assert fabricmanager_package('579') == 'nvidia-fabricmanager-579'
    assert fabricmanager_package('580') == 'nvidia-fabricmanager'


def test_every_derived_value_of_a_full_lock():
    assert evaluate_lock(LOCK_550) == {
        'driver': '550.54.15', 'driver_branch': '550', 'fabricmanager': '550.54.15',
        'fabricmanager_package': 'nvidia-fabricmanager-550',
        'cuda': '12.4.1', 'cuda_package': 'cuda-toolkit-12-4', 'cuda_min_driver': '550.54.15', 'cuda_compat': 'toolkit',
        'tensorrt': '10.0.1.6-1+cuda12.4', 'tensorrt_cuda': '12.4',
        'dcgm': None, 'dcgm_packages': [], 'dcgm_exporter': None, 'dcgm_exporter_package': None,
        'deb_versions': {'driver': '550.54.15-1', 'fabricmanager': '550.54.15-1', 'cuda': '12.4.1-1',
                         'tensorrt': '10.0.1.6-1+cuda12.4'},
        'rpm_versions': {'driver': '550.54.15'},
        'problems': [], 'valid': True,
    }


def test_malformed_values_are_each_named_and_derive_nothing():
    result = evaluate_lock({'driver': 'abc', 'cuda': '12.x', 'package_revision': '-1', 'cuda_compat': 'loose',
                            'dcgmi': '3', 'zeta': 1})
    assert result['problems'] == [
        'gpu_stack_versions has unknown key(s): dcgmi, zeta (known: driver, fabricmanager, cuda, tensorrt, '
        'dcgm, dcgm_exporter, package_revision, cuda_compat)',
        'gpu_stack_versions.cuda_compat is loose; it must be one of toolkit, minor',
        'gpu_stack_versions.package_revision -1 is not a Debian revision',
        'gpu_stack_versions.driver abc is not a driver version such as 550.54.15',
        'gpu_stack_versions.cuda 12.x is not a CUDA version such as 12.4.1',
    ]
    assert (result['driver_branch'], result['fabricmanager_package'], result['cuda'], result['deb_versions'],
            result['rpm_versions']) == (None, None, None, {}, {})


def test_malformed_driver_is_not_compared_with_cuda_minimum():
    assert evaluate_lock({'driver': 'abc', 'cuda': '12.4.1'})['problems'] == [
        'gpu_stack_versions.driver abc is not a driver version such as 550.54.15']


def test_unknown_compat_mode_is_judged_as_toolkit():
    assert evaluate_lock({'driver': '535.161.08', 'cuda': '12.4.1', 'cuda_compat': 'loose'})['problems'] == [
        'gpu_stack_versions.cuda_compat is loose; it must be one of toolkit, minor',
        'CUDA 12.4.1 needs driver 550.54.15 or newer; the lock has driver 535.161.08']


def test_package_revision_goes_into_every_package_version():
    result = evaluate_lock({'driver': '550.54.15', 'cuda': '12.4.1', 'package_revision': '0ubuntu1'})
    assert result['deb_versions'] == {'driver': '550.54.15-0ubuntu1', 'fabricmanager': '550.54.15-0ubuntu1',
                                      'cuda': '12.4.1-0ubuntu1'}


def test_error_messages_name_what_was_given():
    with pytest.raises(GpuStackError, match=r'^gpu_stack_versions must be a mapping \(driver, fabricmanager, cuda, '
                                            r'tensorrt\), got list$'):
        evaluate_lock(['550.54.15'])
    with pytest.raises(GpuStackError, match=r"^gpu_stack_versions values must be version strings, got \[1\]$"):
        evaluate_lock({'driver': [1]})


# --- DCGM and its exporter --------------------------------------------------------------------

LOCK_DCGM = dict(LOCK_535, dcgm='4.5.3', dcgm_exporter='4.8.2')


def test_dcgm_and_its_exporter_join_the_lock():
    result = evaluate_lock(LOCK_DCGM)
    assert result['problems'] == []
    assert result['dcgm'] == '4.5.3' and result['dcgm_exporter'] == '4.8.2'
    assert result['dcgm_packages'] == ['datacenter-gpu-manager-4-core', 'datacenter-gpu-manager-4-cuda12']
    assert result['dcgm_exporter_package'] == 'datacenter-gpu-manager-exporter'
    assert result['deb_versions']['dcgm'] == '1:4.5.3-1'
    assert result['deb_versions']['dcgm_exporter'] == '4.8.2-1'


def test_dcgm_follows_the_cuda_major_and_the_package_revision():
    result = evaluate_lock(dict(LOCK_580, dcgm='4.5.3', dcgm_exporter='4.8.2', package_revision='2'))
    assert result['problems'] == []
    assert result['dcgm_packages'] == ['datacenter-gpu-manager-4-core', 'datacenter-gpu-manager-4-cuda13']
    assert result['deb_versions']['dcgm'] == '1:4.5.3-2'
    assert result['deb_versions']['dcgm_exporter'] == '4.8.2-2'


def test_dcgm_alone_is_valid_without_an_exporter():
    result = evaluate_lock(dict(LOCK_535, dcgm='4.5.3'))
    assert result['problems'] == []
    assert result['dcgm_exporter'] is None and result['dcgm_exporter_package'] is None
    assert 'dcgm_exporter' not in result['deb_versions']


@pytest.mark.parametrize('lock, problem', [
    (dict(LOCK_535, dcgm='4.5'), 'gpu_stack_versions.dcgm 4.5 is not a DCGM version such as 4.5.3'),
    (dict(LOCK_535, dcgm='4.5.3.1'), 'gpu_stack_versions.dcgm 4.5.3.1 is not a DCGM version such as 4.5.3'),
    (dict(LOCK_535, dcgm='3.3.5'), 'gpu_stack_versions.dcgm 3.3.5: only DCGM 4 is supported (its packages are named '
                                   'datacenter-gpu-manager-<major>-...)'),
    (dict(LOCK_535, dcgm='5.0.0'), 'gpu_stack_versions.dcgm 5.0.0: only DCGM 4 is supported (its packages are named '
                                   'datacenter-gpu-manager-<major>-...)'),
    ({'driver': '550.54.15', 'dcgm': '4.5.3'}, 'gpu_stack_versions.dcgm 4.5.3 needs gpu_stack_versions.cuda: its CUDA '
                                               'part (datacenter-gpu-manager-4-cuda<major>) follows the CUDA major'),
    (dict(LOCK_535, dcgm_exporter='4.8.2'), 'gpu_stack_versions.dcgm_exporter 4.8.2 needs gpu_stack_versions.dcgm (the '
                                            'DCGM release it was built against)'),
    (dict(LOCK_535, dcgm='4.5.3', dcgm_exporter='3.4.1'),
     'gpu_stack_versions.dcgm_exporter 3.4.1 is built against DCGM 3.x, but the lock has DCGM 4.5.3'),
    (dict(LOCK_535, dcgm='4.5.3', dcgm_exporter='latest'),
     'gpu_stack_versions.dcgm_exporter latest is not an exporter version such as 4.8.2'),
    # An exporter with a DCGM that is itself refused: only the DCGM's problem, and nothing installed.
    (dict(LOCK_535, dcgm='4.5', dcgm_exporter='4.8.2'), 'gpu_stack_versions.dcgm 4.5 is not a DCGM version such as 4.5.3'),
])
def test_a_dcgm_problem_is_named_and_installs_nothing(lock, problem):
    result = evaluate_lock(lock)
    assert result['problems'] == [problem]
    assert result['dcgm_exporter_package'] is None
    assert 'dcgm_exporter' not in result['deb_versions']


def test_dcgm_needs_a_cuda_major_it_is_built_for():
    result = evaluate_lock({'driver': '535.161.08', 'cuda': '11.8.0', 'dcgm': '4.5.3'})
    assert any(p.startswith('gpu_stack_versions.dcgm 4.5.3 has no package for CUDA 11.8.0 (known: CUDA 12, 13)')
               for p in result['problems']), result['problems']
    assert result['dcgm_packages'] == [] and 'dcgm' not in result['deb_versions']


def test_a_driver_only_lock_names_every_derived_value_none():
    result = evaluate_lock({'driver': '550.54.15'})
    assert result['problems'] == []
    assert {k: result[k] for k in ('cuda', 'cuda_package', 'cuda_min_driver', 'tensorrt', 'tensorrt_cuda', 'dcgm',
                                   'dcgm_exporter', 'dcgm_exporter_package')} == dict.fromkeys(
        ('cuda', 'cuda_package', 'cuda_min_driver', 'tensorrt', 'tensorrt_cuda', 'dcgm', 'dcgm_exporter',
         'dcgm_exporter_package'))
    assert result['dcgm_packages'] == []
