#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: storage_devices
short_description: Discover block devices and classify free disks into hot, warm and cold storage tiers
version_added: 0.1.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - Lists every top-level block device with transport, rotational flag, size, model, serial, WWN,
    C(/dev/disk/by-id) and C(/dev/disk/by-path) links, partitions, holders (md, LVM, LUKS, multipath),
    mount points and on-disk signatures.
  - Classifies each free device into C(hot) (NVMe), C(warm) (non-rotational SAS or SATA SSD) or
    C(cold) (rotational disk), and says for every device why it was chosen or excluded.
  - Excludes the operating system disk (anything whose partitions or holders lead to V(/), V(/boot),
    V(/boot/efi), V([SWAP]), V(/usr) or V(/var)), any device that is mounted or held by md/dm, removable
    and memory-backed devices, devices of a type not in O(include_types), devices smaller than
    O(min_size_gib), and every device carrying a partition table, filesystem, RAID, LVM or LUKS signature.
  - A device carrying signatures becomes usable only when named in O(wipe_devices) by
    C(/dev/disk/by-id) or C(/dev/disk/by-path) link, serial or WWN; the result says which named devices
    may be wiped (RV(wipe_allowed)) and which may not (RV(wipe_refused)).
  - The module only reads. It runs C(lsblk --json --bytes --output-all), then
    C(wipefs --no-act --json) on every whole device of an included type, and reads C(/sys/block) and
    C(/dev/disk).
options:
  policy:
    description:
      - Site policy applied on top of the automatic classification.
    type: dict
    default: {}
    suboptions:
      overrides:
        description:
          - Put the devices that match into a tier, or exclude them. The first matching entry wins.
          - An override beats the size and transport rules, never the in-use rules, and a device with
            signatures still needs to be named in O(wipe_devices).
        type: list
        elements: dict
        default: []
        suboptions:
          match:
            description:
              - What identifies the device. Every key given must match.
            type: dict
            required: true
            suboptions:
              serial:
                description: Device serial number as lsblk reports it.
                type: str
              wwn:
                description: World wide name as lsblk reports it, for example V(0x5000c500a1b2c301); case does not matter.
                type: str
              by_path:
                description: A C(/dev/disk/by-path) link, full path or link name.
                type: str
              by_id:
                description: A C(/dev/disk/by-id) link, full path or link name.
                type: str
          tier:
            description: Tier for the matching devices, or V(exclude) to leave them alone.
            type: str
            required: true
            choices: [hot, warm, cold, exclude]
  wipe_devices:
    description:
      - Devices whose existing signatures may be destroyed, named by a full C(/dev/disk/by-id/...) or
        C(/dev/disk/by-path/...) link, a serial or a WWN.
      - Kernel names such as V(/dev/sdb) or V(nvme0n1) are rejected, because they can change between boots.
      - A device in use (OS disk, mounted, held) is never wipe-allowed, nor is an id that matches more
        than one device.
    type: list
    elements: str
    default: []
  min_size_gib:
    description:
      - Devices smaller than this many GiB are not put into a tier unless a policy override names them.
    type: float
    default: 10
  include_types:
    description:
      - lsblk device types considered for tiers. Other top-level devices (V(loop), V(rom), ...) are listed
        but excluded.
    type: list
    elements: str
    default: [disk]
extends_documentation_fragment:
  - onprem.deepseek.attributes.read_only
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    support: full
    platforms: posix
notes:
  - Signatures are read with C(wipefs --no-act --json) on the whole device rather than taken from
    lsblk's FSTYPE and PTTYPE alone, because lsblk reads the udev database, which may be missing or
    stale. Both are reported; either one keeps the device out of a tier. When the probe fails the
    device is treated as carrying data.
  - Handles the lsblk JSON of util-linux 2.32 (all values strings, no PATH column, empty TRAN for NVMe),
    2.33 to 2.36 (typed values, C(mountpoint)) and 2.37 and later (C(mountpoints) list).
  - A disk used only through multipath shows the multipath device as holder and is excluded.
  - Run C(udevadm settle) before this module when disks were just added, so that the links exist.
requirements:
  - lsblk and wipefs from util-linux on the target
"""

EXAMPLES = r"""
- name: Discover disks and classify them into tiers
  onprem.deepseek.storage_devices:
  register: storage

- name: Show the chosen hot tier devices by stable id
  ansible.builtin.debug:
    msg: "{{ storage.tiers.hot | map(attribute='id') | list }}"

- name: Classify with a site policy and a list of disks that may be wiped
  onprem.deepseek.storage_devices:
    min_size_gib: 100
    policy:
      overrides:
        - match:
            serial: S4YPNE0R701207
          tier: exclude
        - match:
            by_path: pci-0000:00:07.0-sas-phy3-lun-0
          tier: cold
    wipe_devices:
      - /dev/disk/by-id/wwn-0x5000c500a1b2c304
      - QM00007
  register: storage

- name: Refuse to continue when a disk named for wiping was not found or may not be wiped
  ansible.builtin.assert:
    that:
      - storage.wipe_unmatched | length == 0
      - storage.wipe_refused | length == 0
