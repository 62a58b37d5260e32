# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Built by tools/build_keywrap.py from plugins/module_utils/{_pkcs11_spec.py,_pkcs11_der.py,_pkcs11_token.py,_pkcs11_wrap.py,_pkcs11_wrap_command.py}:
# edit those, then run it.
"""The library of the hsm role's keywrap command: the PKCS#11 and wrap module_utils in one file."""

from __future__ import annotations

# ---- _pkcs11_spec.py

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


# ---- _pkcs11_der.py

import base64
import hashlib


_OID_RSA = "1.2.840.113549.1.1.1"
_OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"


def _der_len(length):
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der(tag, body):
    return bytes([tag]) + _der_len(len(body)) + body


def der_oid(dotted):
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return _der(0x06, bytes(body))


def der_uint(value):
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    if raw[0] & 0x80:
        raw = b"\x00" + raw
    return _der(0x02, raw)


def _der_read(data, pos=0):
    """Return (tag, body, end) of the DER element at ``pos``."""
    if len(data) < pos + 2:
        raise ValueError("truncated DER")
    tag = data[pos]
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or len(data) < pos + count:
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if len(data) < pos + length:
        raise ValueError("truncated DER")
    return tag, data[pos:pos + length], pos + length


def rsa_spki_der(modulus, exponent):
    """SubjectPublicKeyInfo (RFC 3279) of an RSA key given as big-endian byte strings or ints."""
    n = modulus if isinstance(modulus, int) else int.from_bytes(modulus, "big")
    e = exponent if isinstance(exponent, int) else int.from_bytes(exponent, "big")
    algorithm = _der(0x30, der_oid(_OID_RSA) + b"\x05\x00")
    key = _der(0x30, der_uint(n) + der_uint(e))
    return _der(0x30, algorithm + _der(0x03, b"\x00" + key))


def curve_from_ec_params(ec_params):
    """Curve name for a DER CKA_EC_PARAMS (namedCurve OID), or None when not one we know."""
    for name, (oid, _size) in CURVES.items():
        if bytes(ec_params) == der_oid(oid):
            return name
    return None


def ec_point_octets(ec_point, curve):
    """The uncompressed point from CKA_EC_POINT, which PKCS#11 v2.40 says is a DER OCTET STRING
    but some tokens give raw."""
    raw = bytes(ec_point)
    size = 2 * CURVES[curve][1] + 1
    if len(raw) == size and raw[0] == 0x04:
        return raw
    try:
        tag, body, end = _der_read(raw)
    except ValueError:
        body, tag, end = b"", None, 0
    if tag == 0x04 and end == len(raw) and len(body) == size and body[0] == 0x04:
        return body
    raise Pkcs11KeyError("CKA_EC_POINT of %d bytes is not an uncompressed %s point" % (len(raw), curve))


def ec_spki_der(curve, ec_point):
    algorithm = _der(0x30, der_oid(_OID_EC_PUBLIC_KEY) + der_oid(CURVES[curve][0]))
    return _der(0x30, algorithm + _der(0x03, b"\x00" + ec_point_octets(ec_point, curve)))


def pem_encode(der, label="PUBLIC KEY"):
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)


def spki_sha256(der):
    return hashlib.sha256(der).hexdigest()


# ---- _pkcs11_token.py

import os
import traceback

try:
    import pkcs11
    from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass
    from pkcs11.constants import TokenFlag
    from pkcs11 import exceptions as p11exc
except ImportError:
    HAS_PKCS11 = False
    PKCS11_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_PKCS11 = True
    PKCS11_IMPORT_ERROR = None


_KEY_TYPE_NAMES = {}
if HAS_PKCS11:
    _KEY_TYPE_NAMES = {KeyType.EC: "ec", KeyType.RSA: "rsa", KeyType.AES: "aes"}

_USAGE_ATTRS = (
    ("sign", "SIGN"), ("verify", "VERIFY"), ("encrypt", "ENCRYPT"), ("decrypt", "DECRYPT"),
    ("wrap", "WRAP"), ("unwrap", "UNWRAP"), ("derive", "DERIVE"),
)


def _error_name(exc):
    text = str(exc)
    name = exc.__class__.__name__
    return "%s: %s" % (name, text) if text and text != name else name


