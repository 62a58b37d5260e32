# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: storage_plan
short_description: Plan the storage tiers from the devices found on a host
version_added: 0.1.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - "Decides, per tier, whether it is already V(present) (its XFS file system, LUKS container or array
    exists, so nothing is created or wiped), is skipped (V(skip), no device found and not required) or is
    created (V(create)) from the devices M(onprem.deepseek.storage_devices) classified into it, and how:
    array path, LUKS mapping, mount point and the XFS stripe unit and width for the data disks of the
    RAID level."
  - A tier to create that cannot be built from what was found gets an RV(_value[].error) that says why
    (too few devices for the RAID level or O(_input[].min_devices), several devices for a single disk).
  - Used by the C(storage_tiers) role, which applies the plan with built-in modules.
positional: _input
options:
  _input:
    description: The tiers (C(storage_tiers_tiers) with every key filled in), in order.
    type: list
    elements: dict
    required: true
  found:
    description: The C(tiers) result of M(onprem.deepseek.storage_devices) (tier name to free devices).
    type: dict
    required: true
  blockdevices:
    description: C(lsblk --json --output PATH,TYPE,FSTYPE,LABEL,UUID)'s C(blockdevices).
    type: list
    elements: dict
    required: true
  existing_arrays:
    description: Names of the tiers whose mdadm array or logical volume exists.
    type: list
    elements: str
    default: []
  root:
    description: Where the tiers are mounted (C(storage_tiers_root)).
    type: str
    required: true
  key_provider:
    description:
      - How encrypted tiers are unlocked at boot (C(storage_tiers_key_provider)).
      - V(keyfile) lets systemd-cryptsetup open them from C(/etc/crypttab); V(pkcs11_wrapped) marks
        their entries C(noauto), because the role's unlock units open them.
    type: str
    choices: [keyfile, pkcs11_wrapped]
    default: keyfile
    version_added: 0.2.0
  device_timeout_s:
    description:
      - How long the boot waits for each tier's devices (C(x-systemd.device-timeout) in the
        C(/etc/fstab) and C(/etc/crypttab) options), in seconds.
      - Without it systemd's default applies (90 s), and a tier whose disks, array or unlocked mapping
        appear later is left unmounted, with nothing failed.
      - An C(x-systemd.device-timeout=) in a tier's C(mount_options) is kept for its fstab entry.
    type: int
    version_added: 0.2.0
"""

EXAMPLES = r"""
- name: Plan each tier
  ansible.builtin.set_fact:
    plan: >-
      {{ tiers | onprem.deepseek.storage_plan(found=found.tiers, blockdevices=(lsblk.stdout | from_json).blockdevices,
                                               existing_arrays=[], root='/srv/deepseek') }}
"""

RETURN = r"""
_value:
  description: Each tier as given, with its layout added.
  type: list
  elements: dict
  contains:
    action:
      description: V(create), V(present) or V(skip).
      type: str
      sample: create
    devices:
      description: The devices the tier is created from (empty unless V(create)).
      type: list
      elements: dict
    need:
      description: The fewest devices the tier can be built from.
      type: int
      sample: 2
    array_path:
      description: The assembled block device (mdadm array, logical volume or the single disk).
      type: str
      sample: /dev/md/ds-hot
    top_path:
      description: The block device the file system goes on (the LUKS mapping when encrypted).
      type: str
      sample: /dev/mapper/ds-hot
    luks_name:
      description: The LUKS mapping name.
      type: str
      sample: ds-hot
    label:
      description: The XFS label.
      type: str
      sample: ds-hot
    mountpoint:
      description: Where the tier is mounted.
      type: str
      sample: /srv/deepseek/hot
    fstab_options:
      description: The tier's C(/etc/fstab) options (its C(mount_options) and the device timeout).
      type: list
      elements: str
      sample: [noatime, inode64, nofail, x-systemd.device-timeout=300s]
      version_added: 0.2.0
    crypttab_options:
      description: The tier's C(/etc/crypttab) options, empty when it is not encrypted.
      type: list
      elements: str
      sample: [luks, discard, noauto, x-systemd.device-timeout=300s]
      version_added: 0.2.0
    su_kib:
      description: XFS stripe unit in KiB (0 when there is no stripe).
      type: int
      sample: 512
    sw:
      description: XFS stripe width in data disks (0 when there is no stripe).
      type: int
      sample: 2
    error:
      description: Why a tier to create cannot be built, or empty.
      type: str
      sample: "needs at least 4 device(s) for RAID6, found 3"
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.module_utils._storage_plan import (
    StoragePlanError,
    plan_tiers,
)


def storage_plan(tiers, found, blockdevices, existing_arrays=None, root=None, key_provider="keyfile", device_timeout_s=None):
    if root is None:
        raise AnsibleFilterError("storage_plan: root is required")
    try:
        return plan_tiers(tiers, found, blockdevices, existing_arrays or [], root, key_provider, device_timeout_s)
    except StoragePlanError as exc:
        raise AnsibleFilterError("storage_plan: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {'storage_plan': storage_plan}
