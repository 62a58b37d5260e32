#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pkcs11_key
short_description: Ensure a non-extractable key exists in a PKCS#11 token (HSM or SoftHSM2)
version_added: 0.1.0
author:
  - onprem.deepseek contributors (!UNKNOWN)
description:
  - Ensures that a token reached through a PKCS#11 library holds a key with a given label, generated
    inside the token. The key is an EC key pair (P-256 or P-384), an RSA key pair or an AES-256 secret key.
  - New keys are sensitive (C(CKA_SENSITIVE)) and, unless O(extractable=true) is asked for,
    non-extractable (C(CKA_EXTRACTABLE=false)), so their private or secret value never leaves the token.
  - Returns the public key as PEM with its SHA-256 fingerprint, and an RFC 7512 C(pkcs11:) URI for the
    OpenSSL pkcs11 engine or provider, so that a CSR can be signed and a TLS key used through the token.
  - An existing key with the label is left alone when it matches the request. When it does not
    (another type, curve or size, another id, extractable or not sensitive, other usage), the module
    fails and says why. It never changes, replaces or silently destroys a key.
  - With O(state=absent) a key is deleted only when O(force=true); without it the module fails when the
    key exists, because deleting a key cannot be undone.
  - The PIN is given in O(pin) or read on the managed host from O(pin_file). It is never returned, logged
    or passed to another process.
options:
  label:
    description:
      - Label (C(CKA_LABEL)) of the key. It identifies the key and must be unique among the token's keys.
      - For a key pair, both the private and the public key object carry it.
    type: str
    required: true
  id:
    description:
      - C(CKA_ID) of the key as hex bytes, for example V(01), V(0a1b2c) or V(0a:1b:2c).
      - When an existing key has another id, the module fails.
      - When not given, an existing key's id is accepted as it is, and a new key gets the first 16 bytes of the
        SHA-256 of O(label), so that check mode can report it.
    type: str
  key_type:
    description:
      - Type of key. Required with O(state=present).
      - With O(state=absent), when given, a key of another type is not deleted.
    type: str
    choices: [ec, rsa, aes]
  curve:
    description:
      - Curve of an EC key. V(secp256r1) when not given.
      - Only with O(key_type=ec).
    type: str
    choices: [secp256r1, secp384r1]
  rsa_bits:
    description:
      - Modulus size of an RSA key. V(3072) when not given.
      - Only with O(key_type=rsa).
    type: int
    choices: [2048, 3072, 4096]
  aes_bits:
    description:
      - Size of an AES key. V(256) when not given.
      - Only with O(key_type=aes).
    type: int
    choices: [256]
  usage:
    description:
      - What the key may be used for. For a key pair, V(sign), V(decrypt), V(unwrap) and V(derive) are set
        on the private key and V(verify), V(encrypt) and V(wrap) on the public key.
      - EC keys allow V(sign), V(verify), V(derive); RSA keys V(sign), V(verify), V(encrypt), V(decrypt),
        V(wrap), V(unwrap); AES keys all of them.
      - When not given, a new key gets V([sign, verify]) (EC, RSA) or V([encrypt, decrypt, wrap, unwrap]) (AES),
        and the usage of an existing key is not checked. When given, an existing key with other usage makes
        the module fail.
    type: list
    elements: str
    choices: [sign, verify, encrypt, decrypt, wrap, unwrap, derive]
  extractable:
    description:
      - Create the key with C(CKA_EXTRACTABLE=true), so that it can be wrapped (exported encrypted under
        another key). The key stays sensitive, so its value can never be read in clear.
      - When V(false), an existing key that is extractable, or ever was (C(CKA_NEVER_EXTRACTABLE=false)),
        makes the module fail.
    type: bool
    default: false
  state:
    description:
      - V(present) creates the key if there is none with the label.
      - V(absent) deletes the key objects with the label (private, public or secret key; certificates and
        data objects are kept), and only when O(force=true).
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - Needed for O(state=absent) to delete an existing key.
      - It has no effect with O(state=present), because a key that does not match is never replaced.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - onprem.deepseek.pkcs11_token
