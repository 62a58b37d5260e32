# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Engine settings of an inference deployment: from a plan to each engine's options and units.

Pure logic behind the ``onprem.deepseek.inference_engine`` filter. The plan comes from
``_inference_plan.plan_inference``; the role's inputs are checked here (names, sizes, paths,
addresses, options that may not be overridden), so that a wrong value stops the play with the
variable's name before any host changes, and everything that reaches a unit file is escaped.
The role's templates only write out what :func:`deployment` returns.

Option names are the documented ones: vLLM ``--config`` takes its long option names, SGLang
``launch_server --config`` its server arguments, ``trtllm-serve --extra_llm_api_options`` LLM-API
fields.
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.onprem.deepseek.plugins.module_utils._port_filter import client_network
from ansible_collections.onprem.deepseek.plugins.module_utils._systemd_unit import (
    ENV_NAME,
    UnitValueError,
    environment_assignment,
    escape_specifiers,
    exec_line,
    memory_size,
)

ENGINES = {
    "vllm": {"module": "vllm.entrypoints.openai.api_server", "key_variable": "VLLM_API_KEY"},
    "sglang": {"module": "sglang.launch_server", "key_variable": "SGLANG_API_KEY"},
    "tensorrt_llm": {"module": "tensorrt_llm.commands.serve", "key_variable": "TRTLLM_API_KEY"},
}
DEVICES = ("cuda", "cpu")
# The variable of the unit's environment file that names what the instance was started from
# (see the role's run phase: a running process whose value differs is restarted).
DEPLOYED_VARIABLE = "DEEPSEEK_INFERENCE_DEPLOYED"
# Options the role sets from its own variables and checks (listen address, port, key, model):
# inference_engine_options may not replace them. Compared with '_' read as '-'.
RESERVED_OPTIONS = frozenset([
    "host", "port", "api-key", "model", "model-path", "served-model-name", "config", "uds",
])
# Variables the role sets from its decisions (bindings, devices, key, restart check).
RESERVED_ENVIRONMENT = {
    "CUDA_VISIBLE_DEVICES": "set the instance's gpus in inference_instances instead",
    "VLLM_HOST_IP": "the role binds vLLM's internal ports (loopback on one node, the service address across nodes)",
    "GLOO_SOCKET_IFNAME": "the role binds the engine's internal ports",
    "NCCL_SOCKET_IFNAME": "the role binds the engine's internal ports",
    "RAY_ADDRESS": "the role names the Ray head of a multi-node deployment",
    DEPLOYED_VARIABLE: "the role records what each instance was started from",
}
RESERVED_ENVIRONMENT.update(
    (spec["key_variable"], "the API key is kept in inference_api_key_file") for spec in ENGINES.values())
_OPTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_INSTANCE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
_PATH = re.compile(r"^/[A-Za-z0-9._/@+:,=-]*$")
_ACCOUNT = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_LOOPBACK = ("127.0.0.0/8", "::1/128")
# In the container, the model and the configuration are mounted here.
CONTAINER_MODEL = "/model"
CONTAINER_CONFIG = "/etc/inference/config.yaml"


class EngineSettingsError(ValueError):
    """Inputs that cannot become a deployment; the message names each variable."""


class _Problems(object):
    def __init__(self):
        self.items = []

    def add(self, variable, message):
        self.items.append("%s: %s" % (variable, message))

    def check(self, variable, func, *args):
        try:
            return func(*args)
        except UnitValueError as exc:
            self.add(variable, str(exc))
            return None


# ---------------------------------------------------------------------------
# engine options from the plan


def _devices(plan, nodes, gpus):
    """CUDA_VISIBLE_DEVICES: the instance's GPUs, or this node's share of the plan's TP x PP x DP."""
    if gpus:
        return ",".join(str(gpu) for gpu in gpus)
    per_node = (plan["tensor_parallel_size"] * plan["pipeline_parallel_size"] * plan["data_parallel_size"]) // max(nodes, 1)
    return ",".join(str(gpu) for gpu in range(per_node))


