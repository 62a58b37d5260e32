# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: tree_out_of_place
short_description: The files and directories of a controller's tree that a host does not have in place
version_added: 0.2.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - Compares the tree under O(source) on the controller with what C(ansible.builtin.find) found under O(dest) on
    the host (C(recurse), C(file_type=any), C(hidden), C(get_checksum) with the default SHA-1).
  - A file is in place with the same content, O(mode), O(owner) and O(group); a directory when the host has a
    directory there. What the host has beyond the source is not reported.
  - Lets a role skip a directory copy, which costs two module runs per file even when nothing changed.
  - Fails when O(source) is not a directory, holds no file or holds a link.
positional: _input, source, dest
options:
  _input:
    description: The C(files) of C(ansible.builtin.find) under O(dest).
    type: list
    elements: dict
    required: true
  source:
    description: The tree on the controller.
    type: path
    required: true
  dest:
    description: Where the host has it.
    type: path
    required: true
  mode:
    description: The mode of each file, as C(find) gives it.
    type: str
    default: '0644'
  owner:
    description: The owner of each file.
    type: str
    default: root
  group:
    description: The group of each file.
    type: str
    default: root
"""

EXAMPLES = r"""
- name: Install the package only when a file is missing or differs
  ansible.builtin.copy:
    src: lua/
    dest: /usr/local/share/example/lua/
    mode: "0644"
  when: installed.files | onprem.deepseek.tree_out_of_place(role_path ~ '/files/lua', '/usr/local/share/example/lua') | length > 0
"""

RETURN = r"""
_value:
  description: The paths, relative to O(source), that are missing or differ on the host, sorted.
  type: list
  elements: str
  sample: [onprem_gateway/auth.lua]
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.module_utils._file_tree import (
    FileTreeError,
    out_of_place,
    source_tree,
)


def tree_out_of_place(found, source, dest, mode='0644', owner='root', group='root'):
    try:
        return out_of_place(found, source_tree(source), dest, mode, owner, group)
    except FileTreeError as exc:
        raise AnsibleFilterError("tree_out_of_place: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {'tree_out_of_place': tree_out_of_place}
