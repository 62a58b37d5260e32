# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""PKCS#11 key requests for onprem.deepseek.pkcs11_key (private to the collection): option
validation, the plan (create, keep, delete or refuse), the comparison of an existing key with the
request, and the token options every module shares. Pure; standard library only.

A key is identified by its CKA_LABEL. An EC or RSA key is a private key object plus, normally, a
public key object with the same label and CKA_ID; an AES key is one secret key object.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote

KEY_TYPES = ("ec", "rsa", "aes")
STATES = ("present", "absent")
USAGES = ("sign", "verify", "encrypt", "decrypt", "wrap", "unwrap", "derive")

# name -> (dotted OID, field size in bytes)
CURVES = {
    "secp256r1": ("1.2.840.10045.3.1.7", 32),
    "secp384r1": ("1.3.132.0.34", 48),
}
RSA_BITS = (2048, 3072, 4096)
AES_BITS = (256,)
DEFAULT_CURVE = "secp256r1"
DEFAULT_RSA_BITS = 3072
DEFAULT_AES_BITS = 256

ALLOWED_USAGE = {
    "ec": ("sign", "verify", "derive"),
    "rsa": ("sign", "verify", "encrypt", "decrypt", "wrap", "unwrap"),
    "aes": USAGES,
}
DEFAULT_USAGE = {
    "ec": ("sign", "verify"),
    "rsa": ("sign", "verify"),
    "aes": ("encrypt", "decrypt", "wrap", "unwrap"),
}
# Which object of a key pair carries each usage flag (PKCS#11 puts them on different objects).
USAGE_OBJECT = {
    "sign": "private",
    "decrypt": "private",
    "unwrap": "private",
    "derive": "private",
    "verify": "public",
    "encrypt": "public",
    "wrap": "public",
}

_HEX_ID_RE = re.compile(r"^(?:0x)?([0-9a-fA-F]{2}(?::?[0-9a-fA-F]{2})*)$")
_MAX_ID_BYTES = 64


class Pkcs11KeyError(Exception):
    """A failure the module reports with fail_json. Messages never contain the PIN."""


class KeySpec(object):
    """The validated request: what key must (or must not) be on the token."""

    def __init__(self, label, key_type=None, curve=None, bits=None, key_id=None, id_given=False,
                 extractable=False, usage=None, usage_given=False):
        self.label = label
        self.key_type = key_type
        self.curve = curve
        self.bits = bits
        self.key_id = key_id
        self.id_given = id_given
        self.extractable = extractable
        self.usage = usage
        self.usage_given = usage_given

    def size_text(self):
        return describe_size(self.key_type, self.curve, self.bits)


def describe_size(key_type, curve, bits):
    if key_type == "ec":
        return "EC %s" % (curve or "unknown curve")
    if key_type in ("rsa", "aes"):
        return "%s-%s" % (key_type.upper(), bits if bits else "unknown size")
    return key_type or "unknown type"


def parse_key_id(text):
    """Parse a CKA_ID given as hex (``0a1b``, ``0A:1B`` or ``0x0a1b``) into bytes."""
    match = _HEX_ID_RE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise Pkcs11KeyError("id %r is not hex bytes (for example 0a1b2c or 0a:1b:2c)" % (text,))
    raw = bytes.fromhex(match.group(1).replace(":", ""))
    if len(raw) > _MAX_ID_BYTES:
        raise Pkcs11KeyError("id is %d bytes long; at most %d are allowed" % (len(raw), _MAX_ID_BYTES))
    return raw


def default_key_id(label):
    """The CKA_ID a new key gets when none is asked for: derived from the label, so that check
    mode can report it and a key created again under the same label gets the same id."""
    return hashlib.sha256(label.encode("utf-8")).digest()[:16]


