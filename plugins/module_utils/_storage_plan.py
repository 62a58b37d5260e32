# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The storage layout: which tier is built from which devices, how, and what already exists.

Pure logic over what the ``storage_devices`` module found (devices classified into tiers), the
file system and LUKS labels on the host, and which tier arrays already exist. The role applies
the result with built-in modules; nothing here touches a host.
"""

from __future__ import annotations

# Devices each mdadm level needs at least.
RAID_MIN_DEVICES = {"0": 2, "1": 2, "5": 3, "6": 4, "10": 2}
METHODS = ("mdadm", "lvm", "single")
KEY_PROVIDERS = ("keyfile", "pkcs11_wrapped")
DEVICE_TIMEOUT_OPTION = "x-systemd.device-timeout="


class StoragePlanError(ValueError):
    """A tier definition the planner cannot work with."""


def data_disks(method, raid_level, count):
    """How many of ``count`` devices carry data (the stripe width XFS is aligned to)."""
    if method == "single":
        return 0
    if method == "lvm":
        return count
    level = str(raid_level)
    if level == "0":
        return count
    if level == "1":
        return 0
    if level == "5":
        return count - 1
    if level == "6":
        return count - 2
    if level == "10":
        return count // 2
    raise StoragePlanError("raid_level %s is not one of %s" % (level, ", ".join(sorted(RAID_MIN_DEVICES))))


def devices_needed(tier):
    """The fewest devices the tier can be built from: its min_devices, and its RAID level's minimum."""
    floor = RAID_MIN_DEVICES.get(str(tier["raid_level"])) if tier["method"] == "mdadm" else 1
    if floor is None:
        raise StoragePlanError("tier %s: raid_level %s is not one of %s"
                               % (tier["name"], tier["raid_level"], ", ".join(sorted(RAID_MIN_DEVICES))))
    return max(int(tier["min_devices"]), floor)


def array_path(tier):
    """Where the tier's assembled block device appears (mdadm array or striped logical volume)."""
    if tier["method"] == "mdadm":
        return "/dev/md/ds-" + tier["name"]
    if tier["method"] == "lvm":
        return "/dev/ds_" + tier["name"] + "/data"
    return None


def describe_method(tier):
    return ("RAID" + str(tier["raid_level"])) if tier["method"] == "mdadm" else tier["method"]


def boot_options(tier, key_provider="keyfile", device_timeout_s=None):
    """The tier's ``/etc/fstab`` and ``/etc/crypttab`` options, as lists.

    With ``device_timeout_s``, both wait that long for their device at boot
    (``x-systemd.device-timeout``) instead of systemd's default (90 s): a tier whose disks, array or
    unlocked mapping appear later would otherwise be left unmounted, and a boot with nothing failed.
    A timeout already in the tier's ``mount_options`` is kept. An encrypted tier is opened at boot by
    systemd-cryptsetup with ``keyfile``, and by the role's unlock unit otherwise (``noauto``).
    """
    if key_provider not in KEY_PROVIDERS:
        raise StoragePlanError("key provider %s is not one of %s" % (key_provider, ", ".join(KEY_PROVIDERS)))
    timeout = []
    if device_timeout_s is not None:
        if isinstance(device_timeout_s, bool) or not isinstance(device_timeout_s, int) or device_timeout_s < 1:
            raise StoragePlanError("device timeout %r is not a whole number of seconds of at least 1" % (device_timeout_s,))
        timeout = [DEVICE_TIMEOUT_OPTION + "%ds" % device_timeout_s]
    mount_options = list(tier.get("mount_options") or [])
    fstab = mount_options + ([] if any(o.startswith(DEVICE_TIMEOUT_OPTION) for o in mount_options) else timeout)
    crypttab = (["luks", "discard"] + ([] if key_provider == "keyfile" else ["noauto"]) + timeout) if tier.get("encrypt") else []
    return fstab, crypttab


def plan_tier(tier, devices, blockdevices, array_exists, root, key_provider="keyfile", device_timeout_s=None):
    """The layout of one tier; ``tier`` is returned with the layout's keys added.

    A tier is ``present`` when its file system, its LUKS container or its array already exists
    (nothing is created or wiped then), ``skip`` when no device was found for a tier that is not
    required, and ``create`` otherwise; ``error`` says why a tier to create cannot be built.
    ``fstab_options`` and ``crypttab_options`` come from :func:`boot_options`.
    """
    if tier.get("method") not in METHODS:
        raise StoragePlanError("tier %s: method %s is not one of %s" % (tier.get("name"), tier.get("method"), ", ".join(METHODS)))
    name = tier["name"]
    label = "ds-" + name
    fs = [b for b in blockdevices if b.get("label") == label and b.get("fstype") == "xfs"]
    luks = [b for b in blockdevices if b.get("label") == label + "-luks"]
    built = bool(fs or luks or array_exists)
    count = len(devices)
    need = devices_needed(tier)
    if built:
        action = "present"
    elif count == 0 and not tier["required"]:
        action = "skip"
    else:
        action = "create"

    path = array_path(tier)
    if path is None:
        # A single disk is addressed by its stable id while it is being created, then by what it holds.
        path = devices[0]["id"] if action == "create" and count == 1 else (luks + fs + [{"path": ""}])[0]["path"]

    error = ""
    if action == "create":
        if count < need:
            error = "needs at least %d device(s) for %s, found %d" % (need, describe_method(tier), count)
        elif tier["method"] == "single" and count > 1:
            error = "method single needs exactly one device, found %d (name one with storage_tiers_policy overrides)" % count

    width = data_disks(tier["method"], tier["raid_level"], count)
    fstab_options, crypttab_options = boot_options(tier, key_provider, device_timeout_s)
    layout = {
        "action": action,
        "devices": list(devices) if action == "create" else [],
        "need": need,
        "array_path": path,
        "top_path": "/dev/mapper/" + label if tier["encrypt"] else path,
        "luks_name": label,
        "label": label,
        "mountpoint": root.rstrip("/") + "/" + name,
        "su_kib": int(tier["chunk_kib"]) if width > 1 else 0,
        "sw": width if width > 1 else 0,
        "fstab_options": fstab_options,
        "crypttab_options": crypttab_options,
        "error": error,
    }
    return dict(tier, **layout)


def plan_tiers(tiers, found, blockdevices, existing_arrays, root, key_provider="keyfile", device_timeout_s=None):
    """The plan of every tier, in the order given.

    ``tiers``: tier definitions with defaults filled in; ``found``: the ``tiers`` result of
    ``storage_devices`` (tier name -> free devices classified into it); ``blockdevices``: lsblk's
    entries (``path``, ``fstype``, ``label``); ``existing_arrays``: names of tiers whose array or
    logical volume exists; ``root``: where tiers are mounted; ``key_provider`` and
    ``device_timeout_s``: see :func:`boot_options`.
    """
    existing = set(existing_arrays or [])
    return [plan_tier(t, (found or {}).get(t["name"]) or [], blockdevices or [], t["name"] in existing, root,
                      key_provider, device_timeout_s)
            for t in tiers]
