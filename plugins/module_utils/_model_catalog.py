# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Architecture figures of the models the collection deploys.

Field names follow the models' published ``config.json`` so that a user can pass a
config.json (plus ``total_params``) as a custom model. Parameter counts of the dense
distills are computed from those figures (:func:`estimate_params`) and match the sizes
the model pages publish; DeepSeek-V3/R1 carry the published 671B total / 37B active.
"""

from __future__ import annotations

import copy


class ModelCatalogError(ValueError):
    """Unknown model name or unusable model description."""

    def __init__(self, msg, field="model"):
        super(ModelCatalogError, self).__init__(msg)
        self.field = field


# DeepSeek-V3 and R1 share one architecture.
# deepseek-ai/DeepSeek-R1/blob/main/config.json on the Hugging Face Hub
# deepseek-ai/DeepSeek-V3/blob/main/config.json on the Hugging Face Hub
_DEEPSEEK_V3_ARCH = {
    "architecture": "DeepseekV3ForCausalLM",
    "attention": "mla",
    "native_dtype": "fp8",  # quantization_config: fp8 e4m3, 128x128 weight blocks
    "total_params": 671000000000,  # model card: 671B total, 37B activated (MTP module excluded)
    "active_params": 37000000000,
    "vocab_size": 129280,
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "moe_intermediate_size": 2048,
    "num_hidden_layers": 61,
    "num_attention_heads": 128,
    "num_key_value_heads": 128,
    "n_routed_experts": 256,
    "num_experts_per_tok": 8,
    "n_shared_experts": 1,
    "first_k_dense_replace": 3,
    "n_group": 8,
    "topk_group": 4,
    "kv_lora_rank": 512,
    "q_lora_rank": 1536,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "max_position_embeddings": 163840,
    "tie_word_embeddings": False,
}

MODELS = {
    "deepseek-r1": dict(_DEEPSEEK_V3_ARCH, hf_repo="deepseek-ai/DeepSeek-R1"),
    "deepseek-v3": dict(_DEEPSEEK_V3_ARCH, hf_repo="deepseek-ai/DeepSeek-V3"),
    # deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B/blob/main/config.json on the Hugging Face Hub
    "deepseek-r1-distill-qwen-1.5b": {
        "hf_repo": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
        "architecture": "Qwen2ForCausalLM",
        "attention": "gqa",
        "native_dtype": "bf16",
        "total_params": 1777088000,
        "vocab_size": 151936,
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "head_dim": 128,
        "attention_bias": True,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": False,
    },
    # deepseek-ai/DeepSeek-R1-Distill-Qwen-7B/blob/main/config.json on the Hugging Face Hub
    "deepseek-r1-distill-qwen-7b": {
        "hf_repo": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
        "architecture": "Qwen2ForCausalLM",
        "attention": "gqa",
        "native_dtype": "bf16",
        "total_params": 7615616512,
        "vocab_size": 152064,
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "head_dim": 128,
        "attention_bias": True,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": False,
    },
    # deepseek-ai/DeepSeek-R1-Distill-Llama-8B/blob/main/config.json on the Hugging Face Hub
    "deepseek-r1-distill-llama-8b": {
        "hf_repo": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
        "architecture": "LlamaForCausalLM",
        "attention": "gqa",
        "native_dtype": "bf16",
        "total_params": 8030261248,
        "vocab_size": 128256,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "attention_bias": False,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": False,
    },
    # deepseek-ai/DeepSeek-R1-Distill-Qwen-14B/blob/main/config.json on the Hugging Face Hub
    "deepseek-r1-distill-qwen-14b": {
        "hf_repo": "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B",
        "architecture": "Qwen2ForCausalLM",
        "attention": "gqa",
        "native_dtype": "bf16",
        "total_params": 14770033664,
        "vocab_size": 152064,
        "hidden_size": 5120,
        "intermediate_size": 13824,
        "num_hidden_layers": 48,
        "num_attention_heads": 40,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "attention_bias": True,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": False,
    },
    # deepseek-ai/DeepSeek-R1-Distill-Qwen-32B/blob/main/config.json on the Hugging Face Hub
    "deepseek-r1-distill-qwen-32b": {
        "hf_repo": "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
        "architecture": "Qwen2ForCausalLM",
        "attention": "gqa",
        "native_dtype": "bf16",
        "total_params": 32763876352,
        "vocab_size": 152064,
        "hidden_size": 5120,
        "intermediate_size": 27648,
        "num_hidden_layers": 64,
        "num_attention_heads": 40,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "attention_bias": True,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": False,
    },
    # deepseek-ai/DeepSeek-R1-Distill-Llama-70B/blob/main/config.json on the Hugging Face Hub
    "deepseek-r1-distill-llama-70b": {
        "hf_repo": "deepseek-ai/DeepSeek-R1-Distill-Llama-70B",
        "architecture": "LlamaForCausalLM",
        "attention": "gqa",
        "native_dtype": "bf16",
        "total_params": 70553706496,
        "vocab_size": 128256,
        "hidden_size": 8192,
        "intermediate_size": 28672,
        "num_hidden_layers": 80,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "attention_bias": False,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": False,
    },
}

# Releases that reuse an architecture above.
_EXTRA_ALIASES = {
    "deepseek-r1-0528": "deepseek-r1",
    "deepseek-v3-0324": "deepseek-v3",
}


def _normalize(name):
    key = name.strip().lower()
    if key.startswith("deepseek-ai/"):
        key = key[len("deepseek-ai/"):]
    return key


def _aliases():
    table = {}
    for key, entry in MODELS.items():
        table[key] = key
        if entry.get("hf_repo"):
            table[_normalize(entry["hf_repo"])] = key
    table.update(_EXTRA_ALIASES)
    return table


ALIASES = _aliases()


def model_names():
    """Canonical catalog names, sorted."""
    return sorted(MODELS)


def is_moe(model):
    return int(model.get("n_routed_experts") or 0) > 1


def get_model(name):
    """Return a copy of the catalog entry for ``name`` (catalog key or Hugging Face id)."""
    if not isinstance(name, str) or not name.strip():
        raise ModelCatalogError("model must be a catalog name or a dict, got %r" % (name,))
    key = ALIASES.get(_normalize(name))
    if key is None:
        raise ModelCatalogError(
            "model: unknown model name %r; known names: %s" % (name, ", ".join(model_names()))
        )
    entry = copy.deepcopy(MODELS[key])
    entry["name"] = key
    return entry


def estimate_params(arch):
    """Total and active parameter counts from config.json fields.

    Covers the two families in the catalog: dense GQA decoders (Qwen2, Llama) and
    DeepSeek-V3 (MLA attention, DeepSeekMoE). Returns ``(total, active)``.
    """
    hidden = int(arch["hidden_size"])
    layers = int(arch["num_hidden_layers"])
    heads = int(arch["num_attention_heads"])
    vocab = int(arch.get("vocab_size") or 0)
    tied = bool(arch.get("tie_word_embeddings"))
    embed = vocab * hidden * (1 if tied else 2)
    norms = 2 * hidden
    if arch.get("kv_lora_rank"):
        q_lora = int(arch.get("q_lora_rank") or 0)
        kv_lora = int(arch["kv_lora_rank"])
        nope = int(arch["qk_nope_head_dim"])
        rope = int(arch["qk_rope_head_dim"])
        v_dim = int(arch["v_head_dim"])
        if q_lora:
            q = hidden * q_lora + q_lora + q_lora * heads * (nope + rope)
        else:
            q = hidden * heads * (nope + rope)
        kv = hidden * (kv_lora + rope) + kv_lora + kv_lora * heads * (nope + v_dim)
        attn = q + kv + heads * v_dim * hidden
    else:
        kv_heads = int(arch.get("num_key_value_heads") or heads)
        head_dim = int(arch.get("head_dim") or hidden // heads)
        bias = bool(arch.get("attention_bias"))
        q = hidden * heads * head_dim + (heads * head_dim if bias else 0)
        k = hidden * kv_heads * head_dim + (kv_heads * head_dim if bias else 0)
        attn = q + 2 * k + heads * head_dim * hidden
    dense_mlp = 3 * hidden * int(arch["intermediate_size"])
    routed = int(arch.get("n_routed_experts") or 0)
    if routed > 1:
        first_dense = int(arch.get("first_k_dense_replace") or 0)
        expert = 3 * hidden * int(arch["moe_intermediate_size"])
        shared = int(arch.get("n_shared_experts") or 0) * expert
        router = routed * hidden + routed  # gate weight + score correction bias
        moe_total = routed * expert + shared + router
        moe_active = int(arch["num_experts_per_tok"]) * expert + shared + router
        moe_layers = layers - first_dense
        body = layers * (attn + norms) + first_dense * dense_mlp
        total = embed + body + moe_layers * moe_total + hidden
        active = embed + body + moe_layers * moe_active + hidden
        return total, active
    total = embed + layers * (attn + dense_mlp + norms) + hidden
    return total, total