def _get(obj, attr_name, default=None):
    """An attribute of a token object, or ``default`` when the token does not give it."""
    try:
        return obj[getattr(Attribute, attr_name)]
    except (p11exc.PKCS11Error, NotImplementedError, KeyError):
        return default


class Token(object):
    """A logged-in read/write session on one token. Use as a context manager."""

    def __init__(self, module_path, token_label, pin):
        self.module_path = module_path
        self.token_label = token_label
        self._pin = pin
        self._lib = None
        self.session = None

    # -- opening ---------------------------------------------------------------------------

    def __enter__(self):
        try:
            self._open()
        except Exception:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    def _open(self):
        if not os.path.exists(self.module_path):
            raise Pkcs11KeyError(
                "PKCS#11 library %s not found; install it (softhsm2 for SoftHSM2, or the HSM vendor's "
                "client) or set module_path" % self.module_path)
        try:
            self._lib = pkcs11.lib(self.module_path)
        except p11exc.PKCS11Error as exc:
            raise Pkcs11KeyError(self._scrub(
                "cannot load or initialise PKCS#11 library %s (%s)%s"
                % (self.module_path, _error_name(exc), self._library_hint())))
        token = self._find_token()
        try:
            self.session = token.open(rw=True, user_pin=self._pin)
        except p11exc.PinIncorrect:
            raise Pkcs11KeyError("PIN rejected by token %s (CKR_PIN_INCORRECT)" % self.token_label)
        except p11exc.PinLocked:
            raise Pkcs11KeyError("the user PIN of token %s is locked (CKR_PIN_LOCKED); "
                                 "the security officer must reset it" % self.token_label)
        except p11exc.PinExpired:
            raise Pkcs11KeyError("the user PIN of token %s has expired (CKR_PIN_EXPIRED)" % self.token_label)
        except (p11exc.PinLenRange, p11exc.PinInvalid):
            raise Pkcs11KeyError("PIN rejected by token %s (its length or characters are not accepted)"
                                 % self.token_label)
        except p11exc.UserPinNotInitialized:
            raise Pkcs11KeyError("token %s has no user PIN set (CKR_USER_PIN_NOT_INITIALIZED)" % self.token_label)
        except p11exc.PKCS11Error as exc:
            raise Pkcs11KeyError(self._scrub("cannot log in to token %s (%s)" % (self.token_label, _error_name(exc))))

    def _library_hint(self):
        if "softhsm" in os.path.basename(self.module_path).lower():
            conf = os.environ.get("SOFTHSM2_CONF") or "/etc/softhsm/softhsm2.conf"
            return "; SoftHSM2 reads %s: check that it exists and that directories.tokendir is writable" % conf
        return ""

    def _find_token(self):
        labels = []
        uninitialised = 0
        matches = []
        try:
            slots = self._lib.get_slots(token_present=True)
        except p11exc.PKCS11Error as exc:
            raise Pkcs11KeyError("cannot list the slots of %s (%s)" % (self.module_path, _error_name(exc)))
        for slot in slots:
            try:
                token = slot.get_token()
            except (p11exc.TokenNotPresent, p11exc.TokenNotRecognised):
                continue
            if not token.flags & TokenFlag.TOKEN_INITIALIZED:
                uninitialised += 1
                continue
            labels.append(token.label)
            if token.label == self.token_label:
                matches.append(token)
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            serials = ", ".join(sorted(_serial_text(t) for t in matches))
            raise Pkcs11KeyError("%d tokens are labelled %s (serials %s); give each token a unique label"
                                 % (len(matches), self.token_label, serials))
        if labels:
            present = "tokens present: %s" % ", ".join(repr(lab) for lab in sorted(labels))
        else:
            present = "no initialised token present"
        if uninitialised:
            present += " (and %d uninitialised)" % uninitialised
        raise Pkcs11KeyError("token %r not found in %s; %s" % (self.token_label, self.module_path, present))

    def close(self):
        if self.session is not None:
            try:
                self.session.close()
            except p11exc.PKCS11Error:
                pass
            self.session = None
        if self._lib is not None:
            # One-shot process; finalising also lets a later run in the same process start fresh.
            try:
                self._lib.finalize()
            except p11exc.PKCS11Error:
                pass
            self._lib = None
        self._pin = None

    def _scrub(self, text):
        return scrub(text, self._pin)

    # -- reading -------------------------------------------------------------------------

    def find_objects(self, label):
        """The key objects labelled ``label``, grouped: {'private': [...], 'public': [...], 'secret': [...]}."""
        found = {"private": [], "public": [], "secret": []}
        classes = {ObjectClass.PRIVATE_KEY: "private", ObjectClass.PUBLIC_KEY: "public",
                   ObjectClass.SECRET_KEY: "secret"}
        try:
            for obj in self.session.get_objects({Attribute.LABEL: label}):
                kind = classes.get(_get(obj, "CLASS"))
                if kind:
                    found[kind].append(obj)
        except p11exc.PKCS11Error as exc:
            raise Pkcs11KeyError("cannot search token %s for %r (%s)" % (self.token_label, label, _error_name(exc)))
        return found

    def describe(self, label):
        """Facts of the key labelled ``label``, or None when there is none."""
        found = self.find_objects(label)
        return describe_key(found, label, self.token_label)

    # -- changing ------------------------------------------------------------------------

    def create(self, spec):
        usage = set(spec.usage)
        secret_attrs = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: bool(spec.extractable),
        }
        caps = 0
        for name, attr_name in _USAGE_ATTRS:
            if name in usage:
                caps |= getattr(MechanismFlag, attr_name)
        try:
            if spec.key_type == "aes":
                template = dict(secret_attrs)
                for name, attr_name in _USAGE_ATTRS:
                    template[getattr(Attribute, attr_name)] = name in usage
                self.session.generate_key(KeyType.AES, spec.bits, id=spec.key_id, label=spec.label, store=True,
                                          capabilities=caps, template=template)
                return
            private_template = dict(secret_attrs)
            public_template = {Attribute.TOKEN: True, Attribute.PRIVATE: False}
            for name, attr_name in _USAGE_ATTRS:
                target = private_template if USAGE_OBJECT[name] == "private" else public_template
                target[getattr(Attribute, attr_name)] = name in usage
            kwargs = dict(id=spec.key_id, label=spec.label, store=True, capabilities=caps,
                          public_template=public_template, private_template=private_template)
            if spec.key_type == "rsa":
                self.session.generate_keypair(KeyType.RSA, spec.bits, **kwargs)
            else:
                params = self.session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: der_oid(CURVES[spec.curve][0])}, local=True)
                params.generate_keypair(**kwargs)
        except p11exc.PKCS11Error as exc:
            raise Pkcs11KeyError(self._scrub("token %s refused to generate %s key %r (%s)"
                                             % (self.token_label, spec.size_text(), spec.label, _error_name(exc))))

    def delete(self, label):
        found = self.find_objects(label)
        for kind in ("private", "secret", "public"):
            for obj in found[kind]:
                try:
                    obj.destroy()
                except p11exc.PKCS11Error as exc:
                    raise Pkcs11KeyError("token %s refused to delete the %s key object %r (%s)"
                                         % (self.token_label, kind, label, _error_name(exc)))


