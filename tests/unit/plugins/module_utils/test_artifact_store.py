"""The model store end to end on local sources: stage, switch, idempotence, failures, prune, rollback."""
import errno
import hashlib
import json
import os
import stat
from collections import namedtuple

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils import _artifact_copy, _artifact_source, _artifact_store
from ansible_collections.onprem.deepseek.plugins.module_utils._artifact import ArtifactError, run

Store = namedtuple("Store", "src dest")


def payload(seed, n):
    return bytes((i * 31 + seed) % 256 for i in range(n))


def publish(src, version, files=None, name="m", sums=False):
    """Write <src>/<name>/<version>/ with a manifest.json (or SHA256SUMS) describing the files."""
    files = files if files is not None else {
        "config.json": b'{"architectures": ["DeepseekV3ForCausalLM"]}',
        "weights/model-00001-of-00002.safetensors": payload(len(version), 70000),
        "weights/model-00002-of-00002.safetensors": payload(len(version) + 1, 50001),
    }
    vdir = src / name / version
    entries = []
    for rel, data in files.items():
        (vdir / rel).parent.mkdir(parents=True, exist_ok=True)
        (vdir / rel).write_bytes(data)
        entries.append({"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    if sums:
        (vdir / "SHA256SUMS").write_text("".join("%s  %s\n" % (e["sha256"], e["path"]) for e in entries))
    else:
        (vdir / "manifest.json").write_text(json.dumps({"model": name, "version": version, "files": entries}))
    return vdir


@pytest.fixture
def store(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "hot").mkdir()
    return Store(tmp_path / "src", tmp_path / "hot")


def params(store, version, **kw):
    p = dict(name="m", version=version, source=str(store.src), dest=str(store.dest), keep=2,
             reserve_bytes=0, state="present", mode="0644", chunk_size=16384)
    p.update(kw)
    return p


def current(store):
    return os.readlink(store.dest / "m" / "current")


def leftovers(store):
    return sorted(n for n in os.listdir(store.dest / "m") if n.startswith((".staging-", ".trash-", ".current-")))


def test_present_stages_switches_and_is_idempotent(store):
    publish(store.src, "v1")
    res = run(params(store, "v1"))
    assert res["changed"] is True
    assert res["previous"] is None
    assert res["version"] == "v1"
    assert res["current"] == str(store.dest / "m" / "versions" / "v1")
    assert res["fetched"] == ["config.json", "weights/model-00001-of-00002.safetensors",
                              "weights/model-00002-of-00002.safetensors"]
    assert res["bytes"] == 44 + 70000 + 50001
    assert res["diff"]["before"] == "" and res["diff"]["after"] == "versions/v1\n"
    assert current(store) == "versions/v1"
    live = store.dest / "m" / "current"
    assert (live / "weights" / "model-00002-of-00002.safetensors").read_bytes() == payload(3, 50001)
    assert stat.S_IMODE(os.stat(live / "config.json").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(live / "weights").st_mode) == 0o755
    raw = (store.src / "m" / "v1" / "manifest.json").read_bytes()
    assert (live / ".manifest.sha256").read_text().strip() == hashlib.sha256(raw).hexdigest()
    assert leftovers(store) == []

    again = run(params(store, "v1"))
    assert again["changed"] is False
    assert again["fetched"] == [] and again["bytes"] == 0
    assert again["previous"] == "v1"
    assert "diff" not in again


def test_check_mode_reports_would_fetch_and_writes_nothing(store):
    publish(store.src, "v1")
    res = run(params(store, "v1"), check_mode=True)
    assert res["changed"] is True
    assert res["would_fetch"] == ["config.json", "weights/model-00001-of-00002.safetensors",
                                  "weights/model-00002-of-00002.safetensors"]
    assert res["bytes"] == 120045
    assert res["fetched"] == []
    assert os.listdir(store.dest) == []

    run(params(store, "v1"))
    res = run(params(store, "v1"), check_mode=True)
    assert res["changed"] is False and res["would_fetch"] == []


def _assert_live_untouched(store, version="v1"):
    assert current(store) == "versions/%s" % version
    assert leftovers(store) == []
    live = store.dest / "m" / "current"
    assert (live / "weights" / "model-00001-of-00002.safetensors").read_bytes() == payload(len(version), 70000)


def test_corrupted_file_fails_naming_it_and_leaves_current(store):
    publish(store.src, "v1")
    run(params(store, "v1"))
    vdir = publish(store.src, "v2")
    shard = vdir / "weights" / "model-00002-of-00002.safetensors"
    good = shard.read_bytes()
    bad = bytearray(good)
    bad[40000] ^= 0xFF
    shard.write_bytes(bytes(bad))
    with pytest.raises(ArtifactError) as err:
        run(params(store, "v2"))
    assert str(err.value) == (
        "file weights/model-00002-of-00002.safetensors: sha256 mismatch (expected %s, got %s)"
        % (hashlib.sha256(good).hexdigest(), hashlib.sha256(bytes(bad)).hexdigest()))
    _assert_live_untouched(store)
    assert os.listdir(store.dest / "m" / "versions") == ["v1"]


def test_truncated_file_fails_and_leaves_current(store):
    publish(store.src, "v1")
    run(params(store, "v1"))
    vdir = publish(store.src, "v2")
    shard = vdir / "weights" / "model-00001-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:65536])
    with pytest.raises(ArtifactError) as err:
        run(params(store, "v2"))
    assert str(err.value) == ("file weights/model-00001-of-00002.safetensors: truncated "
                              "(expected 70000 bytes, got 65536)")
    _assert_live_untouched(store)


def test_missing_file_fails_naming_it(store):
    publish(store.src, "v1")
    run(params(store, "v1"))
    vdir = publish(store.src, "v2")
    (vdir / "config.json").unlink()
    with pytest.raises(ArtifactError) as err:
        run(params(store, "v2"))
    assert str(err.value).startswith("file config.json: cannot open %s: No such file" % (vdir / "config.json"))
    _assert_live_untouched(store)


def test_disk_full_while_writing_leaves_current(store, monkeypatch):
    publish(store.src, "v1")
    run(params(store, "v1"))
    publish(store.src, "v2")
    written = {"n": 0}
    real = _artifact_copy.write_all

    def write_all(fd, data):
        if written["n"] + len(data) > 60000:
            raise OSError(errno.ENOSPC, "No space left on device")
        written["n"] += len(data)
        real(fd, data)

    monkeypatch.setattr(_artifact_copy, "write_all", write_all)
    with pytest.raises(ArtifactError) as err:
        run(params(store, "v2", workers=1))
    assert str(err.value) == "file weights/model-00001-of-00002.safetensors: disk full while staging into %s" % (
        store.dest / "m")
    _assert_live_untouched(store)
    assert written["n"] == 3 * 16384  # largest file first: stopped inside it, nothing else started


def test_free_space_checked_before_fetching(store, monkeypatch):
    publish(store.src, "v1")
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(_artifact_store.shutil, "disk_usage", lambda path: Usage(10 ** 9, 10 ** 9 - 100000, 100000))
    opened = []
    monkeypatch.setattr(_artifact_source.LocalSource, "open", lambda self, rel: opened.append(rel))
    with pytest.raises(ArtifactError) as err:
        run(params(store, "v1", reserve_bytes=1024))
    assert str(err.value) == ("not enough free space in %s: need 121069 bytes (118.23 KB) for the files plus "
                              "1.00 KB reserve, 100000 bytes (97.66 KB) free" % (store.dest / "m"))
    assert opened == []
    assert not (store.dest / "m").exists()


def test_dest_must_exist(store):
    publish(store.src, "v1")
    with pytest.raises(ArtifactError) as err:
        run(params(store, "v1", dest=str(store.dest / "not-mounted")))
    assert str(err.value) == "dest %s does not exist or is not a directory (is the storage tier mounted?)" % (
        store.dest / "not-mounted")


def test_check_mode_predicts_a_first_deploy_into_a_dest_earlier_tasks_create(store, monkeypatch):
    publish(store.src, "v1")
    monkeypatch.setattr(_artifact_store.shutil, "disk_usage", lambda path: pytest.fail("no space check: no dest"))
    # The account the store's files belong to may be predicted by the same run as well.
    res = run(params(store, "v1", dest=str(store.dest / "not-yet"), owner="onprem-no-such-user",
                     group="onprem-no-such-group"), check_mode=True)
    assert (res["changed"], res["dest_exists"], res["previous"]) == (True, False, None)
    assert sorted(res["would_fetch"]) == ["config.json", "weights/model-00001-of-00002.safetensors",
                                          "weights/model-00002-of-00002.safetensors"]
    assert res["bytes"] == 44 + 70000 + 50001  # config.json and the two weight files
    assert not (store.dest / "not-yet").exists()


def test_check_mode_into_an_existing_dest_still_checks_the_owner(store):
    publish(store.src, "v1")
    with pytest.raises(ArtifactError, match="^owner onprem-no-such-user does not exist$"):
        run(params(store, "v1", owner="onprem-no-such-user"), check_mode=True)


def test_check_mode_still_refuses_a_dest_that_is_a_file(store):
    publish(store.src, "v1")
    (store.dest / "a-file").write_text("x")
    with pytest.raises(ArtifactError, match=r"a-file does not exist or is not a directory"):
        run(params(store, "v1", dest=str(store.dest / "a-file")), check_mode=True)


def test_keep_prunes_oldest_after_switch(store):
    for v in ("v1", "v2", "v3", "v4"):
        publish(store.src, v)
        res = run(params(store, v, keep=2))
    assert res["previous"] == "v3"
    assert res["removed_versions"] == ["v1"]
    assert res["kept_versions"] == ["v4", "v3", "v2"]
    assert sorted(os.listdir(store.dest / "m" / "versions")) == ["v2", "v3", "v4"]
    res = run(params(store, "v4", keep=0))
    assert res["changed"] is True and res["removed_versions"] == ["v2", "v3"]
    assert os.listdir(store.dest / "m" / "versions") == ["v4"]
    assert run(params(store, "v4", keep=0))["changed"] is False


def test_rollback_switches_to_previous_and_is_idempotent(store):
    for v in ("v1", "v2", "v3"):
        publish(store.src, v)
        run(params(store, v))
    rb = dict(name="m", dest=str(store.dest), state="rollback", version=None)
    res = run(rb, check_mode=True)
    assert res["changed"] is True and res["version"] == "v2" and current(store) == "versions/v3"

    res = run(rb)
    assert res["changed"] is True
    assert res["previous"] == "v3" and res["version"] == "v2"
    assert res["diff"] == {"before_header": "current", "after_header": "current",
                           "before": "versions/v3\n", "after": "versions/v2\n"}
    assert current(store) == "versions/v2"
    # second run: already rolled back, does not step further
    res = run(rb)
    assert res["changed"] is False and res["version"] == "v2"
    assert current(store) == "versions/v2"
    # naming a version goes further, and nothing was deleted
    res = run(dict(rb, version="v1"))
    assert res["changed"] is True and current(store) == "versions/v1"
    assert sorted(os.listdir(store.dest / "m" / "versions")) == ["v1", "v2", "v3"]
    # deploying again makes the newest activation current, no fetch needed
    res = run(params(store, "v3"))
    assert res["changed"] is True and res["fetched"] == [] and current(store) == "versions/v3"


def test_rollback_errors(store):
    rb = dict(name="m", dest=str(store.dest), state="rollback", version=None)
    with pytest.raises(ArtifactError) as err:
        run(rb)
    assert str(err.value) == "%s has no current version to roll back from" % (store.dest / "m")
    publish(store.src, "v1")
    run(params(store, "v1"))
    with pytest.raises(ArtifactError) as err:
        run(rb)
    assert str(err.value) == "no earlier version of m to roll back to (only v1 is present)"
    with pytest.raises(ArtifactError) as err:
        run(dict(rb, version="v0"))
    assert str(err.value).startswith("cannot roll back to v0")


def test_absent_removes_non_live_only(store):
    for v in ("v1", "v2"):
        publish(store.src, v)
        run(params(store, v))
    with pytest.raises(ArtifactError) as err:
        run(dict(name="m", dest=str(store.dest), state="absent", version="v2"))
    assert str(err.value).startswith("version v2 is live")
    res = run(dict(name="m", dest=str(store.dest), state="absent", version="v1"))
    assert res["changed"] is True and res["removed_versions"] == ["v1"] and res["kept_versions"] == ["v2"]
    assert run(dict(name="m", dest=str(store.dest), state="absent", version="v1"))["changed"] is False
    assert current(store) == "versions/v2"


def test_verify_existing_restages_damaged_non_live_copy(store):
    for v in ("v1", "v2"):
        publish(store.src, v)
        run(params(store, v))
    run(dict(name="m", dest=str(store.dest), state="rollback", version="v1"))
    damaged = store.dest / "m" / "versions" / "v2" / "config.json"
    damaged.write_bytes(b"{}")
    assert run(params(store, "v2"), check_mode=True)["would_fetch"] == []
    res = run(params(store, "v2", verify_existing=True))
    assert res["changed"] is True and "config.json" in res["fetched"]
    assert damaged.read_bytes() == b'{"architectures": ["DeepseekV3ForCausalLM"]}'
    assert current(store) == "versions/v2"


def test_live_version_is_never_modified(store):
    publish(store.src, "v1")
    run(params(store, "v1"))
    (store.dest / "m" / "current" / "config.json").write_bytes(b"{}")
    with pytest.raises(ArtifactError) as err:
        run(params(store, "v1", verify_existing=True))
    assert str(err.value).startswith("live version v1 is damaged: file config.json: size 2, manifest says 44")
    # same version re-published with other content
    publish(store.src, "v1", files={"config.json": b"{}"})
    with pytest.raises(ArtifactError) as err:
        run(params(store, "v1"))
    assert str(err.value).startswith("version v1 is live and")
    assert (store.dest / "m" / "current" / "weights").is_dir()


def test_sha256sums_source(store):
    publish(store.src, "v1", sums=True)
    res = run(params(store, "v1"))
    assert res["changed"] is True and res["bytes"] == 120045
    assert (store.dest / "m" / "current" / ".manifest").read_bytes().startswith(
        hashlib.sha256(b'{"architectures": ["DeepseekV3ForCausalLM"]}').hexdigest().encode())
    vdir = publish(store.src, "v2", sums=True)
    (vdir / "config.json").write_bytes(b"{}")
    with pytest.raises(ArtifactError) as err:
        run(params(store, "v2"))
    # sizes come from the source for SHA256SUMS, so a shorter file shows up as a hash mismatch
    assert str(err.value).startswith("file config.json: sha256 mismatch")
    assert current(store) == "versions/v1"


def test_manifest_pin(store):
    vdir = publish(store.src, "v1")
    digest = hashlib.sha256((vdir / "manifest.json").read_bytes()).hexdigest()
    with pytest.raises(ArtifactError) as err:
        run(params(store, "v1", manifest_sha256="0" * 64))
    assert str(err.value) == "%s: sha256 %s does not match manifest_sha256 %s" % (
        vdir / "manifest.json", digest, "0" * 64)
    assert run(params(store, "v1", manifest_sha256=digest.upper()))["changed"] is True


def test_traversal_in_manifest_fails_before_writing(store):
    vdir = publish(store.src, "v1")
    doc = json.loads((vdir / "manifest.json").read_text())
    doc["files"].append({"path": "../../../etc/cron.d/evil", "size": 1, "sha256": "0" * 64})
    (vdir / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ArtifactError) as err:
        run(params(store, "v1"))
    assert str(err.value) == "manifest.json: file '../../../etc/cron.d/evil': '..' (path traversal) is not allowed"
    assert os.listdir(store.dest) == []


def test_leftover_staging_from_interrupted_run_is_cleaned(store):
    publish(store.src, "v1")
    stale = store.dest / "m" / ".staging-v1-abcd1234"
    stale.mkdir(parents=True)
    (stale / "config.json").write_bytes(b"partial")
    run(params(store, "v1"))
    assert leftovers(store) == []


def test_concurrent_run_is_refused(store):
    import fcntl
    publish(store.src, "v1")
    (store.dest / "m").mkdir()
    fd = os.open(str(store.dest / "m" / ".lock"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(ArtifactError) as err:
            run(params(store, "v1"))
        assert str(err.value) == "%s is locked by another model_artifact run" % (store.dest / "m")
    finally:
        os.close(fd)
    assert not (store.dest / "m" / "current").exists()


def test_current_as_real_directory_is_refused(store):
    publish(store.src, "v1")
    (store.dest / "m" / "current").mkdir(parents=True)
    with pytest.raises(ArtifactError) as err:
        run(params(store, "v1"))
    assert "is not a symlink" in str(err.value)


@pytest.mark.parametrize("workers, ok", [(0, False), (-1, False), (1, True), (None, True)])
def test_workers_must_be_one_or_more(store, workers, ok):
    publish(store.src, "v1")
    if ok:
        assert run(params(store, "v1", workers=workers))["changed"] is True
        return
    with pytest.raises(ArtifactError) as err:
        run(params(store, "v1", workers=workers))
    assert str(err.value) == "workers must be 1 or more (omit it for one per CPU)"
    assert not (store.dest / "m").exists()


def test_failure_among_parallel_files_never_becomes_current(store):
    publish(store.src, "v1")
    run(params(store, "v1"))
    files = {"shard-%02d.bin" % i: payload(i, 40000 + i) for i in range(12)}
    vdir = publish(store.src, "v2", files=files)
    (vdir / "shard-05.bin").write_bytes(payload(99, 40005))  # same size, other bytes
    with pytest.raises(ArtifactError) as err:
        run(params(store, "v2", workers=4))
    assert str(err.value).startswith("file shard-05.bin: sha256 mismatch")
    _assert_live_untouched(store)
    assert os.listdir(store.dest / "m" / "versions") == ["v1"]
    assert json.loads((store.dest / "m" / ".history.json").read_text()) == {"activations": ["v1"]}


def test_verify_existing_rehashes_files_side_by_side(store, monkeypatch):
    import threading
    files = {"shard-%d.bin" % i: payload(i, 30000) for i in range(3)}
    publish(store.src, "v1", files=files)
    run(params(store, "v1"))
    meet = threading.Barrier(3, timeout=10)  # sequential re-hashing never gets three here
    real = _artifact_copy.verify_file

    calls = []

    def verify_file(path, entry, chunk_size):
        calls.append(entry.path)
        meet.wait()
        return real(path, entry, chunk_size)
    monkeypatch.setattr(_artifact_copy, "verify_file", verify_file)
    (store.dest / "m" / "versions" / "v1" / "shard-2.bin").write_bytes(payload(9, 30000))
    (store.dest / "m" / "versions" / "v1" / "shard-1.bin").write_bytes(payload(9, 30000))
    with pytest.raises(ArtifactError) as err:
        run(params(store, "v1", verify_existing=True, workers=3))
    # the first damaged file in manifest order, whichever finished first
    assert str(err.value).startswith("live version v1 is damaged: file shard-1.bin: sha256 mismatch")
    assert sorted(calls) == sorted(files)


def test_staged_fetches_and_verifies_but_leaves_current_history_and_other_versions(store):
    for v in ("v1", "v2", "v3"):
        publish(store.src, v)
        run(params(store, v, keep=1))
    history = (store.dest / "m" / ".history.json").read_text()
    publish(store.src, "v4")
    res = run(params(store, "v4", state="staged", keep=0), check_mode=True)
    assert res["changed"] is True and "diff" not in res and res["removed_versions"] == []
    assert not (store.dest / "m" / "versions" / "v4").exists()

    res = run(params(store, "v4", state="staged", keep=0))
    assert res["changed"] is True
    assert res["previous"] == "v3" and res["version"] == "v4"
    assert res["removed_versions"] == [] and "diff" not in res
    assert len(res["fetched"]) == 3
    assert current(store) == "versions/v3"
    assert sorted(os.listdir(store.dest / "m" / "versions")) == ["v2", "v3", "v4"]
    assert (store.dest / "m" / ".history.json").read_text() == history
    assert leftovers(store) == []
    # Staged again: nothing to do. A rollback still goes to the version activated before v3.
    assert run(params(store, "v4", state="staged"))["changed"] is False
    assert run(dict(name="m", dest=str(store.dest), state="rollback", version=None), check_mode=True)["version"] == "v2"
    # Activating it later fetches nothing, switches and records it.
    res = run(params(store, "v4", keep=1))
    assert res["changed"] is True and res["fetched"] == [] and res["previous"] == "v3"
    assert current(store) == "versions/v4"
    assert json.loads((store.dest / "m" / ".history.json").read_text())["activations"][-1] == "v4"
    assert res["removed_versions"] == ["v2"]


def test_staged_version_that_is_live_changes_nothing_and_a_corrupt_candidate_leaves_no_trace(store):
    publish(store.src, "v1")
    run(params(store, "v1"))
    assert run(params(store, "v1", state="staged"))["changed"] is False
    vdir = publish(store.src, "v2")
    (vdir / "config.json").write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match="config.json"):
        run(params(store, "v2", state="staged"))
    assert sorted(os.listdir(store.dest / "m" / "versions")) == ["v1"]
    _assert_live_untouched(store)
