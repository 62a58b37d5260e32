#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: inference_probe
short_description: Check an OpenAI-compatible inference endpoint with real completions and measure latency
version_added: 0.1.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - Waits for C(/health) (optional), reads C(/v1/models), asserts that the served model name is
    listed, then makes O(requests) chat completions on C(/v1/chat/completions), each plain and
    (with O(stream)) streamed as server-sent events.
  - Returns time to first token, total time and tokens per second over all requests.
  - Works with vLLM, SGLang and TensorRT-LLM (C(trtllm-serve)), which all serve this API.
  - The module only reads from the endpoint; it never reports a change.
options:
  url:
    description:
      - Base URL of the endpoint, for example V(http://10.0.1.11:8000). A trailing C(/v1) is dropped.
    type: str
    required: true
  model:
    description:
      - Served model name that C(/v1/models) must list; completions are requested for it.
      - When omitted, the first listed model is used.
    type: str
  api_key:
    description:
      - 'API key, sent as C(Authorization: Bearer <key>).'
      - Mutually exclusive with O(api_key_file).
    type: str
  api_key_file:
    description:
      - File on the host holding the API key, either the key alone on one line or an environment
        file of C(NAME=value) lines such as the inference role's C(EnvironmentFile=).
      - In an environment file the key is O(api_key_variable), or the only variable whose name
        ends in C(API_KEY).
    type: path
  api_key_variable:
    description: Variable of O(api_key_file) that holds the key, for example V(VLLM_API_KEY).
    type: str
  requests:
    description: Number of plain chat completions (and as many streamed ones with O(stream)).
    type: int
    default: 1
  stream:
    description: Also make each request with C(stream=true) and parse the event stream.
    type: bool
    default: true
  prompt:
    description: User message sent in every request.
    type: str
    default: Say hello in one short sentence.
  max_tokens:
    description: C(max_tokens) of every request.
    type: int
    default: 16
  temperature:
    description: Sampling temperature of every request.
    type: float
    default: 0.0
  ignore_eos:
    description:
      - Ask the server to generate O(max_tokens) tokens regardless of end-of-sequence (vLLM and
        SGLang extension), for comparable throughput figures.
    type: bool
    default: false
  health_timeout:
    description:
      - Seconds to wait for C(GET /health) to answer 200 before the other calls; V(0) skips it.
    type: int
    default: 0
  health_interval:
    description: Seconds between C(/health) attempts.
    type: int
    default: 2
  timeout:
    description: Socket timeout in seconds of each HTTP request.
    type: int
    default: 60
  validate_certs:
    description: Verify the endpoint's TLS certificate (HTTPS URLs).
    type: bool
    default: true
  ca_path:
    description: PEM bundle of the site CA for HTTPS endpoints.
    type: path
extends_documentation_fragment:
  - onprem.deepseek.attributes.read_only
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    support: full
    platforms: posix
notes:
  - The requests go from the host the module runs on; run it on the inference node itself (the
    engine listens on the node's service address) or on a host allowed to reach it.
  - The key is never returned or logged. An answer of 401 fails with a message saying the key
    was wrong or missing.
  - Proxies from the environment are not used; the endpoint is on the site network.
  - The content of the answers is not checked, only their shape, so the probe also works with
    randomly initialised test models.
seealso:
  - name: OpenAI chat completions API
    description: The request and streaming format the engines implement.
    link: https://platform.openai.com/docs/api-reference/chat
"""

EXAMPLES = r"""
- name: Check the local vLLM instance and measure latency over 3 requests
  onprem.deepseek.inference_probe:
    url: http://10.0.1.11:8000
    model: deepseek-r1
    api_key_file: /etc/deepseek/inference/main.env
    requests: 3
    health_timeout: 600
  register: probe

- name: Print time to first token
  ansible.builtin.debug:
    msg: "TTFT median {{ probe.latency.ttft_s.median }} s, {{ probe.latency.tokens_per_s.median }} tokens/s"

- name: Probe through the gateway with a key from the vault, no streaming
  onprem.deepseek.inference_probe:
    url: https://llm.example.internal
    ca_path: /etc/pki/onprem/site-ca.pem
    api_key: "{{ vault_gateway_key }}"
    model: deepseek-r1
    stream: false
"""

RETURN = r"""
url:
  description: Base URL probed.
  returned: always
  type: str
  sample: http://10.0.1.11:8000
models:
  description: Model names listed by C(/v1/models).
  returned: always
  type: list
  elements: str
  sample: [deepseek-r1]
model_roots:
  description:
    - Model name to the directory the engine loaded it from (C(root) in C(/v1/models); vLLM and SGLang report it).
    - Models whose engine reports no directory are left out.
  returned: always
  type: dict
  sample: {deepseek-r1: /srv/deepseek/hot/models/deepseek-r1/versions/2025-05-28}
  version_added: 0.2.0
model:
  description: Model the completions were requested for.
  returned: always
  type: str
  sample: deepseek-r1
health_retries:
  description: Failed C(/health) attempts before it answered 200.
  returned: when O(health_timeout) > 0
  type: int
  sample: 0
requests:
  description: Chat completions made (plain and streamed).
  returned: always
  type: int
  sample: 6
completion_tokens:
  description: Completion tokens over all requests.
  returned: always
  type: int
  sample: 96
latency:
  description:
    - C(min), C(mean), C(median) and C(max) of each figure over the requests, in seconds or tokens
      per second; a figure is null when no request measured it.
    - C(ttft_s), the time to the first content chunk, is measured on streamed requests only.
    - C(tokens_per_s) is completion tokens divided by the request's total time.
  returned: always
  type: dict
  contains:
    total_s:
      description: Time from sending a request to its last byte.
      type: dict
      returned: always
      sample: {"min": 0.61, "mean": 0.7, "median": 0.69, "max": 0.81}
    ttft_s:
      description: Time to first token of streamed requests.
      type: dict
      returned: always
      sample: {"min": 0.05, "mean": 0.06, "median": 0.06, "max": 0.07}
    tokens_per_s:
      description: Completion tokens per second.
      type: dict
      returned: always
      sample: {"min": 19.7, "mean": 22.9, "median": 23.1, "max": 26.2}
  sample: {"total_s": {"min": 0.61, "mean": 0.7, "median": 0.69, "max": 0.81}}
samples:
  description: One entry per request with its own figures, finish reason and token counts.
  returned: always
  type: list
  elements: dict
  sample:
    - {"stream": true, "total_s": 0.78, "ttft_s": 0.06, "completion_tokens": 16, "prompt_tokens": 12,
       "tokens_per_s": 20.5, "finish_reason": "length", "chunks": 16}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.onprem.deepseek.plugins.module_utils._inference_probe import (
    ProbeError,
    Prober,
    read_api_key,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            model=dict(type="str"),
            api_key=dict(type="str", no_log=True),
            api_key_file=dict(type="path"),
            api_key_variable=dict(type="str", no_log=False),
            requests=dict(type="int", default=1),
            stream=dict(type="bool", default=True),
            prompt=dict(type="str", default="Say hello in one short sentence."),
            max_tokens=dict(type="int", default=16, no_log=False),
            temperature=dict(type="float", default=0.0),
            ignore_eos=dict(type="bool", default=False),
            health_timeout=dict(type="int", default=0),
            health_interval=dict(type="int", default=2),
            timeout=dict(type="int", default=60),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
        ),
        mutually_exclusive=[("api_key", "api_key_file")],
        supports_check_mode=True,
    )
    params = dict(module.params)
    for name in ("requests", "max_tokens", "timeout", "health_interval"):
        if params[name] < 1:
            module.fail_json(msg="%s: must be at least 1" % name)
    if params["health_timeout"] < 0:
        module.fail_json(msg="health_timeout: must not be negative")

    try:
        if params["api_key_file"]:
            try:
                with open(params["api_key_file"], "r") as f:
                    text = f.read()
            except (IOError, OSError) as exc:
                raise ProbeError("api_key_file %s: %s" % (params["api_key_file"], exc.strerror or exc))
            params["api_key"] = read_api_key(text, params["api_key_variable"])
            if params["api_key"]:
                module.no_log_values.add(params["api_key"])
        result = Prober(params).run()
    except ProbeError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