def sglang_tp_size(plan):
    """SGLang's tensor parallel group.

    Pipeline stages are folded into it (its DeepSeek multi-node recipe: --tp 16 over 2 x 8 GPUs).
    With expert parallelism SGLang's data parallel attention runs inside the TP group, so the
    group spans all TP x DP GPUs; dense models run DP replicas of it.
    """
    dp_attention = plan["enable_expert_parallel"] and plan["data_parallel_size"] > 1
    return (plan["tensor_parallel_size"] * plan["pipeline_parallel_size"]
            * (plan["data_parallel_size"] if dp_attention else 1)), dp_attention


def trtllm_ep_size(plan):
    """TensorRT-LLM's --ep_size: the routed experts over the TP x DP ranks (None without EP)."""
    if not plan["enable_expert_parallel"]:
        return None
    return plan["tensor_parallel_size"] * plan["data_parallel_size"]


def engine_options(plan, engine, nodes=1, rank=0, device="cuda", listen=None, port=None,
                   served_model_name=None, model_path=None, head_address=None, dist_port=5000):
    """The planned options of one instance, as the engine's configuration file takes them.

    ``nodes`` and ``rank``: the deployment's node count and this node's place (head = 0).
    SGLang's ``api-key`` is returned as ``None``: the role fills in the key when it writes the
    file, so the key never passes through this function's result.
    """
    multi = nodes > 1
    dtype = plan.get("dtype", "auto")
    if engine == "vllm":
        options = {
            "host": listen,
            "port": port,
            "served-model-name": served_model_name,
            "tensor-parallel-size": plan["tensor_parallel_size"],
            "pipeline-parallel-size": plan["pipeline_parallel_size"],
            "max-model-len": plan["max_model_len"],
            "generation-config": "auto",
        }
        if plan["data_parallel_size"] > 1:
            options["data-parallel-size"] = plan["data_parallel_size"]
        if plan["enable_expert_parallel"]:
            options["enable-expert-parallel"] = True
        if plan["engine_quantization"]:
            options["quantization"] = plan["engine_quantization"]
        if plan["kv_cache_dtype"] != "auto":
            options["kv-cache-dtype"] = plan["kv_cache_dtype"]
        if dtype != "auto":
            options["dtype"] = dtype
        if device == "cuda":
            options["gpu-memory-utilization"] = plan["gpu_memory_utilization"]
        if multi:
            options["distributed-executor-backend"] = "ray"
        return options
    if engine == "sglang":
        tp_size, dp_attention = sglang_tp_size(plan)
        options = {
            "model-path": model_path,
            "host": listen,
            "port": port,
            "served-model-name": served_model_name,
            "api-key": None,
            "tp-size": tp_size,
            "context-length": plan["max_model_len"],
            "mem-fraction-static": plan["gpu_memory_utilization"],
            "trust-remote-code": True,
        }
        if plan["data_parallel_size"] > 1:
            options["dp-size"] = plan["data_parallel_size"]
        if dp_attention:
            options["enable-dp-attention"] = True
        if plan["enable_expert_parallel"]:
            options["ep-size"] = tp_size
        if plan["engine_quantization"]:
            options["quantization"] = plan["engine_quantization"]
        if dtype != "auto":
            options["dtype"] = dtype
        if multi:
            options.update({"nnodes": nodes, "node-rank": rank, "dist-init-addr": _host_port(head_address, dist_port)})
        return options
    if engine == "tensorrt_llm":
        # Host, port, model and parallel sizes are trtllm-serve's own options (engine_command).
        options = {
            "max_seq_len": plan["max_model_len"],
            "kv_cache_config": {"free_gpu_memory_fraction": plan["gpu_memory_utilization"]},
        }
        if plan["enable_expert_parallel"]:
            options["enable_attention_dp"] = plan["data_parallel_size"] > 1
        if dtype != "auto":
            options["dtype"] = dtype
        return options
    raise EngineSettingsError("inference_engine: unknown engine %r; choose one of %s" % (engine, ", ".join(sorted(ENGINES))))


def engine_command(plan, engine, venv, model_path, config_path, listen=None, port=None):
    """The engine's argv when it runs from a venv."""
    if engine == "vllm":
        return [venv + "/bin/python", "-m", ENGINES[engine]["module"], "--model", model_path, "--config", config_path]
    if engine == "sglang":
        return [venv + "/bin/python", "-m", ENGINES[engine]["module"], "--config", config_path]
    argv = [venv + "/bin/trtllm-serve", model_path, "--backend", "pytorch", "--host", listen, "--port", str(port),
            "--tp_size", str(plan["tensor_parallel_size"]), "--pp_size", str(plan["pipeline_parallel_size"])]
    ep_size = trtllm_ep_size(plan)
    if ep_size is not None:
        argv += ["--ep_size", str(ep_size)]
    return argv + ["--max_seq_len", str(plan["max_model_len"]), "--extra_llm_api_options", config_path]


