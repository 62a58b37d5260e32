"""The planner against the published vLLM / SGLang / DeepSeek recipes, and its formulas."""
import json
from pathlib import Path

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils._inference_plan import (
    GIB,
    InferencePlanError,
    gpu_capabilities,
    kv_bytes_per_token,
    plan_inference,
    valid_tensor_parallel,
    weight_bytes_per_gpu,
)
from ansible_collections.onprem.deepseek.plugins.module_utils._model_catalog import get_model

# The sandbox's tiny DeepSeek-V3, which the sandbox passes as a description (not in the catalog).
TINY = json.loads((Path(__file__).resolve().parents[2] / "fixtures" / "models" / "deepseek-v3-tiny-sandbox.json").read_text())


def hw(gpu_model, gib, per_node, nodes=1, **extra):
    return dict(gpu_model=gpu_model, gpu_memory_gib=gib, gpus_per_node=per_node, nodes=nodes, **extra)


# Memory sizes as nvidia-smi reports them (MiB / 1024) where it matters, else the nominal size.
H200 = "NVIDIA H200"  # 143771 MiB
H100 = "NVIDIA H100 80GB HBM3"
A100 = "NVIDIA A100-SXM4-80GB"
B200 = "NVIDIA B200"


def plan(model, hardware, **options):
    return plan_inference(model, hardware, options)


# --- DeepSeek-R1 / V3 -------------------------------------------------------


@pytest.mark.parametrize("model", ["deepseek-r1", "deepseek-v3"])
def test_r1_fp8_on_8x_h200_fits_with_tp8_and_ep(model):
    # https://docs.vllm.ai/projects/recipes/en/latest/DeepSeek/DeepSeek-V3.html
    #   "8xH200 with fp8: Native FP8 with TP+EP or DP+EP."
    #   "vllm serve deepseek-ai/DeepSeek-R1-0528 --trust-remote-code --tensor-parallel-size 8 --enable-expert-parallel"
    # https://docs.sglang.io/docs/basic_usage/deepseek_v3.md
    #   "Full precision FP8 (recommended) | 8 x H200"
    result = plan(model, hw(H200, 140.4, 8))
    assert result["fits"] is True
    assert (result["tensor_parallel_size"], result["pipeline_parallel_size"], result["data_parallel_size"]) == (8, 1, 1)
    assert result["enable_expert_parallel"] is True
    assert result["quantization"] == "fp8"
    assert result["max_model_len"] == 163840
    assert result["weights_gib_per_gpu"] == 79.08
    assert result["usable_gib_per_gpu"] == 126.36
    assert result["gpus_used"] == 8
    # MLA: 61 layers x (512 + 64) values x 2 bytes per token, replicated on each TP rank.
    assert result["kv_cache_bytes_per_token"] == 61 * 576 * 2 == 70272
    assert result["kv_cache_required_gib_per_gpu"] == round(163840 * 70272 / GIB, 2) == 10.72


def test_r1_native_fp8_runs_without_a_quantization_flag():
    # https://docs.sglang.io/docs/basic_usage/deepseek_v3.md
    #   "The official DeepSeek V3 is already in FP8 format, so you should not run it with any
    #    quantization arguments like --quantization fp8."
    result = plan("deepseek-r1", hw(H200, 140.4, 8))
    assert result["engine_quantization"] is None
    assert result["checkpoint"] == "published"
    assert any("pass no --quantization flag" in r for r in result["reasons"])


def test_r1_dp8_ep_on_8x_h200():
    # https://docs.vllm.ai/projects/recipes/en/latest/DeepSeek/DeepSeek-V3.html
    #   "vllm serve deepseek-ai/DeepSeek-R1-0528 --trust-remote-code --data-parallel-size 8 --enable-expert-parallel"
    result = plan("deepseek-r1", hw(H200, 140.4, 8), tensor_parallel_size=1, data_parallel_size=8)
    assert result["fits"] is True
    assert (result["tensor_parallel_size"], result["data_parallel_size"]) == (1, 8)
    assert result["enable_expert_parallel"] is True
    # Experts spread over 8 ranks, attention and dense layers whole on each: 93.77 GiB.
    assert result["weights_gib_per_gpu"] == 93.77


