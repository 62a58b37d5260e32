"""Engine settings from a plan: options, command lines, environment, allowed clients, and the
refusal of inputs that would change a unit or override what the role checks."""
import copy

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils._inference_engine import (
    EngineSettingsError,
    allowed_networks,
    deployment,
    engine_command,
    engine_environment,
    engine_options,
    sglang_tp_size,
    trtllm_ep_size,
)
from ansible_collections.onprem.deepseek.plugins.module_utils._inference_plan import plan_inference
from ansible_collections.onprem.deepseek.plugins.module_utils._systemd_unit import exec_word

H200 = {"gpu_model": "NVIDIA H200", "gpu_memory_gib": 141, "gpus_per_node": 8, "nodes": 1}
T4 = {"gpu_model": "Tesla T4", "gpu_memory_gib": 15, "gpus_per_node": 1, "nodes": 1}
MODEL_DIR = "/srv/deepseek/hot/models/DeepSeek-R1-0528/versions/2025-05-28"
INPUTS = {
    "inference_engine": "vllm",
    "inference_device": "cuda",
    "inference_instances": [{"name": "main", "port": 8000, "gpus": []}],
    "inference_served_model_name": "deepseek-r1",
    "inference_venv": "/opt/deepseek/vllm-venv",
    "inference_config_dir": "/etc/deepseek/inference",
    "inference_api_key_file": "/etc/deepseek/keys/inference.env",
    "inference_engine_options": {},
    "inference_environment": {},
    "inference_memory_max": "95%",
    "inference_allowed_clients": ["10.0.5.10", "10.0.6.0/24"],
    "inference_cluster_hosts": [],
    "inference_ray_port": 6379,
    "inference_sglang_dist_port": 5000,
    "inference_container_image": "",
    "inference_service_user": "deepseek",
    "inference_service_group": "deepseek",
    "listen": "10.0.1.11",
    "model_path": MODEL_DIR,
    "host": "gpu-a1",
    "head_address": "10.0.1.11",
    "peer_addresses": [],
    "gpus_per_node": 8,
    "memtotal_mb": 2_000_000,
}


def plan(model="deepseek-r1", hardware=None, **options):
    result = plan_inference(model, hardware or H200, options)
    assert result["fits"], result["reasons"]
    return result


def inputs(**changes):
    out = copy.deepcopy(INPUTS)
    out.update(changes)
    return out


def refused(**changes):
    with pytest.raises(EngineSettingsError) as info:
        deployment(plan(), inputs(**changes))
    return str(info.value)


# --- decisions -----------------------------------------------------------------------------


def test_vllm_options_and_command_from_the_plan():
    p = plan()
    options = engine_options(p, "vllm", listen="10.0.1.11", port=8000, served_model_name="deepseek-r1")
    assert options == {
        "host": "10.0.1.11", "port": 8000, "served-model-name": "deepseek-r1", "tensor-parallel-size": 8,
        "pipeline-parallel-size": 1, "max-model-len": 163840, "generation-config": "auto",
        "enable-expert-parallel": True, "gpu-memory-utilization": 0.9}
    assert engine_command(p, "vllm", "/v", MODEL_DIR, "/c/main.yaml") == [
        "/v/bin/python", "-m", "vllm.entrypoints.openai.api_server", "--model", MODEL_DIR, "--config", "/c/main.yaml"]


def test_the_plans_dtype_is_rendered_when_it_is_not_auto():
    # A T4 has no BF16: the planner says float16, and every engine is told so.
    p = plan("deepseek-r1-distill-qwen-1.5b", T4)
    assert p["dtype"] == "float16"
    assert engine_options(p, "vllm")["dtype"] == "float16"
    assert engine_options(p, "sglang")["dtype"] == "float16"
    assert engine_options(p, "tensorrt_llm")["dtype"] == "float16"
    # BF16 GPUs keep the model's type: no flag.
    assert "dtype" not in engine_options(plan(), "vllm")
    assert "dtype" not in engine_options(plan("deepseek-r1-distill-qwen-1.5b", dict(T4, gpu_model="NVIDIA L4")), "vllm")


