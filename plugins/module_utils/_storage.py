# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Block device discovery and storage tier classification (private to the collection).

The classification works on plain data so that it can be tested on recorded inputs:

* the parsed output of ``lsblk --json --bytes --output-all`` (``parse_lsblk_json``),
* per whole device the result of ``wipefs --no-act --json <dev>`` (``parse_wipefs_result``),
* a dict of sysfs facts per kernel name (``read_sysfs_facts``),
* the ``/dev/disk/by-id`` and ``/dev/disk/by-path`` links (``read_disk_links``).

Nothing here writes to a device.
"""

from __future__ import annotations

import json
import os
import re

TIERS = ("hot", "warm", "cold")
OVERRIDE_TIERS = TIERS + ("exclude",)
MATCH_KEYS = ("serial", "wwn", "by_path", "by_id")

# A device that leads to one of these mount points carries the operating system.
OS_MOUNTPOINTS = frozenset(["/", "/boot", "/boot/efi", "[SWAP]", "/usr", "/var"])

# Memory-backed devices are never storage, whatever include_types says (zram reports type "disk").
_MEMORY_DEVICE_RE = re.compile(r"^(?:zram|ram)\d+$")
_NVME_NAME_RE = re.compile(r"^nvme\d+(?:c\d+)?n\d+$")

# Kernel names are assigned in probe order and can change between boots, so they never
# identify a disk that may be wiped.
_KERNEL_NAME_RE = re.compile(
    r"^(?:/dev/)?(?:[shv]d[a-z]+|xvd[a-z]+|nvme\d+(?:c\d+)?n\d+|mmcblk\d+|md\d+|dm-\d+"
    r"|loop\d+|sr\d+|zram\d+|ram\d+)(?:p?\d+)?$"
)
BY_ID_DIR = "/dev/disk/by-id/"
BY_PATH_DIR = "/dev/disk/by-path/"

# by-id links that name the device itself (not the model/serial text) come first.
_BY_ID_PREFERENCE = ("wwn-", "nvme-eui.", "nvme-uuid.", "nvme-nvme.", "scsi-3", "scsi-2", "scsi-S")

_GIB = 1024 ** 3


class StorageError(Exception):
    """Raised for unusable command output or invalid options."""


def _natural_key(name):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name or "")]


def _to_bool(value):
    """lsblk >= 2.33 prints JSON booleans, older versions the strings "0" and "1"."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes"):
        return True
    if text in ("0", "false", "no"):
        return False
    return None


def _to_int(value):
    """lsblk >= 2.33 prints numbers, older versions strings; --bytes keeps both integral."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise StorageError("lsblk printed a non-numeric size %r; run it with --bytes" % (value,))


def _clean(value):
    """Strip the padding some firmware puts around model and serial strings."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _mountpoints(raw):
    # util-linux >= 2.37 has "mountpoints" (a list, [null] when unmounted); older only "mountpoint".
    if "mountpoints" in raw and isinstance(raw["mountpoints"], list):
        points = raw["mountpoints"]
    else:
        points = [raw.get("mountpoint")]
    return [p for p in points if p]


def _normalize_node(raw):
    if not isinstance(raw, dict) or not raw.get("name"):
        raise StorageError("lsblk JSON holds a device without a name: %r" % (raw,))
    name = raw["name"]
    kname = raw.get("kname") or name
    return {
        "name": name,
        "kname": kname,
        "path": raw.get("path") or ("/dev/" + name if not name.startswith("/") else name),
        "type": raw.get("type"),
        "size": _to_int(raw.get("size")),
        "rota": _to_bool(raw.get("rota")),
        "rm": _to_bool(raw.get("rm")),
        "tran": _clean(raw.get("tran")),
        "model": _clean(raw.get("model")),
        "serial": _clean(raw.get("serial")),
        "wwn": _clean(raw.get("wwn")),
        "hctl": raw.get("hctl"),
        "fstype": _clean(raw.get("fstype")),
        "pttype": _clean(raw.get("pttype")),
        "label": raw.get("label"),
        "mountpoints": _mountpoints(raw),
        "children": [_normalize_node(child) for child in raw.get("children") or []],
    }


