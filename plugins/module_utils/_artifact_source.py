# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Where a model version is read from: a directory (local or NFS) or an HTTP(S) store.

Both kinds offer ``read_manifest()``, ``size(relpath)`` and ``open(relpath)``, which returns
a stream and its length when known. Private to the collection.
"""

from __future__ import annotations

import http.client
import os
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_manifest import (
    MANIFEST_JSON,
    MANIFEST_SUMS,
    MAX_MANIFEST_BYTES,
    ArtifactError,
)


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


def request_kwargs(params):
    """open_url keyword arguments from the module's connection options."""
    return {
        "timeout": params.get("timeout", 60),
        "validate_certs": params.get("validate_certs", True),
        "ca_path": params.get("ca_path"),
        "client_cert": params.get("client_cert"),
        "client_key": params.get("client_key"),
        "use_proxy": params.get("use_proxy", True),
    }