def test_sglang_tp_group_and_tensorrt_llm_ep_size():
    dp8 = plan(tensor_parallel_size=1, data_parallel_size=8)
    assert sglang_tp_size(dp8) == (8, True)
    assert trtllm_ep_size(dp8) == 8
    dense = plan("deepseek-r1-distill-llama-70b", dict(H200, gpu_memory_gib=80))
    assert dense["enable_expert_parallel"] is False
    assert sglang_tp_size(dense) == (dense["tensor_parallel_size"], False)
    assert trtllm_ep_size(dense) is None
    argv = engine_command(dense, "tensorrt_llm", "/v", MODEL_DIR, "/c/m.yaml", "10.0.1.11", 8000)
    assert "--ep_size" not in argv and argv[argv.index("--tp_size") + 1] == str(dense["tensor_parallel_size"])


def test_one_node_binds_internal_ports_to_loopback_several_nodes_to_the_service_address():
    p = plan()
    assert engine_environment(p, "vllm") == [
        ("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7"), ("VLLM_HOST_IP", "127.0.0.1"),
        ("GLOO_SOCKET_IFNAME", "lo"), ("NCCL_SOCKET_IFNAME", "lo")]
    assert engine_environment(p, "vllm", device="cpu") == [("VLLM_HOST_IP", "127.0.0.1"), ("GLOO_SOCKET_IFNAME", "lo")]
    assert engine_environment(p, "sglang", gpus=[2, 3]) == [
        ("CUDA_VISIBLE_DEVICES", "2,3"), ("GLOO_SOCKET_IFNAME", "lo"), ("NCCL_SOCKET_IFNAME", "lo")]
    two = plan(hardware=dict(H200, gpu_model="NVIDIA H100 80GB HBM3", gpu_memory_gib=80, nodes=2))
    assert engine_environment(two, "vllm", nodes=2, listen="10.0.1.12", head_address="10.0.1.11") == [
        ("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7"), ("VLLM_HOST_IP", "10.0.1.12"), ("RAY_ADDRESS", "10.0.1.11:6379")]


def test_deployment_per_instance_and_node():
    instances = [{"name": "a", "port": 8000, "gpus": [0, 1, 2, 3]},
                 {"name": "b", "port": 8001, "gpus": [4, 5, 6, 7], "environment": {"X": "1"}}]
    result = deployment(plan(), inputs(inference_instances=instances))
    assert sorted(result["instances"]) == ["a", "b"]
    b = result["instances"]["b"]
    assert b["port"] == 8001 and b["options"]["port"] == 8001
    assert b["exec_start"].endswith("--config /etc/deepseek/inference/b.yaml")
    assert b["environment"] == ["CUDA_VISIBLE_DEVICES=4,5,6,7", "VLLM_HOST_IP=127.0.0.1", "GLOO_SOCKET_IFNAME=lo",
                                "NCCL_SOCKET_IFNAME=lo", '"X=1"']
    assert b["description"] == "DeepSeek inference (vllm) instance b: deepseek-r1 on 10.0.1.11:8001"
    assert result["allowed"] == ["127.0.0.0/8", "::1/128", "10.0.1.11/32", "10.0.5.10/32", "10.0.6.0/24"]
    assert result["firewall"] == {"ports": [8000, 8001], "ipv4": ["127.0.0.0/8", "10.0.1.11/32", "10.0.5.10/32", "10.0.6.0/24"],
                                  "ipv6": ["::1/128"]}
    assert result["ray"] is None and result["memory_max"] == "95%" and result["deployed_variable"] == "DEEPSEEK_INFERENCE_DEPLOYED"


def test_user_options_merge_over_the_planned_ones_but_not_over_the_checked_ones():
    result = deployment(plan(), inputs(inference_engine_options={"max-num-seqs": 4, "gpu_memory_utilization": 0.8,
                                                                 "tensor-parallel-size": 4}))
    options = result["instances"]["main"]["options"]
    assert options["max-num-seqs"] == 4 and options["gpu_memory_utilization"] == 0.8 and options["tensor-parallel-size"] == 4
    assert options["host"] == "10.0.1.11"