def parse_lsblk_json(text):
    """Parse ``lsblk --json --bytes`` output of any util-linux version into normalized trees.

    Returns the top-level devices; each has ``children`` (partitions and holders such as md,
    dm/LVM, crypt and multipath devices, as lsblk nests them).
    """
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise StorageError("cannot parse lsblk JSON output: %s" % exc)
    if not isinstance(data, dict) or not isinstance(data.get("blockdevices"), list):
        raise StorageError("lsblk JSON output has no 'blockdevices' list")
    return [_normalize_node(raw) for raw in data["blockdevices"]]


def parse_wipefs_result(rc, stdout, stderr=""):
    """Turn one ``wipefs --no-act --json <dev>`` run into ``{'signatures': [...], 'error': str|None}``.

    wipefs prints nothing at all (not even the JSON envelope) when a device has no signature
    in some versions, so empty output with rc 0 means "no signatures".
    """
    if rc != 0:
        message = (stderr or stdout or "").strip() or "wipefs exited with %s" % rc
        return {"signatures": [], "error": message}
    if not (stdout or "").strip():
        return {"signatures": [], "error": None}
    try:
        data = json.loads(stdout)
    except ValueError as exc:
        return {"signatures": [], "error": "cannot parse wipefs JSON output: %s" % exc}
    signatures = []
    for entry in data.get("signatures") or []:
        signatures.append({
            "type": entry.get("type"),
            "offset": entry.get("offset"),
            "uuid": entry.get("uuid"),
            "label": entry.get("label"),
        })
    return {"signatures": signatures, "error": None}


def _read_text(path):
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except (IOError, OSError):
        return None
    text = data.decode("utf-8", "replace").strip().strip("\x00").strip()
    return text or None


def _transport_from_sysfs_path(real):
    # The resolved /sys/block/<dev> path names the bus the disk hangs off.
    if "/nvme" in real:
        return "nvme"
    if "/usb" in real:
        return "usb"
    if "/virtio" in real:
        return "virtio"
    return None


def read_sysfs_facts(knames, sys_root="/sys"):
    """Read removable, rotational, holders, serial, wwid and model for whole devices from sysfs."""
    facts = {}
    for kname in knames:
        base = os.path.join(sys_root, "block", kname)
        if not os.path.isdir(base):
            continue
        holders = []
        holder_dirs = [os.path.join(base, "holders")]
        try:
            entries = sorted(os.listdir(base))
        except OSError:
            entries = []
        for entry in entries:
            # Partitions are subdirectories named after the disk with a "partition" file.
            if entry.startswith(kname) and os.path.isfile(os.path.join(base, entry, "partition")):
                holder_dirs.append(os.path.join(base, entry, "holders"))
        for holder_dir in holder_dirs:
            try:
                holders.extend(sorted(os.listdir(holder_dir)))
            except OSError:
                pass
        device = os.path.join(base, "device")
        facts[kname] = {
            "removable": _to_bool(_read_text(os.path.join(base, "removable"))),
            "rotational": _to_bool(_read_text(os.path.join(base, "queue", "rotational"))),
            "holders": holders,
            "serial": _read_text(os.path.join(device, "serial")),
            "wwid": _read_text(os.path.join(base, "wwid")) or _read_text(os.path.join(device, "wwid")),
            "model": _read_text(os.path.join(device, "model")),
            "transport": _transport_from_sysfs_path(os.path.realpath(base)),
        }
    return facts


def read_disk_links(dev_disk="/dev/disk"):
    """Map ``/dev/disk/by-id/*`` and ``/dev/disk/by-path/*`` links to the kernel name they point at."""
    links = {"by-id": {}, "by-path": {}}
    for kind in links:
        folder = os.path.join(dev_disk, kind)
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            full = os.path.join(folder, name)
            if not os.path.islink(full):
                continue
            target = os.path.basename(os.path.realpath(full))
            links[kind]["/dev/disk/%s/%s" % (kind, name)] = target
    return links


def _links_by_kname(links):
    index = {}
    for kind in ("by-id", "by-path"):
        for link, kname in sorted((links or {}).get(kind, {}).items()):
            index.setdefault(kname, {"by-id": [], "by-path": []})[kind].append(link)
    return index


