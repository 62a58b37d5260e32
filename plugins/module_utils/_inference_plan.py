# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Inference sizing planner: does a model fit the GPUs, and with which parallelism.

Pure logic behind the ``onprem.deepseek.inference_plan`` filter. The formulas and their
assumptions are described in docs/planner.md; every figure the planner uses appears in
the ``reasons`` it returns.
"""

from __future__ import annotations

import math
import re

from ansible_collections.onprem.deepseek.plugins.module_utils._model_catalog import (
    ModelCatalogError,
    estimate_params,
    get_model,
    is_moe,
)

GIB = 1024 ** 3
KIB = 1024

DEFAULT_GPU_MEMORY_UTILIZATION = 0.9  # vLLM's default; SGLang calls it mem-fraction-static
DEFAULT_CONCURRENCY = 1
# Scheduler token budget the runtime overhead is sized for (vLLM's chunked-prefill budget).
OVERHEAD_BATCH_TOKENS = 8192
OVERHEAD_BASE_GIB = 1.5  # CUDA context, NCCL buffers, CUDA graphs
OVERHEAD_ACTIVATION_FACTOR = 16  # live hidden-sized 16-bit tensors per batched token
# An automatically shortened context is never made shorter than this.
MIN_AUTO_MODEL_LEN = 4096
AUTO_MODEL_LEN_STEP = 1024
# How far the planner looks beyond the given hardware to say what would fit.
MAX_HINT_GPUS = 512

# Bytes per weight; 4-bit formats carry a 16-bit scale and a 4-bit zero point per
# group of 128 weights (AWQ, GPTQ) or an FP8 scale per 16 weights (NVFP4).
QUANTIZATIONS = {
    "bf16": {"bytes_per_param": 2.0, "needs": None},
    "fp16": {"bytes_per_param": 2.0, "needs": None},
    "fp8": {"bytes_per_param": 1.0, "needs": "fp8"},
    "int8": {"bytes_per_param": 1.0, "needs": "int8"},
    "awq": {"bytes_per_param": 0.5 + 2.5 / 128, "needs": "int4"},
    "gptq": {"bytes_per_param": 0.5 + 2.5 / 128, "needs": "int4"},
    "nvfp4": {"bytes_per_param": 0.5 + 1.0 / 16, "needs": "nvfp4"},
}
_QUANT_ALIASES = {
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "float8": "fp8",
    "w8a8": "int8",
    "w8a8_int8": "int8",
    "fp4": "nvfp4",
}
KV_CACHE_DTYPES = {"auto": 2, "bf16": 2, "fp16": 2, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}

# GPU model name tokens -> NVIDIA compute capability. Matched on whole tokens so that
# "H20" does not match "H200" and "A10" does not match "A100".
_NVIDIA_COMPUTE_CAPABILITY = [
    (("RTX", "PRO", "6000"), (12, 0)),
    (("RTX", "6000", "ADA"), (8, 9)),
    (("RTX", "5090"), (12, 0)),
    (("RTX", "4090"), (8, 9)),
    (("RTX", "3090"), (8, 6)),
    (("GB300",), (10, 3)),
    (("B300",), (10, 3)),
    (("GB200",), (10, 0)),
    (("B200",), (10, 0)),
    (("B100",), (10, 0)),
    (("GH200",), (9, 0)),
    (("H200",), (9, 0)),
    (("H100",), (9, 0)),
    (("H800",), (9, 0)),
    (("H20",), (9, 0)),
    (("L40S",), (8, 9)),
    (("L40",), (8, 9)),
    (("L20",), (8, 9)),
    (("L4",), (8, 9)),
    (("A100",), (8, 0)),
    (("A800",), (8, 0)),
    (("A30",), (8, 0)),
    (("A10G",), (8, 6)),
    (("A10",), (8, 6)),
    (("A40",), (8, 6)),
    (("A6000",), (8, 6)),
    (("A16",), (8, 6)),
    (("A2",), (8, 6)),
    (("T4",), (7, 5)),
    (("V100",), (7, 0)),
    (("P100",), (6, 0)),
    (("P40",), (6, 1)),
]
_AMD_CAPABILITIES = [
    (("MI355X",), frozenset(["bf16", "fp8", "int8", "int4"])),
    (("MI350X",), frozenset(["bf16", "fp8", "int8", "int4"])),
    (("MI325X",), frozenset(["bf16", "fp8", "int8", "int4"])),
    (("MI300X",), frozenset(["bf16", "fp8", "int8", "int4"])),
    (("MI300A",), frozenset(["bf16", "fp8", "int8", "int4"])),
    (("MI250X",), frozenset(["bf16", "int8", "int4"])),
    (("MI250",), frozenset(["bf16", "int8", "int4"])),
    (("MI210",), frozenset(["bf16", "int8", "int4"])),
]

_OPTION_NAMES = frozenset([
    "quantization",
    "dtype",
    "max_model_len",
    "concurrency",
    "gpu_memory_utilization",
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "data_parallel_size",
    "enable_expert_parallel",
    "kv_cache_dtype",
    "runtime_overhead_gib",
])


class InferencePlanError(ValueError):
    """Invalid planner input; ``field`` names the offending input."""

    def __init__(self, msg, field):
        super(InferencePlanError, self).__init__(msg)
        self.field = field


# ---------------------------------------------------------------------------
# input parsing


def _number(value, field, minimum=None, exclusive_minimum=None, maximum=None):
    if isinstance(value, bool) or value is None:
        raise InferencePlanError("%s must be a number, got %r" % (field, value), field)
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise InferencePlanError("%s must be a number, got %r" % (field, value), field)
    else:
        raise InferencePlanError("%s must be a number, got %r" % (field, value), field)
    if math.isnan(number) or math.isinf(number):
        raise InferencePlanError("%s must be a finite number, got %r" % (field, value), field)
    if minimum is not None and number < minimum:
        raise InferencePlanError("%s must be >= %s, got %r" % (field, minimum, value), field)
    if exclusive_minimum is not None and number <= exclusive_minimum:
        raise InferencePlanError("%s must be > %s, got %r" % (field, exclusive_minimum, value), field)
    if maximum is not None and number > maximum:
        raise InferencePlanError("%s must be <= %s, got %r" % (field, maximum, value), field)
    return number


def _integer(value, field, minimum=1):
    number = _number(value, field)
    if number != int(number):
        raise InferencePlanError("%s must be a whole number, got %r" % (field, value), field)
    number = int(number)
    if number < minimum:
        raise InferencePlanError("%s must be >= %d, got %r" % (field, minimum, value), field)
    return number


def _boolean(value, field):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "no", "off", "0"):
        return False
    raise InferencePlanError("%s must be a boolean, got %r" % (field, value), field)


def _quantization_name(value, field):
    if not isinstance(value, str):
        raise InferencePlanError("%s must be a string, got %r" % (field, value), field)
    key = value.strip().lower()
    if key == "auto":
        return None
    key = _QUANT_ALIASES.get(key, key)
    if key not in QUANTIZATIONS:
        raise InferencePlanError(
            "%s: unknown value %r; choose one of %s" % (field, value, ", ".join(sorted(QUANTIZATIONS))),
            field,
        )
    return key


def _native_dtype(model):
    native = model.get("native_dtype")
    if native is None:
        qcfg = model.get("quantization_config")
        if isinstance(qcfg, dict) and qcfg.get("quant_method"):
            native = qcfg.get("quant_method")
        else:
            native = model.get("torch_dtype")
    if native is None:
        raise InferencePlanError("model.native_dtype is required (bf16, fp16, fp8, ...)", "model.native_dtype")
    return _quantization_name(native, "model.native_dtype")


def _resolve_model(model):
    if isinstance(model, str):
        try:
            return get_model(model)
        except ModelCatalogError as exc:
            raise InferencePlanError(str(exc), exc.field)
    if not isinstance(model, dict):
        raise InferencePlanError("model must be a catalog name or a dict, got %r" % (model,), "model")
    spec = dict(model)
    for key in ("num_hidden_layers", "hidden_size", "num_attention_heads", "max_position_embeddings"):
        if spec.get(key) is None:
            raise InferencePlanError("model.%s is required" % key, "model.%s" % key)
        spec[key] = _integer(spec[key], "model.%s" % key)
    mla = spec.get("kv_lora_rank") is not None
    if mla:
        for key in ("kv_lora_rank", "qk_rope_head_dim"):
            if spec.get(key) is None:
                raise InferencePlanError("model.%s is required for MLA attention" % key, "model.%s" % key)
            spec[key] = _integer(spec[key], "model.%s" % key)
        spec["attention"] = "mla"
    else:
        if spec.get("num_key_value_heads") is None:
            raise InferencePlanError(
                "model.num_key_value_heads is required (or kv_lora_rank and qk_rope_head_dim for MLA)",
                "model.num_key_value_heads",
            )
        spec["num_key_value_heads"] = _integer(spec["num_key_value_heads"], "model.num_key_value_heads")
        if spec.get("head_dim") is None:
            spec["head_dim"] = spec["hidden_size"] // spec["num_attention_heads"]
        spec["head_dim"] = _integer(spec["head_dim"], "model.head_dim")
        spec["attention"] = "gqa"
    for key in ("vocab_size", "n_routed_experts"):
        if spec.get(key) is not None:
            spec[key] = _integer(spec[key], "model.%s" % key, minimum=0)
    if spec.get("total_params") is None:
        try:
            spec["total_params"], estimated_active = estimate_params(spec)
        except (KeyError, TypeError, ValueError):
            raise InferencePlanError(
                "model.total_params is required (the architecture fields given are not enough to compute it)",
                "model.total_params",
            )
        spec.setdefault("active_params", estimated_active)
    spec["total_params"] = _number(spec["total_params"], "model.total_params", exclusive_minimum=0)
    if spec.get("active_params") is not None:
        spec["active_params"] = _number(
            spec["active_params"], "model.active_params", exclusive_minimum=0, maximum=spec["total_params"]
        )
    spec["native_dtype"] = _native_dtype(spec)
    spec["name"] = str(spec.get("name") or "custom")
    spec.setdefault("hf_repo", None)
    return spec


def _parse_compute_capability(value):
    text = str(value).strip().lower().replace("sm_", "")
    match = re.match(r"^(\d+)(?:\.(\d+))?$", text)
    if not match:
        raise InferencePlanError(
            "hardware.compute_capability must look like '9.0', got %r" % (value,), "hardware.compute_capability"
        )
    return int(match.group(1)), int(match.group(2) or 0)


def _capabilities_from_cc(cc):
    caps = set()
    if cc >= (7, 5):
        caps.update(["int8", "int4"])
    if cc >= (8, 0):
        caps.add("bf16")
    if cc >= (8, 9):
        caps.add("fp8")
    if cc >= (10, 0):
        caps.add("nvfp4")
    return frozenset(caps)


def gpu_capabilities(gpu_model, compute_capability=None):
    """Number formats a GPU computes natively, or None when the model is not known.

    ``compute_capability`` (for example "9.0" as nvidia-smi reports it) overrides the
    lookup by name.
    """
    if compute_capability is not None:
        return _capabilities_from_cc(_parse_compute_capability(compute_capability))
    tokens = re.findall(r"[A-Z0-9]+", str(gpu_model).upper())

    def contains(pattern):
        width = len(pattern)
        return any(tuple(tokens[i:i + width]) == pattern for i in range(len(tokens) - width + 1))

    for pattern, cc in _NVIDIA_COMPUTE_CAPABILITY:
        if contains(pattern):
            return _capabilities_from_cc(cc)
    for pattern, caps in _AMD_CAPABILITIES:
        if contains(pattern):
            return caps
    return None


def _parse_hardware(hardware):
    if hardware is None:
        raise InferencePlanError(  # pylint: disable=raising-format-tuple
            "hardware is required: {gpu_model, gpu_memory_gib, gpus_per_node, nodes}", "hardware"
        )
    if not isinstance(hardware, dict):
        raise InferencePlanError("hardware must be a dict, got %r" % (hardware,), "hardware")
    for key in ("gpu_model", "gpu_memory_gib", "gpus_per_node", "nodes"):
        if hardware.get(key) is None:
            raise InferencePlanError("hardware.%s is required" % key, "hardware.%s" % key)
    gpu_model = hardware["gpu_model"]
    if not isinstance(gpu_model, str) or not gpu_model.strip():
        raise InferencePlanError(
            "hardware.gpu_model must be a non-empty string, got %r" % (gpu_model,), "hardware.gpu_model"
        )
    return {
        "gpu_model": gpu_model.strip(),
        "gpu_memory_gib": _number(hardware["gpu_memory_gib"], "hardware.gpu_memory_gib", exclusive_minimum=0),
        "gpus_per_node": _integer(hardware["gpus_per_node"], "hardware.gpus_per_node"),
        "nodes": _integer(hardware["nodes"], "hardware.nodes"),
        "capabilities": gpu_capabilities(gpu_model, hardware.get("compute_capability")),
    }


def _parse_options(options, model):
    options = dict(options or {})
    unknown = sorted(key for key in options if key not in _OPTION_NAMES)
    if unknown:
        raise InferencePlanError(
            "unknown option %s; known options: %s" % (", ".join(unknown), ", ".join(sorted(_OPTION_NAMES))),
            unknown[0],
        )
    # None means "not set", so that role variables defaulting to null leave the choice to the planner.
    opts = dict((key, value) for key, value in options.items() if value is not None)
    quant = None
    if "quantization" in opts:
        quant = _quantization_name(opts["quantization"], "quantization")
    if "dtype" in opts:
        from_dtype = _quantization_name(opts["dtype"], "dtype")
        if quant is not None and from_dtype is not None and from_dtype != quant:
            raise InferencePlanError(
                "dtype %r and quantization %r disagree; set one of them" % (opts["dtype"], opts["quantization"]),
                "dtype",
            )
        quant = quant or from_dtype
    parsed = {
        "quantization": quant or model["native_dtype"],
        "quantization_set": quant is not None,
        "max_model_len": None,
        "concurrency": DEFAULT_CONCURRENCY,
        "gpu_memory_utilization": DEFAULT_GPU_MEMORY_UTILIZATION,
        "tensor_parallel_size": None,
        "pipeline_parallel_size": None,
        "data_parallel_size": None,
        "enable_expert_parallel": None,
        "kv_cache_dtype": "auto",
        "runtime_overhead_gib": None,
    }
    for key in ("max_model_len", "concurrency", "tensor_parallel_size", "pipeline_parallel_size",
                "data_parallel_size"):
        if key in opts:
            parsed[key] = _integer(opts[key], key)
    if "gpu_memory_utilization" in opts:
        parsed["gpu_memory_utilization"] = _number(
            opts["gpu_memory_utilization"], "gpu_memory_utilization", exclusive_minimum=0, maximum=1
        )
    if "runtime_overhead_gib" in opts:
        parsed["runtime_overhead_gib"] = _number(opts["runtime_overhead_gib"], "runtime_overhead_gib", minimum=0)
    if "enable_expert_parallel" in opts:
        parsed["enable_expert_parallel"] = _boolean(opts["enable_expert_parallel"], "enable_expert_parallel")
    if "kv_cache_dtype" in opts:
        kv = opts["kv_cache_dtype"]
        if not isinstance(kv, str) or kv.strip().lower() not in KV_CACHE_DTYPES:
            raise InferencePlanError(
                "kv_cache_dtype: unknown value %r; choose one of %s" % (kv, ", ".join(sorted(KV_CACHE_DTYPES))),
                "kv_cache_dtype",
            )
        parsed["kv_cache_dtype"] = kv.strip().lower()
    return parsed


# ---------------------------------------------------------------------------
# memory model


def _gib(value):
    return round(value / GIB, 2)


def _fmt_params(count):
    if count >= 1e9:
        return "%.1fB" % (count / 1e9)
    return "%.1fM" % (count / 1e6)


def valid_tensor_parallel(model, tp):
    """vLLM's rule: TP divides the attention heads; KV heads split evenly or are replicated."""
    heads = int(model["num_attention_heads"])
    if tp < 1 or heads % tp:
        return False
    if model["attention"] == "gqa":
        kv_heads = int(model["num_key_value_heads"])
        if tp <= kv_heads:
            return kv_heads % tp == 0
        return tp % kv_heads == 0
    return True


