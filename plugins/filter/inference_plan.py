# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: inference_plan
short_description: Size a DeepSeek deployment and choose its parallelism
version_added: 0.1.0
author:
  - onprem.deepseek contributors
description:
  - Decides whether a model fits the given GPUs and with which tensor, pipeline and data
    parallelism, weight format and context length, following the published vLLM and SGLang
    recipes for DeepSeek.
  - Estimates weights, runtime overhead and KV cache per GPU. MLA models (DeepSeek-V3/R1)
    cache one latent of O(kv_lora_rank) + O(qk_rope_head_dim) values per token and layer on
    every tensor-parallel rank; GQA models cache K and V per KV head, split across ranks.
  - Chooses the smallest power-of-two tensor parallel size within one node that holds the
    weights and the KV cache for O(max_model_len) x O(concurrency) tokens, pipelines across
    nodes when one node is not enough, and fills the remaining GPUs with data-parallel replicas.
  - Explicit O(tensor_parallel_size), O(pipeline_parallel_size) and O(data_parallel_size) are
    validated, never replaced; when they cannot hold the model the result has RV(_value.fits=false)
    and RV(_value.reasons) names the option.
  - Malformed input (unknown model, missing hardware key, non-numeric value, unknown option)
    raises an error that names the field.
  - The formulas and a table of results for the catalog models are in C(docs/planner.md).
positional: _input, hardware
options:
  _input:
    description:
      - A catalog name or Hugging Face id (V(deepseek-r1), V(deepseek-v3),
        V(deepseek-r1-distill-qwen-1.5b), V(deepseek-r1-distill-qwen-7b),
        V(deepseek-r1-distill-llama-8b), V(deepseek-r1-distill-qwen-14b),
        V(deepseek-r1-distill-qwen-32b), V(deepseek-r1-distill-llama-70b),
        V(deepseek-ai/DeepSeek-R1-0528), ...).
      - Or a dict of the model's config.json fields (C(num_hidden_layers), C(hidden_size),
        C(num_attention_heads), C(max_position_embeddings), either C(num_key_value_heads) and
        C(head_dim) or C(kv_lora_rank) and C(qk_rope_head_dim), optional C(vocab_size) and MoE fields)
        plus C(total_params), C(active_params) and C(native_dtype). C(total_params) may be left out
        when the architecture fields are complete; C(native_dtype) may come from C(torch_dtype) or
        C(quantization_config.quant_method).
    type: raw
    required: true
  hardware:
    description:
      - The GPUs available to one deployment.
      - Keys C(gpu_model) (for example V(NVIDIA H100 80GB HBM3)), C(gpu_memory_gib) (memory of one
        GPU in GiB, as nvidia-smi reports it divided by 1024), C(gpus_per_node) and C(nodes) are
        required.
      - Optional C(compute_capability) (for example V(9.0)) overrides the lookup of the GPU's number
        formats by name; set it for GPUs the planner does not know.
    type: dict
    required: true
  quantization:
    description:
      - Weight format. Defaults to the model's native format (V(fp8) for DeepSeek-V3/R1, V(bf16)
        for the distills).
      - V(fp8) on a 16-bit model means the engine quantizes while loading; other formats different
        from the native one need a converted checkpoint (see RV(_value.checkpoint)).
      - V(fp8) needs Ada, Hopper or newer GPUs (or AMD MI300); V(nvfp4) needs Blackwell.
    type: str
    choices: [bf16, fp16, fp8, int8, awq, gptq, nvfp4]
  dtype:
    description:
      - Alias of O(quantization); also accepts V(bfloat16) and V(float16). Must agree with
        O(quantization) when both are set.
    type: str
  max_model_len:
    description:
      - Context length in tokens. Defaults to the model's C(max_position_embeddings); when that
        default does not fit, it is shortened (in steps of 1024, not below 4096) and a reason says so.
      - A value set here is never shortened.
    type: int
  concurrency:
    description: Sequences of O(max_model_len) tokens that must fit in the KV cache at once.
    type: int
    default: 1
  gpu_memory_utilization:
    description: Fraction of each GPU's memory the engine may use (vLLM C(--gpu-memory-utilization)).
    type: float
    default: 0.9
  tensor_parallel_size:
    description: Tensor parallel size to validate instead of choosing one.
    type: int
  pipeline_parallel_size:
    description: Pipeline parallel size to validate instead of choosing one.
    type: int
  data_parallel_size:
    description:
      - Data parallel size to validate. With a mixture-of-experts model and expert parallelism
        the routed experts are spread over tensor x data parallel ranks (vLLM C(DP+EP)).
    type: int
  enable_expert_parallel:
    description:
      - Override the expert-parallel choice. By default it is on for mixture-of-experts models
        whose tensor x data parallel ranks exceed one GPU.
    type: bool
  kv_cache_dtype:
    description: KV cache element type; V(auto) keeps the 16-bit activation type.
    type: str
    default: auto
    choices: [auto, bf16, fp16, fp8, fp8_e4m3, fp8_e5m2]
  runtime_overhead_gib:
    description:
      - Memory per GPU reserved for CUDA context, NCCL buffers, CUDA graphs and activations.
      - Defaults to 1.5 GiB + 8192 tokens x hidden_size x 2 bytes x 16.
    type: float
notes:
  - Estimates, not measurements. They leave out the MTP module of DeepSeek-V3/R1 (only loaded
    for speculative decoding) and count norm and router weights at the quantized width.
  - The filter runs on the controller and reads nothing from the hosts.
