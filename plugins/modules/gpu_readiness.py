#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_readiness
short_description: Check that a GPU node is ready to serve inference
version_added: 0.1.0
description:
  - Gathers the same facts as M(onprem.deepseek.gpu_facts) (one C(nvidia-smi -q -x) call) and evaluates a readiness
    policy against them.
  - Returns every check for every GPU, so an operator sees all problems of a node at once.
  - "Checks: GPU count, model, minimum driver version, kernel module version equal to the user-space driver,
    memory size, persistence mode, ECC enabled with zero volatile uncorrectable errors, no pending row remap,
    row remap failure or pending page retirement, PCIe link width and generation, temperature, and on NVSwitch
    systems the GPU fabric state and the Fabric Manager service."
author:
  - onprem.deepseek contributors (!UNKNOWN)
extends_documentation_fragment:
  - onprem.deepseek.attributes
  - onprem.deepseek.attributes.read_only
  - onprem.deepseek.nvidia_smi
options:
  expected_count:
    description:
      - Number of GPUs the node must have.
      - When not set, the node must have at least one GPU; a node without GPUs is reported as not ready.
      - Set V(0) for a CPU-only node; it is then ready when no GPU is found.
    type: int
  expected_model:
    description:
      - Substring every GPU name must contain (case-insensitive), for example V(H100) or V(H200).
    type: str
  min_driver_version:
    description:
      - Minimum user-space driver version, compared numerically per dotted part.
    type: str
  min_memory_mib:
    description:
      - Minimum total memory per GPU in MiB.
    type: int
  require_persistence_mode:
    description:
      - Require persistence mode on every GPU.
    type: bool
    default: true
  require_ecc:
    description:
      - Require ECC to be enabled on every GPU.
      - Volatile uncorrectable ECC errors fail the C(ecc) check even when this is V(false).
    type: bool
    default: true
  max_temperature_c:
    description:
      - Highest acceptable GPU core temperature in degrees Celsius.
    type: int
    default: 85
  require_fabric:
    description:
      - Require the NVSwitch fabric (GPU fabric state C(Completed) with status C(Success)) and an active
        C(nvidia-fabricmanager) service.
      - When not set, this is required when any GPU reports a fabric state, that is on NVSwitch systems.
    type: bool
  allow_degraded_pcie:
    description:
      - Accept a PCIe link below its maximum width or generation; the check still reports it.
    type: bool
    default: false
  require_kernel_module_match:
    description:
      - Require the loaded kernel module version to equal the user-space driver version.
    type: bool
    default: true
  fail_on_not_ready:
    description:
      - Fail the task when any check fails, with a message that lists every failed check.
      - When V(false), the task succeeds and RV(ready) tells the result.
    type: bool
    default: true
notes:
  - PCIe policy. A link width below the maximum always fails (unless O(allow_degraded_pcie)). A link generation
    below the maximum fails only while the GPU is busy (utilization above 0% or performance state P0), because idle
    links downshift their generation to save power; an idle downshift passes and the check detail says so. A host or
    slot that caps the link below the GPU's own maximum generation fails whether the GPU is busy or idle, because
    both maximums are capabilities that do not change with load.
  - The Fabric Manager check fails when C(systemctl) cannot tell the service state, for example in a container.
  - Row remapping (Ampere and later) and page retirement (older GPUs) are reported as not available while MIG is
    enabled on some drivers; the C(memory_repair) check then passes and says so.
seealso:
  - module: onprem.deepseek.gpu_facts
"""

EXAMPLES = r"""
- name: Check an HGX H100 node
  onprem.deepseek.gpu_readiness:
    expected_count: 8
    expected_model: H100
    min_driver_version: "535.161"
    min_memory_mib: 80000

- name: Report readiness without failing
  onprem.deepseek.gpu_readiness:
    expected_count: 8
    fail_on_not_ready: false
  register: gpu_ready

- name: Show the failed checks
  ansible.builtin.debug:
    msg: "{{ gpu_ready.checks | rejectattr('passed') | list }}"

- name: A CPU-only node is ready without GPUs
  onprem.deepseek.gpu_readiness:
    expected_count: 0
"""

RETURN = r"""
ready:
  description: Whether every check passed.
  returned: always
  type: bool
  sample: false
checks:
  description: Every check that ran; host-wide checks have RV(checks[].gpu=null).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Check name.
      returned: always
      type: str
      sample: ecc
    gpu:
      description: GPU index the check is about, or V(null) for host-wide checks.
      returned: always
      type: int
      sample: 3
    passed:
      description: Whether the check passed.
      returned: always
      type: bool
      sample: false
    detail:
      description: What was found and what was expected.
      returned: always
      type: str
      sample: "ECC enabled; volatile uncorrectable 2, aggregate uncorrectable 2"
  sample:
    - name: gpu_count
      gpu: null
      passed: true
      detail: "found 8 GPU(s), expected 8"
    - name: ecc
      gpu: 3
      passed: false
      detail: "ECC enabled; volatile uncorrectable 2, aggregate uncorrectable 2"
failed_checks:
  description: The checks that failed, in the same form as RV(checks).
  returned: always
  type: list
  elements: dict
  sample:
    - name: ecc
      gpu: 3
      passed: false
      detail: "ECC enabled; volatile uncorrectable 2, aggregate uncorrectable 2"
gpu:
  description: The GPU facts the policy was evaluated on, as returned by M(onprem.deepseek.gpu_facts).
  returned: always
  type: dict
  sample:
    driver_version: 535.161.08
    gpu_count: 8
    nvswitch_present: true
    reason: null
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.onprem.deepseek.plugins.module_utils._gpu_facts import (
    NVIDIA_SMI_ARGUMENT_SPEC,
    GpuError,
    collect_gpu_facts,
)
from ansible_collections.onprem.deepseek.plugins.module_utils._gpu_readiness import (
    evaluate_readiness,
    failure_message,
)

POLICY_OPTIONS = (
    'expected_count', 'expected_model', 'min_driver_version', 'min_memory_mib', 'require_persistence_mode',
    'require_ecc', 'max_temperature_c', 'require_fabric', 'allow_degraded_pcie', 'require_kernel_module_match',
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            NVIDIA_SMI_ARGUMENT_SPEC,
            expected_count=dict(type='int'),
            expected_model=dict(type='str'),
            min_driver_version=dict(type='str'),
            min_memory_mib=dict(type='int'),
            require_persistence_mode=dict(type='bool', default=True),
            require_ecc=dict(type='bool', default=True),
            max_temperature_c=dict(type='int', default=85),
            require_fabric=dict(type='bool'),
            allow_degraded_pcie=dict(type='bool', default=False),
            require_kernel_module_match=dict(type='bool', default=True),
            fail_on_not_ready=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    if module.params['expected_count'] is not None and module.params['expected_count'] < 0:
        module.fail_json(msg='expected_count must be 0 or more')

    facts = collect_gpu_facts(module, module.params['nvidia_smi_path'])
    try:
        result = evaluate_readiness(facts, dict((key, module.params[key]) for key in POLICY_OPTIONS))
    except GpuError as exc:
        module.fail_json(msg=str(exc), gpu=facts)

    output = dict(changed=False, ready=result['ready'], checks=result['checks'],
                  failed_checks=result['failed'], gpu=facts)
    if not result['ready'] and module.params['fail_on_not_ready']:
        module.fail_json(msg=failure_message(result), **output)
    module.exit_json(**output)


if __name__ == '__main__':
    main()
