# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Model store logic for onprem.deepseek.model_artifact (private to the collection).

Store layout under ``<dest>/<name>``::

    versions/<version>/...        verified files of one model version
    versions/<version>/.manifest  the manifest the version was staged from
    versions/<version>/.manifest.sha256
    current -> versions/<version> relative symlink, replaced atomically
    .history.json                 activation order, oldest first
    .lock                         flock held by a run that changes the store
    .staging-<version>-<random>/  files being fetched (never read by a server)
"""

from __future__ import annotations

import errno
import fcntl
import grp
import hashlib
import http.client
import json
import os
import pwd
import queue
import re
import shutil
import tempfile
import threading
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from ansible.module_utils.common.text.formatters import bytes_to_human

MANIFEST_JSON = "manifest.json"
MANIFEST_SUMS = "SHA256SUMS"
MANIFEST_COPY = ".manifest"
MANIFEST_DIGEST = ".manifest.sha256"
HISTORY = ".history.json"
LOCK = ".lock"
STAGING_PREFIX = ".staging-"
TRASH_PREFIX = ".trash-"
CHUNK_SIZE = 4 * 1024 * 1024
MAX_MANIFEST_BYTES = 16 * 1024 * 1024

_RESERVED = (MANIFEST_COPY, MANIFEST_DIGEST)
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_SUMS_LINE_RE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class ArtifactError(Exception):
    """A failure the module reports with fail_json; the message names the file."""


class ManifestEntry:
    __slots__ = ("path", "size", "sha256")

    def __init__(self, path, size, sha256):
        self.path = path
        self.size = size
        self.sha256 = sha256

    def __repr__(self):
        return "ManifestEntry(%r, %r, %r)" % (self.path, self.size, self.sha256)

    def __eq__(self, other):
        return isinstance(other, ManifestEntry) and (self.path, self.size, self.sha256) == (
            other.path, other.size, other.sha256)


class Manifest:
    def __init__(self, fmt, raw, files, model=None, version=None):
        self.fmt = fmt
        self.raw = raw
        self.files = files
        self.model = model
        self.version = version
        self.digest = hashlib.sha256(raw).hexdigest()

    @property
    def total_size(self):
        return sum(e.size or 0 for e in self.files)


# ---------------------------------------------------------------------------
# names and paths


def validate_component(label, value):
    """A model name or version becomes one directory name: keep it to one safe component."""
    if not isinstance(value, str) or not value:
        raise ArtifactError("%s must be a non-empty string" % label)
    if value.startswith(".") or "/" in value or "\\" in value or "\0" in value or len(value) > 200:
        raise ArtifactError(
            "%s %r is not usable as a directory name (no '/', no leading '.', at most 200 characters)"
            % (label, value))
    return value


def validate_relpath(path, manifest_name=MANIFEST_JSON):
    """Return the normalised relative path or raise naming the offending entry."""
    if not isinstance(path, str) or not path:
        raise ArtifactError("%s: file entry with an empty or non-string path" % manifest_name)
    if "\0" in path or "\\" in path:
        raise ArtifactError("%s: file %r: invalid character in path" % (manifest_name, path))
    if path.startswith("/"):
        raise ArtifactError("%s: file %r: absolute paths are not allowed" % (manifest_name, path))
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArtifactError("%s: file %r: '..' (path traversal) is not allowed" % (manifest_name, path))
    if not parts:
        raise ArtifactError("%s: file %r: path names no file" % (manifest_name, path))
    if parts[0] in _RESERVED:
        raise ArtifactError("%s: file %r: name is reserved by the model store" % (manifest_name, path))
    return "/".join(parts)


def _check_entries(entries, manifest_name):
    seen = set()
    for entry in entries:
        if entry.path in seen:
            raise ArtifactError("%s: file %r is listed twice" % (manifest_name, entry.path))
        seen.add(entry.path)
    for entry in entries:
        parts = entry.path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in seen:
                raise ArtifactError("%s: file %r lies below file %r" % (
                    manifest_name, entry.path, "/".join(parts[:i])))
    if not entries:
        raise ArtifactError("%s lists no files" % manifest_name)


# ---------------------------------------------------------------------------
# manifests


def parse_manifest_json(raw, name=None, version=None):
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError("%s: not valid JSON: %s" % (MANIFEST_JSON, exc))
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        raise ArtifactError("%s: expected an object with a 'files' list" % MANIFEST_JSON)
    for key, want in (("model", name), ("version", version)):
        have = doc.get(key)
        if want is not None and have is not None and str(have) != want:
            raise ArtifactError("%s names %s %r, expected %r" % (MANIFEST_JSON, key, have, want))
    entries = []
    for item in doc["files"]:
        if not isinstance(item, dict):
            raise ArtifactError("%s: every 'files' item must be an object" % MANIFEST_JSON)
        path = validate_relpath(item.get("path"))
        size = item.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ArtifactError("%s: file %r: 'size' must be a non-negative integer" % (MANIFEST_JSON, path))
        digest = item.get("sha256")
        if not isinstance(digest, str) or not _SHA256_RE.match(digest.lower()):
            raise ArtifactError("%s: file %r: 'sha256' must be 64 hex digits" % (MANIFEST_JSON, path))
        entries.append(ManifestEntry(path, size, digest.lower()))
    _check_entries(entries, MANIFEST_JSON)
    return Manifest("json", raw, entries, doc.get("model"), doc.get("version"))


def parse_sha256sums(raw):
    """sha256sum output: '<hex>  <path>' (text) or '<hex> *<path>' (binary); sizes are unknown."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArtifactError("%s: not UTF-8: %s" % (MANIFEST_SUMS, exc))
    entries = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _SUMS_LINE_RE.match(line)
        if not match:
            raise ArtifactError("%s line %d: expected '<sha256>  <path>'" % (MANIFEST_SUMS, lineno))
        path = validate_relpath(match.group(2), MANIFEST_SUMS)
        if path == MANIFEST_JSON:
            continue
        entries.append(ManifestEntry(path, None, match.group(1).lower()))
    _check_entries(entries, MANIFEST_SUMS)
    return Manifest("sha256sums", raw, entries)


