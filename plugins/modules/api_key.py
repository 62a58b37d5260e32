#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: api_key
short_description: Generate an API key once and return only its salted hash
version_added: 0.1.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - Generates an API key (C(<prefix>_<key id>_<secret>), 32 random bytes of secret), writes it once to
    O(output_path) with mode 0600 for the operator, and returns only its salted scrypt hash, which is what
    the hosts that check the key store.
  - Run it on the controller (C(delegate_to=localhost)) and pass the hash the host already has in
    O(stored_hash); then nothing is generated and the key is not shown again.
  - The key is never returned or logged. An existing O(output_path) is never overwritten.
options:
  prefix:
    description: First part of the key, naming what it is for (2-16 lowercase letters or digits).
    type: str
    default: dsk
  output_path:
    description: New file (mode 0600) that receives the key, on the host the module runs on.
    type: path
    required: true
  stored_hash:
    description: The hash the checking host already stores, if any. When set, no key is generated.
    type: str
  reuse:
    description:
      - For a key that several hosts check (for example every site's gateway). When O(output_path)
        already exists, the key in it is the key. Nothing is generated, the stored hash is kept if it
        matches that key, and otherwise the hash of that key is returned (changed), also in check mode.
      - The file must hold a key of this collection's format with O(prefix).
    type: bool
    default: false
    version_added: 0.2.0
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports that a key would be generated, without a hash.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
"""

EXAMPLES = r"""
- name: Read the stored hash of the gateway's admin key
  ansible.builtin.slurp:
    src: /etc/deepseek/api-keys/admin.hash
  register: stored
  failed_when: false

- name: Generate the key once on the controller
  onprem.deepseek.api_key:
    prefix: dsk
    output_path: "{{ lookup('ansible.builtin.env', 'HOME') }}/.onprem-deepseek/admin.key"
    stored_hash: "{{ stored.content | default('') | b64decode }}"
  delegate_to: localhost
  become: false
  register: admin_key
"""

RETURN = r"""
hash:
  description: Salted scrypt hash of the key (C(scrypt$n$r$p$id$salt$hash)); V(null) in check mode for a new key.
  returned: success
  type: str
  sample: scrypt$16384$8$1$0a1b2c3d4e5f$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=
key_id:
  description: Public id part of the key, for finding its record.
  returned: success
  type: str
  sample: 0a1b2c3d4e5f
output_path:
  description: The file the new key was written to, or V(null) when none was generated.
  returned: success
  type: str
  sample: /root/.onprem-deepseek/admin.key
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.onprem.deepseek.plugins.module_utils._pki_secrets import SecretError, issue


def main():
    module = AnsibleModule(
        argument_spec=dict(
            prefix=dict(type="str", default="dsk"),
            output_path=dict(type="path", required=True),
            stored_hash=dict(type="str", no_log=False),
            reuse=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    try:
        result = issue(module.params["prefix"], module.params["output_path"], module.params["stored_hash"],
                       check_mode=module.check_mode, reuse=module.params["reuse"])
    except SecretError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
