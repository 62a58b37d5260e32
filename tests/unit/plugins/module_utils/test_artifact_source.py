"""_artifact_source: directory and HTTP sources, source URLs and connection options.

HTTP sources here get a stand-in for open_url (no network); test_artifact_http.py runs them
against a loopback server.
"""
import http.client
import io
import os
import urllib.error
import warnings

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils import _artifact_source
from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_manifest import (
    MAX_MANIFEST_BYTES,
    ArtifactError,
)
from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_source import (
    HttpSource,
    LocalSource,
    build_source,
    redact_url,
    request_kwargs,
)

BASE = "https://store.example/models/m/v1"


def _error(func, *args):
    with pytest.raises(ArtifactError) as err:
        func(*args)
    return str(err.value)


# -- redact_url, request_kwargs ------------------------------------------------------


@pytest.mark.parametrize("url, redacted", [
    ("https://u:pw@store.example:8443/m", "https://***@store.example:8443/m"),
    ("https://u:pw@store.example/m", "https://***@store.example/m"),
    ("http://tok@/m", "http://***@/m"),
    ("http://u:pw@:8080/m", "http://***@:8080/m"),
    ("https://store.example/m?x=1", "https://store.example/m?x=1"),
])
def test_redact_url(url, redacted):
    assert redact_url(url) == redacted


def test_request_kwargs_defaults():
    assert request_kwargs({}) == {"timeout": 60, "validate_certs": True, "ca_path": None, "client_cert": None,
                                  "client_key": None, "use_proxy": True}


def test_request_kwargs_from_the_module_options():
    params = {"timeout": 5, "validate_certs": False, "ca_path": "/ca.pem", "client_cert": "/c.pem",
              "client_key": "/c.key", "use_proxy": False, "name": "m"}
    assert request_kwargs(params) == {"timeout": 5, "validate_certs": False, "ca_path": "/ca.pem",
                                      "client_cert": "/c.pem", "client_key": "/c.key", "use_proxy": False}


# -- build_source ----------------------------------------------------------------------


def test_build_source_http_quotes_name_and_version_as_one_component():
    src = build_source("http://h:8080/store//", "org/model", "v 1/x")
    assert src.url() == "http://h:8080/store/org%2Fmodel/v%201%2Fx/"
    # only slashes are stripped from the end of the source, not what comes before them
    assert build_source("https://h/ARCHIVE-X/", "m", "v1").url("a") == "https://h/ARCHIVE-X/m/v1/a"
    assert build_source("HTTPS://h/s", "m", "v1").url() == "HTTPS://h/s/m/v1/"


def test_build_source_http_passes_options_and_opener():
    calls = []

    def opener(url, **kwargs):
        calls.append((url, kwargs))
        return _Response(b"[]")
    src = build_source("https://h/s", "m", "v1", {"timeout": 5}, opener=opener)
    assert src.read_manifest() == ("json", b"[]")
    assert calls == [("https://h/s/m/v1/manifest.json", {"method": "GET", "decompress": False, "timeout": 5})]
    calls.clear()
    build_source("https://h/s", "m", "v1", opener=opener).read_manifest()
    assert calls == [("https://h/s/m/v1/manifest.json", {"method": "GET", "decompress": False})]


def test_build_source_local():
    assert build_source("file://localhost/mnt/s", "m", "v1").root == "/mnt/s/m/v1"
    assert build_source("FILE:///mnt/a%20b/", "m", "v1").root == "/mnt/a b/m/v1"
    assert build_source("/mnt/s", "m", "v1").describe() == "/mnt/s/m/v1"


def test_build_source_file_url_on_another_host():
    assert _error(build_source, "file://nas01/export/models", "m", "v1") == (
        "source file://nas01/export/models: file URLs must name a local path")


@pytest.mark.parametrize("source, shown", [
    ("relative/path", "relative/path"),
    ("ftp://u:secret@h/y", "ftp://***@h/y"),
    ("", ""),
])
def test_build_source_unsupported(source, shown):
    assert _error(build_source, source, "m", "v1") == (
        "source %s: use https://, http://, file:// or an absolute path" % shown)


# -- LocalSource ---------------------------------------------------------------------------


def test_local_describe(tmp_path):
    src = LocalSource(str(tmp_path))
    assert src.describe() == str(tmp_path)
    assert src.describe("w/a.bin") == os.path.join(str(tmp_path), "w/a.bin")


