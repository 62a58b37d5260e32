# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: inference_engine
short_description: Turn an inference plan into each engine's options, command line and unit settings
version_added: 0.1.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - Takes a plan of the P(onprem.deepseek.inference_plan#filter) filter and the inference role's inputs,
    checks the inputs and returns what the role writes on one node - per instance the engine's
    configuration (vLLM C(--config), SGLang C(--config), TensorRT-LLM C(--extra_llm_api_options)), the
    C(ExecStart=) line and the environment of its systemd unit - and the node's allowed client networks
    and firewall ports.
  - "Checks, each failing with the variable's name: environment variable names (C([A-Za-z_][A-Za-z0-9_]*))
    and values without newlines; C(inference_memory_max) as a systemd size (V(6G), V(95%), V(infinity));
    absolute paths; account names; allowed clients as addresses or networks; engine options that would
    replace the listen address, port, API key, model or served model name."
  - Values written into a unit are escaped (systemd specifiers C(%), C($) and quotes in command lines).
  - On one node the engine's internal ports (torch.distributed, Gloo, NCCL) are bound to loopback.
positional: _input, inputs
options:
  _input:
    description: The plan (the result of P(onprem.deepseek.inference_plan#filter)).
    type: dict
    required: true
  inputs:
    description:
      - The role's variables under their names (C(inference_engine), C(inference_device), C(inference_instances),
        C(inference_served_model_name), C(inference_venv), C(inference_config_dir), C(inference_api_key_file),
        C(inference_engine_options), C(inference_environment), C(inference_memory_max),
        C(inference_allowed_clients), C(inference_cluster_hosts), C(inference_ray_port),
        C(inference_sglang_dist_port), C(inference_container_image), C(inference_service_user),
        C(inference_service_group)).
      - And what the role derived for this node - C(listen) (its service address), C(model_path) (the model
        version directory), C(host) (its inventory name), C(head_address), C(peer_addresses) (the other nodes
        of a multi-node deployment), C(gpus_per_node) and C(memtotal_mb).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Decide the engine settings of this node
  ansible.builtin.set_fact:
    engine: "{{ plan | onprem.deepseek.inference_engine(inputs) }}"
  vars:
    plan: "{{ 'deepseek-r1' | onprem.deepseek.inference_plan(hardware) }}"
    inputs:
      inference_engine: vllm
      inference_instances: [{name: main, port: 8000, gpus: []}]
      inference_served_model_name: deepseek-r1
      inference_venv: /opt/deepseek/vllm-venv
      inference_config_dir: /etc/deepseek/inference
      inference_api_key_file: /etc/deepseek/keys/inference.env
      inference_memory_max: 95%
      inference_allowed_clients: [10.0.5.10]
      inference_service_user: deepseek
      inference_service_group: deepseek
      listen: 10.0.1.11
      model_path: /srv/deepseek/hot/models/DeepSeek-R1/versions/v1
"""

RETURN = r"""
_value:
  description: What the role writes on this node.
  type: dict
  contains:
    instances:
      description:
        - Per instance name - C(port), C(options) (the configuration file's mapping, C(inference_engine_options)
          merged over the planned ones), C(key_option) (the option that carries the API key in the file, SGLang
          only; its value is left null), C(exec_start), C(environment) (C(Environment=) values, escaped) and
          C(description).
      type: dict
      sample:
        main:
          port: 8000
          options: {host: 10.0.1.11, port: 8000, served-model-name: deepseek-r1, tensor-parallel-size: 8}
          key_option: null
          exec_start: /opt/deepseek/vllm-venv/bin/python -m vllm.entrypoints.openai.api_server --model /srv/m --config /etc/deepseek/inference/main.yaml
          environment: [CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7, VLLM_HOST_IP=127.0.0.1, GLOO_SOCKET_IFNAME=lo]
          description: "DeepSeek inference (vllm) instance main: deepseek-r1 on 10.0.1.11:8000"
    allowed:
      description: Networks that may reach the engine (loopback, this node, the other nodes, the allowed clients).
      type: list
      elements: str
      sample: [127.0.0.0/8, "::1/128", 10.0.1.11/32, 10.0.5.10/32]
    firewall:
      description: The engine's TCP ports and the allowed networks by family, for the node's firewall rules.
      type: dict
      sample: {ports: [8000], ipv4: [127.0.0.0/8, 10.0.1.11/32, 10.0.5.10/32], ipv6: ["::1/128"]}
    ray:
      description: C(head), C(exec_start) and C(exec_stop) of the Ray unit of a multi-node vLLM deployment; null otherwise.
      type: dict
      sample: null
    memory_max:
      description: The checked C(MemoryMax=) value.
      type: str
      sample: 95%
    key_variable:
      description: The variable of the API key in the environment file.
      type: str
      sample: VLLM_API_KEY
    nodes:
      description: Nodes of the deployment.
      type: int
      sample: 1
    rank:
      description: This node's place in the deployment (0 is the head).
      type: int
      sample: 0
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.module_utils._inference_engine import (
    EngineSettingsError,
    deployment,
)


def inference_engine(plan, inputs):
    """Filter entry point; see DOCUMENTATION."""
    if not isinstance(plan, dict) or not isinstance(inputs, dict):
        raise AnsibleFilterError("inference_engine: expects a plan (dict) and the role's inputs (dict)")
    try:
        return deployment(plan, inputs)
    except EngineSettingsError as exc:
        raise AnsibleFilterError("inference_engine: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"inference_engine": inference_engine}
