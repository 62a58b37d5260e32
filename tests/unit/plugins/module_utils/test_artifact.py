"""Manifest parsing, path validation, sources and the one-pass verified copy (_artifact_*)."""
import errno
import fcntl
import hashlib
import http.client
import io
import json
import os
import threading

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils import _artifact_copy
from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_copy import stream_copy, verify_file
from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_manifest import (
    ArtifactError,
    ManifestEntry,
    parse_manifest_json,
    parse_sha256sums,
    validate_component,
    validate_relpath,
)
from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_source import (
    HttpSource,
    LocalSource,
    build_source,
    redact_url,
)
from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_store import (
    dir_mode_for,
    parse_mode,
    plan_prune,
)

SHA_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
SHA_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
# `sha256sum d/a.txt e.bin` and `sha256sum -b d/a.txt` output (GNU coreutils 9.1)
SUMS = (
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  d/a.txt\n"
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 *e.bin\n"
).encode()


def _manifest(files, **extra):
    doc = {"model": "m", "version": "v1", "files": files}
    doc.update(extra)
    return json.dumps(doc).encode()


# -- manifests ---------------------------------------------------------------


def test_manifest_json_parsed_with_entries_and_digest():
    raw = _manifest([
        {"path": "config.json", "size": 3, "sha256": SHA_ABC},
        {"path": "./weights//model.safetensors", "size": 0, "sha256": SHA_EMPTY.upper()},
    ])
    man = parse_manifest_json(raw, "m", "v1")
    assert man.fmt == "json"
    assert man.files == [
        ManifestEntry("config.json", 3, SHA_ABC),
        ManifestEntry("weights/model.safetensors", 0, SHA_EMPTY),
    ]
    assert man.total_size == 3
    assert man.digest == hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("path, fragment", [
    ("/etc/passwd", "file '/etc/passwd': absolute paths are not allowed"),
    ("../../etc/cron.d/x", "file '../../etc/cron.d/x': '..' (path traversal) is not allowed"),
    ("weights/../../x", "file 'weights/../../x': '..' (path traversal) is not allowed"),
    ("a\\b", "file 'a\\\\b': invalid character"),
    (".manifest.sha256", "file '.manifest.sha256': name is reserved"),
    ("./", "file './': path names no file"),
])
def test_manifest_rejects_unsafe_paths_naming_the_entry(path, fragment):
    raw = _manifest([{"path": path, "size": 1, "sha256": SHA_ABC}])
    with pytest.raises(ArtifactError) as err:
        parse_manifest_json(raw, "m", "v1")
    assert str(err.value).startswith("manifest.json: " + fragment)


@pytest.mark.parametrize("files, message", [
    ([{"path": "a", "size": 1, "sha256": SHA_ABC}, {"path": "./a", "size": 1, "sha256": SHA_ABC}],
     "manifest.json: file 'a' is listed twice"),
    ([{"path": "a", "size": 1, "sha256": SHA_ABC}, {"path": "a/b", "size": 1, "sha256": SHA_ABC}],
     "manifest.json: file 'a/b' lies below file 'a'"),
    ([{"path": "a", "size": -1, "sha256": SHA_ABC}],
     "manifest.json: file 'a': 'size' must be a non-negative integer"),
    ([{"path": "a", "size": True, "sha256": SHA_ABC}],
     "manifest.json: file 'a': 'size' must be a non-negative integer"),
    ([{"path": "a", "size": 1, "sha256": "abc"}],
     "manifest.json: file 'a': 'sha256' must be 64 hex digits"),
    ([], "manifest.json lists no files"),
])
def test_manifest_rejects_bad_entries(files, message):
    with pytest.raises(ArtifactError) as err:
        parse_manifest_json(_manifest(files), "m", "v1")
    assert str(err.value) == message


def test_manifest_for_another_version_is_rejected():
    raw = _manifest([{"path": "a", "size": 3, "sha256": SHA_ABC}])
    with pytest.raises(ArtifactError) as err:
        parse_manifest_json(raw, "m", "v2")
    assert str(err.value) == "manifest.json names version 'v1', expected 'v2'"


def test_manifest_not_json():
    with pytest.raises(ArtifactError) as err:
        parse_manifest_json(b"files: []", "m", "v1")
    assert str(err.value).startswith("manifest.json: not valid JSON")


def test_sha256sums_text_and_binary_lines():
    man = parse_sha256sums(SUMS)
    assert man.fmt == "sha256sums"
    assert man.files == [ManifestEntry("d/a.txt", None, SHA_ABC), ManifestEntry("e.bin", None, SHA_EMPTY)]