def test_local_manifest_prefers_json_then_sha256sums(tmp_path):
    src = LocalSource(str(tmp_path))
    (tmp_path / "SHA256SUMS").write_bytes(b"sums")
    assert src.read_manifest() == ("sha256sums", b"sums")
    (tmp_path / "manifest.json").write_bytes(b"{}")
    assert src.read_manifest() == ("json", b"{}")


def test_local_manifest_missing(tmp_path):
    assert _error(LocalSource(str(tmp_path)).read_manifest) == "no manifest.json or SHA256SUMS in %s" % tmp_path


def test_local_manifest_unreadable(tmp_path):
    (tmp_path / "manifest.json").mkdir()
    assert _error(LocalSource(str(tmp_path)).read_manifest) == (
        "cannot read %s: Is a directory" % (tmp_path / "manifest.json"))


def test_local_manifest_size_limit(tmp_path):
    src = LocalSource(str(tmp_path))
    (tmp_path / "SHA256SUMS").write_bytes(b"s" * MAX_MANIFEST_BYTES)
    fmt, raw = src.read_manifest()
    assert fmt == "sha256sums" and len(raw) == MAX_MANIFEST_BYTES
    (tmp_path / "SHA256SUMS").write_bytes(b"s" * (MAX_MANIFEST_BYTES + 1))
    assert _error(src.read_manifest) == "%s is larger than 16777216 bytes" % (tmp_path / "SHA256SUMS")


class _CountingReader(io.BufferedReader):
    """A buffered file that counts the bytes its reader took."""

    taken = 0

    def read(self, size=-1):
        data = super().read(size)
        self.taken += len(data)
        return data


def test_local_manifest_reads_one_byte_past_the_limit_at_most(tmp_path, monkeypatch):
    # a huge file in the manifest's place is not read into memory
    (tmp_path / "manifest.json").write_bytes(b"{" * (MAX_MANIFEST_BYTES + 4096))
    opened = []

    def counting_open(path, mode="r", **kwargs):
        assert mode == "rb" and not kwargs
        opened.append(_CountingReader(io.FileIO(path, "rb")))
        return opened[-1]
    monkeypatch.setattr(_artifact_source, "open", counting_open, raising=False)
    assert _error(LocalSource(str(tmp_path)).read_manifest) == (
        "%s is larger than 16777216 bytes" % (tmp_path / "manifest.json"))
    assert len(opened) == 1 and opened[0].closed
    assert opened[0].taken == MAX_MANIFEST_BYTES + 1


def test_local_size(tmp_path, monkeypatch):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "a.bin").write_bytes(b"abcde")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "w").mkdir()
    (tmp_path / "elsewhere" / "w" / "a.bin").write_bytes(b"xy")
    monkeypatch.chdir(tmp_path / "elsewhere")
    src = LocalSource(str(tmp_path))
    assert src.size("w/a.bin") == 5
    assert src.size("w/missing.bin") is None


def test_local_open_reads_the_file_without_length_or_warnings(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"abcde")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        handle, length = LocalSource(str(tmp_path)).open("a.bin")
    with handle:
        assert handle.read() == b"abcde"
    assert length is None


def test_local_open_missing_file(tmp_path):
    assert _error(LocalSource(str(tmp_path)).open, "w/a.bin") == (
        "file w/a.bin: cannot open %s: No such file or directory" % (tmp_path / "w" / "a.bin"))


# -- HttpSource with a stand-in for open_url ---------------------------------------------------


class _Response(io.BytesIO):
    """What open_url returns, as far as the source uses it: read, close and headers."""

    def __init__(self, body=b"", headers=None):
        super().__init__(body)
        self.headers = http.client.HTTPMessage()
        for key, value in (headers or {}).items():
            self.headers[key] = value
        self.taken = 0

    def read(self, size=-1):
        data = super().read(size)
        self.taken += len(data)
        return data


