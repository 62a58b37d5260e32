# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: check_inputs_select
short_description: The roles whose input checks a run needs, from its tags
version_added: 0.2.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - Used by C(playbooks/check_inputs.yml). Keeps the entries of the role list that the run applies, in order.
  - Every role without C(--tags); with C(--tags), the roles named by a tag (the role's name or a tag C(<role>_...)).
    A tag that names no role selects every role.
  - A role that C(--skip-tags) names whole is left out; a skipped phase tag leaves the role in.
  - Only roles in O(only) when it is given (the roles the importing playbook applies).
  - The roles in the C(needs) of a kept role are always kept, since their read-only preflight publishes the facts
    it reads.
  - Fails on a list entry without C(role) and C(hosts), a role listed twice, a C(needs) entry that is not listed
    before the role, or an O(only) entry that is not listed.
positional: _input, run_tags, skip_tags
options:
  _input:
    description: The roles, each C({role, hosts, needs}), providers before the roles that need them.
    type: list
    elements: dict
    required: true
  run_tags:
    description: The run's C(ansible_run_tags).
    type: list
    elements: str
    required: true
  skip_tags:
    description: The run's C(ansible_skip_tags).
    type: list
    elements: str
    required: true
  only:
    description: The roles the importing playbook applies; V(null) for every role.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Check the inputs of the roles this run applies
  ansible.builtin.include_role:
    name: "onprem.deepseek.{{ item.role }}"
    tasks_from: preflight.yml
  loop: "{{ check_inputs_roles | onprem.deepseek.check_inputs_select(ansible_run_tags, ansible_skip_tags) }}"
"""

RETURN = r"""
_value:
  description: The entries of the input list to check, in their order.
  type: list
  elements: dict
  sample: [{role: gpu_host, hosts: deepseek_nodes, needs: []}, {role: nvidia_driver, hosts: deepseek_nodes, needs: [gpu_host]}]
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.module_utils._check_inputs import (
    CheckInputsError,
    select,
)


def check_inputs_select(roles, run_tags, skip_tags, only=None):
    try:
        return select(roles, run_tags, skip_tags, only)
    except CheckInputsError as exc:
        raise AnsibleFilterError("check_inputs_select: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {'check_inputs_select': check_inputs_select}