def test_sha256sums_rejects_traversal_and_garbage():
    with pytest.raises(ArtifactError) as err:
        parse_sha256sums(("%s  ../x\n" % SHA_ABC).encode())
    assert str(err.value) == "SHA256SUMS: file '../x': '..' (path traversal) is not allowed"
    with pytest.raises(ArtifactError) as err:
        parse_sha256sums(b"\n" + ("%s x\n" % SHA_ABC).encode())
    assert str(err.value) == "SHA256SUMS line 2: expected '<sha256>  <path>'"


@pytest.mark.parametrize("value", ["", ".staging", "a/b", "..", "x" * 201])
def test_component_validation(value):
    with pytest.raises(ArtifactError):
        validate_component("version", value)


def test_component_accepts_usual_names():
    assert validate_component("name", "DeepSeek-R1-Distill-Qwen-32B") == "DeepSeek-R1-Distill-Qwen-32B"
    assert validate_component("version", "2025-05-28+rev2") == "2025-05-28+rev2"
    assert validate_relpath("a/./b//c") == "a/b/c"


# -- sources -----------------------------------------------------------------


def test_build_source_kinds():
    src = build_source("https://u:pw@store.example:8443/models/", "DeepSeek V3", "v1")
    assert isinstance(src, HttpSource)
    assert src.url("a b/c.json") == "https://u:pw@store.example:8443/models/DeepSeek%20V3/v1/a%20b/c.json"
    assert src.describe("c.json") == "https://***@store.example:8443/models/DeepSeek%20V3/v1/c.json"
    local = build_source("file:///mnt/art%20store", "m", "v1")
    assert isinstance(local, LocalSource) and local.root == "/mnt/art store/m/v1"
    assert build_source("/mnt/store", "m", "v1").root == "/mnt/store/m/v1"
    for bad in ("relative/path", "ftp://x/y", "file://otherhost/x"):
        with pytest.raises(ArtifactError):
            build_source(bad, "m", "v1")


def test_redact_url_keeps_plain_urls():
    assert redact_url("https://store.example/models") == "https://store.example/models"
    assert redact_url("http://tok@10.0.0.1/m") == "http://***@10.0.0.1/m"


# -- one-pass copy -----------------------------------------------------------


def _payload(n):
    return bytes((i * 7 + 3) % 251 for i in range(n))


@pytest.mark.parametrize("size, chunk", [(0, 16), (10, 16), (16, 16), (1000, 16), (70000, 4096)])
def test_stream_copy_writes_and_verifies(tmp_path, size, chunk):
    data = _payload(size)
    entry = ManifestEntry("w/model.bin", size, hashlib.sha256(data).hexdigest())
    dest = tmp_path / "stage" / "w" / "model.bin"
    got = stream_copy(io.BytesIO(data), str(dest), entry, "/store/m", chunk_size=chunk)
    assert got == size
    assert dest.read_bytes() == data
    assert verify_file(str(dest), entry) is None


def test_stream_copy_corrupted_names_file_and_both_digests(tmp_path):
    data = _payload(5000)
    entry = ManifestEntry("model.bin", 5000, hashlib.sha256(data).hexdigest())
    bad = bytearray(data)
    bad[4321] ^= 0x01
    with pytest.raises(ArtifactError) as err:
        stream_copy(io.BytesIO(bytes(bad)), str(tmp_path / "model.bin"), entry, "/store/m", chunk_size=1024)
    assert str(err.value) == "file model.bin: sha256 mismatch (expected %s, got %s)" % (
        entry.sha256, hashlib.sha256(bytes(bad)).hexdigest())


def test_stream_copy_truncated(tmp_path):
    data = _payload(5000)
    entry = ManifestEntry("model.bin", 5000, hashlib.sha256(data).hexdigest())
    with pytest.raises(ArtifactError) as err:
        stream_copy(io.BytesIO(data[:3000]), str(tmp_path / "model.bin"), entry, "/store/m", chunk_size=1024)
    assert str(err.value) == "file model.bin: truncated (expected 5000 bytes, got 3000)"


def test_stream_copy_oversized_stops_early(tmp_path):
    data = _payload(5000)
    entry = ManifestEntry("model.bin", 2000, hashlib.sha256(data[:2000]).hexdigest())
    with pytest.raises(ArtifactError) as err:
        stream_copy(io.BytesIO(data), str(tmp_path / "model.bin"), entry, "/store/m", chunk_size=1024)
    assert str(err.value) == "file model.bin: larger than expected (expected 2000 bytes, got at least 2048)"


def test_stream_copy_uses_source_length_when_manifest_has_no_size(tmp_path):
    data = _payload(100)
    entry = ManifestEntry("a", None, hashlib.sha256(data).hexdigest())
    with pytest.raises(ArtifactError) as err:
        stream_copy(io.BytesIO(data[:60]), str(tmp_path / "a"), entry, "/s", length=100, chunk_size=32)
    assert str(err.value) == "file a: truncated (expected 100 bytes, got 60)"