def test_r1_fp8_does_not_fit_one_node_of_8x_h100():
    # 671B FP8 weights are ~627 GiB: more than 8 x 80 GB. SGLang lists FP8 on H100 only as
    # "2 x 8 x H100/800/20" (https://docs.sglang.io/docs/basic_usage/deepseek_v3.md).
    result = plan("deepseek-r1", hw(H100, 80, 8))
    assert result["fits"] is False
    assert result["gpus_used"] == 0
    assert result["weights_gib_per_gpu"] == 79.08
    assert result["usable_gib_per_gpu"] == 72.0
    assert any("exceed the 72.00 GiB usable at TP 8 x PP 1" in r for r in result["reasons"])
    assert any("TP 8 x PP 2 = 16 x" in r and "2 node(s)" in r for r in result["reasons"])


def test_r1_fp8_on_2x8_h100_pipelines_across_nodes():
    # https://docs.vllm.ai/en/v0.8.4/serving/distributed_serving.html
    #   "if you have 16 GPUs in 2 nodes (8 GPUs per node), you can set the tensor parallel size
    #    to 8 and the pipeline parallel size to 2."
    result = plan("deepseek-r1", hw(H100, 80, 8, nodes=2))
    assert result["fits"] is True
    assert (result["tensor_parallel_size"], result["pipeline_parallel_size"], result["data_parallel_size"]) == (8, 2, 1)
    assert result["enable_expert_parallel"] is True
    assert result["weights_gib_per_gpu"] == 40.19
    assert result["gpus_used"] == 16


def test_r1_fp8_on_2x8_h100_with_tp16_validates():
    # https://mintlify.com/sgl-project/sglang/models/deepseek
    #   "Multi-Node Example (2×8 H100) python3 -m sglang.launch_server --model-path deepseek-ai/DeepSeek-R1 --tp 16"
    result = plan("deepseek-r1", hw(H100, 80, 8, nodes=2), tensor_parallel_size=16)
    assert result["fits"] is True
    assert (result["tensor_parallel_size"], result["pipeline_parallel_size"]) == (16, 1)
    assert result["weights_gib_per_gpu"] == 39.97
    assert any("spans nodes" in r for r in result["reasons"])


def test_r1_on_2x8_h200_runs_two_replicas():
    result = plan("deepseek-r1", hw(H200, 140.4, 8, nodes=2))
    assert (result["tensor_parallel_size"], result["pipeline_parallel_size"], result["data_parallel_size"]) == (8, 1, 2)
    assert result["gpus_used"] == 16


@pytest.mark.parametrize("gpu, per_node, nodes, fits", [
    # https://docs.sglang.io/docs/basic_usage/deepseek_v3.md
    #   "Full precision (BF16) (upcast from original FP8) | 2 x 8 x H200 ... 4 x 8 x H100/800/20"
    (H200, 8, 2, True),
    (H100, 8, 2, False),
    (H100, 8, 4, True),
])
def test_r1_bf16_upcast(gpu, per_node, nodes, fits):
    gib = 140.4 if gpu == H200 else 80
    result = plan("deepseek-r1", hw(gpu, gib, per_node, nodes), quantization="bf16")
    assert result["fits"] is fits
    assert result["checkpoint"] == "converted"
    assert result["engine_quantization"] is None


def test_r1_fp8_refused_on_a100():
    # FP8 needs Ada/Hopper or newer; SGLang lists A100 only for BF16, INT8 and AWQ weights.
    result = plan("deepseek-r1", hw(A100, 80, 8, nodes=4))
    assert result["fits"] is False
    assert any("no native FP8 support" in r and "int8 or awq" in r for r in result["reasons"])


@pytest.mark.parametrize("quantization, nodes, fits, weights", [
    # https://docs.sglang.io/docs/basic_usage/deepseek_v3.md
    #   "Quantized weights (INT8) | 16 x A100/800"
    ("int8", 2, True, 40.19),
    ("int8", 1, False, 79.08),
    #   "Quantized weights (AWQ) | 8 x H100/800/20 | 8 x A100/A800"
    ("awq", 1, True, 41.29),
])
def test_r1_quantized_on_a100(quantization, nodes, fits, weights):
    result = plan("deepseek-r1", hw(A100, 80, 8, nodes), quantization=quantization)
    assert result["fits"] is fits
    assert result["weights_gib_per_gpu"] == weights
    assert result["checkpoint"] == "converted"


