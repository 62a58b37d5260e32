#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dr_load
short_description: Send a bounded load of authenticated chat completions and record each request, for DR drills
version_added: 0.2.0
description:
  - Sends chat completions to an OpenAI-compatible endpoint (the global entry point) from O(workers) threads, each on
    a new connection, one in O(stream_every) streamed, until O(stop_file) exists, O(duration_s) passed or
    O(max_requests) were sent.
  - Records each request as the C(onprem.deepseek.dr_report) filter reads it (C(start), C(end), C(ok), C(site) - the
    answering gateway's C(X-Deepseek-Site) header, C(streamed)), plus C(engine) with O(engine_header), and each
    failure's reason.
  - With O(interval_s), each client starts a request at most once in that many seconds, so the load stays the
    same on a busy controller instead of taking whatever CPU it finds.
  - O(watch) runs a command every O(watch_interval_s) and records each change of its output with the time, for
    example the routers' route to the global entry point.
  - Run it on the controller, usually with C(async), while a drill fails a site. It reports no change.
options:
  url:
    description: The chat completions URL, for example V(https://entry.example.internal/v1/chat/completions).
    type: str
    required: true
  server_name:
    description: The name sent in TLS SNI and C(Host) and checked in the certificate (default the URL's host).
    type: str
  ca_path:
    description: PEM bundle the certificate is checked against (default the system's).
    type: path
  api_key:
    description: 'API key of a principal allowed to execute O(model), sent as C(Authorization: Bearer).'
    type: str
    required: true
  model:
    description: The model asked for.
    type: str
    required: true
  max_tokens:
    description: C(max_tokens) of each request.
    type: int
    default: 8
  workers:
    description: Clients sending at once (1 to 64).
    type: int
    default: 3
  stream_every:
    description: One request in this many is streamed; V(0) streams none.
    type: int
    default: 4
  timeout_s:
    description: A client gives up on a request after this many seconds.
    type: float
    default: 2.0
  duration_s:
    description: The longest the load runs, in seconds.
    type: float
    default: 60.0
  interval_s:
    description:
      - Seconds from the start of one request to the start of the next, per client (0 to 60). V(0) sends the next at once.
      - A failed request waits at least 0.05 seconds before the next either way.
    type: float
    default: 0.0
  max_requests:
    description: The most requests sent.
    type: int
    default: 20000
  stop_file:
    description: The load stops once this file exists on the controller.
    type: path
  engine_header:
    description: A response header naming the engine that answered, recorded as C(engine).
    type: str
  watch:
    description: A command (argv) whose output changes are recorded with their time.
    type: list
    elements: str
  watch_interval_s:
    description: Seconds between runs of O(watch).
    type: float
    default: 0.05
extends_documentation_fragment:
  - onprem.deepseek.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: none
    details: The load is real requests; a check run skips it.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
author:
  - onprem.deepseek contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Load the global entry point while the drill fails a site
  onprem.deepseek.dr_load:
    url: https://entry.example.internal/v1/chat/completions
    ca_path: /etc/pki/onprem/site-ca.pem
    api_key: "{{ lookup('ansible.builtin.file', drill_key_file) }}"
    model: deepseek-r1
    duration_s: 90
  async: 150
  poll: 0
  register: drill_load
"""

RETURN = r"""
samples:
  description: One entry per request in start order - C(start), C(end) (seconds), C(ok), C(site), C(streamed), and C(engine) with O(engine_header).
  returned: always
  type: list
  elements: dict
failures:
  description: Each failure's C(start) and C(why) (the status, or the error's name).
  returned: always
  type: list
  elements: dict
watched:
  description: Each change of O(watch)'s output, C(time) and C(output) (null when the command failed).
  returned: always
  type: list
  elements: dict
requests:
  description: Requests sent.
  returned: always
  type: int
failed_requests:
  description: Requests that did not succeed.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.onprem.deepseek.plugins.module_utils._dr_load import DrLoadError, run_load


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            server_name=dict(type="str"),
            ca_path=dict(type="path"),
            api_key=dict(type="str", required=True, no_log=True),
            model=dict(type="str", required=True),
            max_tokens=dict(type="int", default=8, no_log=False),
            workers=dict(type="int", default=3),
            stream_every=dict(type="int", default=4),
            timeout_s=dict(type="float", default=2.0),
            duration_s=dict(type="float", default=60.0),
            max_requests=dict(type="int", default=20000),
            stop_file=dict(type="path"),
            engine_header=dict(type="str"),
            watch=dict(type="list", elements="str"),
            watch_interval_s=dict(type="float", default=0.05),
            interval_s=dict(type="float", default=0.0),
        ),
        supports_check_mode=False,
    )
    try:
        result = run_load(module.params)
    except DrLoadError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