def _by_id_rank(link):
    name = link.rsplit("/", 1)[-1]
    for rank, prefix in enumerate(_BY_ID_PREFERENCE):
        if name.startswith(prefix):
            return (rank, name)
    return (len(_BY_ID_PREFERENCE), name)


def validate_wipe_id(value, option="wipe_devices"):
    """Accept a /dev/disk/by-id or by-path link, a serial or a WWN; refuse kernel names."""
    if not isinstance(value, str) or not value.strip():
        raise StorageError("%s: empty device id" % option)
    value = value.strip()
    if _KERNEL_NAME_RE.match(value):
        raise StorageError(
            "%s: %r is a kernel device name, which can change between boots; name the disk by "
            "/dev/disk/by-id/..., /dev/disk/by-path/..., its serial or its WWN" % (option, value))
    if value.startswith("/") and not (value.startswith(BY_ID_DIR) or value.startswith(BY_PATH_DIR)):
        raise StorageError(
            "%s: %r is not a /dev/disk/by-id/ or /dev/disk/by-path/ link; name the disk by "
            "by-id, by-path, serial or WWN" % (option, value))
    if value.rstrip("/") in (BY_ID_DIR.rstrip("/"), BY_PATH_DIR.rstrip("/")):
        raise StorageError("%s: %r names a directory, not a disk" % (option, value))
    return value


def _normalize_link(value, directory, where):
    if not isinstance(value, str) or not value.strip():
        raise StorageError("%s: empty value" % where)
    value = value.strip()
    if value.startswith("/"):
        if not value.startswith(directory) or value == directory:
            raise StorageError("%s: %r is not a link under %s" % (where, value, directory))
        return value
    if "/" in value:
        raise StorageError("%s: %r is neither a link name nor a full path" % (where, value))
    return directory + value


def validate_policy(policy, wipe_devices=None, min_size_gib=10, include_types=None):
    """Check and normalize the module options; errors name the offending option."""
    policy = policy or {}
    overrides = []
    for index, raw in enumerate(policy.get("overrides") or []):
        where = "policy.overrides[%d]" % index
        if not isinstance(raw, dict):
            raise StorageError("%s: must be a dict with 'match' and 'tier'" % where)
        tier = raw.get("tier")
        if tier not in OVERRIDE_TIERS:
            raise StorageError("%s.tier: %r is not one of %s" % (where, tier, ", ".join(OVERRIDE_TIERS)))
        match_raw = raw.get("match")
        if not isinstance(match_raw, dict):
            raise StorageError("%s.match: must be a dict with one of %s" % (where, ", ".join(MATCH_KEYS)))
        unknown = sorted(set(match_raw) - set(MATCH_KEYS))
        if unknown:
            raise StorageError("%s.match: unknown key(s) %s; use %s" % (where, ", ".join(unknown), ", ".join(MATCH_KEYS)))
        match = {}
        for key in MATCH_KEYS:
            value = match_raw.get(key)
            if value is None:
                continue
            if key == "by_id":
                match[key] = _normalize_link(value, BY_ID_DIR, "%s.match.by_id" % where)
            elif key == "by_path":
                match[key] = _normalize_link(value, BY_PATH_DIR, "%s.match.by_path" % where)
            else:
                if not isinstance(value, str) or not value.strip():
                    raise StorageError("%s.match.%s: empty value" % (where, key))
                match[key] = value.strip()
        if not match:
            raise StorageError("%s.match: give at least one of %s" % (where, ", ".join(MATCH_KEYS)))
        overrides.append({"index": index, "match": match, "tier": tier})

    wipe = [validate_wipe_id(item, "wipe_devices[%d]" % i) for i, item in enumerate(wipe_devices or [])]

    try:
        min_size = float(min_size_gib)
    except (TypeError, ValueError):
        raise StorageError("min_size_gib: %r is not a number" % (min_size_gib,))
    if min_size < 0:
        raise StorageError("min_size_gib: must not be negative")
    types = list(include_types) if include_types is not None else ["disk"]
    if not types:
        raise StorageError("include_types: give at least one lsblk device type")
    return {"overrides": overrides, "wipe_devices": wipe, "min_size_gib": min_size, "include_types": types}