def test_sglang_leaves_the_key_to_the_template_and_the_container_mounts_the_model():
    result = deployment(plan(), inputs(inference_engine="sglang"))
    main = result["instances"]["main"]
    assert main["key_option"] == "api-key" and main["options"]["api-key"] is None
    assert main["options"]["model-path"] == MODEL_DIR
    image = "registry.example.internal/sglang@sha256:" + "ab" * 32
    boxed = deployment(plan(), inputs(inference_engine="sglang", inference_container_image=image))["instances"]["main"]
    assert boxed["options"]["model-path"] == "/model"
    assert boxed["exec_start"].startswith("/usr/bin/podman run ") and "--model" not in boxed["exec_start"]


@pytest.mark.parametrize("memory, flag", [("95%", ["--memory", "1900000m"]), ("64G", ["--memory", "64G"]), ("infinity", [])])
def test_podman_memory(memory, flag):
    image = "r.example/vllm@sha256:" + "0" * 64
    argv = deployment(plan(), inputs(inference_container_image=image, inference_memory_max=memory))["instances"]["main"]["exec_start"].split()
    assert (argv[argv.index("--memory"):argv.index("--memory") + 2] if "--memory" in argv else []) == flag


def test_multi_node_vllm_ray_units_allow_the_other_nodes():
    two = plan(hardware=dict(H200, gpu_model="NVIDIA H100 80GB HBM3", gpu_memory_gib=80, nodes=2))
    head = deployment(two, inputs(inference_cluster_hosts=["gpu-a1", "gpu-a2"], peer_addresses=["10.0.1.12"]))
    assert head["nodes"] == 2 and head["rank"] == 0 and head["ray"]["head"] is True
    assert head["ray"]["exec_start"] == (
        "/opt/deepseek/vllm-venv/bin/ray start --head --block --node-ip-address=10.0.1.11 "
        "--port=6379 --dashboard-host=127.0.0.1 --num-gpus=8")
    assert "10.0.1.12/32" in head["allowed"] and head["firewall"]["ports"] == [6379, 8000]
    worker = deployment(two, inputs(inference_cluster_hosts=["gpu-a1", "gpu-a2"], host="gpu-a2", listen="10.0.1.12",
                                    peer_addresses=["10.0.1.11"]))
    assert worker["rank"] == 1 and worker["ray"]["head"] is False
    assert "--address=10.0.1.11:6379" in worker["ray"]["exec_start"]
    sglang = deployment(two, inputs(inference_engine="sglang", inference_cluster_hosts=["gpu-a1", "gpu-a2"], host="gpu-a2",
                                    listen="10.0.1.12", peer_addresses=["10.0.1.11"]))
    assert sglang["ray"] is None and sglang["firewall"]["ports"] == [5000, 8000]
    assert sglang["instances"]["main"]["options"]["dist-init-addr"] == "10.0.1.11:5000"


def test_allowed_networks_are_deduplicated_and_always_include_loopback():
    assert allowed_networks(["10.0.1.11", "::1", "fd00::/64"], "10.0.1.11") == [
        "127.0.0.0/8", "::1/128", "10.0.1.11/32", "fd00::/64"]