def test_r1_nvfp4_on_4x_b200():
    # https://docs.vllm.ai/projects/recipes/en/latest/DeepSeek/DeepSeek-V3.html
    #   "4xB200 with fp4: Native FP4 with FlashInfer enabled (TP+EP or DP+EP)."
    result = plan("deepseek-r1", hw(B200, 179, 4), quantization="nvfp4")
    assert result["fits"] is True
    assert result["tensor_parallel_size"] == 4
    assert plan("deepseek-r1", hw(H200, 140.4, 8), quantization="nvfp4")["fits"] is False


# --- distills ---------------------------------------------------------------


def test_qwen_1_5b_fits_one_small_gpu():
    # https://cloud.baidu.com/article/3559587
    #   "1.5B参数量仅需约3GB显存(FP16精度),适配消费级GPU" (about 3 GB at FP16, fits consumer GPUs)
    result = plan("deepseek-r1-distill-qwen-1.5b", hw("Tesla T4", 15, 1))
    assert result["fits"] is True
    assert result["tensor_parallel_size"] == 1
    assert result["max_model_len"] == 131072
    assert result["weights_gib_per_gpu"] == 3.31
    # T4 (Turing) has no BF16: activations in float16.
    assert result["dtype"] == "float16"


def test_qwen_7b_fits_one_24gb_gpu():
    # https://www.fitmygpu.com/?model=deepseek-r1-distill-qwen-7b
    #   "Fits on selected GPU  DeepSeek R1 Distill Qwen 7B · vLLM · Official BF16 checkpoint ... RTX 4090 24GB"
    result = plan("deepseek-r1-distill-qwen-7b", hw("NVIDIA GeForce RTX 4090", 23.99, 1), max_model_len=32768)
    assert result["fits"] is True
    assert result["tensor_parallel_size"] == 1
    assert result["weights_gib_per_gpu"] == 14.19
    assert result["dtype"] == "auto"


def test_llama_70b_bf16_needs_tp4_on_80gb():
    # https://www.mintlify.com/vllm-project/vllm/serving/distributed-serving
    #   "vllm serve meta-llama/Llama-70B-Instruct --tensor-parallel-size 4
    #    This distributes the 70B model across 4 GPUs on a single node."
    # (DeepSeek-R1-Distill-Llama-70B is a Llama-3.3-70B.)
    result = plan("deepseek-r1-distill-llama-70b", hw(H100, 80, 8))
    assert result["fits"] is True
    assert (result["tensor_parallel_size"], result["data_parallel_size"]) == (4, 2)
    assert result["weights_gib_per_gpu"] == 32.85


def test_llama_70b_explicit_tp2_is_refused_naming_the_option():
    result = plan("deepseek-r1-distill-llama-70b", hw(H100, 80, 8), tensor_parallel_size=2,
                  pipeline_parallel_size=1, max_model_len=32768)
    assert result["fits"] is False
    assert result["tensor_parallel_size"] == 2  # validated, not replaced
    assert result["weights_gib_per_gpu"] == 65.71
    assert result["kv_cache_tokens"] == 18295
    assert any("max_model_len must be at most 18295" in r for r in result["reasons"])
    assert any(r.startswith("tensor_parallel_size and pipeline_parallel_size as set") for r in result["reasons"])
    assert any("TP 4 x PP 1" in r for r in result["reasons"])


def test_qwen_32b_on_one_80gb_gpu_only_with_a_short_context():
    one = hw(A100, 80, 1)
    result = plan("deepseek-r1-distill-qwen-32b", one)
    assert result["fits"] is True
    assert result["max_model_len"] == 32768  # shortened from 131072
    assert result["kv_cache_tokens"] == 33679
    assert any("shortened to 32768" in r for r in result["reasons"])
    refused = plan("deepseek-r1-distill-qwen-32b", one, max_model_len=131072)
    assert refused["fits"] is False
    assert refused["max_model_len"] == 131072  # explicit values are never shortened
    assert any("max_model_len must be at most 33679" in r for r in refused["reasons"])


def test_qwen_32b_takes_tp2_for_its_full_context():
    # deepseek-ai/DeepSeek-R1-Distill-Qwen-32B on the Hugging Face Hub (README)
    #   "vllm serve deepseek-ai/DeepSeek-R1-Distill-Qwen-32B --tensor-parallel-size 2 --max-model-len 32768 --enforce-eager"
    two = hw(A100, 80, 2)
    assert plan("deepseek-r1-distill-qwen-32b", two)["tensor_parallel_size"] == 2
    recipe = plan("deepseek-r1-distill-qwen-32b", two, tensor_parallel_size=2, max_model_len=32768)
    assert recipe["fits"] is True
    assert (recipe["tensor_parallel_size"], recipe["data_parallel_size"]) == (2, 1)
    # Four full-length sequences no longer fit one GPU.
    assert plan("deepseek-r1-distill-qwen-32b", two, max_model_len=32768, concurrency=4)["tensor_parallel_size"] == 2