class _Opener:
    """Answers by path (below BASE) with a response or an exception; records every call."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, url, **kwargs):
        self.calls.append((url, kwargs))
        answer = self.answers.get(url[len(BASE) + 1:], None)
        if answer is None:
            raise urllib.error.HTTPError(url, 404, "Not Found", http.client.HTTPMessage(), None)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _http_error(code, reason):
    return urllib.error.HTTPError(BASE + "/x", code, reason, http.client.HTTPMessage(), None)


def test_http_base_and_url():
    src = HttpSource(BASE + "//", {}, opener=_Opener({}))
    assert src.url() == BASE + "/"
    assert src.url("w/a b.bin") == BASE + "/w/a%20b.bin"
    assert src.describe() == BASE + "/"
    assert HttpSource(BASE, {}, opener=_Opener({})).url("a") == BASE + "/a"
    assert HttpSource("https://h/STORE-X/", {}).url("a") == "https://h/STORE-X/a"


def test_http_manifest_falls_back_to_sha256sums_on_404():
    opener = _Opener({"SHA256SUMS": _Response(b"sums")})
    src = HttpSource(BASE, {"timeout": 7}, opener=opener)
    assert src.read_manifest() == ("sha256sums", b"sums")
    assert [url for url, kwargs in opener.calls] == [BASE + "/manifest.json", BASE + "/SHA256SUMS"]
    assert opener.calls[0][1] == {"method": "GET", "decompress": False, "timeout": 7}


def test_http_manifest_missing():
    assert _error(HttpSource(BASE + "/", {}, opener=_Opener({})).read_manifest) == (
        "no manifest.json or SHA256SUMS at %s/" % BASE)


@pytest.mark.parametrize("exc, shown", [
    (_http_error(500, "Internal Server Error"), "HTTP 500 Internal Server Error"),
    (_http_error(403, "Forbidden"), "HTTP 403 Forbidden"),
    (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), "[Errno 111] Connection refused"),
    (urllib.error.URLError("timed out"), "timed out"),
    (http.client.RemoteDisconnected("Remote end closed connection without response"),
     "Remote end closed connection without response"),
    (ValueError("unknown url type: 'x'"), "unknown url type: 'x'"),
])
def test_http_manifest_fetch_errors(exc, shown):
    src = HttpSource("https://u:pw@store.example/models/m/v1", {}, opener=lambda url, **kw: _raise(exc))
    assert _error(src.read_manifest) == (
        "cannot fetch https://***@store.example/models/m/v1/manifest.json: %s" % shown)


def _raise(exc):
    raise exc


def test_http_manifest_size_limit():
    body = b"{" * MAX_MANIFEST_BYTES
    src = HttpSource(BASE, {}, opener=_Opener({"manifest.json": _Response(body)}))
    assert src.read_manifest() == ("json", body)
    resp = _Response(b"{" * (MAX_MANIFEST_BYTES + 4096))
    src = HttpSource(BASE, {}, opener=_Opener({"manifest.json": resp}))
    assert _error(src.read_manifest) == "%s/manifest.json is larger than 16777216 bytes" % BASE
    # a huge answer is not read into memory, and the connection is released
    assert resp.taken == MAX_MANIFEST_BYTES + 1 and resp.closed


@pytest.mark.parametrize("headers, size", [
    ({"Content-Length": "1234"}, 1234),
    ({"content-length": "0"}, 0),
    ({}, None),
    ({"Content-Length": "12x"}, None),
    ({"Content-Length": "-1"}, None),
])
def test_http_size_and_open_take_the_length_from_content_length(headers, size):
    head = _Response(headers=headers)
    src = HttpSource(BASE, {}, opener=_Opener({"w/a.bin": head}))
    assert src.size("w/a.bin") == size
    assert head.closed
    get = _Response(b"data", headers=headers)
    opener = _Opener({"w/a.bin": get})
    resp, length = HttpSource(BASE, {}, opener=opener).open("w/a.bin")
    assert resp is get and length == size
    assert opener.calls == [(BASE + "/w/a.bin", {"method": "GET", "decompress": False})]


def test_http_size_asks_with_head_and_gives_none_when_it_fails():
    opener = _Opener({"a": _http_error(403, "Forbidden"), "b": http.client.BadStatusLine("x"), "c": ValueError("x")})
    src = HttpSource(BASE, {"timeout": 3}, opener=opener)
    assert [src.size(p) for p in ("a", "b", "c", "d")] == [None, None, None, None]
    assert opener.calls[0] == (BASE + "/a", {"method": "HEAD", "decompress": False, "timeout": 3})


@pytest.mark.parametrize("exc, shown", [
    (_http_error(404, "Not Found"), "HTTP 404 Not Found"),
    (urllib.error.URLError(ConnectionResetError(104, "Connection reset by peer")), "[Errno 104] Connection reset by peer"),
    (http.client.BadStatusLine("garbage"), "garbage"),
    (ValueError("unknown url type: 'x'"), "unknown url type: 'x'"),
])
def test_http_open_errors_name_the_file_and_the_redacted_url(exc, shown):
    src = HttpSource("https://tok@store.example/m/v1", {}, opener=lambda url, **kw: _raise(exc))
    assert _error(src.open, "w/a b.bin") == (
        "file w/a b.bin: cannot fetch https://***@store.example/m/v1/w/a%%20b.bin: %s" % shown)
