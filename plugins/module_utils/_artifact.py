# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""onprem.deepseek.model_artifact's states: present, rollback, absent (private to the collection).

The pieces live in one file each: ``_artifact_manifest`` (manifests and paths),
``_artifact_source`` (directory or HTTP(S) store), ``_artifact_copy`` (the one-pass verified
copy) and ``_artifact_store`` (the store on disk, staging, the atomic switch).
"""

from __future__ import annotations

import hashlib
import os
import shutil

from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_copy import CHUNK_SIZE, default_workers, verify_files
from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_manifest import (
    MANIFEST_JSON,
    MANIFEST_SUMS,
    ArtifactError,
    parse_manifest,
    validate_component,
)
from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_source import build_source, request_kwargs
from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_store import (
    RELEASE_RECORD,
    ModelStore,
    check_free_space,
    install_staged,
    parse_mode,
    plan_prune,
    resolve_ids,
    stage_version,
)

__all__ = ["ArtifactError", "run"]


def _diff(before, after):
    return {
        "before_header": "current",
        "after_header": "current",
        "before": "versions/%s\n" % before if before else "",
        "after": "versions/%s\n" % after if after else "",
    }


def release_guard(record, current, wanted, replace_release=False):
    """The version a run naming ``wanted`` must not silently switch away from, or None.

    playbooks/model_release.yml makes a version current without the inventory naming it. A later
    run from the inventory that still names the older version would switch back: it is refused
    while the released version is current, unless ``replace_release`` says that is the intent.
    """
    released = record.get("release")
    if released and released == current and wanted != current and not replace_release:
        return released
    return None


def next_release_record(record, before, after, released):
    """The record after a run that leaves ``after`` current (``before`` was).

    A run from the inventory (not ``released``) records ``after`` as the inventory's version and
    no release; a release keeps the inventory's version (a store without a record: the one that was
    current) and records ``after`` as released unless it is the inventory's own.
    """
    if not released:
        return {"inventory": after, "release": None}
    inventory = record.get("inventory") or before or after
    return {"inventory": inventory, "release": after if after != inventory else None}


def _refuse_release(store, record, current, wanted):
    raise ArtifactError(
        "%s: version %s is current because a release made it so (%s; the inventory's version was %s), and this run "
        "names %s: name %s to keep it, or set replace_release (model_store_replace_release) to switch back"
        % (store.root, current, os.path.join(store.root, RELEASE_RECORD), record.get("inventory") or "not recorded",
           wanted, current))


def _base_result(store, version, previous):
    return {
        "changed": False,
        "version": version,
        "current": store.version_dir(version) if version else None,
        "previous": previous,
        "fetched": [],
        "bytes": 0,
        "kept_versions": [],
        "removed_versions": [],
    }


def _check_dest(dest, check_mode=False):
    """Whether dest exists. In check mode a missing dest is a first deploy whose earlier tasks (the
    tier's mount, the store's directories) are only predicted: everything would be staged."""
    if not os.path.isabs(dest):
        raise ArtifactError("dest %s must be an absolute path" % dest)
    if os.path.isdir(dest):
        return True
    if check_mode and not os.path.lexists(dest):
        return False
    raise ArtifactError("dest %s does not exist or is not a directory (is the storage tier mounted?)" % dest)


def ensure_present(params, check_mode=False, opener=None):
    """Stage the version if needed; with state=staged stop there (no switch, no prune)."""
    dest, name = params["dest"], params["name"]
    activate = params.get("state", "present") != "staged"
    version = validate_component("version", params.get("version"))
    dest_exists = _check_dest(dest, check_mode)
    store = ModelStore(dest, name)
    keep = params.get("keep", 2)
    if keep is None or keep < 0:
        raise ArtifactError("keep must be 0 or more")
    file_mode = parse_mode(params.get("mode") or "0644")
    # On a first deploy in check mode the service account may be only predicted too.
    uid, gid = resolve_ids(params.get("owner"), params.get("group")) if dest_exists else (-1, -1)
    reserve = params.get("reserve_bytes") or 0
    chunk_size = params.get("chunk_size") or CHUNK_SIZE
    workers = params.get("workers")
    if workers is not None and workers < 1:
        raise ArtifactError("workers must be 1 or more (omit it for one per CPU)")

    # Before the source is read: a refused run fetches nothing.
    previous = store.current_version()
    released = bool(params.get("released"))
    record = store.release_record() if activate else None
    if activate and not released and release_guard(record, previous, version, params.get("replace_release")):
        _refuse_release(store, record, previous, version)

    source = build_source(params["source"], name, version, request_kwargs(params), opener=opener)
    fmt, raw = source.read_manifest()
    if params.get("manifest_sha256"):
        want = params["manifest_sha256"].lower()
        have = hashlib.sha256(raw).hexdigest()
        if have != want:
            raise ArtifactError("%s: sha256 %s does not match manifest_sha256 %s" % (
                source.describe(MANIFEST_JSON if fmt == "json" else MANIFEST_SUMS), have, want))
    manifest = parse_manifest(fmt, raw, name, version)

    result = _base_result(store, version, previous)
    present = version in store.versions()
    need_stage = True
    if present and store.stored_digest(version) == manifest.digest:
        need_stage = False
        if params.get("verify_existing"):
            problem = verify_files(store.version_dir(version), manifest.files, chunk_size,
                                   workers or default_workers())
            if problem and version == previous:
                raise ArtifactError("live version %s is damaged: %s; publish it as a new version or "
                                    "switch current away first" % (version, problem))
            need_stage = problem is not None
    elif present and version == previous:
        raise ArtifactError("version %s is live and %s does not match the manifest at %s; refusing to modify the "
                            "live version (publish a new version instead)"
                            % (version, store.version_dir(version), source.describe()))

    sizes = {}
    if need_stage and any(e.size is None for e in manifest.files):
        for entry in manifest.files:
            if entry.size is None:
                sizes[entry.path] = source.size(entry.path)
    need = sum(e.size if e.size is not None else (sizes.get(e.path) or 0) for e in manifest.files) if need_stage else 0
    if need_stage and dest_exists:
        check_free_space(store.root, need, reserve)

    switching = activate and previous != version
    ordered_after = [v for v in store.ordered_versions() if v != version] + [version]
    removed = plan_prune(ordered_after if switching else store.ordered_versions(), keep, {version}) if activate else []
    kept = [v for v in reversed(ordered_after) if v not in removed] if activate else list(reversed(store.ordered_versions()))

    new_record = next_release_record(record, previous, version, released) if activate else None
    record_changes = activate and new_record != record
    changed = need_stage or switching or bool(removed) or record_changes
    result.update(changed=changed, kept_versions=kept, removed_versions=removed)
    if activate:
        result["release_record"] = new_record
    if switching:
        result["diff"] = _diff(previous, version)
    if check_mode:
        result["would_fetch"] = [e.path for e in manifest.files] if need_stage else []
        result["bytes"] = need
        result["dest_exists"] = dest_exists
        return result

    if not changed:
        return result
    store.lock()
    try:
        store.clean_leftovers()
        if need_stage:
            staging, fetched, total = stage_version(store, source, manifest, version, file_mode, uid, gid,
                                                    chunk_size=chunk_size, fsync=params.get("fsync", True),
                                                    sizes=sizes, workers=workers)
            try:
                install_staged(store, staging, version)
            except OSError as exc:
                shutil.rmtree(staging, ignore_errors=True)
                raise ArtifactError("cannot move %s to %s: %s" % (
                    staging, store.version_dir(version), exc.strerror or exc))
            result.update(fetched=fetched, bytes=total)
        if switching:
            store.switch(version)
        if switching or (need_stage and activate):
            store.record_activation(version)
        for old in removed:
            store.remove_version(old)
        if record_changes:
            store.write_release_record(new_record)
    finally:
        store.unlock()
    return result


def rollback(params, check_mode=False):
    """Switch ``current`` back; without ``version`` undo the latest activation, once."""
    dest, name = params["dest"], params["name"]
    _check_dest(dest)
    store = ModelStore(dest, name)
    previous = store.current_version()
    ordered = store.ordered_versions()
    target = params.get("version")
    if target:
        validate_component("version", target)
        if target not in ordered:
            raise ArtifactError("cannot roll back to %s: %s does not exist (present: %s)" % (
                target, store.version_dir(target), ", ".join(reversed(ordered)) or "none"))
    elif previous is None:
        raise ArtifactError("%s has no current version to roll back from" % store.root)
    elif ordered and ordered[-1] != previous:
        # current is older than the latest activation: an earlier rollback already ran
        target = previous
    else:
        older = ordered[:-1]
        if not older:
            raise ArtifactError("no earlier version of %s to roll back to (only %s is present)" % (name, previous))
        target = older[-1]

    record = store.release_record()
    new_record = next_release_record(record, previous, target, bool(params.get("released")))
    result = _base_result(store, target, previous)
    result["kept_versions"] = list(reversed(ordered))
    result["release_record"] = new_record if target != previous else record
    if target == previous:
        return result
    result["changed"] = True
    result["diff"] = _diff(previous, target)
    if check_mode:
        result["would_fetch"] = []
        return result
    store.lock()
    try:
        store.switch(target)
        if new_record != record:
            store.write_release_record(new_record)
    finally:
        store.unlock()
    return result


def remove(params, check_mode=False):
    """Delete one version that is not live."""
    dest, name = params["dest"], params["name"]
    version = validate_component("version", params.get("version"))
    _check_dest(dest)
    store = ModelStore(dest, name)
    previous = store.current_version()
    if version == previous:
        raise ArtifactError("version %s is live (%s points at it); roll back or deploy another version first"
                            % (version, store.current_link))
    ordered = store.ordered_versions()
    result = _base_result(store, previous, previous)
    result["kept_versions"] = [v for v in reversed(ordered) if v != version]
    if version not in ordered:
        return result
    result.update(changed=True, removed_versions=[version])
    if check_mode:
        result["would_fetch"] = []
        return result
    store.lock()
    try:
        store.remove_version(version)
    finally:
        store.unlock()
    return result


def run(params, check_mode=False, opener=None):
    state = params.get("state", "present")
    if state in ("present", "staged"):
        return ensure_present(params, check_mode, opener=opener)
    if state == "rollback":
        return rollback(params, check_mode)
    if state == "absent":
        return remove(params, check_mode)
    raise ArtifactError("unknown state %s" % state)