attributes:
  check_mode:
    support: full
    details: Nothing is generated or deleted. The returned key is the one that would be created, without
      its public key, which only exists once the token has generated it.
  diff_mode:
    support: full
    details: The diff shows the key's label, id, type, size, usage and attributes before and after.
  platform:
    support: full
    platforms: posix
notes:
  - Needs python-pkcs11 on the managed host (C(python3-pkcs11) is not packaged for Debian 12; install it
    with pip in the Python that runs Ansible modules).
  - The PIN is logged in to the token inside the module's own process through the PKCS#11 library; no
    command line carries it. Ansible masks the PIN value in everything the module returns; with a short
    numeric PIN this can also mask a matching run of digits in the returned id or fingerprint, so use PINs
    of at least eight characters.
  - For SoftHSM2 the configuration file is C(/etc/softhsm/softhsm2.conf) or the file named by the
    E(SOFTHSM2_CONF) environment variable (set it with the task's C(environment) keyword).
  - Errors name the token and the library, never the PIN. A missing token lists the labels of the tokens
    that are present.
requirements:
  - python-pkcs11 on the managed host (tested with 0.10.1)
  - a PKCS#11 library, for example SoftHSM2 (package C(softhsm2))
seealso:
  - name: RFC 7512, the PKCS#11 URI scheme
    description: The format of RV(key.uri).
    link: https://www.rfc-editor.org/rfc/rfc7512
"""

EXAMPLES = r"""
- name: Ensure the TLS key of the inference gateway exists in SoftHSM2
  onprem.deepseek.pkcs11_key:
    token_label: deepseek
    pin_file: /etc/deepseek/hsm/user.pin
    label: gateway-tls
    key_type: ec
    curve: secp384r1
    usage: [sign]
  register: tls_key

- name: Give the public key to the CSR step
  ansible.builtin.copy:
    content: "{{ tls_key.key.public_key_pem }}"
    dest: /etc/deepseek/pki/gateway-tls.pub.pem
    mode: "0644"

- name: Ensure an AES-256 key that wraps the LUKS key of the model disks on a Thales Luna partition
  onprem.deepseek.pkcs11_key:
    module_path: /usr/safenet/lunaclient/lib/libCryptoki2_64.so
    token_label: deepseek-prod
    pin: "{{ vault_hsm_user_pin }}"
    label: luks-wrap
    id: "4c55"
    key_type: aes
    usage: [wrap, unwrap, encrypt, decrypt]

- name: Ensure an RSA-3072 signing key in a sandbox token
  onprem.deepseek.pkcs11_key:
    token_label: sandbox
    pin: "{{ sandbox_hsm_pin }}"
    label: pki-signer
    key_type: rsa
    rsa_bits: 3072
  environment:
    SOFTHSM2_CONF: /etc/softhsm/softhsm2.conf

- name: Delete a retired key
  onprem.deepseek.pkcs11_key:
    token_label: deepseek
    pin_file: /etc/deepseek/hsm/user.pin
    label: gateway-tls-2024
    state: absent
    force: true
"""

RETURN = r"""
action:
  description: What the module did (or would do in check mode).
  returned: success
  type: str
  choices: [create, keep, delete, none]
  sample: create
key:
  description:
    - The key on the token after the run. With O(state=absent), the key that was deleted (or would be in
      check mode). V(null) when there is none.
  returned: success
  type: dict
  contains:
    label:
      description: C(CKA_LABEL) of the key.
      type: str
      returned: always
      sample: gateway-tls
    id:
      description: C(CKA_ID) of the key as lowercase hex (empty string when the key has none).
      type: str
      returned: always
      sample: 7a3c1f0e9b2d4a65c8e1f0a2b3c4d5e6
    type:
      description: Key type.
      type: str
      returned: always
      sample: ec
    curve:
      description: Curve of an EC key, V(null) for other types or a curve the module does not know.
      type: str
      returned: always
      sample: secp384r1
    bits:
      description: Size of an RSA or AES key in bits, V(null) for EC keys.
      type: int
      returned: always
      sample: 3072
    objects:
      description: The key objects that carry the label, V(private) and V(public) for a key pair, V(secret) for AES.
      type: list
      elements: str
      returned: always
      sample: [private, public]
    usage:
      description: The usage flags that are set on the key's objects.
      type: list
      elements: str
      returned: always
      sample: [sign, verify]
    uri:
      description: RFC 7512 URI of the private or secret key object, without any PIN.
      type: str
      returned: always
      sample: "pkcs11:token=deepseek;object=gateway-tls;id=%7A%3C%1F%0E;type=private"
    public_key_pem:
      description:
        - Public key as a PEM C(PUBLIC KEY) (SubjectPublicKeyInfo) for EC and RSA keys.
        - V(null) for AES keys, in check mode for a key not yet created, and for an EC key pair whose
          public key object is missing.
      type: str
      returned: always
      sample: "-----BEGIN PUBLIC KEY-----\nMHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE...\n-----END PUBLIC KEY-----\n"
    public_key_sha256:
      description: SHA-256 of the DER SubjectPublicKeyInfo as lowercase hex, the same as
        C(openssl pkey -pubin -outform DER | sha256sum). V(null) when RV(key.public_key_pem) is.
      type: str
      returned: always
      sample: 1a566043e77215f7067a43439b793eaa2ab1ffaff0b7f498e5c1b0f8e2d3a4b5
    attributes:
      description:
        - Protection attributes of the private or secret key object. V(null) where the token does not tell.
        - V(local) is true when the token generated the key itself.
      type: dict
      returned: always
      sample:
        sensitive: true
        extractable: false
        never_extractable: true
        always_sensitive: true
        local: true
diff:
  description: Label, id, type, size, usage and attributes of the key before and after, V(state=absent) when there is none.
  returned: when diff mode is on
  type: dict
  sample:
    before:
      state: absent
    after:
      state: present
      label: gateway-tls
      id: 7a3c1f0e9b2d4a65c8e1f0a2b3c4d5e6
      type: ec
      curve: secp384r1
      bits: null
      usage: [sign]
      sensitive: true
      extractable: false
      never_extractable: true
      always_sensitive: true
      local: true
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.onprem.deepseek.plugins.module_utils._pkcs11_spec import (
    TOKEN_ARGUMENT_RULES,
    Pkcs11KeyError,
    build_spec,
    module_pin,
    scrub,
    token_argument_spec,
)
from ansible_collections.onprem.deepseek.plugins.module_utils._pkcs11_token import (
    HAS_PKCS11,
    PKCS11_IMPORT_ERROR,
    ensure_key,
)


def main():
    module = AnsibleModule(
        argument_spec=token_argument_spec(
            label=dict(type="str", required=True),
            id=dict(type="str"),
            key_type=dict(type="str", choices=["ec", "rsa", "aes"]),
            curve=dict(type="str", choices=["secp256r1", "secp384r1"]),
            rsa_bits=dict(type="int", choices=[2048, 3072, 4096]),
            aes_bits=dict(type="int", choices=[256]),
            usage=dict(type="list", elements="str",
                       choices=["sign", "verify", "encrypt", "decrypt", "wrap", "unwrap", "derive"]),
            extractable=dict(type="bool", default=False),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            force=dict(type="bool", default=False),
        ),
        required_if=[("state", "present", ["key_type"])],
        supports_check_mode=True,
        **TOKEN_ARGUMENT_RULES
    )
    if not HAS_PKCS11:
        module.fail_json(msg=missing_required_lib("python-pkcs11"), exception=PKCS11_IMPORT_ERROR)

    params = module.params
    pin = params["pin"]
    try:
        spec = build_spec(params)
        pin = module_pin(module)
        result = ensure_key(params["module_path"], params["token_label"], pin, spec, params["state"],
                            force=params["force"], check_mode=module.check_mode)
    except Pkcs11KeyError as exc:
        module.fail_json(msg=scrub(str(exc), pin))
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
