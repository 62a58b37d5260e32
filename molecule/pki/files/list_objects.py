"""List the labels of the key objects in a token, to check which keys a rotation left.

Arguments: PKCS#11 library, token label, PIN file. Prints JSON {"private": [...], "public": [...],
"secret": [...]} with sorted labels. The PIN is read from the file, never from arguments.
"""
import json
import sys

import pkcs11
from pkcs11 import Attribute, ObjectClass

lib_path, token_label, pin_file = sys.argv[1:4]
with open(pin_file) as handle:
    pin = handle.read().splitlines()[0]
lib = pkcs11.lib(lib_path)
result = {}
with lib.get_token(token_label=token_label).open(user_pin=pin) as session:
    for name, cls in (("private", ObjectClass.PRIVATE_KEY), ("public", ObjectClass.PUBLIC_KEY),
                      ("secret", ObjectClass.SECRET_KEY)):
        result[name] = sorted(obj[Attribute.LABEL] for obj in session.get_objects({Attribute.CLASS: cls}))
lib.finalize()
print(json.dumps(result))
