"""onprem.deepseek.model_artifact main(): argument handling, check/diff mode, fail_json."""
import hashlib
import json
import os

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