def _serial_text(token):
    serial = token.serial
    if isinstance(serial, bytes):
        return serial.decode("ascii", "replace").strip()
    return str(serial)


def _id_hex(obj):
    value = _get(obj, "ID", b"")
    return bytes(value or b"").hex()


def describe_key(found, label, token_label):
    """Facts of one key from its token objects (see find_objects); None when there are none.

    Refuses ambiguous or incomplete keys rather than guessing which object is meant.
    """
    private, public, secret = found["private"], found["public"], found["secret"]
    if not (private or public or secret):
        return None
    if secret and (private or public):
        raise Pkcs11KeyError("label %r names both a secret key and a key pair on token %s; "
                             "give them different labels" % (label, token_label))
    if len(private) > 1 or len(secret) > 1 or len(public) > 1:
        ids = sorted(set(_id_hex(o) or "(empty)" for o in private + public + secret))
        raise Pkcs11KeyError("label %r names more than one key on token %s (ids %s); "
                             "the module needs the label to be unique" % (label, token_label, ", ".join(ids)))
    if public and not private:
        raise Pkcs11KeyError("token %s has only a public key labelled %r, without its private key; "
                             "the module will not create a private key next to it" % (token_label, label))
    main = (private or secret)[0]
    pub = public[0] if public else None
    key_type = _KEY_TYPE_NAMES.get(_get(main, "KEY_TYPE"))
    if key_type is None:
        key_type = str(_get(main, "KEY_TYPE", "unknown")).rsplit(".", 1)[-1].lower()
    key_id = _id_hex(main)
    if pub is not None and _id_hex(pub) != key_id:
        raise Pkcs11KeyError("the private and public key objects labelled %r on token %s have different ids "
                             "(%s and %s)" % (label, token_label, key_id or "(empty)", _id_hex(pub) or "(empty)"))

    facts = {
        "label": label,
        "id": key_id,
        "type": key_type,
        "curve": None,
        "bits": None,
        "objects": [k for k, objs in (("private", private), ("public", public), ("secret", secret)) if objs],
        "usage": [],
        "uri": pkcs11_uri(token_label, label, bytes.fromhex(key_id), "secret" if secret else "private"),
        "public_key_pem": None,
        "public_key_sha256": None,
        "attributes": {
            "sensitive": _get(main, "SENSITIVE"),
            "extractable": _get(main, "EXTRACTABLE"),
            "never_extractable": _get(main, "NEVER_EXTRACTABLE"),
            "always_sensitive": _get(main, "ALWAYS_SENSITIVE"),
            "local": _get(main, "LOCAL"),
        },
    }
    for name, attr_name in _USAGE_ATTRS:
        holder = main if secret or USAGE_OBJECT[name] == "private" else pub
        if holder is not None and _get(holder, attr_name) is True:
            facts["usage"].append(name)

    spki = None
    if key_type == "ec":
        ec_params = _get(pub, "EC_PARAMS") if pub is not None else None
        if ec_params is None:
            ec_params = _get(main, "EC_PARAMS")
        facts["curve"] = curve_from_ec_params(ec_params) if ec_params is not None else None
        point = _get(pub, "EC_POINT") if pub is not None else None
        if facts["curve"] and point is not None:
            spki = ec_spki_der(facts["curve"], point)
    elif key_type == "rsa":
        source = pub if pub is not None else main
        modulus = _get(source, "MODULUS")
        exponent = _get(source, "PUBLIC_EXPONENT")
        if modulus:
            facts["bits"] = int.from_bytes(bytes(modulus), "big").bit_length()
            if exponent:
                spki = rsa_spki_der(bytes(modulus), bytes(exponent))
    elif key_type == "aes":
        length = _get(main, "VALUE_LEN")
        facts["bits"] = int(length) * 8 if length else None
    if spki is not None:
        facts["public_key_pem"] = pem_encode(spki)
        facts["public_key_sha256"] = spki_sha256(spki)
    return facts