def build_spec(params):
    """Validate module parameters into a KeySpec. Raises Pkcs11KeyError naming the option."""
    label = params.get("label")
    if not label or not label.strip():
        raise Pkcs11KeyError("label must not be empty")
    state = params.get("state") or "present"
    key_type = params.get("key_type")
    curve = params.get("curve")
    rsa_bits = params.get("rsa_bits")
    aes_bits = params.get("aes_bits")
    usage = params.get("usage")

    if state == "present" and not key_type:
        raise Pkcs11KeyError("key_type is required with state=present")
    if key_type is not None and key_type not in KEY_TYPES:
        raise Pkcs11KeyError("key_type must be one of %s, got %r" % (", ".join(KEY_TYPES), key_type))
    for option, value, owner in (("curve", curve, "ec"), ("rsa_bits", rsa_bits, "rsa"),
                                 ("aes_bits", aes_bits, "aes")):
        if value is not None and key_type != owner:
            raise Pkcs11KeyError("%s applies to key_type=%s only (key_type is %s)"
                                 % (option, owner, key_type or "not set"))
    if curve is not None and curve not in CURVES:
        raise Pkcs11KeyError("curve must be one of %s, got %r" % (", ".join(sorted(CURVES)), curve))
    if rsa_bits is not None and rsa_bits not in RSA_BITS:
        raise Pkcs11KeyError("rsa_bits must be one of %s, got %r" % (", ".join(map(str, RSA_BITS)), rsa_bits))
    if aes_bits is not None and aes_bits not in AES_BITS:
        raise Pkcs11KeyError("aes_bits must be one of %s, got %r" % (", ".join(map(str, AES_BITS)), aes_bits))

    bits = None
    if key_type == "ec":
        curve = curve or DEFAULT_CURVE
    elif key_type == "rsa":
        bits = rsa_bits or DEFAULT_RSA_BITS
    elif key_type == "aes":
        bits = aes_bits or DEFAULT_AES_BITS

    usage_given = usage is not None
    if usage_given:
        unknown = [u for u in usage if u not in USAGES]
        if unknown:
            raise Pkcs11KeyError("usage: unknown value(s) %s; choose from %s"
                                 % (", ".join(unknown), ", ".join(USAGES)))
        if not usage:
            raise Pkcs11KeyError("usage must name at least one of %s" % ", ".join(USAGES))
        if key_type:
            wrong = [u for u in usage if u not in ALLOWED_USAGE[key_type]]
            if wrong:
                raise Pkcs11KeyError("usage %s is not possible for key_type=%s (allowed: %s)"
                                     % (", ".join(wrong), key_type, ", ".join(ALLOWED_USAGE[key_type])))
        usage = sorted(set(usage), key=USAGES.index)
    elif key_type:
        usage = list(DEFAULT_USAGE[key_type])

    id_text = params.get("id")
    if id_text is not None:
        key_id = parse_key_id(id_text)
    else:
        key_id = default_key_id(label)

    return KeySpec(label=label, key_type=key_type, curve=curve, bits=bits, key_id=key_id,
                   id_given=id_text is not None, extractable=bool(params.get("extractable")),
                   usage=usage, usage_given=usage_given)


def key_problems(facts, spec):
    """Reasons why an existing key (``facts`` as made by describe_key) does not satisfy ``spec``.

    An empty list means the key is what was asked for. The module never changes or replaces a
    key, so every entry here makes it fail.
    """
    problems = []
    if spec.key_type and facts["type"] != spec.key_type:
        have = describe_size(facts["type"], facts.get("curve"), facts.get("bits"))
        problems.append("it is an %s key, not %s" % (have, spec.key_type.upper()))
        return problems
    if spec.key_type == "ec" and spec.curve and facts.get("curve") != spec.curve:
        problems.append("it is on curve %s, not %s" % (facts.get("curve") or "unknown", spec.curve))
    if spec.key_type in ("rsa", "aes") and spec.bits and facts.get("bits") != spec.bits:
        problems.append("it has %s bits, not %d" % (facts.get("bits") or "an unknown number of", spec.bits))
    if spec.id_given and facts["id"] != spec.key_id.hex():
        problems.append("its id is %s, not %s" % (facts["id"] or "empty", spec.key_id.hex()))
    attrs = facts["attributes"]
    if not spec.extractable:
        if attrs.get("extractable") is not False:
            problems.append("it is extractable (CKA_EXTRACTABLE=%s); it may already have been exported, "
                            "so it cannot stand in for a non-extractable key" % _tf(attrs.get("extractable")))
        elif attrs.get("never_extractable") is False:
            problems.append("it was extractable at some time (CKA_NEVER_EXTRACTABLE=false)")
    elif attrs.get("extractable") is False:
        problems.append("it is not extractable, and extractable=true was asked for")
    if attrs.get("sensitive") is not True:
        problems.append("it is not sensitive (CKA_SENSITIVE=%s)" % _tf(attrs.get("sensitive")))
    elif attrs.get("always_sensitive") is False:
        problems.append("it was not sensitive at some time (CKA_ALWAYS_SENSITIVE=false)")
    if spec.usage_given:
        present = set(facts.get("objects", ()))
        checked = [u for u in USAGES if facts["type"] == "aes" or USAGE_OBJECT[u] in present]
        have = [u for u in checked if u in facts["usage"]]
        want = [u for u in checked if u in spec.usage]
        if have != want:
            problems.append("its usage is [%s], not [%s]" % (", ".join(have), ", ".join(want)))
    return problems