def parse_manifest(fmt, raw, name=None, version=None):
    if fmt == "json":
        return parse_manifest_json(raw, name, version)
    return parse_sha256sums(raw)


# ---------------------------------------------------------------------------
# sources


def redact_url(url):
    parts = urlsplit(url)
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += ":%d" % parts.port
        parts = parts._replace(netloc="***@" + netloc)
    return urlunsplit(parts)


class LocalSource:
    """A directory tree: local disk or an NFS mount of the artifact store."""

    def __init__(self, root):
        self.root = root

    def describe(self, relpath=""):
        return os.path.join(self.root, relpath) if relpath else self.root

    def read_manifest(self):
        for fmt, fname in (("json", MANIFEST_JSON), ("sha256sums", MANIFEST_SUMS)):
            path = os.path.join(self.root, fname)
            try:
                with open(path, "rb") as handle:
                    raw = handle.read(MAX_MANIFEST_BYTES + 1)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ArtifactError("cannot read %s: %s" % (path, exc.strerror or exc))
            if len(raw) > MAX_MANIFEST_BYTES:
                raise ArtifactError("%s is larger than %d bytes" % (path, MAX_MANIFEST_BYTES))
            return fmt, raw
        raise ArtifactError("no %s or %s in %s" % (MANIFEST_JSON, MANIFEST_SUMS, self.root))

    def size(self, relpath):
        try:
            return os.stat(os.path.join(self.root, relpath)).st_size
        except OSError:
            return None

    def open(self, relpath):
        path = os.path.join(self.root, relpath)
        try:
            handle = open(path, "rb", buffering=0)
        except OSError as exc:
            raise ArtifactError("file %s: cannot open %s: %s" % (relpath, path, exc.strerror or exc))
        try:
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        except (AttributeError, OSError):
            pass
        return handle, None