def engine_environment(plan, engine, nodes=1, device="cuda", gpus=None, listen=None, head_address=None, ray_port=6379):
    """Variables the role decides for one instance, in unit order.

    On one node the engine's internal ports (torch.distributed's store, Gloo and NCCL sockets)
    are bound to loopback, so nothing but the API port listens on the node's address. Across
    nodes they must be reachable from the other nodes: they bind to the service address, and
    the unit's IP allow list and the role's firewall keep everyone else out.
    """
    env = []
    if device == "cuda":
        env.append(("CUDA_VISIBLE_DEVICES", _devices(plan, nodes, gpus)))
    if nodes > 1:
        env.append(("VLLM_HOST_IP", listen))
        if engine == "vllm":
            env.append(("RAY_ADDRESS", _host_port(head_address, ray_port)))
    else:
        if engine == "vllm":
            env.append(("VLLM_HOST_IP", "127.0.0.1"))
        env.append(("GLOO_SOCKET_IFNAME", "lo"))
        if device == "cuda":
            env.append(("NCCL_SOCKET_IFNAME", "lo"))
    return env


def _host_port(host, port):
    return ("[%s]:%s" if host and ":" in host else "%s:%s") % (host, port)


# ---------------------------------------------------------------------------
# the role's inputs


def _path(problems, variable, value):
    if not isinstance(value, str) or not _PATH.match(value) or "/../" in value + "/" or "//" in value:
        problems.add(variable, "%r must be an absolute path of letters, digits and ._/@+:,=- (no .., no spaces)" % (value,))
        return False
    return True


def _option_name(name):
    return str(name).lower().replace("_", "-")


def _check_options(problems, variable, options):
    if not isinstance(options, dict):
        problems.add(variable, "must be a mapping of option names to values")
        return {}
    for name in options:
        if not isinstance(name, str) or not _OPTION_NAME.match(name):
            problems.add(variable, "%r is not an option name (letters, digits, '-' and '_')" % (name,))
        elif _option_name(name) in RESERVED_OPTIONS:
            problems.add(variable, "%r is set by the role and may not be overridden (host: inference_listen_address, "
                                   "port: inference_instances, api-key: inference_api_key, model: the model store, "
                                   "served-model-name: inference_served_model_name)" % name)
    return options


def _check_environment(problems, variable, env):
    if not isinstance(env, dict):
        problems.add(variable, "must be a mapping of variable names to values")
        return []
    lines = []
    for name in sorted(env, key=str):
        value = env[name]
        if not isinstance(name, str) or not ENV_NAME.match(name):
            problems.add(variable, "%r is not a variable name ([A-Za-z_][A-Za-z0-9_]*)" % (name,))
            continue
        if name in RESERVED_ENVIRONMENT:
            problems.add(variable, "%s may not be set here: %s" % (name, RESERVED_ENVIRONMENT[name]))
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            problems.add(variable, "the value of %s must be a string or a number (quote true/false), not %r" % (name, value))
            continue
        line = problems.check(variable, environment_assignment, name, value, variable)
        if line is not None:
            lines.append(line)
    return lines


def _networks(problems, variable, entries):
    if not isinstance(entries, (list, tuple)):
        problems.add(variable, "must be a list of addresses or networks (CIDR)")
        return []
    out = []
    for entry in entries:
        try:
            out.append(str(client_network(entry)))
        except ValueError as exc:
            problems.add(variable, str(exc))
    return out


def allowed_networks(allowed, listen=None, peers=()):
    """Loopback, this node, the deployment's other nodes and the allowed clients, each once."""
    seen = []
    for entry in list(_LOOPBACK) + [a for a in [listen] + list(peers) if a] + list(allowed):
        network = str(ipaddress.ip_network(entry, strict=False))
        if network not in seen:
            seen.append(network)
    return seen


