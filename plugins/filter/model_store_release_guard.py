# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: model_store_release_guard
short_description: The released model version a run from the inventory must not silently switch away from
version_added: 0.2.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - "On the text of a model store's C(.release.json) (V('') when it has none), the version that
    C(playbooks/model_release.yml) made current and that a run naming O(wanted) would switch away from, or V(null).
    That is the case when the record's C(release) is the O(current) version, O(wanted) is another one and
    O(replace_release) is false. The C(model_store) role's preflight refuses such a run before any change; the
    C(onprem.deepseek.model_artifact) module decides the same way (its O(onprem.deepseek.model_artifact#module:replace_release))."
  - A damaged record fails naming O(path).
positional: _input
options:
  _input:
    description: The record's text.
    type: str
    required: true
  current:
    description: The version C(current) points at now (V(null) when none).
    type: str
    required: true
  wanted:
    description: The version the run names (C(model_store_version)).
    type: str
    required: true
  replace_release:
    description: Switch away from a released version on purpose (C(model_store_replace_release)).
    type: bool
    default: false
  path:
    description: The record's path, for the error of a damaged one.
    type: str
    default: .release.json
"""

EXAMPLES = r"""
- name: Refuse to switch back from a released version
  ansible.builtin.assert:
    that: released is none
    fail_msg: "model_store_version: {{ released }} was released; set model_store_version: {{ released }}"
  vars:
    released: "{{ record_text | onprem.deepseek.model_store_release_guard(model_store_current.version, model_store_version) }}"
"""

RETURN = r"""
_value:
  description: The released version that is current and would be left, or V(null).
  type: str
  sample: "2025-05-28"
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.module_utils._artifact import release_guard
from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_manifest import ArtifactError
from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_store import parse_release_record


def model_store_release_guard(text, current, wanted, replace_release=False, path=".release.json"):
    if not text:
        return None
    try:
        return release_guard(parse_release_record(text, path), current, wanted, replace_release)
    except ArtifactError as exc:
        raise AnsibleFilterError("model_store_release_guard: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {'model_store_release_guard': model_store_release_guard}
