"""Try to get a private key out of the token, as an attacker with the PIN would.

Arguments: PKCS#11 library, token label, PIN file, key label, AES wrapping key label. Prints JSON
with what each attempt returned. The PIN is read from the file, never from arguments.
"""
import json
import sys

import pkcs11
from pkcs11 import Attribute, Mechanism, ObjectClass
from pkcs11 import exceptions as p11exc

lib_path, token_label, pin_file, key_label, wrap_label = sys.argv[1:6]
with open(pin_file) as handle:
    pin = handle.read().splitlines()[0]
lib = pkcs11.lib(lib_path)
result = {}
with lib.get_token(token_label=token_label).open(user_pin=pin) as session:
    key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=key_label)
    result["extractable"] = key[Attribute.EXTRACTABLE]
    result["sensitive"] = key[Attribute.SENSITIVE]
    result["never_extractable"] = key[Attribute.NEVER_EXTRACTABLE]
    try:
        value = key[Attribute.VALUE]
        result["read_value"] = "GOT %d BYTES" % len(value)
    except p11exc.PKCS11Error as exc:
        result["read_value"] = exc.__class__.__name__
    wrapper = session.get_key(object_class=ObjectClass.SECRET_KEY, label=wrap_label)
    try:
        blob = wrapper.wrap_key(key, mechanism=Mechanism.AES_KEY_WRAP_PAD)
        result["wrap"] = "GOT %d BYTES" % len(blob)
    except p11exc.PKCS11Error as exc:
        result["wrap"] = exc.__class__.__name__
lib.finalize()
print(json.dumps(result))