def ensure_key(module_path, token_label, pin, spec, state, force=False, check_mode=False, token_factory=None):
    """Make the token match the request. Returns the module result (without ``invocation``)."""
    factory = token_factory or Token
    with factory(module_path, token_label, pin) as token:
        before = token.describe(spec.label)
        action = plan(before, spec, state, force)
        key = before
        changed = action in ("create", "delete")
        if action == "create":
            if check_mode:
                key = planned_key(spec, token_label)
            else:
                token.create(spec)
                key = token.describe(spec.label)
                if key is None:
                    raise Pkcs11KeyError("token %s reported key %r as generated, but it cannot be found afterwards"
                                         % (token_label, spec.label))
                problems = key_problems(key, spec)
                if problems:
                    raise Pkcs11KeyError("token %s created key %r, but not as asked: %s"
                                         % (token_label, spec.label, "; ".join(problems)))
        elif action == "delete" and not check_mode:
            token.delete(spec.label)
            if token.describe(spec.label) is not None:
                raise Pkcs11KeyError("key %r is still on token %s after deleting it" % (spec.label, token_label))
    result = {
        "changed": changed,
        "action": action,
        "key": key,
        "diff": {
            "before": _diff_view(before),
            "after": _diff_view(None if state == "absent" else key),
        },
    }
    return result


def _diff_view(facts):
    if facts is None:
        return {"state": "absent"}
    view = dict((k, facts[k]) for k in ("label", "id", "type", "curve", "bits", "usage"))
    view["state"] = "present"
    view.update(facts["attributes"])
    return view


# ---- _pkcs11_wrap.py

import base64
import json
import os
import tempfile