seealso:
  - name: vLLM DeepSeek-V3/R1 recipe
    description: TP8+EP and DP8+EP on 8 x H200.
    link: https://docs.vllm.ai/projects/recipes/en/latest/DeepSeek/DeepSeek-V3.html
  - name: SGLang DeepSeek V3/R1 usage
    description: Hardware per weight format.
    link: https://docs.sglang.io/docs/basic_usage/deepseek_v3.md
"""

EXAMPLES = r"""
- name: Plan DeepSeek-R1 on one node of 8 x H200
  ansible.builtin.set_fact:
    deepseek_plan: >-
      {{ 'deepseek-r1' | onprem.deepseek.inference_plan(
           {'gpu_model': 'NVIDIA H200', 'gpu_memory_gib': 140.4, 'gpus_per_node': 8, 'nodes': 1}) }}

- name: Refuse what cannot run before changing anything
  ansible.builtin.assert:
    that: deepseek_plan.fits
    fail_msg: "{{ deepseek_plan.reasons | join('; ') }}"

- name: Validate explicit values for a distill
  ansible.builtin.set_fact:
    distill_plan: >-
      {{ 'deepseek-r1-distill-qwen-32b' | onprem.deepseek.inference_plan(
           hardware, tensor_parallel_size=2, max_model_len=32768) }}
  vars:
    hardware:
      gpu_model: NVIDIA A100-SXM4-80GB
      gpu_memory_gib: 80
      gpus_per_node: 2
      nodes: 1
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    fits:
      description: Whether the model runs with the returned settings.
      type: bool
      returned: always
      sample: true
    model:
      description: Catalog name, or the C(name) of a custom model (V(custom) when it has none).
      type: str
      returned: always
      sample: deepseek-r1
    hf_repo:
      description: Hugging Face repository of a catalog model; null for custom models and the sandbox model.
      type: str
      returned: always
      sample: deepseek-ai/DeepSeek-R1
    quantization:
      description: Weight format the estimate uses.
      type: str
      returned: always
      sample: fp8
    engine_quantization:
      description:
        - Value for the engine's C(--quantization) flag; null when the engine reads the format from
          the checkpoint (native FP8 DeepSeek must run without the flag).
      type: str
      returned: always
      sample: null
    checkpoint:
      description:
        - V(published) when the published checkpoint is used as is, V(quantize_at_load) when the
          engine quantizes it while loading, V(converted) when a checkpoint in RV(_value.quantization)
          format is needed.
      type: str
      returned: always
      sample: published
    dtype:
      description: Engine C(--dtype); V(float16) on GPUs without BF16 or when fp16 was asked for.
      type: str
      returned: always
      sample: auto
    kv_cache_dtype:
      description: KV cache element type used for the estimate.
      type: str
      returned: always
      sample: auto
    tensor_parallel_size:
      description: Tensor parallel size (the best attempt when RV(_value.fits) is false).
      type: int
      returned: always
      sample: 8
    pipeline_parallel_size:
      description: Pipeline parallel size.
      type: int
      returned: always
      sample: 1
    data_parallel_size:
      description: Data parallel replicas that fit on the GPUs (1 when RV(_value.fits) is false).
      type: int
      returned: always
      sample: 1
    enable_expert_parallel:
      description: Whether to enable expert parallelism.
      type: bool
      returned: always
      sample: true
    max_model_len:
      description: Context length in tokens.
      type: int
      returned: always
      sample: 163840
    concurrency:
      description: Sequences of RV(_value.max_model_len) tokens the KV cache must hold at once.
      type: int
      returned: always
      sample: 1
    gpu_memory_utilization:
      description: Fraction of GPU memory used in the estimate.
      type: float
      returned: always
      sample: 0.9
    gpus_available:
      description: GPUs in the hardware description.
      type: int
      returned: always
      sample: 8
    gpus_used:
      description: GPUs the plan uses (0 when RV(_value.fits) is false).
      type: int
      returned: always
      sample: 8
    usable_gib_per_gpu:
      description: GPU memory times RV(_value.gpu_memory_utilization).
      type: float
      returned: always
      sample: 126.36
    weights_gib_per_gpu:
      description: Estimated weight memory on the most loaded GPU.
      type: float
      returned: always
      sample: 79.08
    overhead_gib_per_gpu:
      description: Runtime overhead reserved per GPU.
      type: float
      returned: always
      sample: 3.25
    kv_cache_gib_per_gpu:
      description: Memory left for the KV cache per GPU.
      type: float
      returned: always
      sample: 44.03
    kv_cache_required_gib_per_gpu:
      description: KV cache needed per GPU for RV(_value.max_model_len) x RV(_value.concurrency) tokens.
      type: float
      returned: always
      sample: 10.72
    kv_cache_tokens:
      description: Tokens the KV cache of one replica holds.
      type: int
      returned: always
      sample: 672723
    kv_cache_bytes_per_token:
      description: KV cache bytes per token for the whole model (all layers, one copy).
      type: int
      returned: always
      sample: 70272
    reasons:
      description: Why it fits or not, with the numbers used.
      type: list
      elements: str
      returned: always
      sample:
        - "weights: fp8 at 1.00 bytes/param (embedding and LM head 16-bit) = 626.6 GiB in total, 79.08 GiB per GPU at TP 8 x PP 1"
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.module_utils._inference_plan import (
    InferencePlanError,
    plan_inference,
)


def inference_plan(model, hardware=None, **options):
    """Filter entry point; see DOCUMENTATION."""
    try:
        return plan_inference(model, hardware, options)
    except InferencePlanError as exc:
        raise AnsibleFilterError("inference_plan: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"inference_plan": inference_plan}