def _walk(node):
    """Yield every descendant of a device (partitions, then what sits on them)."""
    for child in node["children"]:
        yield child
        yield from _walk(child)


def _device_facts(node, sysfs, link_index):
    facts = (sysfs or {}).get(node["kname"], {})
    links = link_index.get(node["kname"], {"by-id": [], "by-path": []})
    transport = node["tran"] or facts.get("transport")
    if not transport and _NVME_NAME_RE.match(node["kname"]):
        transport = "nvme"  # util-linux 2.32 leaves TRAN empty for NVMe
    rotational = node["rota"] if node["rota"] is not None else facts.get("rotational")
    removable = bool(node["rm"]) or bool(facts.get("removable"))
    serial = node["serial"] or _clean(facts.get("serial"))
    wwn = node["wwn"] or _clean(facts.get("wwid"))
    by_id = sorted(links["by-id"], key=_by_id_rank)
    by_path = sorted(links["by-path"])

    partitions, holders, mounts = [], [], []
    for mount in node["mountpoints"]:
        mounts.append({"mountpoint": mount, "source": node["name"]})
    for child in _walk(node):
        if child["type"] == "part" and any(child is c for c in node["children"]):
            partitions.append(child["name"])
        elif child["type"] != "part":
            if not any(h["name"] == child["name"] for h in holders):
                holders.append({"name": child["name"], "type": child["type"]})
        for mount in child["mountpoints"]:
            mounts.append({"mountpoint": mount, "source": child["name"]})
    known = set(h["name"] for h in holders) | set(child["kname"] for child in _walk(node))
    for holder in facts.get("holders") or []:
        if holder not in known:
            holders.append({"name": holder, "type": None})

    stable_id = by_id[0] if by_id else (by_path[0] if by_path else None)
    return {
        "name": node["name"],
        "kname": node["kname"],
        "path": node["path"],
        "type": node["type"],
        "size_bytes": node["size"],
        "size_gib": round(node["size"] / float(_GIB), 2) if node["size"] is not None else None,
        "rotational": rotational,
        "removable": removable,
        "transport": transport,
        "model": node["model"] or _clean(facts.get("model")),
        "serial": serial,
        "wwn": wwn,
        "hctl": node["hctl"],
        "by_id": by_id,
        "by_path": by_path,
        "stable_id": stable_id,
        "fstype": node["fstype"],
        "pttype": node["pttype"],
        "partitions": partitions,
        "holders": holders,
        "mounts": mounts,
    }


def _matches(dev, key, value):
    if key == "serial":
        return dev["serial"] is not None and dev["serial"] == value
    if key == "wwn":
        return dev["wwn"] is not None and dev["wwn"].lower() == value.lower()
    if key == "by_id":
        return value in dev["by_id"]
    if key == "by_path":
        return value in dev["by_path"]
    return False


def _matches_wipe_id(dev, value):
    if value.startswith(BY_ID_DIR):
        return _matches(dev, "by_id", value)
    if value.startswith(BY_PATH_DIR):
        return _matches(dev, "by_path", value)
    return _matches(dev, "serial", value) or _matches(dev, "wwn", value)


def _describe_match(match):
    return ", ".join("%s=%s" % (key, match[key]) for key in MATCH_KEYS if key in match)


def _signature_text(sig):
    extra = []
    if sig.get("label"):
        extra.append("label %s" % sig["label"])
    if sig.get("uuid"):
        extra.append("uuid %s" % sig["uuid"])
    text = sig.get("type") or "unknown"
    if sig.get("offset"):
        text += " at %s" % sig["offset"]
    if extra:
        text += " (%s)" % ", ".join(extra)
    return text


