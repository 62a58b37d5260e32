#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: service_states
short_description: Read systemd service states with two C(systemctl) listings
version_added: 0.2.0
description:
  - Runs C(systemctl list-units) and C(systemctl list-unit-files) (service units only) and returns
    each unit's run state and unit-file state, in the shape of M(ansible.builtin.service_facts)'
    C(services).
  - Unlike M(ansible.builtin.service_facts) it does not run every SysV script's status nor one
    C(systemctl show) per unit file, which takes minutes on a slow host. SysV-only scripts are not listed.
  - Returns a result to register, not facts, so it never replaces C(ansible_facts.services).
  - Each listing waits up to 120 s for systemd (C(SYSTEMD_BUS_TIMEOUT)) and is tried up to three times
    while it times out, so a busy host does not fail the run.
extends_documentation_fragment:
  - onprem.deepseek.attributes
  - onprem.deepseek.attributes.read_only
author:
  - onprem.deepseek contributors (!UNKNOWN)
options:
  pattern:
    description:
      - A Python regular expression; only units whose name it finds (C(re.search)) are returned.
      - Without it every service unit is returned.
    type: str
notes:
  - Needs systemd as the host's init system; fails, saying so, without it.
seealso:
  - module: ansible.builtin.service_facts
"""

EXAMPLES = r"""
- name: Read the inference units
  onprem.deepseek.service_states:
    pattern: '^deepseek-inference-.+\.service$'
  register: inference_units

- name: Show the running ones
  ansible.builtin.debug:
    msg: "{{ inference_units.services | dict2items | selectattr('value.state', 'eq', 'running') | map(attribute='key') | list }}"
"""

RETURN = r"""
services:
  description: Service units by name.
  returned: success
  type: dict
  contains:
    name:
      description: The unit's name.
      type: str
      sample: ssh.service
    state:
      description: V(running) when the unit's sub-state is running, otherwise V(stopped).
      type: str
      sample: running
    status:
      description:
        - V(not-found), V(masked) or V(failed) when systemd reports it; otherwise the unit-file state
          (V(enabled), V(disabled), V(static), ...) or, for a loaded unit without a unit file, its active state.
      type: str
      sample: enabled
    source:
      description: Always V(systemd).
      type: str
      sample: systemd
  sample:
    ssh.service: {name: ssh.service, state: running, status: enabled, source: systemd}
"""

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.onprem.deepseek.plugins.module_utils._service_states import (
    LIST_UNIT_FILES, LIST_UNITS, service_states)


# systemctl reads SYSTEMD_BUS_TIMEOUT (systemd 246 and later) for its D-Bus calls.
ENVIRONMENT = {'LC_ALL': 'C', 'SYSTEMD_BUS_TIMEOUT': '120s'}
BUS_ATTEMPTS = 3


def main():
    module = AnsibleModule(argument_spec=dict(pattern=dict(type='str')), supports_check_mode=True)
    pattern = module.params['pattern']
    if pattern:
        try:
            re.compile(pattern)
        except re.error as exc:
            module.fail_json(msg="pattern: not a regular expression: %s" % exc)
    systemctl = module.get_bin_path('systemctl', required=True)
    outputs = []
    for args in (LIST_UNITS, LIST_UNIT_FILES):
        # A busy host's systemd may answer after systemctl's default 25 s: wait longer, and retry a
        # call that still timed out (the listings only read).
        for _attempt in range(BUS_ATTEMPTS):
            rc, out, err = module.run_command([systemctl] + args, environ_update=ENVIRONMENT)
            if rc == 0 or 'timed out' not in err:
                break
        if rc != 0:
            module.fail_json(msg="systemctl %s failed (rc %d): %s (service_states needs systemd as the init system)"
                             % (args[0], rc, err.strip()))
        outputs.append(out)
    module.exit_json(changed=False, services=service_states(outputs[0], outputs[1], pattern))


if __name__ == '__main__':
    main()