if HAS_PKCS11:
    from pkcs11 import Mechanism
    from pkcs11 import exceptions as p11exc
    from pkcs11.mechanisms import GCMParams

BLOB_FORMAT = "onprem.deepseek/wrapped-key"
BLOB_VERSION = 1
MECHANISM = "AES-GCM"
NONCE_BYTES = 12
TAG_BITS = 128
MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 512
MAX_BLOB_BYTES = 8192


class WrapError(Pkcs11KeyError):
    """A failure of wrapping or unwrapping; never carries key material or the PIN."""


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def _unb64(text, field):
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, AttributeError, UnicodeEncodeError):
        raise WrapError("wrapped key: %s is not base64" % field)


def header(key_label, key_id_hex, context):
    """The authenticated header of a blob."""
    return {
        "format": BLOB_FORMAT,
        "version": BLOB_VERSION,
        "mechanism": MECHANISM,
        "key_label": key_label,
        "key_id": key_id_hex,
        "context": context,
    }


def additional_data(head):
    """GCM additional data: the header in one canonical serialisation."""
    fields = dict((k, head[k]) for k in ("format", "version", "mechanism", "key_label", "key_id", "context"))
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")


def build_blob(head, nonce, ciphertext):
    """Serialise a wrapped key; ``ciphertext`` includes the GCM tag."""
    if len(nonce) != NONCE_BYTES:
        raise WrapError("nonce must be %d bytes, not %d" % (NONCE_BYTES, len(nonce)))
    doc = dict(head)
    doc["nonce"] = _b64(nonce)
    doc["tag_bits"] = TAG_BITS
    doc["ciphertext"] = _b64(ciphertext)
    return (json.dumps(doc, sort_keys=True, indent=1) + "\n").encode("utf-8")


def parse_blob(data):
    """Read a wrapped key; returns (header, nonce, ciphertext). Raises WrapError on anything odd."""
    if len(data) > MAX_BLOB_BYTES:
        raise WrapError("wrapped key: %d bytes is too large for a wrapped key" % len(data))
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WrapError("wrapped key: not a JSON document")
    if not isinstance(doc, dict) or doc.get("format") != BLOB_FORMAT:
        raise WrapError("wrapped key: format is not %s" % BLOB_FORMAT)
    if doc.get("version") != BLOB_VERSION:
        raise WrapError("wrapped key: version %r is not supported (this module reads %d)"
                        % (doc.get("version"), BLOB_VERSION))
    if doc.get("mechanism") != MECHANISM or doc.get("tag_bits") != TAG_BITS:
        raise WrapError("wrapped key: mechanism %r/%r is not %s/%d"
                        % (doc.get("mechanism"), doc.get("tag_bits"), MECHANISM, TAG_BITS))
    for field in ("key_label", "key_id", "context"):
        if not isinstance(doc.get(field), str):
            raise WrapError("wrapped key: %s is missing or not text" % field)
    nonce = _unb64(doc.get("nonce"), "nonce")
    ciphertext = _unb64(doc.get("ciphertext"), "ciphertext")
    if len(nonce) != NONCE_BYTES:
        raise WrapError("wrapped key: nonce is %d bytes, not %d" % (len(nonce), NONCE_BYTES))
    if len(ciphertext) < MIN_KEY_BYTES + TAG_BITS // 8:
        raise WrapError("wrapped key: ciphertext is too short")
    head = header(doc["key_label"], doc["key_id"], doc["context"])
    return head, nonce, ciphertext


def check_key_bytes(count):
    if not isinstance(count, int) or not MIN_KEY_BYTES <= count <= MAX_KEY_BYTES:
        raise WrapError("key_bytes must be between %d and %d, got %r" % (MIN_KEY_BYTES, MAX_KEY_BYTES, count))