def _auto_tier(dev):
    transport = dev["transport"]
    if transport == "usb":
        return None, "transport usb is never used for a tier"
    if transport == "nvme":
        return "hot", "NVMe device: hot tier"
    if dev["rotational"] is True:
        return "cold", "rotational disk (transport %s): cold tier" % (transport or "unknown")
    if dev["rotational"] is False and transport in ("sas", "sata", "ata"):
        return "warm", "non-rotational %s SSD: warm tier" % transport.upper()
    return None, "no tier rule for a %s device on transport %s; set a policy override" % (
        "non-rotational" if dev["rotational"] is False else "device of unknown rotation",
        transport or "unknown")


def classify_devices(devices, sysfs=None, links=None, probes=None, policy=None):
    """Classify every top-level block device and evaluate the wipe list.

    ``devices``: output of ``parse_lsblk_json``; ``sysfs``: ``read_sysfs_facts`` output;
    ``links``: ``read_disk_links`` output; ``probes``: kernel name -> ``parse_wipefs_result``
    output, or None when no signature probe ran (then only lsblk's FSTYPE/PTTYPE count, and a
    device missing from a given ``probes`` dict counts as not probed); ``policy``: output of
    ``validate_policy``.

    Reasons come in three strengths: a device in use (OS disk, mounted, held by md/dm, removable,
    memory-backed, wrong type, no stable id) is never chosen nor wipe-allowed; a device carrying
    signatures becomes usable only when named in ``wipe_devices``; the remaining rules (size,
    transport) yield to a policy override.
    """
    policy = policy or validate_policy({})
    link_index = _links_by_kname(links)
    include_types = policy["include_types"]
    min_size = policy["min_size_gib"]

    wipe_hits = {}
    all_facts = [_device_facts(node, sysfs, link_index) for node in devices]
    for wipe_id in policy["wipe_devices"]:
        wipe_hits[wipe_id] = [dev["kname"] for dev in all_facts if _matches_wipe_id(dev, wipe_id)]

    out_devices, excluded, wipe_allowed, wipe_refused = [], [], [], []
    tiers = dict((tier, []) for tier in TIERS)
    refused_by_kname = {}

    for dev in sorted(all_facts, key=lambda d: _natural_key(d["kname"])):
        hard, signature, soft, notes = [], [], [], []
        kname = dev["kname"]

        if _MEMORY_DEVICE_RE.match(kname):
            hard.append("memory-backed device (%s)" % kname)
        if dev["type"] not in include_types:
            hard.append("type %s is not in include_types (%s)" % (dev["type"], ", ".join(include_types)))
        if dev["removable"]:
            hard.append("removable device")
        os_mounts = [m for m in dev["mounts"] if m["mountpoint"] in OS_MOUNTPOINTS]
        other_mounts = [m for m in dev["mounts"] if m["mountpoint"] not in OS_MOUNTPOINTS]
        if os_mounts:
            hard.append("operating system disk: " + ", ".join(
                "%s on %s" % (m["mountpoint"], m["source"]) for m in os_mounts))
        if other_mounts:
            hard.append("in use: mounted " + ", ".join(
                "%s on %s" % (m["mountpoint"], m["source"]) for m in other_mounts))
        if dev["holders"]:
            hard.append("in use: held by " + ", ".join(
                "%s (%s)" % (h["name"], h["type"]) if h["type"] else h["name"] for h in dev["holders"]))
        if not (dev["stable_id"] or dev["serial"] or dev["wwn"]):
            hard.append("no stable identifier (no by-id or by-path link, serial or WWN)")

        if dev["partitions"]:
            signature.append("has partitions: %s" % ", ".join(dev["partitions"]))
        probe = None if probes is None else probes.get(kname)
        sig_types = set()
        dev["signatures"] = []
        if probe is not None:
            if probe.get("error"):
                signature.append("signature probe failed: %s" % probe["error"])
            dev["signatures"] = list(probe.get("signatures") or [])
            if dev["signatures"]:
                signature.append("carries signatures: " + "; ".join(_signature_text(s) for s in dev["signatures"]))
            sig_types = set((s.get("type") or "").lower() for s in dev["signatures"])
        elif probes is not None and not hard:
            signature.append("signatures were not probed")
        for field in ("fstype", "pttype"):
            if dev[field] and dev[field].lower() not in sig_types:
                signature.append("lsblk reports %s %s" % (field.upper(), dev[field]))
        dev["probe_error"] = probe.get("error") if probe else None

        size = dev["size_bytes"] or 0
        if size < min_size * _GIB:
            soft.append("size %.2f GiB is below min_size_gib %g" % (size / float(_GIB), min_size))

        auto_tier, tier_note = _auto_tier(dev)
        if auto_tier is None:
            soft.append(tier_note)

        override = None
        for item in policy["overrides"]:
            if all(_matches(dev, key, value) for key, value in item["match"].items()):
                override = item
                break

        named_by = [wipe_id for wipe_id, hits in wipe_hits.items() if kname in hits]
        ambiguous = [wipe_id for wipe_id in named_by if len(wipe_hits[wipe_id]) > 1]

        tier = None
        reasons = hard + signature
        if override and override["tier"] == "exclude":
            reasons = reasons + soft + ["excluded by policy override #%d (%s)" % (
                override["index"], _describe_match(override["match"]))]
        elif hard:
            reasons = reasons + soft
        elif signature and (not named_by or ambiguous):
            reasons = reasons + soft + [
                "existing data is never wiped unless the disk is named in wipe_devices "
                "by by-id, by-path, serial or WWN"]
            if ambiguous:
                reasons.append("wipe id(s) %s match more than one device" % ", ".join(ambiguous))
        else:
            if signature:
                notes.append("named in wipe_devices as %s: signatures will be wiped" % ", ".join(named_by))
            if override:
                tier = override["tier"]
                notes.extend("overridden: %s" % text for text in soft)
                notes.append("policy override #%d (%s): %s tier" % (
                    override["index"], _describe_match(override["match"]), tier))
            elif soft:
                reasons = reasons + soft
            else:
                tier = auto_tier
                notes.append(tier_note)
            if tier:
                if not signature:
                    notes.append("no partitions, holders, mounts or signatures")
                notes.append("size %.2f GiB" % (size / float(_GIB)))
                reasons = notes

        dev["tier"] = tier
        dev["reasons"] = reasons
        dev["os_disk"] = bool(os_mounts)
        dev["wipe_needed"] = bool(tier and signature)
        out_devices.append(dev)

        if tier:
            tiers[tier].append({
                "device": dev["path"],
                "id": dev["stable_id"],
                "by_id": dev["by_id"],
                "by_path": dev["by_path"],
                "serial": dev["serial"],
                "wwn": dev["wwn"],
                "model": dev["model"],
                "size_bytes": dev["size_bytes"],
                "wipe_needed": dev["wipe_needed"],
            })
        else:
            excluded.append({"device": dev["path"], "reasons": reasons})

        if named_by:
            refuse = list(hard)
            if override and override["tier"] == "exclude":
                refuse.append("excluded by policy override #%d" % override["index"])
            if ambiguous:
                refuse.append("wipe id(s) %s match more than one device" % ", ".join(ambiguous))
            if refuse:
                refused_by_kname[kname] = {"device": dev["path"], "ids": named_by, "reasons": refuse}
            else:
                wipe_allowed.append({
                    "device": dev["path"],
                    "ids": named_by,
                    "id": dev["stable_id"],
                    "serial": dev["serial"],
                    "wwn": dev["wwn"],
                    "signatures": dev["signatures"],
                    "tier": tier,
                })

    wipe_refused = [refused_by_kname[k] for k in sorted(refused_by_kname, key=_natural_key)]
    wipe_unmatched = [wipe_id for wipe_id in policy["wipe_devices"] if not wipe_hits[wipe_id]]
    capacity = dict((tier, sum(item["size_bytes"] or 0 for item in tiers[tier])) for tier in TIERS)
    return {
        "devices": out_devices,
        "tiers": tiers,
        "tier_capacity_bytes": capacity,
        "excluded": excluded,
        "wipe_allowed": wipe_allowed,
        "wipe_refused": wipe_refused,
        "wipe_unmatched": wipe_unmatched,
    }


def probe_targets(devices, include_types):
    """Whole devices worth a signature probe: of an included type and not memory-backed."""
    return [node for node in devices
            if node["type"] in include_types and not _MEMORY_DEVICE_RE.match(node["kname"])]
