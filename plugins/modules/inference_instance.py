#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: inference_instance
short_description: Read what an inference unit's process was started from, and wait until it answers /health
version_added: 0.1.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - Reads the systemd unit's state (C(ActiveState), C(SubState), C(MainPID), C(NeedDaemonReload)) and the
    value of O(variable) in the environment its main process was started with (C(/proc/<MainPID>/environ)).
    The inference role writes a fingerprint of each instance's unit, configuration and key there, and
    restarts an instance whose running process reports another one, so that a run interrupted between
    rewriting the files and restarting is completed by the next run.
  - With O(url), then polls it every O(interval) seconds until it answers 200, for at most O(timeout)
    seconds, and stops early when the unit's main process exits or is replaced during start-up (a
    failed start that systemd would otherwise keep restarting). Fails when the instance is not ready,
    with the reason; the result keeps the same fields.
  - Read-only; never reports a change.
options:
  unit:
    description: The unit, for example V(deepseek-inference-main.service).
    type: str
    required: true
  variable:
    description: Variable of the process environment to return as RV(started_from).
    type: str
    default: DEEPSEEK_INFERENCE_DEPLOYED
  deployed_file:
    description:
      - Environment file (C(NAME=value) lines) whose O(variable) says what is deployed now. With it the module
        returns RV(deployed) and RV(outdated).
    type: path
  url:
    description: Health URL to wait for, for example V(http://10.0.1.11:8000/health). Omitted, nothing is waited for.
    type: str
  timeout:
    description: Seconds to wait for O(url).
    type: int
    default: 900
  interval:
    description: Seconds between attempts.
    type: int
    default: 2
extends_documentation_fragment:
  - onprem.deepseek.attributes.read_only
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    support: full
    platforms: posix
notes:
  - Runs on the node, as root (it reads another user's process environment).
  - Proxies from the environment are not used.
"""

EXAMPLES = r"""
- name: Read whether the running instance was started from the deployed files
  onprem.deepseek.inference_instance:
    unit: deepseek-inference-main.service
    deployed_file: /etc/deepseek/inference/main.deployed
  register: running

- name: Restart it when it was not
  ansible.builtin.systemd_service:
    name: deepseek-inference-main.service
    state: restarted
  when: running.outdated

- name: Wait until the restarted instance answers /health
  onprem.deepseek.inference_instance:
    unit: deepseek-inference-main.service
    url: http://10.0.1.11:8000/health
    timeout: 900
"""

RETURN = r"""
unit:
  description: The unit.
  returned: always
  type: str
  sample: deepseek-inference-main.service
pid:
  description: C(MainPID) when the module started (V(0) when nothing runs).
  returned: always
  type: str
  sample: "2637"
state:
  description: C(ActiveState) (at the end of the wait with O(url)).
  returned: always
  type: str
  sample: active
sub:
  description: C(SubState).
  returned: always
  type: str
  sample: running
loaded:
  description: Whether systemd knows the unit (C(LoadState=loaded)).
  returned: always
  type: bool
  sample: true
need_daemon_reload:
  description: Whether the unit file changed on disk since systemd last read it.
  returned: always
  type: bool
  sample: false
started_from:
  description: The value of O(variable) in the running main process's environment; null when nothing runs or it is unset.
  returned: always
  type: str
  sample: 3f1d0c6a9b2e...
deployed:
  description: The value of O(variable) in O(deployed_file); null when the file or the variable is missing.
  returned: with O(deployed_file)
  type: str
  sample: 3f1d0c6a9b2e...
outdated:
  description: Whether the running process was started from something else than RV(deployed) (false when nothing runs).
  returned: with O(deployed_file)
  type: bool
  sample: false
health:
  description: Last status of O(url) (V(0) when it did not answer).
  returned: with O(url)
  type: int
  sample: 200
ready:
  description: Whether O(url) answered 200 while the unit kept its main process.
  returned: with O(url)
  type: bool
  sample: true
seconds:
  description: Seconds waited.
  returned: with O(url)
  type: float
  sample: 96.4
reason:
  description: Why the instance is not ready.
  returned: with O(url), when not ready
  type: str
  sample: the unit left its start (activating/auto-restart, MainPID 2637 -> 0)
last_error:
  description: The last error of a request to O(url).
  returned: with O(url), when a request failed
  type: str
  sample: "[Errno 111] Connection refused"
"""

import subprocess

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.onprem.deepseek.plugins.module_utils._inference_instance import (
    file_value,
    outdated,
    started_from,
    unit_properties,
    wait_ready,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            unit=dict(type="str", required=True),
            variable=dict(type="str", default="DEEPSEEK_INFERENCE_DEPLOYED"),
            deployed_file=dict(type="path"),
            url=dict(type="str"),
            timeout=dict(type="int", default=900),
            interval=dict(type="int", default=2),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["timeout"] < 0 or params["interval"] < 1:
        module.fail_json(msg="timeout must not be negative and interval must be at least 1")
    try:
        props = unit_properties(params["unit"])
    except (OSError, subprocess.CalledProcessError) as exc:
        module.fail_json(msg="systemctl show %s: %s" % (params["unit"], getattr(exc, "stderr", None) or exc))
    result = {
        "unit": params["unit"],
        "pid": props.get("MainPID", "0"),
        "state": props.get("ActiveState"),
        "sub": props.get("SubState"),
        "loaded": props.get("LoadState") == "loaded",
        "need_daemon_reload": props.get("NeedDaemonReload") == "yes",
        "started_from": started_from(props, params["variable"]),
    }
    if params["deployed_file"]:
        try:
            with open(params["deployed_file"]) as handle:
                result["deployed"] = file_value(handle.read(), params["variable"])
        except (IOError, OSError):
            result["deployed"] = None
        result["outdated"] = outdated(result["started_from"], result["deployed"])
    if params["url"]:
        result.update(wait_ready(params["unit"], params["url"], params["timeout"], interval=params["interval"]))
        if not result["ready"]:
            module.fail_json(msg="%s did not become ready (%s)" % (params["unit"], result.get("reason")), changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
