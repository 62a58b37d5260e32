"""onprem.deepseek.model_artifact main(): argument handling, check/diff mode, fail_json."""
import hashlib
import json
import os
import shutil

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.onprem.deepseek.plugins.modules import model_artifact

CONFIG = b'{"model_type": "deepseek_v3", "num_hidden_layers": 61}'
SHARD = b"\x00\x01safetensors" * 5000


def publish(src, version, shard=SHARD):
    vdir = src / "DeepSeek-V3" / version
    vdir.mkdir(parents=True)
    (vdir / "config.json").write_bytes(CONFIG)
    (vdir / "model.safetensors").write_bytes(shard)
    (vdir / "manifest.json").write_text(json.dumps({"model": "DeepSeek-V3", "version": version, "files": [
        {"path": "config.json", "size": len(CONFIG), "sha256": hashlib.sha256(CONFIG).hexdigest()},
        {"path": "model.safetensors", "size": len(SHARD), "sha256": hashlib.sha256(SHARD).hexdigest()},
    ]}))


def call(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            model_artifact.main()
    out = json.loads(capsys.readouterr().out)
    out["rc"] = exc.value.code
    return out


@pytest.fixture
def dirs(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "hot").mkdir()
    return tmp_path / "src", tmp_path / "hot"


def args(dirs, **kw):
    src, hot = dirs
    out = {"name": "DeepSeek-V3", "version": "v3.1", "source": "file://" + str(src), "dest": str(hot),
           "space_margin": "0", "mode": "0640"}
    out.update(kw)
    return out


def test_present_check_mode_then_apply_with_diff(dirs, capsys):
    src, hot = dirs
    publish(src, "v3.1")
    res = call(capsys, dict(args(dirs), _ansible_check_mode=True, _ansible_diff=True))
    assert res["rc"] == 0
    assert res["changed"] is True
    assert res["would_fetch"] == ["config.json", "model.safetensors"]
    assert res["bytes"] == len(CONFIG) + len(SHARD)
    assert res["diff"] == {"before_header": "current", "after_header": "current",
                           "before": "", "after": "versions/v3.1\n"}
    assert os.listdir(hot) == []

    res = call(capsys, dict(args(dirs), _ansible_diff=True))
    assert res["changed"] is True
    assert res["fetched"] == ["config.json", "model.safetensors"]
    assert res["current"] == str(hot / "DeepSeek-V3" / "versions" / "v3.1")
    assert "would_fetch" not in res
    assert os.readlink(hot / "DeepSeek-V3" / "current") == "versions/v3.1"
    assert oct(os.stat(hot / "DeepSeek-V3" / "current" / "model.safetensors").st_mode & 0o777) == "0o640"

    res = call(capsys, args(dirs))
    assert res["changed"] is False and res["previous"] == "v3.1" and "diff" not in res


def test_failure_is_reported_with_file_name(dirs, capsys):
    src, hot = dirs
    publish(src, "v3.1")
    (src / "DeepSeek-V3" / "v3.1" / "model.safetensors").write_bytes(SHARD[:-10])
    res = call(capsys, args(dirs))
    assert res["rc"] == 1
    assert res["failed"] is True
    assert res["msg"] == "file model.safetensors: truncated (expected %d bytes, got %d)" % (
        len(SHARD), len(SHARD) - 10)
    assert not (hot / "DeepSeek-V3" / "current").exists()


def test_required_if_and_bad_margin(dirs, capsys):
    res = call(capsys, {"name": "DeepSeek-V3", "dest": str(dirs[1])})
    assert res["failed"] is True
    assert res["msg"] == "state is present but all of the following are missing: version, source"
    res = call(capsys, args(dirs, space_margin="lots"))
    assert res["failed"] is True and res["msg"].startswith("space_margin: ")


def test_rollback_via_module(dirs, capsys):
    src, hot = dirs
    publish(src, "v3.0")
    publish(src, "v3.1")
    assert call(capsys, args(dirs, version="v3.0"))["changed"] is True
    assert call(capsys, args(dirs, version="v3.1"))["changed"] is True
    rb = {"name": "DeepSeek-V3", "dest": str(hot), "state": "rollback"}
    res = call(capsys, rb)
    assert res["changed"] is True and res["previous"] == "v3.1" and res["version"] == "v3.0"
    res = call(capsys, rb)
    assert res["changed"] is False and res["version"] == "v3.0"
    assert os.readlink(hot / "DeepSeek-V3" / "current") == "versions/v3.0"


def test_workers_reach_the_staging(dirs, capsys):
    src, hot = dirs
    publish(src, "v3.1")
    res = call(capsys, args(dirs, workers=0))
    assert res["failed"] is True and res["msg"] == "workers must be 1 or more (omit it for one per CPU)"
    res = call(capsys, args(dirs, workers=2))
    assert res["changed"] is True and res["fetched"] == ["config.json", "model.safetensors"]


# -- a release's switch, and a later run from an inventory that still names the older version ------

def record(hot):
    path = hot / "DeepSeek-V3" / ".release.json"
    return json.loads(path.read_text()) if path.exists() else None


def test_a_release_is_recorded_and_a_run_naming_the_older_version_is_refused_changing_nothing(dirs, capsys):
    src, hot = dirs
    for version in ("v1", "v2"):
        publish(src, version)
    res = call(capsys, args(dirs, version="v1"))
    assert res["changed"] is True and res["release_record"] == {"inventory": "v1", "release": None}
    assert record(hot) == {"inventory": "v1", "release": None}
    res = call(capsys, args(dirs, version="v2", released=True))
    assert res["changed"] is True and record(hot) == {"inventory": "v1", "release": "v2"}
    history = (hot / "DeepSeek-V3" / ".history.json").read_text()
    # The inventory still names v1: refused, in check mode too, before anything is read or switched
    # (the source's v1 is gone: reading its manifest would fail otherwise).
    shutil.rmtree(str(src / "DeepSeek-V3" / "v1"))
    for check in (False, True):
        res = call(capsys, dict(args(dirs, version="v1"), _ansible_check_mode=check))
        assert res["failed"] is True, res
        assert "version v2 is current because a release made it so" in res["msg"]
        assert "the inventory's version was v1" in res["msg"] and "this run names v1" in res["msg"]
        assert "replace_release (model_store_replace_release)" in res["msg"]
    assert os.readlink(str(hot / "DeepSeek-V3" / "current")) == "versions/v2"
    assert (hot / "DeepSeek-V3" / ".history.json").read_text() == history
    assert record(hot) == {"inventory": "v1", "release": "v2"}
    # A release again of what is current changes nothing.
    res = call(capsys, args(dirs, version="v2", released=True))
    assert res["changed"] is False
    # The inventory catches up: no switch, and the version is the inventory's now (one change, then none).
    res = call(capsys, args(dirs, version="v2"))
    assert res["changed"] is True and "diff" not in res and record(hot) == {"inventory": "v2", "release": None}
    assert call(capsys, args(dirs, version="v2"))["changed"] is False
    # Then an ordinary upgrade from the inventory is not a switch back.
    publish(src, "v3")
    res = call(capsys, args(dirs, version="v3"))
    assert res["changed"] is True and record(hot) == {"inventory": "v3", "release": None}


def test_replace_release_switches_back_on_purpose(dirs, capsys):
    src, hot = dirs
    for version in ("v1", "v2"):
        publish(src, version)
    call(capsys, args(dirs, version="v1"))
    call(capsys, args(dirs, version="v2", released=True))
    res = call(capsys, args(dirs, version="v1", replace_release=True))
    assert res["changed"] is True and os.readlink(str(hot / "DeepSeek-V3" / "current")) == "versions/v1"
    assert record(hot) == {"inventory": "v1", "release": None}


def test_a_failed_release_put_back_leaves_no_release_and_a_store_without_a_record_takes_its_current(dirs, capsys):
    src, hot = dirs
    for version in ("v1", "v2"):
        publish(src, version)
    call(capsys, args(dirs, version="v1"))
    (hot / "DeepSeek-V3" / ".release.json").unlink()  # a store from before the record
    call(capsys, args(dirs, version="v2", released=True))
    assert record(hot) == {"inventory": "v1", "release": "v2"}
    res = call(capsys, {"name": "DeepSeek-V3", "dest": str(hot), "state": "rollback", "released": True})
    assert res["changed"] is True and res["version"] == "v1"
    assert record(hot) == {"inventory": "v1", "release": None}
    # Nothing is guarded then: the inventory may name another version.
    res = call(capsys, args(dirs, version="v2"))
    assert res["changed"] is True and record(hot) == {"inventory": "v2", "release": None}


@pytest.mark.parametrize("text", ["not json", '{"inventory": "v1"}', '{"inventory": 1, "release": null}',
                                  '{"inventory": "", "release": null}', "[]"])
def test_a_damaged_record_fails_naming_the_file(dirs, capsys, text):
    src, hot = dirs
    publish(src, "v1")
    call(capsys, args(dirs, version="v1"))
    (hot / "DeepSeek-V3" / ".release.json").write_text(text)
    res = call(capsys, args(dirs, version="v1"))
    assert res["failed"] is True
    assert res["msg"].startswith("%s/DeepSeek-V3/.release.json is damaged" % hot)


@pytest.mark.parametrize("record, current, wanted, replace, guarded", [
    ({"inventory": "v1", "release": "v2"}, "v2", "v1", False, "v2"),
    ({"inventory": "v1", "release": "v2"}, "v2", "v3", False, "v2"),
    ({"inventory": "v1", "release": "v2"}, "v2", "v1", True, None),
    ({"inventory": "v1", "release": "v2"}, "v2", "v2", False, None),
    # current is no longer the released version (switched by hand since)
    ({"inventory": "v1", "release": "v2"}, "v1", "v3", False, None),
    ({"inventory": "v1", "release": None}, "v1", "v3", False, None),
    ({"inventory": None, "release": None}, None, "v1", False, None),
])
def test_the_guard_holds_only_a_released_current_version_against_another(record, current, wanted, replace, guarded):
    from ansible_collections.onprem.deepseek.plugins.module_utils._artifact import release_guard
    from ansible_collections.onprem.deepseek.plugins.filter.model_store_release_guard import model_store_release_guard
    assert release_guard(record, current, wanted, replace) == guarded
    if not replace:
        assert release_guard(record, current, wanted) == guarded
    assert model_store_release_guard(json.dumps(record), current, wanted, replace) == guarded


def test_the_filter_takes_no_record_as_nothing_guarded_and_names_a_damaged_one():
    from ansible.errors import AnsibleFilterError
    from ansible_collections.onprem.deepseek.plugins.filter.model_store_release_guard import model_store_release_guard
    assert model_store_release_guard("", "v2", "v1") is None
    with pytest.raises(AnsibleFilterError, match="model_store_release_guard: /srv/x/.release.json is damaged"):
        model_store_release_guard("{", "v2", "v1", False, "/srv/x/.release.json")