def _full_disk_after(limit):
    written = {"n": 0}
    real = _artifact_copy.write_all

    def write_all(fd, data):
        if written["n"] + len(data) > limit:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written["n"] += len(data)
        real(fd, data)
    return write_all


def test_stream_copy_disk_full(tmp_path, monkeypatch):
    monkeypatch.setattr(_artifact_copy, "write_all", _full_disk_after(3000))
    data = _payload(10000)
    entry = ManifestEntry("shard-2.bin", 10000, hashlib.sha256(data).hexdigest())
    with pytest.raises(ArtifactError) as err:
        stream_copy(io.BytesIO(data), str(tmp_path / "x"), entry, "/srv/hot/models/m", chunk_size=1024)
    assert str(err.value) == "file shard-2.bin: disk full while staging into /srv/hot/models/m"


def test_stream_copy_other_write_error_is_not_called_disk_full(tmp_path, monkeypatch):
    def broken(fd, data):
        raise OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(_artifact_copy, "write_all", broken)
    entry = ManifestEntry("a", 3, SHA_ABC)
    with pytest.raises(ArtifactError) as err:
        stream_copy(io.BytesIO(b"abc"), str(tmp_path / "a"), entry, "/s")
    assert str(err.value) == "file a: write to %s failed: Input/output error" % (tmp_path / "a")


def test_verify_file_reports_size_and_hash(tmp_path):
    path = tmp_path / "a"
    path.write_bytes(b"abd")
    assert verify_file(str(path), ManifestEntry("a", 4, SHA_ABC)) == "file a: size 3, manifest says 4"
    assert verify_file(str(path), ManifestEntry("a", 3, SHA_ABC)) == (
        "file a: sha256 mismatch (expected %s, got %s)" % (SHA_ABC, hashlib.sha256(b"abd").hexdigest()))


# -- small policies ----------------------------------------------------------


def test_plan_prune_keeps_most_recent_and_protected():
    ordered = ["v1", "v2", "v3", "v4", "v5"]
    assert plan_prune(ordered, 2, {"v5"}) == ["v1", "v2"]
    assert plan_prune(ordered, 0, {"v5"}) == ["v1", "v2", "v3", "v4"]
    assert plan_prune(ordered, 10, {"v5"}) == []
    assert plan_prune(ordered, 1, {"v2"}) == ["v1", "v3", "v4"]


def test_modes():
    assert parse_mode("0640") == 0o640
    assert parse_mode("755") == 0o755
    assert parse_mode(0o600) == 0o600
    for bad in ("u+rw", "0999", "12"):
        with pytest.raises(ArtifactError):
            parse_mode(bad)
    assert dir_mode_for(0o640) == 0o750
    assert dir_mode_for(0o644) == 0o755
    assert dir_mode_for(0o600) == 0o700


class Trickle(io.BytesIO):
    """A socket-like source that hands out at most 1000 bytes per read."""

    def readinto(self, buf):
        return super().readinto(memoryview(buf)[:1000])


def _write_spy(monkeypatch):
    sizes = []
    real = _artifact_copy.write_all

    def write_all(fd, data):
        sizes.append(len(data))
        real(fd, data)
    monkeypatch.setattr(_artifact_copy, "write_all", write_all)
    return sizes


@pytest.mark.parametrize("size", [3 * 8192, 3 * 8192 + 100, 8192 + 4095])
def test_short_reads_are_gathered_into_full_aligned_chunks(tmp_path, monkeypatch, size):
    # with fsync the copy writes with O_DIRECT, which refuses writes that are not block-aligned
    sizes = _write_spy(monkeypatch)
    data = _payload(size)
    entry = ManifestEntry("model.bin", size, hashlib.sha256(data).hexdigest())
    assert stream_copy(Trickle(data), str(tmp_path / "model.bin"), entry, "/s", chunk_size=8192) == size
    assert (tmp_path / "model.bin").read_bytes() == data
    assert sum(sizes) == size
    full, tail = divmod(size, 8192)
    aligned_tail = [n for n in (tail - tail % 4096, tail % 4096) if n]
    # whole chunks, then the last one split at the block boundary if O_DIRECT was taken
    assert sizes[:full] == [8192] * full
    assert sizes[full:] in ([tail] if tail else [], aligned_tail)


@pytest.mark.parametrize("fsync, direct", [(True, True), (False, False)])
def test_direct_io_only_when_the_data_must_reach_the_disk(tmp_path, monkeypatch, fsync, direct):
    calls = []
    real = _artifact_copy._set_direct

    def set_direct(fd, enable):
        calls.append(enable)
        return real(fd, enable)
    monkeypatch.setattr(_artifact_copy, "_set_direct", set_direct)
    data = _payload(70000)
    entry = ManifestEntry("model.bin", 70000, hashlib.sha256(data).hexdigest())
    stream_copy(io.BytesIO(data), str(tmp_path / "model.bin"), entry, "/s", chunk_size=4096, fsync=fsync)
    assert (tmp_path / "model.bin").read_bytes() == data
    assert bool(calls) is direct and calls[:1] == ([True] if direct else [])


