"""_model_catalog: the alias table and estimate_params on small hand-computed architectures.

The catalog's real models are checked against their published sizes in
test_inference_plan_catalog.py; these cases pin each term of the formulas (tied embeddings, an
explicit head_dim, attention bias, MLA with and without a query LoRA, the MoE boundary).
"""
import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils import _model_catalog as catalog


def test_the_alias_table_maps_names_repositories_and_releases():
    table = catalog._aliases()
    assert table == catalog.ALIASES
    for key, entry in catalog.MODELS.items():
        assert table[key] == key
        if entry.get("hf_repo"):
            assert table[catalog._normalize(entry["hf_repo"])] == key
    assert table["deepseek-r1-0528"] == "deepseek-r1" and table["deepseek-v3-0324"] == "deepseek-v3"
    assert catalog.get_model("deepseek-ai/DeepSeek-R1-0528")["name"] == "deepseek-r1"


DENSE = {"hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 10,
         "intermediate_size": 5}


@pytest.mark.parametrize("changes, total", [
    # embed 10*8*2=160; attn q=k=v=8*2*4=64, o=64 -> 256; mlp 3*8*5=120; norms 16; final norm 8
    ({}, 160 + 2 * (256 + 120 + 16) + 8),
    ({"tie_word_embeddings": True}, 80 + 2 * (256 + 120 + 16) + 8),
    ({"vocab_size": None}, 0 + 2 * (256 + 120 + 16) + 8),
    # GQA, one KV head of head_dim 3 (not 8 // 2), with bias: q 8*2*3+6=54, k=v 8*3+3=27, o 2*3*8=48
    ({"num_key_value_heads": 1, "head_dim": 3, "attention_bias": True}, 160 + 2 * (54 + 54 + 48 + 120 + 16) + 8),
])
def test_dense_decoder_terms(changes, total):
    arch = dict(DENSE, **changes)
    assert catalog.estimate_params(arch) == (total, total)


MLA = dict(DENSE, kv_lora_rank=3, qk_nope_head_dim=2, qk_rope_head_dim=1, v_head_dim=2)
# kv: 8*(3+1) + 3 + 3*2*(2+2) = 59; o: 2*2*8 = 32


@pytest.mark.parametrize("changes, attn", [
    ({}, 8 * 2 * 3 + 59 + 32),                           # no query LoRA: q = 8*2*(2+1)
    ({"q_lora_rank": 4}, (8 * 4 + 4 + 4 * 2 * 3) + 59 + 32),
])
def test_mla_attention_terms(changes, attn):
    total = 160 + 2 * (attn + 120 + 16) + 8
    assert catalog.estimate_params(dict(MLA, **changes)) == (total, total)


MOE = dict(DENSE, n_routed_experts=2, num_experts_per_tok=1, moe_intermediate_size=2)
# expert 3*8*2=48; router 2*8+2=18; attention and norms per layer 256+16


def test_one_routed_expert_is_a_dense_model():
    total = 160 + 2 * (256 + 120 + 16) + 8
    assert catalog.estimate_params(dict(MOE, n_routed_experts=1)) == (total, total)


@pytest.mark.parametrize("changes, total, active", [
    ({}, 160 + 2 * 272 + 2 * (2 * 48 + 18) + 8, 160 + 2 * 272 + 2 * (48 + 18) + 8),
    # one dense first layer, one shared expert
    ({"first_k_dense_replace": 1, "n_shared_experts": 1},
     160 + 2 * 272 + 120 + (2 * 48 + 48 + 18) + 8, 160 + 2 * 272 + 120 + (48 + 48 + 18) + 8),
])
def test_moe_terms(changes, total, active):
    assert catalog.estimate_params(dict(MOE, **changes)) == (total, active)
