# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The package cache of the STAND-IN NVIDIA repository builder (tests/fixtures/nvidia_repo/build_repo.py):
a package is kept by its control file and the files it packs, so builds that differ elsewhere share
it, and any change to what the package holds is a new entry."""
from __future__ import annotations

import importlib.util
import os

import pytest

from playbook_runs import ROOT


def _load():
    spec = importlib.util.spec_from_file_location('stand_in_build_repo_cache', ROOT / 'tests' / 'fixtures' / 'nvidia_repo' / 'build_repo.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD = _load()
PKG = dict(name='nvidia-smi', version='535.161.08-1', files=[('nvidia-smi', '/usr/bin/')])


def work_dir(path, smi='#!/bin/sh\necho 535.161.08\n', mode=0o755, others=None):
    path.mkdir()
    (path / 'nvidia-smi').write_text(smi)
    os.chmod(path / 'nvidia-smi', mode)
    for name, text in (others or {}).items():
        (path / name).write_text(text)
    ctl = path / 'nvidia-smi.ctl'
    ctl.write_text(BUILD.control(PKG))
    return ctl


def key(path, **kwargs):
    return BUILD._cache_key(work_dir(path, **kwargs), path, PKG)


def test_files_the_package_does_not_pack_leave_its_key_alone(tmp_path):
    # A DCGM build, or another driver's module loader, beside it: the same nvidia-smi package.
    assert key(tmp_path / 'a') == key(tmp_path / 'b', others={'dcgm-exporter': 'x', 'version.json': '{}'})


@pytest.mark.parametrize('change', [{'smi': '#!/bin/sh\necho 535.183.01\n'}, {'mode': 0o644}])
def test_the_content_or_mode_of_a_packed_file_changes_its_key(tmp_path, change):
    assert key(tmp_path / 'a') != key(tmp_path / 'b', **change)


def test_the_control_file_is_part_of_the_key(tmp_path):
    ctl = work_dir(tmp_path / 'a')
    before = BUILD._cache_key(ctl, tmp_path / 'a', PKG)
    ctl.write_text(BUILD.control(dict(PKG, version='535.183.01-1')))
    assert BUILD._cache_key(ctl, tmp_path / 'a', PKG) != before


def test_a_package_without_files_is_kept_by_its_control_file(tmp_path):
    pkg = dict(name='libnvinfer8', version='8.6.1.6-1+cuda12.0')
    ctl = tmp_path / 'libnvinfer8.ctl'
    ctl.write_text(BUILD.control(pkg))
    assert BUILD._cache_key(ctl, tmp_path, pkg) == BUILD._cache_key(ctl, tmp_path / 'elsewhere', pkg)


def test_an_entry_is_stored_once_and_copied_back(tmp_path, monkeypatch):
    monkeypatch.setattr(BUILD, 'DEB_CACHE', str(tmp_path / 'cache'))
    built, other = tmp_path / 'built', tmp_path / 'other'
    built.mkdir()
    other.mkdir()
    assert not BUILD._from_cache('k1', other)
    (built / 'nvidia-smi_535.161.08-1_amd64.deb').write_bytes(b'deb')
    BUILD._to_cache('nvidia-smi', 'k1', built)
    (built / 'nvidia-smi_535.161.08-1_amd64.deb').write_bytes(b'another build')
    BUILD._to_cache('nvidia-smi', 'k1', built)  # an entry is never replaced
    assert BUILD._from_cache('k1', other)
    assert (other / 'nvidia-smi_535.161.08-1_amd64.deb').read_bytes() == b'deb'