def test_filesystem_without_direct_io_gets_a_buffered_copy(tmp_path, monkeypatch):
    monkeypatch.setattr(_artifact_copy, "_set_direct", lambda fd, enable: False)
    sizes = _write_spy(monkeypatch)
    data = _payload(10000)
    entry = ManifestEntry("model.bin", 10000, hashlib.sha256(data).hexdigest())
    stream_copy(io.BytesIO(data), str(tmp_path / "model.bin"), entry, "/s", chunk_size=4096)
    assert (tmp_path / "model.bin").read_bytes() == data
    assert sizes == [4096, 4096, 1808]


class HangUp(io.BytesIO):
    """A response whose sender hangs up after ``cut`` bytes (http.client raises IncompleteRead)."""

    def __init__(self, data, cut):
        super().__init__(data[:cut])

    def readinto(self, buf):
        n = super().readinto(memoryview(buf)[:1000])
        if not n:
            raise http.client.IncompleteRead(b"", 1)
        return n


@pytest.mark.parametrize("size, message", [
    (None, "file a: connection closed after 3000 bytes"),
    (5000, "file a: truncated (expected 5000 bytes, got 3000)"),
])
def test_hang_up_is_reported_with_the_bytes_received(tmp_path, size, message):
    data = _payload(5000)
    entry = ManifestEntry("a", size, hashlib.sha256(data).hexdigest())
    with pytest.raises(ArtifactError) as err:
        stream_copy(HangUp(data, 3000), str(tmp_path / "a"), entry, "/s", chunk_size=4096)
    assert str(err.value) == message


def test_direct_write_refused_after_the_flag_was_taken_falls_back_to_the_page_cache(tmp_path, monkeypatch):
    real = _artifact_copy.write_all
    refused = []

    def write_all(fd, data):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT and not refused:
            real(fd, data[:4096])  # a partial write, then the refusal
            refused.append(len(data))
            raise OSError(errno.EINVAL, "Invalid argument")
        real(fd, data)
    monkeypatch.setattr(_artifact_copy, "_set_direct", _flip_direct)
    monkeypatch.setattr(_artifact_copy, "write_all", write_all)
    data = _payload(20000)
    entry = ManifestEntry("model.bin", 20000, hashlib.sha256(data).hexdigest())
    stream_copy(io.BytesIO(data), str(tmp_path / "model.bin"), entry, "/s", chunk_size=8192)
    assert refused == [8192]
    assert (tmp_path / "model.bin").read_bytes() == data


def _flip_direct(fd, enable):
    # the flag as such, even where the filesystem would refuse it, so the test runs everywhere
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | os.O_DIRECT) if enable else (flags & ~os.O_DIRECT))
    except OSError:
        pytest.skip("this filesystem refuses O_DIRECT")
    return True


class CountingReads(io.BytesIO):
    """Counts reads; the second one sets ``second_read``."""

    def __init__(self, data):
        super().__init__(data)
        self.reads = 0
        self.second_read = threading.Event()

    def readinto(self, buf):
        self.reads += 1
        if self.reads == 2:
            self.second_read.set()
        return super().readinto(buf)


def test_writing_a_chunk_overlaps_reading_the_next(tmp_path, monkeypatch):
    data = _payload(5 * 4096)
    stream = CountingReads(data)
    real = _artifact_copy.write_all
    waited = []

    def write_all(fd, chunk):
        if not waited:
            # the first write holds until the next chunk is being read: only a separate writer can
            waited.append(stream.second_read.wait(5))
        real(fd, chunk)
    monkeypatch.setattr(_artifact_copy, "write_all", write_all)
    entry = ManifestEntry("model.bin", len(data), hashlib.sha256(data).hexdigest())
    stream_copy(stream, str(tmp_path / "model.bin"), entry, "/s", chunk_size=4096)
    assert waited == [True]
    assert (tmp_path / "model.bin").read_bytes() == data


def test_reading_stops_soon_after_a_write_fails(tmp_path, monkeypatch):
    def full(fd, chunk):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(_artifact_copy, "write_all", full)
    data = _payload(200 * 1024)
    stream = CountingReads(data)
    entry = ManifestEntry("model.bin", len(data), hashlib.sha256(data).hexdigest())
    with pytest.raises(ArtifactError) as err:
        stream_copy(stream, str(tmp_path / "model.bin"), entry, "/srv/hot/m", chunk_size=1024)
    assert str(err.value) == "file model.bin: disk full while staging into /srv/hot/m"
    # three buffers: the reader is at most a few chunks ahead of the failed write, not at the end
    assert stream.reads <= 8