"""

RETURN = r"""
devices:
  description: Every top-level block device with its facts, its tier (or null) and the reasons.
  returned: success
  type: list
  elements: dict
  sample:
    - name: sdd
      kname: sdd
      path: /dev/sdd
      type: disk
      size_bytes: 4000787030016
      size_gib: 3726.02
      rotational: true
      removable: false
      transport: sata
      model: QEMU HARDDISK
      serial: QM00007
      wwn: null
      hctl: "7:0:0:0"
      by_id: [/dev/disk/by-id/ata-QEMU_HARDDISK_QM00007]
      by_path: [/dev/disk/by-path/pci-0000:00:1f.2-ata-3, /dev/disk/by-path/pci-0000:00:1f.2-ata-3.0]
      stable_id: /dev/disk/by-id/ata-QEMU_HARDDISK_QM00007
      fstype: ext4
      pttype: null
      partitions: []
      holders: []
      mounts: []
      signatures:
        - type: ext4
          offset: "0x438"
          uuid: 1f07583b-eb25-4d8b-b286-4034fbdcd639
          label: archive01
      probe_error: null
      os_disk: false
      wipe_needed: false
      tier: null
      reasons:
        - "carries signatures: ext4 at 0x438 (label archive01, uuid 1f07583b-eb25-4d8b-b286-4034fbdcd639)"
        - existing data is never wiped unless the disk is named in wipe_devices by by-id, by-path, serial or WWN
tiers:
  description:
    - The chosen devices per tier. Each device's C(id) is the preferred stable id (a by-id link, else a by-path link).
    - C(wipe_needed) is true for a device that carries signatures and was named in O(wipe_devices).
  returned: success
  type: dict
  sample:
    hot:
      - device: /dev/nvme0n1
        id: /dev/disk/by-id/nvme-eui.36344730527012000025384500000001
        by_id:
          - /dev/disk/by-id/nvme-eui.36344730527012000025384500000001
          - /dev/disk/by-id/nvme-SAMSUNG_MZWLJ7T6HALA-00007_S4YPNE0R701200
        by_path: [/dev/disk/by-path/pci-0000:41:00.0-nvme-1]
        serial: S4YPNE0R701200
        wwn: eui.36344730527012000025384500000001
        model: SAMSUNG MZWLJ7T6HALA-00007
        size_bytes: 7681501126656
        wipe_needed: false
    warm: []
    cold: []
tier_capacity_bytes:
  description: Sum of the sizes of the chosen devices per tier.
  returned: success
  type: dict
  sample: {hot: 53770507886592, warm: 15363023929344, cold: 240007067467776}
excluded:
  description: The devices left out of every tier, with the reasons.
  returned: success
  type: list
  elements: dict
  sample:
    - device: /dev/sr0
      reasons: [type rom is not in include_types (disk), removable device]
wipe_allowed:
  description: Devices named in O(wipe_devices) that are not in use and match exactly one id.
  returned: success
  type: list
  elements: dict
  sample:
    - device: /dev/sdd
      ids: [/dev/disk/by-id/ata-QEMU_HARDDISK_QM00007]
      id: /dev/disk/by-id/ata-QEMU_HARDDISK_QM00007
      serial: QM00007
      wwn: null
      signatures: [{type: ext4, offset: "0x438", uuid: 1f07583b-eb25-4d8b-b286-4034fbdcd639, label: archive01}]
      tier: cold
wipe_refused:
  description: Devices named in O(wipe_devices) that must not be wiped, with the reasons.
  returned: success
  type: list
  elements: dict
  sample:
    - device: /dev/vda
      ids: [/dev/disk/by-path/pci-0000:00:04.0]
      reasons: ["operating system disk: / on debian--vg-root"]
wipe_unmatched:
  description: Entries of O(wipe_devices) that match no device.
  returned: success
  type: list
  elements: str
  sample: [/dev/disk/by-id/wwn-0x5000c500ffffffff]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.onprem.deepseek.plugins.module_utils._storage import (
    StorageError,
    classify_devices,
    parse_lsblk_json,
    parse_wipefs_result,
    probe_targets,
    read_disk_links,
    read_sysfs_facts,
    validate_policy,
)

_C_LOCALE = {"LC_ALL": "C", "LANG": "C"}


def argument_spec():
    return dict(
        policy=dict(
            type="dict",
            default={},
            options=dict(
                overrides=dict(
                    type="list",
                    elements="dict",
                    default=[],
                    options=dict(
                        match=dict(
                            type="dict",
                            required=True,
                            options=dict(
                                serial=dict(type="str"),
                                wwn=dict(type="str"),
                                by_path=dict(type="str"),
                                by_id=dict(type="str"),
                            ),
                        ),
                        tier=dict(type="str", required=True, choices=["hot", "warm", "cold", "exclude"]),
                    ),
                ),
            ),
        ),
        wipe_devices=dict(type="list", elements="str", default=[]),
        min_size_gib=dict(type="float", default=10),
        include_types=dict(type="list", elements="str", default=["disk"]),
    )


class StorageDiscovery(object):
    def __init__(self, module, sys_root="/sys", dev_disk="/dev/disk"):
        self.module = module
        self.sys_root = sys_root
        self.dev_disk = dev_disk

    def run(self):
        params = self.module.params
        policy = validate_policy(params["policy"], params["wipe_devices"], params["min_size_gib"],
                                 params["include_types"])
        lsblk = self.module.get_bin_path("lsblk", required=True)
        rc, out, err = self.module.run_command([lsblk, "--json", "--bytes", "--output-all"],
                                               environ_update=_C_LOCALE)
        if rc != 0:
            raise StorageError("lsblk failed (rc %s): %s" % (rc, (err or out).strip()))
        devices = parse_lsblk_json(out)

        wipefs = self.module.get_bin_path("wipefs", required=True)
        probes = {}
        for node in probe_targets(devices, policy["include_types"]):
            rc, out, err = self.module.run_command([wipefs, "--no-act", "--json", node["path"]],
                                                   environ_update=_C_LOCALE)
            probes[node["kname"]] = parse_wipefs_result(rc, out, err)

        sysfs = read_sysfs_facts([node["kname"] for node in devices], self.sys_root)
        links = read_disk_links(self.dev_disk)
        return classify_devices(devices, sysfs=sysfs, links=links, probes=probes, policy=policy)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = StorageDiscovery(module).run()
    except StorageError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