def test_distill_fp8_is_quantized_at_load():
    result = plan("deepseek-r1-distill-qwen-32b", hw(H100, 80, 1), quantization="fp8")
    assert result["fits"] is True
    assert (result["engine_quantization"], result["checkpoint"]) == ("fp8", "quantize_at_load")
    assert result["max_model_len"] == 131072


# --- formulas ---------------------------------------------------------------


def test_kv_bytes_per_token():
    r1 = get_model("deepseek-r1")
    assert kv_bytes_per_token(r1, 2) == 70272
    assert kv_bytes_per_token(r1, 2, tp=8) == 70272  # MLA latent is not split by TP
    assert kv_bytes_per_token(r1, 1, pp=2) == 31 * 576
    llama70 = get_model("deepseek-r1-distill-llama-70b")
    assert kv_bytes_per_token(llama70, 2) == 80 * 2 * 8 * 128 * 2
    assert kv_bytes_per_token(llama70, 2, tp=4) == 80 * 2 * 2 * 128 * 2
    assert kv_bytes_per_token(llama70, 2, tp=16) == 80 * 2 * 1 * 128 * 2  # KV heads replicated


def test_weight_bytes():
    llama70 = get_model("deepseek-r1-distill-llama-70b")
    assert weight_bytes_per_gpu(llama70, "bf16", 1, 1) == pytest.approx(70553706496 * 2)
    assert weight_bytes_per_gpu(llama70, "bf16", 4, 1) == pytest.approx(70553706496 * 2 / 4)
    r1 = get_model("deepseek-r1")
    embed = 129280 * 7168
    assert weight_bytes_per_gpu(r1, "fp8", 1, 1) == pytest.approx((671e9 - 2 * embed) + 2 * embed * 2)


def test_valid_tensor_parallel():
    qwen7 = get_model("deepseek-r1-distill-qwen-7b")  # 28 heads, 4 KV heads
    assert [tp for tp in (1, 2, 4, 8) if valid_tensor_parallel(qwen7, tp)] == [1, 2, 4]
    qwen1 = get_model("deepseek-r1-distill-qwen-1.5b")  # 12 heads, 2 KV heads
    assert [tp for tp in (1, 2, 3, 4, 6, 8) if valid_tensor_parallel(qwen1, tp)] == [1, 2, 4, 6]


def test_auto_tp_respects_head_counts():
    # 28 heads: TP 8 is impossible, so 8 GPUs hold replicas of the smallest layout.
    result = plan("deepseek-r1-distill-qwen-7b", hw(H100, 80, 8))
    assert (result["tensor_parallel_size"], result["data_parallel_size"]) == (1, 8)
    bad = plan("deepseek-r1-distill-qwen-7b", hw(H100, 80, 8), tensor_parallel_size=8)
    assert bad["fits"] is False
    assert any("tensor_parallel_size 8 does not split 28 attention heads and 4 KV heads" in r for r in bad["reasons"])


@pytest.mark.parametrize("name, caps", [
    ("NVIDIA H200", {"bf16", "fp8", "int8", "int4"}),
    ("NVIDIA H20", {"bf16", "fp8", "int8", "int4"}),
    ("NVIDIA A100-SXM4-80GB", {"bf16", "int8", "int4"}),
    ("NVIDIA A10G", {"bf16", "int8", "int4"}),
    ("NVIDIA L40S", {"bf16", "fp8", "int8", "int4"}),
    ("NVIDIA RTX 6000 Ada Generation", {"bf16", "fp8", "int8", "int4"}),
    ("NVIDIA B200", {"bf16", "fp8", "nvfp4", "int8", "int4"}),
    ("Tesla V100-SXM2-32GB", set()),
    ("AMD Instinct MI300X", {"bf16", "fp8", "int8", "int4"}),
])
def test_gpu_capabilities(name, caps):
    assert gpu_capabilities(name) == caps