def _embedding_params(model):
    return int(model.get("vocab_size") or 0) * int(model["hidden_size"])


def _replicated_params(model):
    """MLA latent down-projections are replicated on every TP rank (vLLM ReplicatedLinear)."""
    if model["attention"] != "mla":
        return 0
    hidden = int(model["hidden_size"])
    per_layer = hidden * (int(model["kv_lora_rank"]) + int(model["qk_rope_head_dim"]))
    per_layer += hidden * int(model.get("q_lora_rank") or 0)
    return per_layer * int(model["num_hidden_layers"])


def _expert_params(model):
    """Routed-expert parameters; with expert parallelism they spread over TP x DP ranks."""
    if not is_moe(model) or not model.get("moe_intermediate_size"):
        return 0
    moe_layers = int(model["num_hidden_layers"]) - int(model.get("first_k_dense_replace") or 0)
    per_expert = 3 * int(model["hidden_size"]) * int(model["moe_intermediate_size"])
    return moe_layers * int(model["n_routed_experts"]) * per_expert


def weight_bytes_per_gpu(model, quantization, tp, pp, ep=None):
    """Weight bytes on the most loaded GPU of a TP x PP layout.

    Embedding and LM head stay 16-bit in every format. With PP > 1 a stage holds
    ceil(layers / PP) layers and at most one of embedding / LM head. ``ep`` is the
    number of ranks the routed experts are spread over (TP x DP with expert
    parallelism; TP otherwise).
    """
    ep = ep or tp
    bpp = QUANTIZATIONS[quantization]["bytes_per_param"]
    layers = int(model["num_hidden_layers"])
    embed = _embedding_params(model)
    embed_mats = 1 if model.get("tie_word_embeddings") else 2
    body = max(float(model["total_params"]) - embed * embed_mats, 0.0)
    replicated = min(_replicated_params(model), body)
    experts = min(_expert_params(model), body - replicated)
    sharded = body - replicated - experts
    stage_share = 1.0 if pp == 1 else math.ceil(layers / float(pp)) / layers
    stage_embed = embed * (embed_mats if pp == 1 else 1)
    per_gpu_params = sharded / tp + experts / ep + replicated
    return per_gpu_params * stage_share * bpp + stage_embed * 2.0 / tp