class HttpSource:
    """``<base>/<name>/<version>/<path>`` over HTTP(S) with ansible's open_url."""

    def __init__(self, base_url, request_kwargs, opener=None):
        self.base = base_url.rstrip("/") + "/"
        self.kwargs = dict(request_kwargs)
        if opener is None:
            from ansible.module_utils.urls import open_url as opener
        self._open_url = opener

    def url(self, relpath=""):
        return self.base + quote(relpath, safe="/")

    def describe(self, relpath=""):
        return redact_url(self.url(relpath))

    def _request(self, relpath, method="GET"):
        return self._open_url(self.url(relpath), method=method, decompress=False, **self.kwargs)

    @staticmethod
    def _error(exc):
        import urllib.error
        if isinstance(exc, urllib.error.HTTPError):
            return "HTTP %s %s" % (exc.code, exc.reason)
        return str(getattr(exc, "reason", None) or exc)

    def read_manifest(self):
        import urllib.error
        for fmt, fname in (("json", MANIFEST_JSON), ("sha256sums", MANIFEST_SUMS)):
            try:
                resp = self._request(fname)
                try:
                    raw = resp.read(MAX_MANIFEST_BYTES + 1)
                finally:
                    resp.close()
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    continue
                raise ArtifactError("cannot fetch %s: %s" % (self.describe(fname), self._error(exc)))
            except (OSError, http.client.HTTPException, ValueError) as exc:
                raise ArtifactError("cannot fetch %s: %s" % (self.describe(fname), self._error(exc)))
            if len(raw) > MAX_MANIFEST_BYTES:
                raise ArtifactError("%s is larger than %d bytes" % (self.describe(fname), MAX_MANIFEST_BYTES))
            return fmt, raw
        raise ArtifactError("no %s or %s at %s" % (MANIFEST_JSON, MANIFEST_SUMS, self.describe()))

    def size(self, relpath):
        try:
            resp = self._request(relpath, method="HEAD")
        except (OSError, http.client.HTTPException, ValueError):
            return None
        try:
            length = resp.headers.get("Content-Length")
        finally:
            resp.close()
        return int(length) if length and length.isdigit() else None

    def open(self, relpath):
        try:
            resp = self._request(relpath)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise ArtifactError("file %s: cannot fetch %s: %s" % (
                relpath, self.describe(relpath), self._error(exc)))
        length = resp.headers.get("Content-Length")
        return resp, int(length) if length and length.isdigit() else None


def build_source(source, name, version, request_kwargs=None, opener=None):
    """Pick the source type from ``source`` and point it at ``<source>/<name>/<version>``."""
    parts = urlsplit(source)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        base = source.rstrip("/") + "/" + quote(name, safe="") + "/" + quote(version, safe="")
        return HttpSource(base, request_kwargs or {}, opener=opener)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ArtifactError("source %s: file URLs must name a local path" % source)
        root = unquote(parts.path)
    elif scheme == "" and source.startswith("/"):
        root = source
    else:
        raise ArtifactError("source %s: use https://, http://, file:// or an absolute path" % redact_url(source))
    return LocalSource(os.path.join(root, name, version))


# ---------------------------------------------------------------------------
# one-pass verified copy


