"""Catalog figures against the models' published config.json and model cards."""
import json
from pathlib import Path

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils._model_catalog import (
    MODELS,
    ModelCatalogError,
    estimate_params,
    get_model,
    model_names,
)

# Sizes the Hugging Face model pages publish ("Model size"), in billions.
PUBLISHED_BILLIONS = {
    "deepseek-r1-distill-qwen-1.5b": 1.78,
    "deepseek-r1-distill-qwen-7b": 7.62,
    "deepseek-r1-distill-llama-8b": 8.03,
    "deepseek-r1-distill-qwen-14b": 14.8,
    "deepseek-r1-distill-qwen-32b": 32.8,
    "deepseek-r1-distill-llama-70b": 70.6,
}


def test_catalog_has_the_issue_models():
    for name in ("deepseek-r1", "deepseek-v3", *PUBLISHED_BILLIONS):
        assert name in model_names()
    # The sandbox's model is test data, passed as a description: the shipped catalog has published models only.
    assert "deepseek-v3-tiny-sandbox" not in model_names()


@pytest.mark.parametrize("name", sorted(PUBLISHED_BILLIONS))
def test_distill_params_follow_from_config(name):
    entry = MODELS[name]
    total, active = estimate_params(entry)
    assert total == entry["total_params"] == active
    assert round(total / 1e9, 2 if total < 10e9 else 1) == PUBLISHED_BILLIONS[name]


def test_deepseek_v3_architecture():
    # deepseek-ai/DeepSeek-V3/blob/main/config.json on the Hugging Face Hub
    r1 = get_model("deepseek-r1")
    assert (r1["num_hidden_layers"], r1["hidden_size"], r1["kv_lora_rank"], r1["qk_rope_head_dim"]) == (61, 7168, 512, 64)
    assert (r1["n_routed_experts"], r1["num_experts_per_tok"], r1["first_k_dense_replace"]) == (256, 8, 3)
    assert r1["native_dtype"] == "fp8" and r1["max_position_embeddings"] == 163840
    # Model card: "671B total parameters with 37B activated for each token".
    total, active = estimate_params(r1)
    assert abs(total - 671e9) / 671e9 < 0.001
    assert abs(active - 37e9) / 37e9 < 0.02
    assert get_model("deepseek-v3")["total_params"] == r1["total_params"] == 671000000000


def test_tiny_sandbox_is_a_small_deepseek_v3():
    tiny = json.loads((Path(__file__).resolve().parents[2] / "fixtures" / "models" / "deepseek-v3-tiny-sandbox.json").read_text())
    assert tiny["architecture"] == "DeepseekV3ForCausalLM"
    assert (tiny["vocab_size"], tiny["kv_lora_rank"], tiny["qk_rope_head_dim"]) == (129280, 512, 64)
    assert (tiny["qk_nope_head_dim"], tiny["v_head_dim"]) == (128, 128)
    total, active = estimate_params(tiny)
    assert (total, active) == (tiny["total_params"], tiny["active_params"]) == (40393368, 39508632)
    assert 10e6 < total < 100e6
    # Every field the sandbox model builder writes to config.json is present.
    for field in ("hidden_size", "intermediate_size", "moe_intermediate_size", "num_hidden_layers",
                  "num_attention_heads", "n_routed_experts", "num_experts_per_tok", "n_shared_experts",
                  "first_k_dense_replace", "q_lora_rank", "max_position_embeddings"):
        assert isinstance(tiny[field], int) and tiny[field] > 0
    assert tiny["n_routed_experts"] % tiny["n_group"] == 0


@pytest.mark.parametrize("alias, name", [
    ("deepseek-ai/DeepSeek-R1", "deepseek-r1"),
    ("  DeepSeek-R1-0528 ", "deepseek-r1"),
    ("deepseek-ai/DeepSeek-V3-0324", "deepseek-v3"),
    ("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "deepseek-r1-distill-llama-70b"),
])
def test_aliases(alias, name):
    assert get_model(alias)["name"] == name


def test_get_model_returns_a_copy():
    get_model("deepseek-r1")["hidden_size"] = 1
    assert MODELS["deepseek-r1"]["hidden_size"] == 7168


@pytest.mark.parametrize("bad", ["deepseek-r2", "", None, 42])
def test_unknown_names(bad):
    with pytest.raises(ModelCatalogError) as err:
        get_model(bad)
    assert err.value.field == "model"
    assert "model" in str(err.value)