def kv_bytes_per_token(model, kv_bytes, tp=1, pp=1):
    """KV cache bytes per token on one GPU of a TP x PP layout.

    MLA caches one latent of kv_lora_rank + qk_rope_head_dim per layer, the same on
    every TP rank. GQA caches K and V for each KV head; TP splits the heads until each
    rank holds one, then replicates.
    """
    layers = math.ceil(int(model["num_hidden_layers"]) / float(pp))
    if model["attention"] == "mla":
        return layers * (int(model["kv_lora_rank"]) + int(model["qk_rope_head_dim"])) * kv_bytes
    kv_heads = int(model["num_key_value_heads"])
    per_rank = max(1, kv_heads // tp)
    return layers * 2 * per_rank * int(model["head_dim"]) * kv_bytes


def runtime_overhead_bytes(model):
    activations = OVERHEAD_BATCH_TOKENS * int(model["hidden_size"]) * 2 * OVERHEAD_ACTIVATION_FACTOR
    return OVERHEAD_BASE_GIB * GIB + activations


def _evaluate(model, hw, opts, quantization, kv_bytes, overhead, tp, pp, model_len, ep_dp=1):
    usable = hw["gpu_memory_gib"] * GIB * opts["gpu_memory_utilization"]
    weights = weight_bytes_per_gpu(model, quantization, tp, pp, tp * ep_dp)
    kv_token = kv_bytes_per_token(model, kv_bytes, tp, pp)
    free = usable - weights - overhead
    capacity = int(free // kv_token) if free > 0 else 0
    required_tokens = model_len * opts["concurrency"]
    return {
        "tp": tp,
        "pp": pp,
        "ep": tp * ep_dp,
        "usable": usable,
        "weights": weights,
        "overhead": overhead,
        "free": free,
        "kv_token": kv_token,
        "capacity": capacity,
        "required": required_tokens * kv_token,
        "weights_fit": free > 0,
        "fits": free > 0 and capacity >= required_tokens,
    }


def _tp_candidates(model, limit):
    tps = []
    tp = 1
    while tp <= limit:
        if valid_tensor_parallel(model, tp):
            tps.append(tp)
        tp *= 2
    return tps


def _layouts(model, hw, opts, total_gpus):
    """Candidate (tp, pp) pairs in preference order, limited to ``total_gpus``."""
    layers = int(model["num_hidden_layers"])
    user_tp = opts["tensor_parallel_size"]
    user_pp = opts["pipeline_parallel_size"]
    if user_tp and user_pp:
        return [(user_tp, user_pp)]
    if user_tp:
        return [(user_tp, pp) for pp in range(1, min(layers, total_gpus // user_tp) + 1)]
    node_tps = _tp_candidates(model, hw["gpus_per_node"])
    if user_pp:
        tps = [tp for tp in node_tps if tp * user_pp <= total_gpus] or node_tps[:1]
        return [(tp, user_pp) for tp in tps]
    layouts = [(tp, 1) for tp in node_tps if tp <= total_gpus]
    tp_max = node_tps[-1]
    for pp in range(2, min(layers, total_gpus // tp_max) + 1):
        layouts.append((tp_max, pp))
    return layouts


# ---------------------------------------------------------------------------
# planner


def plan_inference(model, hardware, options=None):
    """Plan parallelism and memory for serving ``model`` on ``hardware``.

    Returns a dict; ``fits`` is False when nothing (or not what the options ask for)
    can run, and ``reasons`` says why with the numbers used. Raises
    InferencePlanError for malformed input.
    """
    spec = _resolve_model(model)
    hw = _parse_hardware(hardware)
    opts = _parse_options(options, spec)
    reasons = []
    problems = []
    total_gpus = hw["gpus_per_node"] * hw["nodes"]
    quant = opts["quantization"]
    native = spec["native_dtype"]
    moe = is_moe(spec)
    layers = int(spec["num_hidden_layers"])
    max_pos = int(spec["max_position_embeddings"])

    active = spec.get("active_params")
    desc = "model %s: %s parameters" % (spec["name"], _fmt_params(spec["total_params"]))
    if moe and active:
        desc += " (%s active, MoE with %d experts)" % (_fmt_params(active), int(spec["n_routed_experts"]))
    desc += ", %d layers, %s attention, native %s" % (layers, spec["attention"].upper(), native)
    reasons.append(desc)

    # number formats
    caps = hw["capabilities"]
    need = QUANTIZATIONS[quant]["needs"]
    if caps is None and need in ("fp8", "nvfp4"):
        problems.append(
            "quantization %s: GPU model %r is not in the planner's table, so %s support is unknown; "
            "set hardware.compute_capability (nvidia-smi --query-gpu=compute_cap)" % (quant, hw["gpu_model"], need)
        )
    elif caps is not None and need is not None and need not in caps:
        hint = ""
        if native == "fp8" and quant == "fp8" and not opts["quantization_set"]:
            hint = (" (the model's native format); set quantization to int8 or awq for a converted checkpoint,"
                    " as SGLang documents for A100")
        problems.append("quantization %s: %s has no native %s support%s"
                        % (quant, hw["gpu_model"], need.upper(), hint))
    elif caps is None:
        reasons.append("GPU model %r is not in the planner's table; assuming it computes %s"
                       % (hw["gpu_model"], quant))
    dtype = "auto"
    if quant == "fp16" or (caps is not None and "bf16" not in caps):
        dtype = "float16"
        if quant != "fp16":
            reasons.append("%s lacks BF16 support: activations run in float16 (--dtype float16)" % hw["gpu_model"])

    if quant == native:
        checkpoint, engine_quant = "published", None
        if native == "fp8":
            reasons.append("native FP8 checkpoint: pass no --quantization flag, the engine reads the format "
                           "from config.json")
    elif quant == "fp8" and native in ("bf16", "fp16"):
        checkpoint, engine_quant = "quantize_at_load", "fp8"
        reasons.append("fp8: the engine quantizes the %s checkpoint while loading (--quantization fp8)" % native)
    elif quant in ("bf16", "fp16") and native in ("bf16", "fp16"):
        checkpoint, engine_quant = "published", None
    else:
        checkpoint, engine_quant = "converted", None
        reasons.append("%s needs a checkpoint already converted to %s (the published one is %s); the engine "
                       "reads the format from its config.json" % (quant, quant, native))

    kv_bytes = KV_CACHE_DTYPES[opts["kv_cache_dtype"]]
    overhead = (opts["runtime_overhead_gib"] * GIB if opts["runtime_overhead_gib"] is not None
                else runtime_overhead_bytes(spec))

    # context length
    user_len = opts["max_model_len"]
    if user_len is not None and user_len > max_pos:
        problems.append("max_model_len %d exceeds the model's max_position_embeddings %d" % (user_len, max_pos))  # pylint: disable=bad-string-format-type
    model_len = user_len if user_len is not None else max_pos

    # explicit parallelism is validated, never replaced
    user_tp = opts["tensor_parallel_size"]
    user_pp = opts["pipeline_parallel_size"]
    user_dp = opts["data_parallel_size"]
    # With expert parallelism the routed experts spread over TP x DP ranks (vLLM's DP+EP).
    ep_dp = user_dp if (moe and user_dp and opts["enable_expert_parallel"] is not False) else 1
    group_limit = total_gpus // (user_dp or 1)
    layout_problems = []
    if user_dp is not None and user_dp > total_gpus:
        layout_problems.append("data_parallel_size %d exceeds the %d GPUs available" % (user_dp, total_gpus))  # pylint: disable=bad-string-format-type
    if user_tp is not None:
        if not valid_tensor_parallel(spec, user_tp):
            kv_note = ""
            if spec["attention"] == "gqa":
                kv_note = " and %d KV heads" % int(spec["num_key_value_heads"])
            layout_problems.append("tensor_parallel_size %d does not split %d attention heads%s evenly"
                                   % (user_tp, int(spec["num_attention_heads"]), kv_note))
        if user_tp > hw["gpus_per_node"] and user_tp % hw["gpus_per_node"]:
            layout_problems.append("tensor_parallel_size %d spans nodes but is not a multiple of gpus_per_node %d"
                                   % (user_tp, hw["gpus_per_node"]))
    if user_pp is not None and user_pp > layers:
        layout_problems.append("pipeline_parallel_size %d exceeds the model's %d layers" % (user_pp, layers))  # pylint: disable=bad-string-format-type
    wanted = (user_tp or 1) * (user_pp or 1) * (user_dp or 1)
    if (user_tp or user_pp) and wanted > total_gpus:
        named = ["%s %d" % (name, opts[name]) for name in  # pylint: disable=bad-string-format-type
                 ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size") if opts[name]]
        layout_problems.append("%s need %d GPUs, %d available" % (" x ".join(named), wanted, total_gpus))

    problems.extend(layout_problems)
    layouts = [] if layout_problems else _layouts(spec, hw, opts, group_limit)

    def evaluate(tp, pp, length):
        return _evaluate(spec, hw, opts, quant, kv_bytes, overhead, tp, pp, length, ep_dp)

    evaluations = [evaluate(tp, pp, model_len) for tp, pp in layouts]
    chosen = next((ev for ev in evaluations if ev["fits"]), None)

    if chosen is None and user_len is None and evaluations:
        # Shorten the default context on the layout with the most KV room.
        roomy = max(evaluations, key=lambda ev: (ev["capacity"], -ev["tp"] * ev["pp"]))
        shortened = (roomy["capacity"] // opts["concurrency"]) // AUTO_MODEL_LEN_STEP * AUTO_MODEL_LEN_STEP
        if roomy["weights_fit"] and shortened >= min(MIN_AUTO_MODEL_LEN, max_pos):
            reasons.append("max_model_len not set: the model's %d-token context does not fit, shortened to %d"
                           % (max_pos, shortened))
            model_len = shortened
            chosen = evaluate(roomy["tp"], roomy["pp"], model_len)

    best = chosen
    if best is None and evaluations:
        best = max(evaluations, key=lambda ev: (ev["free"], -ev["tp"] * ev["pp"]))
    if best is None:
        # Invalid explicit layout: still report what it would mean where computable.
        tp = user_tp if user_tp and valid_tensor_parallel(spec, user_tp) else 1
        best = evaluate(tp, min(user_pp or 1, layers), model_len)

    tp, pp = best["tp"], best["pp"]
    layout = "TP %d x PP %d" % (tp, pp)
    if best["ep"] != tp:
        layout += " (experts over %d ranks)" % best["ep"]
    weights_total = weight_bytes_per_gpu(spec, quant, 1, 1)
    reasons.append("weights: %s at %.2f bytes/param (embedding and LM head 16-bit) = %.1f GiB in total, "
                   "%.2f GiB per GPU at %s" % (quant, QUANTIZATIONS[quant]["bytes_per_param"], weights_total / GIB,
                                               best["weights"] / GIB, layout))
    reasons.append("per GPU: %.2f GiB x %.2f = %.2f GiB usable; weights %.2f + runtime overhead %.2f GiB "
                   "leave %.2f GiB for the KV cache"
                   % (hw["gpu_memory_gib"], opts["gpu_memory_utilization"], best["usable"] / GIB,
                      best["weights"] / GIB, best["overhead"] / GIB, best["free"] / GIB))
    if spec["attention"] == "mla":
        kv_desc = "MLA latent (%d + %d values per layer), the same on every TP rank" % (
            int(spec["kv_lora_rank"]), int(spec["qk_rope_head_dim"]))
    else:
        kv_desc = "K and V for %d KV heads x %d dims per layer, %d KV head(s) per TP rank" % (
            int(spec["num_key_value_heads"]), int(spec["head_dim"]),
            max(1, int(spec["num_key_value_heads"]) // tp))
    reasons.append("KV cache: %.1f KiB per token per GPU at %s (%s, %d bytes per value); %d tokens x %d "
                   "sequence(s) need %.2f GiB, room for %d tokens"
                   % (best["kv_token"] / KIB, layout, kv_desc, kv_bytes, model_len, opts["concurrency"],
                      best["required"] / GIB, best["capacity"]))

    fits = chosen is not None and not problems
    if not fits and not problems:
        if not best["weights_fit"]:
            problems.append("weights %.2f GiB + overhead %.2f GiB per GPU exceed the %.2f GiB usable at %s"
                            % (best["weights"] / GIB, best["overhead"] / GIB, best["usable"] / GIB, layout))
        else:
            longest = (best["capacity"] // opts["concurrency"]) if opts["concurrency"] else 0
            option = "max_model_len" if user_len is not None else "the model's context"
            problems.append("KV cache for %d tokens x %d sequence(s) needs %.2f GiB per GPU, %.2f GiB left at %s; "
                            "%s must be at most %d"
                            % (model_len, opts["concurrency"], best["required"] / GIB, best["free"] / GIB, layout,
                               option, longest))
        named = [name for name in ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size")
                 if opts[name] is not None]
        if named:
            problems.append("%s as set cannot hold the model on %s" % (" and ".join(named), hw["gpu_model"]))
        hint = _what_would_fit(spec, hw, opts, quant, kv_bytes, overhead, model_len)
        if hint:
            problems.append(hint)

    if fits:
        reasons.append("fits: %s on %s, %d GPU(s) per node, %d node(s)"
                       % (layout, hw["gpu_model"], hw["gpus_per_node"], hw["nodes"]))
        if tp > hw["gpus_per_node"]:
            reasons.append("tensor parallelism spans nodes: it needs a fast inter-node fabric (InfiniBand/RoCE)")

    # replicas and expert parallelism
    group = tp * pp
    if group <= hw["gpus_per_node"]:
        replicas = hw["nodes"] * (hw["gpus_per_node"] // group)
    else:
        replicas = total_gpus // group
    dp = replicas if fits else 1
    if fits and user_dp is not None:
        if user_dp > replicas:
            problems.append("data_parallel_size %d needs %d GPUs at %s, only %d replica(s) fit in %d GPUs"  # pylint: disable=bad-string-format-type
                            % (user_dp, user_dp * group, layout, replicas, total_gpus))
            fits = False
        dp = user_dp
    if fits:
        reasons.append("data_parallel_size %d: %d replica(s) of %d GPU(s)" % (dp, dp, group))

    expert_parallel = moe and tp * dp > 1
    if opts["enable_expert_parallel"] is not None:
        if opts["enable_expert_parallel"] and not moe:
            reasons.append("enable_expert_parallel ignored: %s is not a mixture-of-experts model" % spec["name"])
            expert_parallel = False
        else:
            expert_parallel = opts["enable_expert_parallel"]
    elif expert_parallel:
        reasons.append("expert parallel: MoE experts spread over the TP x DP ranks (vLLM recipe for "
                       "DeepSeek-V3/R1: TP8+EP or DP8+EP)")

    reasons.extend(problems)
    return {
        "fits": bool(fits),
        "model": spec["name"],
        "hf_repo": spec.get("hf_repo"),
        "quantization": quant,
        "engine_quantization": engine_quant,
        "checkpoint": checkpoint,
        "dtype": dtype,
        "kv_cache_dtype": opts["kv_cache_dtype"],
        "tensor_parallel_size": tp,
        "pipeline_parallel_size": pp,
        "data_parallel_size": dp,
        "enable_expert_parallel": bool(expert_parallel),
        "max_model_len": model_len,
        "concurrency": opts["concurrency"],
        "gpu_memory_utilization": opts["gpu_memory_utilization"],
        "gpus_available": total_gpus,
        "gpus_used": tp * pp * dp if fits else 0,
        "usable_gib_per_gpu": _gib(best["usable"]),
        "weights_gib_per_gpu": _gib(best["weights"]),
        "overhead_gib_per_gpu": _gib(best["overhead"]),
        "kv_cache_gib_per_gpu": _gib(max(best["free"], 0)),
        "kv_cache_required_gib_per_gpu": _gib(best["required"]),
        "kv_cache_tokens": best["capacity"],
        "kv_cache_bytes_per_token": kv_bytes_per_token(spec, kv_bytes),
        "reasons": reasons,
    }


def _what_would_fit(model, hw, opts, quant, kv_bytes, overhead, model_len):
    """The layout the planner would pick with enough nodes, as a hint."""
    node_tps = _tp_candidates(model, hw["gpus_per_node"])
    if not node_tps:
        return None
    layers = int(model["num_hidden_layers"])
    candidates = [(tp, 1) for tp in node_tps]
    candidates += [(node_tps[-1], pp) for pp in range(2, layers + 1) if node_tps[-1] * pp <= MAX_HINT_GPUS]
    for tp, pp in candidates:
        if _evaluate(model, hw, opts, quant, kv_bytes, overhead, tp, pp, model_len)["fits"]:
            gpus = tp * pp
            nodes = int(math.ceil(gpus / float(hw["gpus_per_node"])))
            return ("it would fit with TP %d x PP %d = %d x %s (%d node(s) of %d GPUs)"
                    % (tp, pp, gpus, hw["gpu_model"], nodes, hw["gpus_per_node"]))
    return None
