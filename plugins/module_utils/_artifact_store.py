# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The model store on disk for onprem.deepseek.model_artifact (private to the collection).

Store layout under ``<dest>/<name>``::

    versions/<version>/...        verified files of one model version
    versions/<version>/.manifest  the manifest the version was staged from
    versions/<version>/.manifest.sha256
    current -> versions/<version> relative symlink, replaced atomically
    .history.json                 activation order, oldest first
    .release.json                 the version the inventory's runs made current, and the one a
                                  release made current since (see _artifact.release_guard)
    .lock                         flock held by a run that changes the store
    .staging-<version>-<random>/  files being fetched (never read by a server)
"""

from __future__ import annotations

import errno
import fcntl
import grp
import json
import os
import pwd
import re
import shutil
import tempfile

from ansible.module_utils.common.text.formatters import bytes_to_human

from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_copy import (
    CHUNK_SIZE,
    NO_SPACE,
    default_workers,
    run_each,
    stream_copy,
)
from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_manifest import (
    MANIFEST_COPY,
    MANIFEST_DIGEST,
    ArtifactError,
    parse_manifest,
    validate_component,
)

HISTORY = ".history.json"
RELEASE_RECORD = ".release.json"
LOCK = ".lock"
STAGING_PREFIX = ".staging-"
TRASH_PREFIX = ".trash-"


# ---------------------------------------------------------------------------
# ownership and modes


def parse_mode(mode):
    if mode is None:
        return None
    if isinstance(mode, int):
        value = mode
    else:
        text = str(mode).strip()
        if not re.match(r"^0?[0-7]{3,4}$", text):
            raise ArtifactError("mode %r: give an octal mode such as '0644'" % (mode,))
        value = int(text, 8)
    if value & ~0o7777:
        raise ArtifactError("mode %r is out of range" % (mode,))
    return value


def dir_mode_for(file_mode):
    """Directories get x wherever the file mode grants r, so readers can traverse."""
    mode = file_mode & 0o777
    for r_bit, x_bit in ((0o400, 0o100), (0o040, 0o010), (0o004, 0o001)):
        if mode & r_bit:
            mode |= x_bit
    return mode | 0o700


def resolve_ids(owner, group):
    uid = gid = -1
    if owner not in (None, ""):
        try:
            uid = int(owner) if str(owner).isdigit() else pwd.getpwnam(owner).pw_uid
        except KeyError:
            raise ArtifactError("owner %s does not exist" % owner)
    if group not in (None, ""):
        try:
            gid = int(group) if str(group).isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise ArtifactError("group %s does not exist" % group)
    return uid, gid


def apply_tree_attrs(root, file_mode, uid, gid):
    dmode = dir_mode_for(file_mode)
    for dirpath, dirnames, filenames in os.walk(root):
        for fname in filenames:
            path = os.path.join(dirpath, fname)
            if uid != -1 or gid != -1:
                os.lchown(path, uid, gid)
            os.chmod(path, file_mode)
        if uid != -1 or gid != -1:
            os.lchown(dirpath, uid, gid)
        os.chmod(dirpath, dmode)


# ---------------------------------------------------------------------------
# the store


class ModelStore:
    def __init__(self, dest, name):
        self.dest = dest
        self.name = validate_component("name", name)
        self.root = os.path.join(dest, name)
        self.versions_dir = os.path.join(self.root, "versions")
        self.current_link = os.path.join(self.root, "current")
        self._lock_fd = None

    def version_dir(self, version):
        return os.path.join(self.versions_dir, version)

    def current_version(self):
        """The version ``current`` points at, or None."""
        try:
            target = os.readlink(self.current_link)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise ArtifactError("%s exists and is not a symlink; refusing to manage it" % self.current_link)
            raise ArtifactError("cannot read %s: %s" % (self.current_link, exc.strerror or exc))
        if not os.path.isabs(target):
            target = os.path.join(self.root, target)
        target = os.path.normpath(target)
        if os.path.dirname(target) == os.path.normpath(self.versions_dir):
            return os.path.basename(target)
        return None

    def versions(self):
        try:
            names = os.listdir(self.versions_dir)
        except FileNotFoundError:
            return []
        return [n for n in names if not n.startswith(".") and os.path.isdir(os.path.join(self.versions_dir, n))
                and not os.path.islink(os.path.join(self.versions_dir, n))]

    def history(self):
        try:
            with open(os.path.join(self.root, HISTORY), "rb") as handle:
                doc = json.loads(handle.read().decode("utf-8"))
            items = doc.get("activations", [])
            return [v for v in items if isinstance(v, str)]
        except (OSError, ValueError, AttributeError):
            return []

    def release_record(self):
        """``{"inventory": version, "release": version}`` from .release.json; both None without one."""
        path = os.path.join(self.root, RELEASE_RECORD)
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return {"inventory": None, "release": None}
        except OSError as exc:
            raise ArtifactError("cannot read %s: %s" % (path, exc.strerror or exc))
        return parse_release_record(raw, path)

    def write_release_record(self, record):
        _atomic_write(os.path.join(self.root, RELEASE_RECORD),
                      json.dumps(record, sort_keys=True, indent=1).encode("utf-8"))

    def ordered_versions(self):
        """Versions on disk, least recently activated first (unknown ones by mtime, oldest first)."""
        present = self.versions()
        hist = [v for v in self.history() if v in present]
        rest = [v for v in present if v not in hist]
        rest.sort(key=lambda v: (os.stat(self.version_dir(v)).st_mtime, v))
        return rest + hist

    def stored_digest(self, version):
        try:
            with open(os.path.join(self.version_dir(version), MANIFEST_DIGEST), "r") as handle:
                return handle.read().strip()
        except OSError:
            return None

    def stored_manifest(self, version):
        try:
            with open(os.path.join(self.version_dir(version), MANIFEST_COPY), "rb") as handle:
                raw = handle.read()
        except OSError:
            return None
        fmt = "json" if raw.lstrip().startswith(b"{") else "sha256sums"
        return parse_manifest(fmt, raw)

    # -- changes ------------------------------------------------------------

    def lock(self):
        os.makedirs(self.root, exist_ok=True)
        fd = os.open(os.path.join(self.root, LOCK), os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ArtifactError("%s is locked by another model_artifact run" % self.root)
        self._lock_fd = fd

    def unlock(self):
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def clean_leftovers(self):
        """Staging and trash directories of interrupted runs (we hold the lock, so none is live)."""
        removed = []
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return removed
        for fname in names:
            if fname.startswith(STAGING_PREFIX) or fname.startswith(TRASH_PREFIX):
                shutil.rmtree(os.path.join(self.root, fname), ignore_errors=True)
                removed.append(fname)
        return removed

    def record_activation(self, version):
        hist = [v for v in self.history() if v != version and os.path.isdir(self.version_dir(v))]
        hist.append(version)
        _atomic_write(os.path.join(self.root, HISTORY), json.dumps({"activations": hist}, indent=1).encode())

    def switch(self, version):
        """Point ``current`` at ``version`` with one rename(2): readers see old or new, never neither."""
        if os.path.lexists(self.current_link) and not os.path.islink(self.current_link):
            raise ArtifactError("%s exists and is not a symlink; refusing to replace it" % self.current_link)
        tmp = os.path.join(self.root, ".current-%d-%s" % (os.getpid(), os.urandom(4).hex()))
        os.symlink(os.path.join("versions", version), tmp)
        try:
            os.replace(tmp, self.current_link)
        except OSError:
            _unlink_quiet(tmp)
            raise
        fsync_dir(self.root)

    def remove_version(self, version):
        """Rename away first so a half-deleted tree never sits under versions/."""
        trash = os.path.join(self.root, "%s%s-%s" % (TRASH_PREFIX, version, os.urandom(4).hex()))
        os.rename(self.version_dir(version), trash)
        shutil.rmtree(trash, ignore_errors=True)


def parse_release_record(raw, path):
    """The release record's text (bytes or str); ArtifactError naming ``path`` when damaged."""
    try:
        doc = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
        record = {"inventory": doc["inventory"], "release": doc["release"]}
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        record = None
    if record is None or not all(v is None or (isinstance(v, str) and v) for v in record.values()):
        raise ArtifactError("%s is damaged (want {\"inventory\": version, \"release\": version or null}); "
                            "write it again or remove it" % path)
    return record


def fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quiet(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _atomic_write(path, data, mode=0o644):
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quiet(tmp)
        raise


def free_space_target(path):
    """disk_usage needs an existing path: walk up to the first one."""
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def check_free_space(path, need, reserve):
    free = shutil.disk_usage(free_space_target(path)).free
    if need + reserve > free:
        raise ArtifactError(
            "not enough free space in %s: need %d bytes (%s) for the files plus %s reserve, %d bytes (%s) free"
            % (path, need + reserve, bytes_to_human(need + reserve), bytes_to_human(reserve), free,
               bytes_to_human(free)))
    return free


def plan_prune(ordered, keep, protect):
    """Versions to delete: all but the ``keep`` most recently activated, never one in ``protect``."""
    candidates = [v for v in ordered if v not in protect]
    if keep <= 0:
        return candidates
    return candidates[:-keep] if len(candidates) > keep else []


def stage_version(store, source, manifest, version, file_mode=0o644, uid=-1, gid=-1,
                  chunk_size=CHUNK_SIZE, fsync=True, sizes=None, workers=None):
    """Fetch and verify every file into a fresh staging dir; return (staging_dir, fetched, bytes).

    Up to ``workers`` files (default: one per CPU) are copied at once, largest first, so the
    last ones to finish are small. On any failure the other copies stop, the staging dir is
    removed once they have, and the error is re-raised; nothing under versions/ or ``current``
    has been touched at that point.
    """
    sizes = sizes or {}
    os.makedirs(store.root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix="%s%s-" % (STAGING_PREFIX, version), dir=store.root)

    def copy_one(entry, cancelled):
        stream, length = source.open(entry.path)
        if length is None:
            length = sizes.get(entry.path)
        try:
            return stream_copy(stream, os.path.join(staging, entry.path), entry, store.root,
                               length=length, chunk_size=chunk_size, fsync=fsync, cancelled=cancelled)
        finally:
            stream.close()

    def known_size(entry):
        return entry.size if entry.size is not None else (sizes.get(entry.path) or 0)

    try:
        order = sorted(manifest.files, key=known_size, reverse=True)
        total = sum(run_each(copy_one, order, workers or default_workers()))
        fetched = [entry.path for entry in manifest.files]
        try:
            with open(os.path.join(staging, MANIFEST_COPY), "wb") as handle:
                handle.write(manifest.raw)
            with open(os.path.join(staging, MANIFEST_DIGEST), "w") as handle:
                handle.write(manifest.digest + "\n")
            apply_tree_attrs(staging, file_mode, uid, gid)
        except OSError as exc:
            if exc.errno in NO_SPACE:
                raise ArtifactError("file %s: disk full while staging into %s" % (MANIFEST_COPY, store.root))
            raise ArtifactError("cannot finish staging in %s: %s" % (staging, exc.strerror or exc))
        if fsync:
            for dirpath, _dirs, _files in os.walk(staging):
                fsync_dir(dirpath)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging, fetched, total


def install_staged(store, staging, version, dir_mode=0o755):
    """Move a verified staging dir to versions/<version>, replacing a stale non-live copy."""
    os.makedirs(store.versions_dir, mode=dir_mode, exist_ok=True)
    target = store.version_dir(version)
    if os.path.lexists(target):
        trash = os.path.join(store.root, "%s%s-%s" % (TRASH_PREFIX, version, os.urandom(4).hex()))
        os.rename(target, trash)
        os.rename(staging, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(staging, target)
    fsync_dir(store.versions_dir)
