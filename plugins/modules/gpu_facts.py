#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_facts
short_description: Gather NVIDIA GPU facts from C(nvidia-smi -q -x)
version_added: 0.1.0
description:
  - Runs C(nvidia-smi -q -x) once and parses the XML (DTD versions v10 to v13) into structured facts.
  - Reports the driver and CUDA versions and, per GPU, index, name, UUID, PCI bus id, memory, persistence mode,
    ECC mode and error counters, retired pages or remapped rows, temperature, power draw and limit,
    PCIe link generation and width, MIG mode and the NVSwitch fabric state and status.
  - Also reports the loaded kernel module version from C(/proc/driver/nvidia/version), so a mismatch between the
    kernel module and the user-space driver is visible, and whether the C(nvidia-fabricmanager) service is active.
  - On a host without NVIDIA GPUs or without C(nvidia-smi) the module does not fail; it returns RV(gpu.gpus=[])
    and says why in RV(gpu.reason).
author:
  - onprem.deepseek contributors (!UNKNOWN)
extends_documentation_fragment:
  - onprem.deepseek.attributes
  - onprem.deepseek.attributes.read_only
  - onprem.deepseek.nvidia_smi
attributes:
  facts:
    description: Action returns an C(ansible_facts) dictionary that will update existing host facts.
    support: full
notes:
  - Values that C(nvidia-smi) prints as C(N/A) or C(Not Supported) are returned as V(null); units are stripped
    (C(81559 MiB) becomes V(81559), C(45 C) becomes V(45), C(350.00 W) becomes V(350.0)).
  - The XML is parsed without fetching its DTD.
  - RV(gpu.fabric_manager_active) is V(null) when C(systemctl) is not available (for example in a container).
seealso:
  - module: onprem.deepseek.gpu_readiness
"""

EXAMPLES = r"""
- name: Gather GPU facts
  onprem.deepseek.gpu_facts:

- name: Show the GPU models
  ansible.builtin.debug:
    msg: "{{ ansible_facts.gpu.gpus | map(attribute='name') | list }}"

- name: Use a driver installed outside PATH
  onprem.deepseek.gpu_facts:
    nvidia_smi_path: /usr/local/nvidia/bin/nvidia-smi
"""

RETURN = r"""
gpu:
  description: GPU facts; also set as C(ansible_facts.gpu).
  returned: always
  type: dict
  contains:
    driver_version:
      description: User-space driver version reported by C(nvidia-smi); V(null) without GPUs.
      returned: always
      type: str
      sample: 535.161.08
    cuda_version:
      description: Highest CUDA version the driver supports.
      returned: always
      type: str
      sample: "12.2"
    kernel_module_version:
      description: Version of the loaded C(nvidia) kernel module, from C(/proc/driver/nvidia/version).
      returned: always
      type: str
      sample: 535.161.08
    kernel_module_type:
      description: V(open) for the open kernel modules, V(proprietary) otherwise, V(null) if not loaded.
      returned: always
      type: str
      sample: open
    fabric_manager_active:
      description: Whether C(nvidia-fabricmanager) is active; V(null) when C(systemctl) could not tell.
      returned: always
      type: bool
      sample: true
    fabric_manager_state:
      description: The state C(systemctl is-active) printed for C(nvidia-fabricmanager).
      returned: always
      type: str
      sample: active
    nvswitch_present:
      description: True when any GPU reports a fabric state other than C(N/A) (NVSwitch systems).
      returned: always
      type: bool
      sample: true
    gpu_count:
      description: Number of GPUs found.
      returned: always
      type: int
      sample: 8
    reason:
      description: Why RV(gpu.gpus) is empty; V(null) when GPUs were found.
      returned: always
      type: str
      sample: "nvidia-smi not found"
    gpus:
      description: One entry per GPU, in C(nvidia-smi) order.
      returned: always
      type: list
      elements: dict
      sample:
        - index: 0
          minor_number: 0
          name: NVIDIA H100 80GB HBM3
          architecture: Hopper
          uuid: GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e801
          pci_bus_id: "00000000:18:00.0"
          vbios_version: 96.00.74.00.1C
          memory_total_mib: 81559
          memory_used_mib: 1
          persistence_mode: true
          performance_state: P0
          utilization_gpu_pct: 0
          ecc_enabled: true
          ecc_pending_enabled: true
          ecc_errors:
            volatile_uncorrectable: 0
            volatile_correctable: 0
            aggregate_uncorrectable: 0
            aggregate_correctable: 0
          retired_pages: null
          memory_repair_pending: null
          remapped_rows:
            correctable: 0
            uncorrectable: 0
            pending: false
            failure: false
          temperature_c: 31
          memory_temperature_c: 40
          power_draw_w: 71.52
          power_limit_w: 700.0
          pcie_link_gen_current: 5
          pcie_link_gen_max: 5
          pcie_link_gen_device_max: 5
          pcie_link_width_current: 16
          pcie_link_width_max: 16
          mig_enabled: false
          mig_pending_enabled: false
          mig_device_count: 0
          fabric_state: Completed
          fabric_status: Success
          fabric_clique_id: null
          fabric_cluster_uuid: null
          fabric_health: null
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    gpu:
      description: Same content as RV(gpu).
      returned: always
      type: dict
      sample: {}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.onprem.deepseek.plugins.module_utils._gpu_facts import NVIDIA_SMI_ARGUMENT_SPEC, collect_gpu_facts


def main():
    module = AnsibleModule(
        argument_spec=dict(NVIDIA_SMI_ARGUMENT_SPEC),
        supports_check_mode=True,
    )
    facts = collect_gpu_facts(module, module.params['nvidia_smi_path'])
    module.exit_json(changed=False, ansible_facts={'gpu': facts}, gpu=facts)


if __name__ == '__main__':
    main()
