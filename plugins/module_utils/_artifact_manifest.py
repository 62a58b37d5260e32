# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Model manifests for onprem.deepseek.model_artifact (private to the collection).

A version's ``manifest.json`` (paths, sizes, SHA-256) or ``SHA256SUMS`` is parsed into
``ManifestEntry`` objects here; every path is validated so no entry can leave the version
directory. ``ArtifactError`` is defined here because every other ``_artifact_*`` file
raises it and this one imports nothing from the collection.
"""

from __future__ import annotations

import hashlib
import json
import re

MANIFEST_JSON = "manifest.json"
MANIFEST_SUMS = "SHA256SUMS"
MANIFEST_COPY = ".manifest"
MANIFEST_DIGEST = ".manifest.sha256"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024

_RESERVED = (MANIFEST_COPY, MANIFEST_DIGEST)
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_SUMS_LINE_RE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


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
