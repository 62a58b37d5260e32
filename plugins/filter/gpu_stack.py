# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: gpu_stack
short_description: Check a GPU stack version lock and derive its package versions
version_added: 0.1.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - Takes the collection's single version lock (C(gpu_stack_versions)), which names the NVIDIA driver,
    Fabric Manager, CUDA toolkit and TensorRT versions together, and checks that they fit each other.
  - "Checks: Fabric Manager is exactly the driver version; the driver is at least the minimum that the
    CUDA release needs (the table of NVIDIA's CUDA Toolkit release notes, or the minor version compatibility
    minimum when O(_input.cuda_compat=minor)); TensorRT is built for the same CUDA major and not for a newer
    CUDA minor than the lock's, and its CUDA's minimum driver is met."
  - Never raises on an inconsistent lock; RV(_value.problems) lists every problem, naming the versions, so a
    playbook can assert on it before any host changes. Raises only when the input is not a mapping.
  - See C(docs/gpu-stack.md) for example locks.
positional: _input
options:
  _input:
    description:
      - "The lock: C(driver) (for example V(550.54.15), required), C(fabricmanager) (defaults to the driver
        version), C(cuda) (for example V(12.4.1)), C(tensorrt) (the Debian package version, for example
        V(10.0.1.6-1+cuda12.4)), C(dcgm) (NVIDIA DCGM, for example V(4.5.3); needs C(cuda)),
        C(dcgm_exporter) (the DCGM exporter built against that DCGM, for example V(4.8.2)),
        C(package_revision) (Debian revision of the driver, CUDA and DCGM packages, default V(1)) and
        C(cuda_compat) (V(toolkit), the default, or V(minor))."
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Refuse an inconsistent lock before any host changes
  ansible.builtin.assert:
    that: (gpu_stack_versions | onprem.deepseek.gpu_stack).valid
    fail_msg: "{{ (gpu_stack_versions | onprem.deepseek.gpu_stack).problems }}"
  vars:
    gpu_stack_versions:
      driver: "550.54.15"
      cuda: "12.4.1"
      tensorrt: "10.0.1.6-1+cuda12.4"

- name: Install the driver's Fabric Manager package
  ansible.builtin.apt:
    name: "{{ stack.fabricmanager_package }}={{ stack.deb_versions.fabricmanager }}"
  vars:
    stack: "{{ gpu_stack_versions | onprem.deepseek.gpu_stack }}"
"""

RETURN = r"""
_value:
  description: The check result and the values derived from the lock.
  type: dict
  contains:
    valid:
      description: Whether the lock is consistent.
      type: bool
      sample: false
    problems:
      description: Every inconsistency, one sentence each.
      type: list
      elements: str
      sample: ["CUDA 12.4.1 needs driver 550.54.15 or newer; the lock has driver 535.161.08"]
    driver:
      description: The driver version.
      type: str
      sample: "550.54.15"
    driver_branch:
      description: The driver branch (first part of the version).
      type: str
      sample: "550"
    fabricmanager:
      description: The Fabric Manager version.
      type: str
      sample: "550.54.15"
    fabricmanager_package:
      description: Name of the Fabric Manager package in NVIDIA's Debian repository for this branch.
      type: str
      sample: nvidia-fabricmanager-550
    cuda:
      description: The CUDA release as major.minor.patch, or V(null) when the lock has none.
      type: str
      sample: "12.4.1"
    cuda_package:
      description: Name of the CUDA toolkit package.
      type: str
      sample: cuda-toolkit-12-4
    cuda_min_driver:
      description: The minimum driver for the CUDA release, or V(null) when unknown.
      type: str
      sample: "550.54.15"
    cuda_compat:
      description: Which minimum applied, V(toolkit) or V(minor).
      type: str
      sample: toolkit
    tensorrt:
      description: The TensorRT package version.
      type: str
      sample: "10.0.1.6-1+cuda12.4"
    tensorrt_cuda:
      description: The CUDA release TensorRT was built for.
      type: str
      sample: "12.4"
    dcgm:
      description: The DCGM release, or V(null) when the lock has none.
      type: str
      sample: "4.5.3"
    dcgm_packages:
      description: The DCGM packages, all at the version C(deb_versions.dcgm); empty without C(dcgm).
      type: list
      elements: str
      sample: [datacenter-gpu-manager-4-core, datacenter-gpu-manager-4-cuda12]
    dcgm_exporter:
      description: The DCGM exporter release, or V(null) when the lock has none.
      type: str
      sample: "4.8.2"
    dcgm_exporter_package:
      description: Name of the DCGM exporter package, or V(null) without C(dcgm_exporter).
      type: str
      sample: datacenter-gpu-manager-exporter
    deb_versions:
      description: Debian package versions to pin, per component.
      type: dict
      sample: {driver: "550.54.15-1", fabricmanager: "550.54.15-1", cuda: "12.4.1-1", tensorrt: "10.0.1.6-1+cuda12.4",
               dcgm: "1:4.5.3-1", dcgm_exporter: "4.8.2-1"}
    rpm_versions:
      description:
        - The RPM C(VERSION) field the driver packages carry on RHEL, compared with C(rpm -q --qf %{VERSION}).
        - The release (for example C(1.el9)) and the epoch are the repository's own.
      type: dict
      sample: {driver: "550.54.15"}
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.module_utils._gpu_stack import (
    GpuStackError,
    evaluate_lock,
)


def gpu_stack(lock):
    try:
        return evaluate_lock(lock)
    except GpuStackError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {'gpu_stack': gpu_stack}