def deployment(plan, inputs):
    """Everything the role writes for this node's instances.

    ``inputs`` holds the role's variables under their names (``inference_engine``, ...) and what
    preflight derived: ``listen`` (service address), ``model_path`` (the version directory),
    ``host`` (this node), ``head_address``, ``peer_addresses`` (the other nodes of a multi-node
    deployment), ``gpus_per_node`` and ``memtotal_mb``. Raises EngineSettingsError listing every
    problem, each with its variable.
    """
    problems = _Problems()
    engine = inputs.get("inference_engine")
    device = inputs.get("inference_device", "cuda")
    if engine not in ENGINES:
        raise EngineSettingsError("inference_engine: unknown engine %r; choose one of %s" % (engine, ", ".join(sorted(ENGINES))))
    if device not in DEVICES:
        raise EngineSettingsError("inference_device: %r is not one of %s" % (device, ", ".join(DEVICES)))
    listen = inputs.get("listen")
    container = bool(inputs.get("inference_container_image"))
    key_variable = ENGINES[engine]["key_variable"]

    for variable in ("inference_venv", "inference_config_dir", "inference_api_key_file"):
        _path(problems, variable, inputs.get(variable))
    model_path = inputs.get("model_path")
    _path(problems, "inference_model_path", model_path)
    for variable in ("inference_service_user", "inference_service_group"):
        if not _ACCOUNT.match(str(inputs.get(variable, ""))):
            problems.add(variable, "%r is not an account name" % (inputs.get(variable),))
    served = inputs.get("inference_served_model_name")
    description_name = problems.check("inference_served_model_name", escape_specifiers, served, "inference_served_model_name")
    memory_max = problems.check("inference_memory_max", memory_size, inputs.get("inference_memory_max"), "inference_memory_max")
    user_options = _check_options(problems, "inference_engine_options", inputs.get("inference_engine_options") or {})
    role_env = inputs.get("inference_environment") or {}
    _check_environment(problems, "inference_environment", role_env)
    allowed = _networks(problems, "inference_allowed_clients", inputs.get("inference_allowed_clients") or [])

    cluster = list(inputs.get("inference_cluster_hosts") or [])
    host = inputs.get("host")
    nodes = max(len(cluster), 1)
    rank = cluster.index(host) if host in cluster else 0
    ray_port = int(inputs.get("inference_ray_port", 6379))
    dist_port = int(inputs.get("inference_sglang_dist_port", 5000))
    config_dir = inputs.get("inference_config_dir")

    instances = {}
    for index, instance in enumerate(inputs.get("inference_instances") or []):
        variable = "inference_instances[%d]" % index
        if not isinstance(instance, dict):
            problems.add(variable, "must be a mapping with name, port and gpus")
            continue
        name = instance.get("name")
        if not isinstance(name, str) or not _INSTANCE_NAME.match(name):
            problems.add(variable, "name %r must be lowercase letters, digits and '-'" % (name,))
            continue
        try:
            port = int(instance.get("port"))
        except (TypeError, ValueError):
            port = 0
        if not 1024 <= port <= 65535 or isinstance(instance.get("port"), bool):
            problems.add(variable, "port %r must be a number in 1024-65535" % (instance.get("port"),))
        gpus = instance.get("gpus") or []
        if not isinstance(gpus, list) or any(isinstance(g, bool) or not isinstance(g, int) or g < 0 for g in gpus):
            problems.add(variable, "gpus must be a list of GPU indices (0, 1, ...)")
            gpus = []
        own = instance.get("environment") or {}
        _check_environment(problems, variable + ".environment", own)
        # The instance's variables over the role's, each once, sorted (both were checked above).
        env = {}
        for part in (role_env, own):
            env.update(part if isinstance(part, dict) else {})
        config_path = "%s/%s.yaml" % (config_dir, name)
        served_model = model_path if not container else CONTAINER_MODEL
        options = engine_options(plan, engine, nodes, rank, device, listen=listen, port=port, served_model_name=served,
                                 model_path=served_model, head_address=inputs.get("head_address"), dist_port=dist_port)
        options.update(user_options)
        decided = engine_environment(plan, engine, nodes, device, gpus, listen, inputs.get("head_address"), ray_port)
        if container:
            argv = _podman_command(problems, inputs, engine, name, gpus, memory_max, model_path, config_path, key_variable)
        else:
            argv = engine_command(plan, engine, inputs.get("inference_venv") or "", model_path, config_path, listen, port)
        exec_start = problems.check(variable, exec_line, argv, variable)
        user_lines = _check_environment(_Problems(), variable, env)
        instances[name] = {
            "port": port,
            "options": options,
            "key_option": "api-key" if engine == "sglang" else None,
            "exec_start": exec_start,
            "environment": ["%s=%s" % pair for pair in decided] + user_lines,
            "description": "DeepSeek inference (%s) instance %s: %s on %s:%s" % (engine, name, description_name, listen, port),
        }

    ray = None
    peers = [a for a in (inputs.get("peer_addresses") or []) if a]
    if engine == "vllm" and nodes > 1 and not container:
        venv = inputs.get("inference_venv") or ""
        gpus_per_node = int(inputs.get("gpus_per_node") or 0)
        if rank == 0:
            argv = [venv + "/bin/ray", "start", "--head", "--block", "--node-ip-address=%s" % listen,
                    "--port=%d" % ray_port, "--dashboard-host=127.0.0.1", "--num-gpus=%d" % gpus_per_node]
        else:
            argv = [venv + "/bin/ray", "start", "--block", "--node-ip-address=%s" % listen,
                    "--address=%s" % _host_port(inputs.get("head_address"), ray_port), "--num-gpus=%d" % gpus_per_node]
        ray = {"head": rank == 0, "exec_start": problems.check("inference_cluster_hosts", exec_line, argv),
               "exec_stop": problems.check("inference_venv", exec_line, [venv + "/bin/ray", "stop"])}

    if problems.items:
        raise EngineSettingsError("; ".join(problems.items))
    networks = allowed_networks(allowed, listen, peers)
    ports = sorted(set(i["port"] for i in instances.values())
                   | ({ray_port} if ray else set())
                   | ({dist_port} if engine == "sglang" and nodes > 1 else set()))
    return {
        "engine": engine,
        "key_variable": key_variable,
        "deployed_variable": DEPLOYED_VARIABLE,
        "nodes": nodes,
        "rank": rank,
        "memory_max": memory_max,
        "instances": instances,
        "ray": ray,
        "allowed": networks,
        "firewall": {
            "ports": ports,
            "ipv4": [n for n in networks if ":" not in n],
            "ipv6": [n for n in networks if ":" in n],
        },
    }