def _tf(value):
    return {True: "true", False: "false"}.get(value, "unknown")


def plan(facts, spec, state, force):
    """Decide what to do: ``create``, ``keep``, ``delete`` or ``none``. Raises Pkcs11KeyError
    to refuse (a key that does not match, or a deletion without force)."""
    if state == "present":
        if facts is None:
            return "create"
        problems = key_problems(facts, spec)
        if problems:
            raise Pkcs11KeyError(
                "key %r exists on token but does not match the request: %s. The module never changes "
                "or replaces an existing key; delete it (state=absent, force=true) or use another label"
                % (spec.label, "; ".join(problems)))
        return "keep"
    if facts is None:
        return "none"
    if spec.key_type and facts["type"] != spec.key_type:
        raise Pkcs11KeyError("key %r is an %s key, not %s; refusing to delete it"
                             % (spec.label, facts["type"].upper(), spec.key_type.upper()))
    if spec.id_given and facts["id"] != spec.key_id.hex():
        raise Pkcs11KeyError("key %r has id %s, not %s; refusing to delete it"
                             % (spec.label, facts["id"] or "(empty)", spec.key_id.hex()))
    if not force:
        raise Pkcs11KeyError(
            "key %r (%s, id %s) exists; deleting a key on a token cannot be undone and makes everything "
            "signed, encrypted or wrapped with it unusable, so state=absent needs force=true"
            % (spec.label, describe_size(facts["type"], facts.get("curve"), facts.get("bits")), facts["id"] or "(empty)"))
    return "delete"


# DER encoding, only as much as SubjectPublicKeyInfo needs.


def pkcs11_uri(token_label, label, key_id, object_type):
    """RFC 7512 URI of a key object, as the OpenSSL pkcs11 engine and provider take it. It never
    carries a PIN."""
    def enc(text):
        return quote(text, safe="")
    parts = ["token=" + enc(token_label), "object=" + enc(label)]
    if key_id:
        parts.append("id=" + "".join("%%%02X" % b for b in key_id))
    parts.append("type=" + object_type)
    return "pkcs11:" + ";".join(parts)


def planned_key(spec, token_label):
    """What check mode reports for a key that would be created."""
    object_type = "secret" if spec.key_type == "aes" else "private"
    return {
        "label": spec.label,
        "id": spec.key_id.hex(),
        "type": spec.key_type,
        "curve": spec.curve,
        "bits": spec.bits if spec.key_type != "ec" else None,
        "objects": ["secret"] if spec.key_type == "aes" else ["private", "public"],
        "usage": list(spec.usage),
        "uri": pkcs11_uri(token_label, spec.label, spec.key_id, object_type),
        "public_key_pem": None,
        "public_key_sha256": None,
        "attributes": {
            "sensitive": True,
            "extractable": spec.extractable,
            "never_extractable": not spec.extractable,
            "always_sensitive": True,
            "local": True,
        },
    }


def scrub(text, secret):
    """Defence in depth: whatever a library put into an error text, the PIN does not leave."""
    if secret and text:
        return text.replace(secret, "********")
    return text


def token_argument_spec(**options):
    """The options of every module that opens a token, plus that module's own ``options``."""
    spec = dict(
        module_path=dict(type="path", default="/usr/lib/softhsm/libsofthsm2.so"),
        token_label=dict(type="str", required=True, no_log=False),
        pin=dict(type="str", no_log=True),
        pin_file=dict(type="path"),
    )
    spec.update(options)
    return spec


# AnsibleModule keyword arguments that go with token_argument_spec().
TOKEN_ARGUMENT_RULES = dict(
    required_one_of=[("pin", "pin_file")],
    mutually_exclusive=[("pin", "pin_file")],
)


def module_pin(module):
    """The PIN from ``pin`` or ``pin_file``; one read from a file is masked in everything the
    module returns, like a no_log option."""
    pin = module.params["pin"]
    if pin is None:
        pin = read_pin_file(module.params["pin_file"])
        module.no_log_values.add(pin)
    return pin


def read_pin_file(path):
    """The PIN from a file on the managed host: the first line, without its line ending."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(4096)
    except (IOError, OSError) as exc:
        raise Pkcs11KeyError("cannot read pin_file %s: %s" % (path, exc.strerror or exc.__class__.__name__))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Pkcs11KeyError("pin_file %s is not UTF-8 text" % path)
    pin = text.splitlines()[0] if text else ""
    if not pin:
        raise Pkcs11KeyError("pin_file %s is empty" % path)
    return pin