def write_private(path, data, mode=0o600):
    """Write ``data`` to ``path`` atomically with ``mode`` from the first byte on."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise WrapError("directory %s does not exist" % directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".pkcs11-wrap-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_file(path, limit=MAX_BLOB_BYTES + 1):
    try:
        with open(path, "rb") as handle:
            return handle.read(limit)
    except (IOError, OSError) as exc:
        raise WrapError("cannot read %s: %s" % (path, exc.strerror or exc.__class__.__name__))


# ---------------------------------------------------------------------------------------------
# Token part
# ---------------------------------------------------------------------------------------------

def _aes_key(token, label):
    found = token.find_objects(label)
    if found["private"] or found["public"]:
        raise WrapError("%r on token %s is a key pair; wrapping needs an AES key" % (label, token.token_label))
    if not found["secret"]:
        raise WrapError("token %s has no AES key labelled %r (create it with onprem.deepseek.pkcs11_key, "
                        "key_type=aes)" % (token.token_label, label))
    if len(found["secret"]) > 1:
        raise WrapError("label %r names more than one secret key on token %s" % (label, token.token_label))
    facts = token.describe(label)
    if facts["type"] != "aes":
        raise WrapError("%r on token %s is a %s key, not AES" % (label, token.token_label, facts["type"]))
    if facts["attributes"].get("extractable") is not False:
        raise WrapError("AES key %r on token %s is extractable; a key that can leave the token cannot "
                        "protect a disk key" % (label, token.token_label))
    return found["secret"][0], facts


def wrap(token, label, context, plaintext):
    """Encrypt ``plaintext`` under the token's AES key ``label``; returns the blob bytes."""
    key, facts = _aes_key(token, label)
    head = header(label, facts["id"], context)
    nonce = token.session.generate_random(NONCE_BYTES * 8)
    try:
        ciphertext = key.encrypt(plaintext, mechanism=Mechanism.AES_GCM,
                                 mechanism_param=GCMParams(nonce, additional_data(head), TAG_BITS))
    except p11exc.PKCS11Error as exc:
        raise WrapError("token %s refused to encrypt with %r (%s)" % (token.token_label, label, exc.__class__.__name__))
    return build_blob(head, bytes(nonce), bytes(ciphertext))


def unwrap(token, blob, context):
    """Decrypt a blob; the context and key it names must match. Returns the plaintext."""
    head, nonce, ciphertext = parse_blob(blob)
    if head["context"] != context:
        raise WrapError("wrapped key belongs to context %r, not %r" % (head["context"], context))
    key, facts = _aes_key(token, head["key_label"])
    if facts["id"] != head["key_id"]:
        raise WrapError("AES key %r on token %s has id %s, but the key was wrapped under id %s "
                        "(the key was replaced)" % (head["key_label"], token.token_label, facts["id"], head["key_id"]))
    try:
        return bytes(key.decrypt(ciphertext, mechanism=Mechanism.AES_GCM,
                                 mechanism_param=GCMParams(nonce, additional_data(head), TAG_BITS)))
    except p11exc.PKCS11Error as exc:
        raise WrapError("token %s could not decrypt the wrapped key with %r (%s): it was altered or "
                        "wrapped under another key" % (token.token_label, head["key_label"], exc.__class__.__name__))


def generate_key(token, count):
    check_key_bytes(count)
    return bytes(token.session.generate_random(count * 8))


def ensure_wrapped(module_path, token_label, pin, label, context, path, state, key_bytes=64, dest=None,
                   check_mode=False, token_factory=None):
    """Make ``path`` hold a wrapped key (state=present), or also write its plaintext to ``dest``
    (state=unwrapped). Returns the module result; never the key."""
    factory = token_factory or Token
    result = {"changed": False, "path": path, "dest": dest, "key_label": label, "context": context,
              "created": False}
    exists = os.path.exists(path)
    with factory(module_path, token_label, pin) as token:
        if exists:
            blob = read_file(path)
            head, _nonce, _ct = parse_blob(blob)
            if head["key_label"] != label:
                raise WrapError("%s was wrapped under %r, not %r" % (path, head["key_label"], label))
            # Proves the token can open it; the plaintext is dropped unless asked for.
            plaintext = unwrap(token, blob, context)
        elif check_mode:
            result["changed"] = result["created"] = True
            if state == "unwrapped":
                result["dest_changed"] = True
            return result
        else:
            plaintext = generate_key(token, key_bytes)
            blob = wrap(token, label, context, plaintext)
            write_private(path, blob, 0o600)
            if unwrap(token, read_file(path), context) != plaintext:
                raise WrapError("%s does not unwrap to the key just written" % path)
            result["changed"] = result["created"] = True
        result["key_id"] = token.describe(label)["id"]
    if state == "unwrapped":
        same = os.path.exists(dest) and read_file(dest, MAX_KEY_BYTES + 1) == plaintext
        result["dest_changed"] = not same
        if not same:
            result["changed"] = True
            if not check_mode:
                write_private(dest, plaintext, 0o400)
    plaintext = None
    return result