def _podman_memory(memory_max, total_mib):
    """podman takes an absolute limit: a share of the node's memory in MiB, as given, or none."""
    if memory_max is None or memory_max == "infinity":
        return None
    if memory_max.endswith("%"):
        return "%dm" % int(int(total_mib) * float(memory_max[:-1]) / 100)
    return memory_max


def _podman_command(problems, inputs, engine, name, gpus, memory_max, model_path, config_path, key_variable):
    image = inputs.get("inference_container_image")
    if not re.match(r"^[^@\s]+@sha256:[0-9a-f]{64}$", str(image)):
        problems.add("inference_container_image", "%r must be pinned by digest (repo@sha256:<64 hex>)" % (image,))
    argv = ["/usr/bin/podman", "run", "--rm", "--replace", "--name", "deepseek-inference-" + name,
            "--network", "host", "--ipc", "host", "--pull", "never",
            "--cap-drop", "all", "--security-opt", "no-new-privileges", "--read-only", "--read-only-tmpfs"]
    memory = _podman_memory(memory_max, inputs.get("memtotal_mb") or 0)
    if memory:
        argv += ["--memory", memory]
    if inputs.get("inference_device", "cuda") == "cuda":
        # CDI names one device per --device: nvidia.com/gpu=0, nvidia.com/gpu=1, ... or =all.
        for gpu in (gpus or ["all"]):
            argv += ["--device", "nvidia.com/gpu=%s" % gpu]
    argv += ["--env", key_variable, "--env", "HF_HUB_OFFLINE=1",
             "--volume", "%s:%s:ro" % (model_path, CONTAINER_MODEL),
             "--volume", "%s:%s:ro" % (config_path, CONTAINER_CONFIG), str(image)]
    if engine == "vllm":
        argv += ["--model", CONTAINER_MODEL]
    return argv + ["--config", CONTAINER_CONFIG]
