# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: gateway_policy
short_description: Compile the gateway's roles, principals and keys into the table nginx enforces
version_added: 0.2.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - "Turns C(gateway_roles) and C(gateway_principals) into the JSON policy that the gateway's Lua
    code only looks things up in: per principal the models it may read and execute, its limits, and an
    index of API key ids to their salted scrypt hashes (never a key in clear). Anything not granted is
    denied."
  - "A principal's O(principals[].keys) entries are stored hashes (C(scrypt$...)) or names of API keys that
    the C(pki) role issued on the host; names are looked up in O(stored_hashes). C(revoked_keys) entries
    are key ids or such names."
  - "A principal's O(principals[].client_certificates) are the subjects of client certificates that prove it, exactly as
    nginx's C($ssl_client_s_dn) prints them (RFC 2253, most specific first, for example
    C(CN=analyst-app,O=onprem.deepseek)); a subject belongs to one principal. C(revoked_certificates) are serials in hex
    (C(openssl x509 -noout -serial)); a revoked serial proves nobody, whichever principal lists it."
  - "O(splits) (C(gateway_splits)) are checked too, so that a bad split fails with the same kind of
    message, but they are not part of the result: the gateway reads them from their own file."
  - "Every error names the variable path, for example C(gateway_principals[1].roles[0]: unknown role 'x')."
  - Used by the C(gateway) role in its preflight phase.
positional: _input
options:
  _input:
    description: C(gateway_roles), role name to C(resources) (C(model/<pattern>)) and C(actions).
    type: dict
    required: true
  principals:
    description: >-
      C(gateway_principals), each with C(name), C(roles), optional C(keys), C(revoked_keys), C(client_certificates),
      C(revoked_certificates), C(limits).
    type: list
    elements: dict
    required: true
  models:
    description: The model names the gateway serves (C(gateway_models)).
    type: list
    elements: str
    required: true
  defaults:
    description: Limits a principal leaves out (C(gateway_default_limits)).
    type: dict
    default: {}
  keys:
    description: Further stored hashes per principal name (C(gateway_keys)).
    type: dict
    default: {}
  stored_hashes:
    description: API key name to the stored hash read from the host, for keys named by name.
    type: dict
    default: {}
  pending:
    description:
      - Names of API keys the pki role issues later in the same run (its C(pki_api_keys) on the host).
      - A named key in this list and not yet in O(stored_hashes) is left out instead of failing, so that the
        preflight of a first run can check everything else; the role compiles again once pki has run.
    type: list
    elements: str
    default: []
  splits:
    description: C(gateway_splits), checked only.
    type: list
    elements: dict
    default: []
"""

EXAMPLES = r"""
- name: Compile the gateway policy
  ansible.builtin.set_fact:
    policy: >-
      {{ gateway_roles | onprem.deepseek.gateway_policy(principals=gateway_principals, models=gateway_models,
                                                         defaults=gateway_default_limits, stored_hashes=hashes,
                                                         splits=gateway_splits) }}
"""

RETURN = r"""
_value:
  description: The compiled policy (version 1), written to the gateway host as JSON.
  type: dict
  contains:
    version:
      description: Format version of the table.
      type: int
      sample: 1
    generation:
      description: SHA-256 of everything else; changes with any change to the policy.
      type: str
      sample: 3f5a0c...
    models:
      description: The served models, sorted.
      type: list
      elements: str
      sample: [deepseek-r1]
    principals:
      description: Principal name to its C(roles), C(allow) (action to models), C(limits) and C(client_certificates).
      type: dict
    keys:
      description: Key id to its principal and scrypt parameters, salt and hash; revoked keys left out.
      type: dict
    revoked:
      description: Revoked key ids.
      type: list
      elements: str
    certificates:
      description: Client certificate subject (RFC 2253) to its principal.
      type: dict
      sample: {"CN=analyst-app,O=onprem.deepseek": analyst}
    revoked_certificates:
      description: Revoked client certificate serials, upper-case hex without leading zeros.
      type: list
      elements: str
      sample: ["1A2B"]
    unmatched:
      description: Role resources that match no served model (variable paths).
      type: list
      elements: str
      sample: ["gateway_roles.ops.resources[0]"]
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.onprem.deepseek.plugins.module_utils._gateway_policy import (
    KEY_ID_RE,
    GatewayPolicyError,
    compile_policy,
    compile_splits,
)
from ansible_collections.onprem.deepseek.plugins.module_utils._pki_secrets import SecretError, parse_hash


def _stored(name, where, stored_hashes, pending):
    """The stored hash of API key ``name``; None while the pki role has yet to issue it."""
    if name in stored_hashes:
        return stored_hashes[name].strip()
    if name in pending:
        return None
    raise GatewayPolicyError("%s: no API key named %r is stored on this host (pki_api_keys)" % (where, name))


def _resolve_keys(principals, stored_hashes, pending):
    """Principals with key names replaced by the hashes stored on the host, revoked names by key ids."""
    if not isinstance(principals, list):
        return principals
    resolved = []
    for i, spec in enumerate(principals):
        if not isinstance(spec, dict):
            resolved.append(spec)
            continue
        spec = dict(spec)
        where = "gateway_principals[%d]" % i
        if isinstance(spec.get("keys"), list):
            keys = []
            for j, key in enumerate(spec["keys"]):
                if isinstance(key, str) and not key.startswith("scrypt$"):
                    key = _stored(key, "%s.keys[%d]" % (where, j), stored_hashes, pending)
                if key is not None:
                    keys.append(key)
            spec["keys"] = keys
        if isinstance(spec.get("revoked_keys"), list):
            revoked = []
            for j, key in enumerate(spec["revoked_keys"]):
                if isinstance(key, str) and not KEY_ID_RE.match(key):
                    key = _stored(key, "%s.revoked_keys[%d]" % (where, j), stored_hashes, pending)
                    key = key if key is None else _key_id(key, "%s.revoked_keys[%d]" % (where, j))
                if key is not None:
                    revoked.append(key)
            spec["revoked_keys"] = revoked
        resolved.append(spec)
    return resolved


def _key_id(stored, where):
    try:
        return parse_hash(stored)["key_id"]
    except SecretError as exc:
        raise GatewayPolicyError("%s: %s" % (where, exc)) from None


def gateway_policy(roles, principals=None, models=None, defaults=None, keys=None, stored_hashes=None, pending=None,
                   splits=None):
    try:
        if principals is None or models is None:
            raise GatewayPolicyError("principals and models are required")
        compile_splits(splits if splits is not None else [])
        return compile_policy(roles, _resolve_keys(principals, stored_hashes or {}, pending or []), keys or {}, models,
                              defaults or {})
    except GatewayPolicyError as exc:
        message = str(exc)
        # compile_policy calls the served models "models"; the role's variable is gateway_models.
        if message.startswith("models"):
            message = "gateway_" + message
        raise AnsibleFilterError("gateway_policy: %s" % message)


class FilterModule(object):
    def filters(self):
        return {'gateway_policy': gateway_policy}