# ---- _pkcs11_wrap_command.py

import argparse
import sys


COMMAND_NAME = "keywrap"


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        raise WrapError("usage: %s" % message)


def command_parser(defaults=None):
    """Arguments of the keywrap command. There is no PIN option: the PIN comes from a file."""
    defaults = defaults or {}
    parser = _ArgumentParser(
        # No abbreviations: "--pin" must not quietly mean --pin-file.
        prog=COMMAND_NAME, add_help=True, allow_abbrev=False,
        description="Wrap a key read on stdin under the token's AES key, or unwrap one; the result goes to stdout.")
    parser.add_argument("action", choices=("wrap", "unwrap"))
    parser.add_argument("--context", required=True,
                        help="what the key belongs to (for example a storage tier); unwrap needs the same context")
    parser.add_argument("--key-label", default=defaults.get("key_label") or None,
                        help="AES key in the token (wrap); unwrap checks the wrapped key names it")
    parser.add_argument("--module-path", default=defaults.get("module_path") or "/usr/lib/softhsm/libsofthsm2.so")
    parser.add_argument("--token-label", default=defaults.get("token_label") or None)
    parser.add_argument("--pin-file", default=defaults.get("pin_file") or None)
    return parser


def _read_limited(stream, limit, what):
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise WrapError("%s on stdin is longer than %d bytes" % (what, limit))
    return data


def run_command(args, stdin, stdout, token_factory=None):
    """Carry out one parsed keywrap call; writes only the result to ``stdout``."""
    factory = token_factory or Token
    if not args.context:
        raise WrapError("--context must not be empty")
    if not args.token_label:
        raise WrapError("--token-label is required")
    if not args.pin_file:
        raise WrapError("--pin-file is required")
    if args.action == "wrap" and not args.key_label:
        raise WrapError("--key-label is required to wrap")
    if args.action == "unwrap" and hasattr(stdout, "isatty") and stdout.isatty():
        raise WrapError("refusing to write a clear key to a terminal; pipe it into the program that needs it")
    if not HAS_PKCS11:
        raise WrapError("python-pkcs11 is not installed for %s" % sys.executable)
    pin = read_pin_file(args.pin_file)
    if args.action == "wrap":
        plaintext = _read_limited(stdin, MAX_KEY_BYTES, "the key")
        if len(plaintext) < MIN_KEY_BYTES:
            raise WrapError("the key on stdin is %d bytes; at least %d are needed" % (len(plaintext), MIN_KEY_BYTES))
        with factory(args.module_path, args.token_label, pin) as token:
            blob = wrap(token, args.key_label, args.context, plaintext)
            # Nothing leaves unless the token can open it again.
            if unwrap(token, blob, args.context) != plaintext:
                raise WrapError("the wrapped key does not unwrap to the key read")
        result = blob
    else:
        blob = _read_limited(stdin, MAX_BLOB_BYTES, "the wrapped key")
        head = parse_blob(blob)[0]
        if args.key_label and head["key_label"] != args.key_label:
            raise WrapError("the key was wrapped under %r, not %r" % (head["key_label"], args.key_label))
        with factory(args.module_path, args.token_label, pin) as token:
            result = unwrap(token, blob, args.context)
    pin = plaintext = None
    stdout.write(result)
    stdout.flush()
    return 0


def command_main(argv, defaults=None, stdin=None, stdout=None, stderr=None, token_factory=None):
    """Entry point of keywrap. Returns the exit status: 0 done, 1 refused or failed, 2 usage.
    Errors go to ``stderr`` and never carry key material or the PIN."""
    stdin = stdin if stdin is not None else sys.stdin.buffer
    stdout = stdout if stdout is not None else sys.stdout.buffer
    stderr = stderr if stderr is not None else sys.stderr
    try:
        args = command_parser(defaults).parse_args(argv)
    except WrapError as exc:
        stderr.write("%s: %s\n" % (COMMAND_NAME, exc))
        return 2
    try:
        return run_command(args, stdin, stdout, token_factory=token_factory)
    except Pkcs11KeyError as exc:
        stderr.write("%s: %s\n" % (COMMAND_NAME, exc))
        return 1