def write_all(fd, data):
    """Write the whole buffer; tests patch this to simulate a full disk."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_into(stream, buf):
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        return readinto(buf) or 0
    data = stream.read(len(buf))
    buf[:len(data)] = data
    return len(data)


_WRITEBACK_STEP = 32 * 1024 * 1024


def _start_writeback(fd, offset, length):
    """Start writing back what is already written, so the final fsync has little left to wait for.

    On Linux POSIX_FADV_DONTNEED starts writeback of dirty pages in the range without waiting.
    """
    try:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
    except (AttributeError, OSError):
        pass


class _Slot:
    __slots__ = ("buf", "view", "free")

    def __init__(self, size):
        self.buf = bytearray(size)
        self.view = memoryview(self.buf)
        self.free = threading.Event()
        self.free.set()


class _Hasher:
    """SHA-256 in a worker thread, so hashing one chunk overlaps reading and writing the next.

    hashlib and os.write release the GIL for large buffers; this keeps staging near disk speed.
    """

    def __init__(self):
        self.digest = hashlib.sha256()
        self._todo = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="model-artifact-sha256", daemon=True)
        self._thread.start()

    def _loop(self):
        while True:
            item = self._todo.get()
            if item is None:
                return
            view, slot = item
            self.digest.update(view)
            slot.free.set()

    def update(self, view, slot):
        self._todo.put((view, slot))

    def close(self):
        if self._thread is not None:
            self._todo.put(None)
            self._thread.join()
            self._thread = None


class _InlineHasher:
    def __init__(self):
        self.digest = hashlib.sha256()

    def update(self, view, slot):
        self.digest.update(view)
        slot.free.set()

    def close(self):
        pass


def stream_copy(stream, dest_path, entry, where, length=None, chunk_size=CHUNK_SIZE, fsync=True):
    """Copy ``stream`` to ``dest_path`` hashing on the way; return the bytes written.

    ``entry.size`` (or the source's own ``length`` when the manifest has no sizes) bounds the
    read, so a truncated or oversized source is reported as such rather than as a bad hash.
    """
    expected = entry.size if entry.size is not None else length
    small = expected is not None and expected <= chunk_size
    slots = [_Slot(chunk_size) for _i in range(1 if small else 3)]
    got = 0
    parent = os.path.dirname(dest_path)
    try:
        os.makedirs(parent, mode=0o700, exist_ok=True)
        fd = os.open(dest_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise ArtifactError("file %s: disk full while staging into %s" % (entry.path, where))
        raise ArtifactError("file %s: cannot create %s: %s" % (entry.path, dest_path, exc.strerror or exc))
    hasher = _InlineHasher() if small else _Hasher()
    flushed = 0
    try:
        index = 0
        while True:
            slot = slots[index % len(slots)]
            index += 1
            slot.free.wait()
            slot.free.clear()
            try:
                n = _read_into(stream, slot.view)
            except http.client.IncompleteRead:
                n = 0
                if expected is None:
                    raise ArtifactError("file %s: connection closed after %d bytes" % (entry.path, got))
            except (OSError, http.client.HTTPException) as exc:
                raise ArtifactError("file %s: read failed after %d bytes: %s" % (entry.path, got, exc))
            if not n:
                slot.free.set()
                break
            got += n
            if expected is not None and got > expected:
                raise ArtifactError("file %s: larger than expected (expected %d bytes, got at least %d)"
                                    % (entry.path, expected, got))
            chunk = slot.view[:n]
            hasher.update(chunk, slot)
            try:
                write_all(fd, chunk)
            except OSError as exc:
                if exc.errno in _NO_SPACE:
                    raise ArtifactError("file %s: disk full while staging into %s" % (entry.path, where))
                raise ArtifactError("file %s: write to %s failed: %s" % (entry.path, dest_path, exc.strerror or exc))
            if fsync and got - flushed >= _WRITEBACK_STEP:
                _start_writeback(fd, flushed, got - flushed)
                flushed = got
        hasher.close()
        if expected is not None and got < expected:
            raise ArtifactError("file %s: truncated (expected %d bytes, got %d)" % (entry.path, expected, got))
        actual = hasher.digest.hexdigest()
        if actual != entry.sha256:
            raise ArtifactError("file %s: sha256 mismatch (expected %s, got %s)" % (entry.path, entry.sha256, actual))
        if fsync:
            try:
                os.fsync(fd)
            except OSError as exc:
                if exc.errno in _NO_SPACE:
                    raise ArtifactError("file %s: disk full while staging into %s" % (entry.path, where))
                raise ArtifactError("file %s: fsync of %s failed: %s" % (entry.path, dest_path, exc.strerror or exc))
    finally:
        hasher.close()
        os.close(fd)
    return got


def verify_file(path, entry, chunk_size=CHUNK_SIZE):
    """Re-hash a staged file; return None when it matches, else the reason naming the file."""
    try:
        size = os.lstat(path).st_size
        if entry.size is not None and size != entry.size:
            return "file %s: size %d, manifest says %d" % (entry.path, size, entry.size)
        digest = hashlib.sha256()
        buf = bytearray(chunk_size)
        view = memoryview(buf)
        with open(path, "rb", buffering=0) as handle:
            while True:
                n = handle.readinto(view)
                if not n:
                    break
                digest.update(view[:n])
    except OSError as exc:
        return "file %s: %s" % (entry.path, exc.strerror or exc)
    if digest.hexdigest() != entry.sha256:
        return "file %s: sha256 mismatch (expected %s, got %s)" % (entry.path, entry.sha256, digest.hexdigest())
    return None


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
                  chunk_size=CHUNK_SIZE, fsync=True, sizes=None):
    """Fetch and verify every file into a fresh staging dir; return (staging_dir, fetched, bytes).

    On any failure the staging dir is removed and the error re-raised; nothing under
    versions/ or ``current`` has been touched at that point.
    """
    os.makedirs(store.root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix="%s%s-" % (STAGING_PREFIX, version), dir=store.root)
    fetched = []
    total = 0
    try:
        for entry in manifest.files:
            stream, length = source.open(entry.path)
            if length is None and sizes:
                length = sizes.get(entry.path)
            try:
                total += stream_copy(stream, os.path.join(staging, entry.path), entry, store.root,
                                     length=length, chunk_size=chunk_size, fsync=fsync)
            finally:
                stream.close()
            fetched.append(entry.path)
        try:
            with open(os.path.join(staging, MANIFEST_COPY), "wb") as handle:
                handle.write(manifest.raw)
            with open(os.path.join(staging, MANIFEST_DIGEST), "w") as handle:
                handle.write(manifest.digest + "\n")
            apply_tree_attrs(staging, file_mode, uid, gid)
        except OSError as exc:
            if exc.errno in _NO_SPACE:
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


# ---------------------------------------------------------------------------
# states


def _diff(before, after):
    return {
        "before_header": "current",
        "after_header": "current",
        "before": "versions/%s\n" % before if before else "",
        "after": "versions/%s\n" % after if after else "",
    }


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


def _check_dest(dest):
    if not os.path.isabs(dest):
        raise ArtifactError("dest %s must be an absolute path" % dest)
    if not os.path.isdir(dest):
        raise ArtifactError("dest %s does not exist or is not a directory (is the storage tier mounted?)" % dest)


def ensure_present(params, check_mode=False, opener=None):
    dest, name = params["dest"], params["name"]
    version = validate_component("version", params.get("version"))
    _check_dest(dest)
    store = ModelStore(dest, name)
    keep = params.get("keep", 2)
    if keep is None or keep < 0:
        raise ArtifactError("keep must be 0 or more")
    file_mode = parse_mode(params.get("mode") or "0644")
    uid, gid = resolve_ids(params.get("owner"), params.get("group"))
    reserve = params.get("reserve_bytes") or 0
    chunk_size = params.get("chunk_size") or CHUNK_SIZE

    source = build_source(params["source"], name, version, _request_kwargs(params), opener=opener)
    fmt, raw = source.read_manifest()
    if params.get("manifest_sha256"):
        want = params["manifest_sha256"].lower()
        have = hashlib.sha256(raw).hexdigest()
        if have != want:
            raise ArtifactError("%s: sha256 %s does not match manifest_sha256 %s" % (
                source.describe(MANIFEST_JSON if fmt == "json" else MANIFEST_SUMS), have, want))
    manifest = parse_manifest(fmt, raw, name, version)

    previous = store.current_version()
    result = _base_result(store, version, previous)
    present = version in store.versions()
    need_stage = True
    if present and store.stored_digest(version) == manifest.digest:
        need_stage = False
        if params.get("verify_existing"):
            for entry in manifest.files:
                problem = verify_file(os.path.join(store.version_dir(version), entry.path), entry, chunk_size)
                if problem:
                    if version == previous:
                        raise ArtifactError("live version %s is damaged: %s; publish it as a new version or "
                                            "switch current away first" % (version, problem))
                    need_stage = True
                    break
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
    if need_stage:
        check_free_space(store.root, need, reserve)

    switching = previous != version
    ordered_after = [v for v in store.ordered_versions() if v != version] + [version]
    removed = plan_prune(ordered_after if switching else store.ordered_versions(), keep, {version})
    kept = [v for v in reversed(ordered_after) if v not in removed]

    changed = need_stage or switching or bool(removed)
    result.update(changed=changed, kept_versions=kept, removed_versions=removed)
    if switching:
        result["diff"] = _diff(previous, version)
    if check_mode:
        result["would_fetch"] = [e.path for e in manifest.files] if need_stage else []
        result["bytes"] = need
        return result

    if not changed:
        return result
    store.lock()
    try:
        store.clean_leftovers()
        if need_stage:
            staging, fetched, total = stage_version(store, source, manifest, version, file_mode, uid, gid,
                                                    chunk_size=chunk_size, fsync=params.get("fsync", True),
                                                    sizes=sizes)
            try:
                install_staged(store, staging, version)
            except OSError as exc:
                shutil.rmtree(staging, ignore_errors=True)
                raise ArtifactError("cannot move %s to %s: %s" % (
                    staging, store.version_dir(version), exc.strerror or exc))
            result.update(fetched=fetched, bytes=total)
        if switching:
            store.switch(version)
        if switching or need_stage:
            store.record_activation(version)
        for old in removed:
            store.remove_version(old)
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

    result = _base_result(store, target, previous)
    result["kept_versions"] = list(reversed(ordered))
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


def _request_kwargs(params):
    return {
        "timeout": params.get("timeout", 60),
        "validate_certs": params.get("validate_certs", True),
        "ca_path": params.get("ca_path"),
        "client_cert": params.get("client_cert"),
        "client_key": params.get("client_key"),
        "use_proxy": params.get("use_proxy", True),
    }


def run(params, check_mode=False, opener=None):
    state = params.get("state", "present")
    if state == "present":
        return ensure_present(params, check_mode, opener=opener)
    if state == "rollback":
        return rollback(params, check_mode)
    if state == "absent":
        return remove(params, check_mode)
    raise ArtifactError("unknown state %s" % state)