def test_what_reaches_the_unit_is_escaped():
    main = deployment(plan(), inputs(inference_served_model_name="r1 100%",
                                     inference_environment={"A": 'x "y" 5%'}))["instances"]["main"]
    assert main["description"].endswith("r1 100%% on 10.0.1.11:8000")
    assert main["environment"][-1] == '"A=x \\"y\\" 5%%"'
    assert main["exec_start"].split()[:3] == ["/opt/deepseek/vllm-venv/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    image = "r.example/vllm@sha256:" + "0" * 64
    # A path with a space never gets that far (paths are refused); a word that needs quoting is quoted.
    boxed = deployment(plan(), inputs(inference_container_image=image, inference_memory_max="64G"))["instances"]["main"]
    assert exec_word("nvidia.com/gpu=all") in boxed["exec_start"]


# --- refusals, each naming the variable -----------------------------------------------------


@pytest.mark.parametrize("environment, says", [
    ({"LD_PRELOAD\nExecStartPre=+/bin/touch /tmp/owned": "x"}, "is not a variable name"),
    ({"A": "1\nExecStartPre=+/bin/touch /tmp/owned"}, "newline"),
    ({"1A": "x"}, "is not a variable name"),
    ({"A": True}, "quote true/false"),
    ({"A": ["x"]}, "must be a string or a number"),
    ({"VLLM_API_KEY": "x"}, "inference_api_key_file"),
    ({"VLLM_HOST_IP": "0.0.0.0"}, "binds vLLM's internal ports"),
    ({"CUDA_VISIBLE_DEVICES": "0"}, "gpus in inference_instances"),
    ({"DEEPSEEK_INFERENCE_DEPLOYED": "x"}, "records what each instance"),
])
def test_environment_refusals(environment, says):
    message = refused(inference_environment=environment)
    assert message.startswith("inference_environment: ") and says in message


def test_an_instance_environment_is_checked_too():
    message = refused(inference_instances=[{"name": "main", "port": 8000, "environment": {"A\nB": "1"}}])
    assert message.startswith("inference_instances[0].environment: ")


@pytest.mark.parametrize("options", [
    {"host": "0.0.0.0"}, {"port": 9000}, {"api-key": "x"}, {"api_key": "x"}, {"model": "/tmp/x"},
    {"served-model-name": "x"}, {"served_model_name": "x"}, {"HOST": "0.0.0.0"}, {"config": "/tmp/other.yaml"},
])
def test_engine_options_may_not_override_what_the_role_sets(options):
    message = refused(inference_engine_options=options)
    assert message.startswith("inference_engine_options: ") and "may not be overridden" in message


@pytest.mark.parametrize("name", ["host=0.0.0.0", "--host", "a b", "x\ny", ""])
def test_engine_option_names_must_be_names(name):
    assert "is not an option name" in refused(inference_engine_options={name: True})


@pytest.mark.parametrize("value", ["lots", "101%", "6 G", "95%\nExecStartPre=+/bin/touch /tmp/x"])
def test_memory_max_must_be_a_systemd_size(value):
    assert refused(inference_memory_max=value).startswith("inference_memory_max: ")


@pytest.mark.parametrize("variable", ["inference_venv", "inference_config_dir", "inference_api_key_file"])
@pytest.mark.parametrize("value", ["relative/path", "/with space", "/a/../etc", "/50%", "/x\n/y", ""])
def test_paths_must_be_absolute_and_plain(variable, value):
    assert refused(**{variable: value}).startswith(variable + ": ")


def test_model_path_is_checked_under_inference_model_path():
    assert refused(model_path="/srv/models/a b").startswith("inference_model_path: ")


@pytest.mark.parametrize("clients, says", [
    (["gateway.example.internal"], "not an IP address"),
    (["0.0.0.0/0"], "admits every address"),
    (["::/0"], "admits every address"),
    ("10.0.5.10", "must be a list"),
])
def test_allowed_clients_are_addresses_or_networks(clients, says):
    message = refused(inference_allowed_clients=clients)
    assert message.startswith("inference_allowed_clients: ") and says in message


@pytest.mark.parametrize("instance, says", [
    ({"name": "Main", "port": 8000}, "lowercase"),
    ({"name": "main", "port": 80}, "1024-65535"),
    ({"name": "main", "port": "x"}, "1024-65535"),
    ({"name": "main", "port": 8000, "gpus": ["0"]}, "GPU indices"),
    ("main", "must be a mapping"),
])
def test_instances_are_checked(instance, says):
    message = refused(inference_instances=[instance])
    assert message.startswith("inference_instances[0]: ") and says in message


def test_served_name_accounts_and_image():
    assert refused(inference_served_model_name="a\nb").startswith("inference_served_model_name: ")
    assert refused(inference_service_user="root user").startswith("inference_service_user: ")
    assert refused(inference_container_image="vllm/vllm-openai:latest").startswith("inference_container_image: ")
    with pytest.raises(EngineSettingsError, match="^inference_engine: "):
        deployment(plan(), inputs(inference_engine="llama"))
    with pytest.raises(EngineSettingsError, match="^inference_device: "):
        deployment(plan(), inputs(inference_device="tpu"))


def test_every_problem_is_reported_at_once():
    message = refused(inference_memory_max="lots", inference_environment={"A\nB": "1"},
                      inference_engine_options={"host": "0.0.0.0"})
    assert [part.split(":")[0] for part in message.split("; ")] == [
        "inference_memory_max", "inference_engine_options", "inference_environment"]
