"""Several files staged at once: the worker limit, largest first, one failure stops and cleans all."""
import hashlib
import io
import json
import os
import threading
import time

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils import _artifact_copy
from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_copy import run_each
from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_manifest import (
    ArtifactError,
    parse_manifest_json,
)
from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_store import ModelStore, stage_version

WAIT = 10  # seconds; only reached when the code under test is wrong


class Stream(io.BytesIO):
    """A source file that tells the test when it is opened, read and closed."""

    def __init__(self, source, rel, data):
        super().__init__(data)
        self.source = source
        self.rel = rel
        self.read_bytes = 0

    def readinto(self, buf):
        self.source.before_read(self)
        n = super().readinto(buf)
        self.read_bytes += n
        return n

    def close(self):
        if not self.closed:
            with self.source.lock:
                self.source.open_now -= 1
            self.source.closed.append(self.rel)
        super().close()
        self.source.after_close(self)


class Source:
    def __init__(self, files):
        self.files = files
        self.lock = threading.Lock()
        self.open_now = 0
        self.most_open = 0
        self.opened = []
        self.closed = []
        self.streams = {}

    def open(self, rel):
        with self.lock:
            self.open_now += 1
            self.most_open = max(self.most_open, self.open_now)
            self.opened.append(rel)
        stream = self.streams[rel] = Stream(self, rel, self.files[rel])
        return stream, len(self.files[rel])

    def before_read(self, stream):
        pass

    def after_close(self, stream):
        pass


def manifest_for(files, wrong=()):
    entries = [{"path": rel, "size": len(data),
                "sha256": hashlib.sha256(data + (b"!" if rel in wrong else b"")).hexdigest()}
               for rel, data in files.items()]
    return parse_manifest_json(json.dumps({"files": entries}).encode())


def copy_threads():
    return [t.name for t in threading.enumerate() if t.name.startswith("model-artifact-")]


@pytest.fixture
def store(tmp_path):
    return ModelStore(str(tmp_path), "m")


def test_workers_limit_is_reached_and_never_exceeded(store):
    files = {"shard-%d" % i: bytes([i]) * 20000 for i in range(7)}
    source = Source(files)
    # the first three reads meet here: fewer than three files open at once times out
    meet = threading.Barrier(3, timeout=WAIT)
    met = set()

    def before_read(stream):
        with source.lock:
            first = stream.rel not in met and len(met) < 3
            met.add(stream.rel)
        if first:
            meet.wait()
    source.before_read = before_read

    staging, fetched, total = stage_version(store, source, manifest_for(files), "v1", chunk_size=4096, workers=3)
    assert source.most_open == 3
    assert sorted(source.opened) == sorted(files) and sorted(source.closed) == sorted(files)
    assert fetched == list(files) and total == 7 * 20000
    for rel, data in files.items():
        with open(os.path.join(staging, rel), "rb") as handle:
            assert handle.read() == data


def test_largest_file_starts_first(store):
    files = {"config.json": b"{}", "small.bin": b"s" * 5000, "big.bin": b"b" * 90000, "mid.bin": b"m" * 30000}
    source = Source(files)
    stage_version(store, source, manifest_for(files), "v1", chunk_size=4096, workers=1)
    assert source.opened == ["big.bin", "mid.bin", "small.bin", "config.json"]


def test_sizes_from_the_source_order_a_sha256sums_manifest(store):
    files = {"a": b"a" * 10, "b": b"b" * 3000, "c": b"c" * 200}
    source = Source(files)
    sums = "".join("%s  %s\n" % (hashlib.sha256(d).hexdigest(), rel) for rel, d in files.items()).encode()
    from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_manifest import parse_sha256sums
    stage_version(store, source, parse_sha256sums(sums), "v1", chunk_size=4096, workers=1,
                  sizes={rel: len(d) for rel, d in files.items()})
    assert source.opened == ["b", "c", "a"]


def test_one_failure_stops_the_other_files_and_removes_staging(store):
    files = {"bad.bin": b"x" * 300000}
    files.update(("good-%d.bin" % i, bytes([i]) * 200000) for i in range(6))
    source = Source(files)
    bad_closed = threading.Event()

    def before_read(stream):
        if stream.rel != "bad.bin":
            # the good files go slowly once bad.bin has failed: long enough to be stopped midway
            assert bad_closed.wait(WAIT)
            time.sleep(0.001)
    source.before_read = before_read
    source.after_close = lambda stream: stream.rel == "bad.bin" and bad_closed.set()
    with pytest.raises(ArtifactError) as err:
        stage_version(store, source, manifest_for(files, wrong={"bad.bin"}), "v1", chunk_size=4096, workers=3)
    assert str(err.value).startswith("file bad.bin: sha256 mismatch")
    # the two files running beside it stopped early; no other file was started
    assert sorted(source.opened) == ["bad.bin", "good-0.bin", "good-1.bin"]
    for rel in ("good-0.bin", "good-1.bin"):
        assert 0 < source.streams[rel].read_bytes < len(files[rel])
        assert source.streams[rel].closed
    # every copy had ended before the staging directory was removed
    assert copy_threads() == []
    assert os.listdir(store.root) == []


def test_run_each_keeps_item_order_and_raises_after_all_threads_end():
    done = []

    def slow_square(item, cancelled):
        time.sleep(0.01 * (5 - item))
        done.append(item)
        return item * item
    assert run_each(slow_square, range(5), 4) == [0, 1, 4, 9, 16]
    assert sorted(done) == [0, 1, 2, 3, 4]

    def fail_on_two(item, cancelled):
        if item == 2:
            raise ValueError("item 2")
        assert cancelled.wait(WAIT)
        time.sleep(0.05)
        done.append(item)
    done.clear()
    with pytest.raises(ValueError, match="item 2"):
        run_each(fail_on_two, range(3), 3)
    assert sorted(done) == [0, 1]
    assert copy_threads() == []


@pytest.mark.parametrize("cpus, workers", [(1, 1), (2, 2), (15, 15), (16, 16), (17, 16), (128, 16)])
def test_default_workers_is_one_per_usable_cpu_up_to_sixteen(monkeypatch, cpus, workers):
    monkeypatch.setattr(_artifact_copy.os, "sched_getaffinity", lambda pid: set(range(cpus)))
    assert _artifact_copy.default_workers() == workers