def test_unknown_gpu_needs_compute_capability_for_fp8():
    unknown = hw("Acme X1", 96, 8)
    refused = plan("deepseek-r1", unknown)
    assert refused["fits"] is False
    assert any("set hardware.compute_capability" in r for r in refused["reasons"])
    assert plan("deepseek-r1", dict(unknown, compute_capability="9.0"))["fits"] is True


def test_dense_model_never_gets_expert_parallel():
    result = plan("deepseek-r1-distill-llama-70b", hw(H100, 80, 8), enable_expert_parallel=True)
    assert result["enable_expert_parallel"] is False
    assert any("not a mixture-of-experts model" in r for r in result["reasons"])


def test_data_parallel_size_is_validated():
    # TP 4 x DP 2 with the experts over all 8 ranks is a valid vLLM DP+EP layout.
    result = plan("deepseek-r1", hw(H200, 140.4, 8), data_parallel_size=2)
    assert result["fits"] is True
    assert (result["tensor_parallel_size"], result["data_parallel_size"]) == (4, 2)
    too_many = plan("deepseek-r1", hw(H200, 140.4, 8), data_parallel_size=16)
    assert too_many["fits"] is False
    assert any("data_parallel_size 16 exceeds the 8 GPUs available" in r for r in too_many["reasons"])
    assert plan("deepseek-r1", hw(H200, 140.4, 8), tensor_parallel_size=8, data_parallel_size=2)["fits"] is False


def test_none_options_mean_unset():
    assert plan("deepseek-r1", hw(H200, 140.4, 8), tensor_parallel_size=None, max_model_len=None)["fits"] is True


def test_sandbox_model_on_cpu():
    result = plan(TINY, hw("cpu", 4, 1))
    assert result["fits"] is True
    assert (result["tensor_parallel_size"], result["enable_expert_parallel"]) == (1, False)
    assert result["max_model_len"] == 4096
    assert result["kv_cache_bytes_per_token"] == 4 * 576 * 2


def test_custom_model_from_config_fields():
    # The 70B distill's config.json fields, without total_params: computed from the architecture.
    config = dict(get_model("deepseek-r1-distill-llama-70b"))
    for key in ("name", "total_params", "native_dtype", "attention", "hf_repo"):
        config.pop(key)
    config["torch_dtype"] = "bfloat16"
    result = plan(config, hw(H100, 80, 8))
    assert result["model"] == "custom"
    assert result["tensor_parallel_size"] == 4
    assert result["weights_gib_per_gpu"] == 32.85


# --- input errors name the field --------------------------------------------


@pytest.mark.parametrize("model, hardware, options, field", [
    ("deepseek-r2", hw(H100, 80, 8), {}, "model"),
    (["deepseek-r1"], hw(H100, 80, 8), {}, "model"),
    ({"hidden_size": 1}, hw(H100, 80, 8), {}, "model.num_hidden_layers"),
    ("deepseek-r1", None, {}, "hardware"),
    ("deepseek-r1", {"gpu_model": H100, "gpus_per_node": 8, "nodes": 1}, {}, "hardware.gpu_memory_gib"),
    ("deepseek-r1", hw(H100, "eighty", 8), {}, "hardware.gpu_memory_gib"),
    ("deepseek-r1", hw(H100, 80, 8.5), {}, "hardware.gpus_per_node"),
    ("deepseek-r1", hw(H100, 80, True), {}, "hardware.gpus_per_node"),
    ("deepseek-r1", hw(H100, 80, 8, nodes=0), {}, "hardware.nodes"),
    ("deepseek-r1", hw(H100, 80, 8, compute_capability="hopper"), {}, "hardware.compute_capability"),
    ("deepseek-r1", hw(H100, 80, 8), {"max_model_len": "long"}, "max_model_len"),
    ("deepseek-r1", hw(H100, 80, 8), {"gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
    ("deepseek-r1", hw(H100, 80, 8), {"quantization": "int3"}, "quantization"),
    ("deepseek-r1", hw(H100, 80, 8), {"quantization": "fp8", "dtype": "bf16"}, "dtype"),
    ("deepseek-r1", hw(H100, 80, 8), {"tensor_parallel": 8}, "tensor_parallel"),
    ("deepseek-r1", hw(H100, 80, 8), {"enable_expert_parallel": "maybe"}, "enable_expert_parallel"),
])
def test_bad_input_names_the_field(model, hardware, options, field):
    with pytest.raises(InferencePlanError) as err:
        plan_inference(model, hardware, options)
    assert err.value.field == field
    assert field in str(err.value)
