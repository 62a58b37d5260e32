# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Built by tools/build_keywrap.py from plugins/module_utils/{_pkcs11_spec.py,_pkcs11_der.py,_pkcs11_token.py,_strict_json.py,_audit_chain.py,_audit_follow.py}:
# edit those, then run it.
"""onprem-deepseek-audit: follow the gateway's raw audit log into a signed hash chain, verify it.

    python3 onprem_deepseek_audit.py {follow,verify,public-key} --help
"""

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


# ---- _strict_json.py

import json


def unique_fields(pairs):
    """``object_pairs_hook`` that refuses a repeated field."""
    seen = {}
    for name, value in pairs:
        if name in seen:
            raise ValueError("duplicate field %r" % name)
        seen[name] = value
    return seen


def no_constant(name):
    """``parse_constant`` that refuses NaN and the infinities."""
    raise ValueError("%s is not JSON" % name)


def strict_loads(text):
    """``json.loads`` with both refusals; raises ValueError."""
    return json.loads(text, object_pairs_hook=unique_fields, parse_constant=no_constant)


# ---- _audit_chain.py

import base64
import binascii
import hashlib
import json
import re
import time


GENESIS = "0" * 64
CHECKPOINT = "checkpoint"
CONTINUATION = "continuation"
HEAD = "head"
RESERVED_TYPES = (CHECKPOINT, CONTINUATION, HEAD)
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")


class AuditChainError(ValueError):
    """A record or writer state the chain cannot take."""


class Verdict:
    """The outcome of a verification: ``ok``, or the first problem's kind, place and detail."""

    def __init__(self, kind=None, line=None, seq=None, detail="", file=None):
        self.kind, self.line, self.seq, self.detail, self.file = kind, line, seq, detail, file

    @property
    def ok(self):
        return self.kind is None

    def as_dict(self):
        return {"ok": self.ok, "kind": self.kind, "file": self.file, "line": self.line, "seq": self.seq,
                "detail": self.detail}

    def __str__(self):
        if self.ok:
            return "intact"
        where = "line %s" % self.line if self.file is None else "file %d line %s" % (self.file, self.line)
        return "%s, seq %s: %s: %s" % (where, self.seq, self.kind, self.detail)


def canonical(value):
    """The bytes a value is hashed and signed as: sorted keys, no spaces, ASCII only."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def record_hash(prev, body):
    return hashlib.sha256(prev.encode("ascii") + canonical(body)).hexdigest()


def _is_int(value, low):
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _chain(prev_hash, seq, record):
    if not isinstance(record, dict):
        raise AuditChainError("record must be a mapping, got %s" % type(record).__name__)
    clash = sorted({"seq", "prev", "hash"} & set(record))
    if clash:
        raise AuditChainError("record field %r is reserved for the chain" % clash[0])
    if record.get("type") in RESERVED_TYPES:
        raise AuditChainError("record type %r is reserved for the chain" % record["type"])
    if not isinstance(prev_hash, str) or not _HEX64.match(prev_hash):
        raise AuditChainError("prev_hash must be 64 lowercase hex digits")
    if not _is_int(seq, 1):
        raise AuditChainError("seq must be an integer from 1, got %r" % (seq,))
    body = dict(record, seq=seq)
    digest = record_hash(prev_hash, body)
    return canonical(dict(body, prev=prev_hash, hash=digest)).decode("ascii"), digest


def chain_record(prev_hash, seq, record):
    """The JSON line for ``record`` as number ``seq`` after the record hashed ``prev_hash``."""
    return _chain(prev_hash, seq, record)[0]


def _sign(fields, signer):
    return dict(fields, sig=base64.b64encode(signer(canonical(fields))).decode("ascii"))


def _signature_ok(obj, verifier):
    try:
        sig = base64.b64decode(obj.get("sig", ""), validate=True)
    except (TypeError, ValueError, binascii.Error):
        return False
    return bool(sig) and bool(verifier(canonical({k: v for k, v in obj.items() if k != "sig"}), sig))


def _parse(text):
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        # A repeated field could hide the value that was hashed behind another one.
        obj = strict_loads(text.rstrip("\r\n"))
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _shape(obj):
    """What the line claims to be, or None when it lacks the fields of that kind."""
    kind = obj.get("type")
    if kind == CHECKPOINT:
        ok = _is_int(obj.get("seq"), 0) and _is_int(obj.get("count"), 0) and isinstance(obj.get("time"), str)
    elif kind == CONTINUATION:
        ok = _is_int(obj.get("seq"), 0) and isinstance(obj.get("time"), str)
    elif kind in RESERVED_TYPES:
        return None
    else:
        return "record" if (_is_int(obj.get("seq"), 1) and isinstance(obj.get("prev"), str)
                            and _HEX64.match(obj["prev"]) and isinstance(obj.get("hash"), str)) else None
    return kind if ok and isinstance(obj.get("head_hash"), str) and _HEX64.match(obj["head_hash"]) else None


class _Walk:
    """The chain state while reading files in order; ``run`` returns the first problem."""

    def __init__(self, files, verifier, want_seq=None):
        self.files, self.verifier, self.want_seq = files, verifier, want_seq
        self.seq, self.head, self.pending, self.at = 0, GENESIS, 0, (None, None)
        self.started, self.want_hash, self.want_at = False, None, (None, None)

    def problem(self, kind, line, seq, detail, fi):
        return Verdict(kind, line, seq, detail, fi if len(self.files) > 1 else None)

    def _later(self, fi, n, seq):
        """Whether a record with ``seq`` comes after line ``n`` of file ``fi`` (tells reordered from deleted)."""
        for fj in range(fi, len(self.files)):
            for text in self.files[fj][n if fj == fi else 0:]:
                obj = _parse(text)
                if obj is not None and _shape(obj) == "record" and obj["seq"] == seq:
                    return True
        return False

    def _missing(self, fi, n, seq, last_missing, what):
        if self._later(fi, n, self.seq + 1):
            return self.problem("reordered", n, seq, "%s comes before seq %d" % (what, self.seq + 1), fi)
        return self.problem("deleted", n, self.seq + 1, "seq %d to %d missing before %s"
                            % (self.seq + 1, last_missing, what), fi)

    def _advance(self, seq, head, fi, n):
        self.seq, self.head, self.at, self.started = seq, head, (fi, n), True
        if seq == self.want_seq:
            self.want_hash, self.want_at = head, (fi, n)

    def _continuation(self, obj, fi, n):
        if n != 1:
            return self.problem("reordered", n, obj["seq"], "continuation line is not the first line of a file", fi)
        if not self.started:
            self._advance(obj["seq"], obj["head_hash"], fi, n)
        elif obj["seq"] > self.seq:
            return self.problem("truncated", len(self.files[fi - 1]) + 1, self.seq + 1, "file ends at seq %d, the next "
                                "file continues from seq %d" % (self.seq, obj["seq"]), fi - 1)
        elif obj["seq"] < self.seq:
            return self.problem("reordered", n, obj["seq"], "continues from seq %d, the previous file ends at seq %d"
                                % (obj["seq"], self.seq), fi)
        elif obj["head_hash"] != self.head:
            return self.problem("edited", self.at[1], self.seq, "hash differs from the one the next file continues "
                                "from", self.at[0])
        elif self.pending:
            # Writer.rotate always closes a file with a checkpoint.
            return self.problem("truncated", len(self.files[fi - 1]) + 1, self.seq, "file ends without the "
                                "checkpoint that closes it", fi - 1)
        return None

    def _checkpoint(self, obj, fi, n):
        seq = obj["seq"]
        if seq > self.seq:
            return self._missing(fi, n, seq, seq, "the checkpoint for seq %d" % seq)
        if seq < self.seq:
            return self.problem("reordered", n, seq, "checkpoint for seq %d after seq %d" % (seq, self.seq), fi)
        if obj["head_hash"] != self.head:
            return self.problem("edited", n, seq, "signed head hash differs from the chain: a record up to seq %d "
                                "was rewritten" % seq, fi)
        if obj["count"] < self.pending:
            return self.problem("deleted", n, seq, "%d records since the last checkpoint, signed count %d: a "
                                "checkpoint line is missing" % (self.pending, obj["count"]), fi)
        if obj["count"] > self.pending:
            return self.problem("reordered", n, seq, "%d records since the last checkpoint, signed count %d: "
                                "checkpoint line repeated or moved" % (self.pending, obj["count"]), fi)
        self.pending = 0
        return None

    def _record(self, obj, fi, n):
        seq = obj["seq"]
        body = {k: v for k, v in obj.items() if k not in ("prev", "hash")}
        if record_hash(obj["prev"], body) != obj["hash"]:
            return self.problem("edited", n, seq, "hash does not match the record", fi)
        if seq > self.seq + 1:
            return self._missing(fi, n, seq, seq - 1, "seq %d" % seq)
        if seq <= self.seq:
            return self.problem("reordered", n, seq, "seq %d after seq %d" % (seq, self.seq), fi)
        if obj["prev"] != self.head:
            if self.at[1] is None:
                return self.problem("edited", n, seq, "prev is not the hash the chain starts from", fi)
            return self.problem("edited", self.at[1], self.seq, "seq %d's prev does not match this record: it was "
                                "rewritten with a recomputed hash" % seq, self.at[0])
        self._advance(seq, obj["hash"], fi, n)
        self.pending += 1
        return None

    def run(self):
        if self.want_seq == 0:
            self.want_hash = GENESIS
        for fi, lines in enumerate(self.files):
            for n, text in enumerate(lines, 1):
                obj = _parse(text)
                kind = _shape(obj) if obj is not None else None
                if kind is None:
                    return self.problem("malformed", n, obj.get("seq") if obj else None,
                                        "not an audit line (JSON object with the fields of its type)", fi)
                if kind != "record" and not _signature_ok(obj, self.verifier):
                    return self.problem("forged_checkpoint", n, obj["seq"], "%s signature does not verify" % kind, fi)
                handler = {"record": self._record, CHECKPOINT: self._checkpoint, CONTINUATION: self._continuation}[kind]
                problem = handler(obj, fi, n)
                if problem is not None:
                    return problem
        return Verdict()


def verify_files(files, verifier, expected_head=None):
    """Verify logs in rotation order as one chain; see the module docstring for what is found.

    An ``expected_head`` older than the first file (earlier files removed) cannot be compared.
    """
    files = [list(lines) for lines in files]
    want = None
    if expected_head is not None:
        if (not isinstance(expected_head, dict) or not _is_int(expected_head.get("seq"), 0)
                or not isinstance(expected_head.get("head_hash"), str) or not _HEX64.match(expected_head["head_hash"])):
            return Verdict("malformed", None, None, "expected head needs seq and head_hash")
        if "sig" in expected_head and not _signature_ok(expected_head, verifier):
            return Verdict("forged_checkpoint", None, expected_head["seq"], "expected head signature does not verify")
        want = expected_head["seq"]
    walk = _Walk(files, verifier, want)
    verdict = walk.run()
    if not verdict.ok or want is None:
        return verdict
    last = len(files) - 1
    if walk.seq < want:
        return walk.problem("truncated", (len(files[last]) if files else 0) + 1, walk.seq + 1,
                            "log ends at seq %d, the signed head is at seq %d" % (walk.seq, want), max(last, 0))
    if walk.want_hash is not None and walk.want_hash != expected_head["head_hash"]:
        return walk.problem("edited", walk.want_at[1], want, "hash differs from the signed head", walk.want_at[0])
    return verdict


def verify(lines, verifier, expected_head=None):
    """Verify one log file (a list of its lines); ``verifier(payload, sig) -> bool``."""
    return verify_files([lines], verifier, expected_head)


def _timestamp(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class Writer:
    """The chain state of the process writing the log; ``signer(payload) -> signature bytes``."""

    def __init__(self, signer, every=100, clock=time.time):
        if not _is_int(every, 1):
            raise AuditChainError("checkpoint interval must be an integer from 1, got %r" % (every,))
        self.signer, self.every, self.clock = signer, every, clock
        self.seq, self.head, self.pending = 0, GENESIS, 0

    def _line(self, kind, **fields):
        fields.update(type=kind, seq=self.seq, head_hash=self.head, time=_timestamp(self.clock()))
        return _sign(fields, self.signer)

    def append(self, record):
        """The lines to write for ``record``: its own, and a checkpoint when one is due."""
        line, digest = _chain(self.head, self.seq + 1, record)
        self.seq, self.head, self.pending = self.seq + 1, digest, self.pending + 1
        return [line] + ([self.checkpoint()] if self.pending >= self.every else [])

    def checkpoint(self):
        """A checkpoint line for the records so far (also written before closing a file)."""
        line = canonical(self._line(CHECKPOINT, count=self.pending)).decode("ascii")
        self.pending = 0
        return line

    def signed_head(self):
        """The head to keep outside the log; ``verify(..., expected_head=...)`` detects truncation with it."""
        return self._line(HEAD)

    def rotate(self):
        """``(closing lines for the old file, opening lines for the new one)``."""
        closing = [self.checkpoint()] if self.pending else []
        return closing, [canonical(self._line(CONTINUATION)).decode("ascii")]

    def resume(self, lines, verifier):
        """Continue the chain of an existing file after a restart; refuses a file that does not verify."""
        lines = list(lines)
        if not lines:
            raise AuditChainError("nothing to resume from: an empty file does not say where the chain stands")
        walk = _Walk([lines], verifier)
        verdict = walk.run()
        if not verdict.ok:
            raise AuditChainError("cannot resume: %s" % verdict)
        self.seq, self.head, self.pending = walk.seq, walk.head, walk.pending
        return self


# ---- _audit_follow.py

import argparse
import fcntl
import hashlib
import json
import os
import re
import signal
import sys
import time


if HAS_PKCS11:
    from pkcs11 import Mechanism
    from pkcs11 import exceptions as p11exc

PROG = "onprem-deepseek-audit"
CHAIN_FILE = "audit.log"
STATE_FILE = "state.json"
LOCK_FILE = "lock"
STATE_VERSION = 1
SIGNER_FIELDS = ("module_path", "token_label", "key_label", "pin_file")
DEFAULT_EVERY = 100
DEFAULT_ROTATE_BYTES = 64 * 1024 * 1024
DEFAULT_POLL = 0.5
BATCH_LINES = 1000
# nginx writes to a renamed raw file until logrotate's postrotate makes it reopen its logs.
ROTATE_GRACE = 5.0
# How much of the raw file's start identifies it (an inode number can be reused).
PREFIX_BYTES = 1024
READ_CHUNK = 65536
EXIT_PROBLEM, EXIT_USAGE, EXIT_REFUSED = 1, 2, 3
_ROTATED_NAME = re.compile(r"^audit\.log\.([1-9][0-9]*)\Z")


class AuditToolError(Exception):
    """A usage or configuration error (exit 2)."""


class FollowRefused(Exception):
    """The chain, its state and the raw log disagree: a person must look (exit 3)."""


# -- pure parts --------------------------------------------------------------------------------

def raw_record(line):
    """The record a raw log line (bytes, without its newline) is chained as."""
    text = line.decode("utf-8", "backslashreplace")
    try:
        obj = strict_loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        try:
            chain_record(GENESIS, 1, obj)
            return obj
        except (AuditChainError, ValueError, TypeError):
            pass
    return {"type": "unparsed", "line": text}


def ecdsa_der(raw):
    """DER ECDSA-Sig-Value of a P-256 signature as PKCS#11 gives it (r || s, 32 bytes each)."""
    raw = bytes(raw)
    if len(raw) != 64:
        raise Pkcs11KeyError("the token gave an ECDSA signature of %d bytes, not 64 (P-256 r||s)" % len(raw))
    return _der(0x30, der_uint(int.from_bytes(raw[:32], "big")) + der_uint(int.from_bytes(raw[32:], "big")))


def pem_verifier(pem):
    """``verifier(payload, sig) -> bool`` for an EC P-256 public key in PEM (DER signatures)."""
    try:
        from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError:
        raise AuditToolError("checking signatures needs the cryptography package (python3-cryptography)")
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii") if isinstance(pem, str) else bytes(pem))
    except (ValueError, TypeError, UnsupportedAlgorithm, UnicodeEncodeError):
        raise AuditToolError("not a PEM public key")
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise AuditToolError("not an EC P-256 public key")

    def verifier(payload, sig):
        try:
            key.verify(bytes(sig), bytes(payload), ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True
    return verifier


def load_signer_config(path):
    """The signer config: a JSON object with exactly SIGNER_FIELDS; the PIN stays in pin_file."""
    try:
        st = os.stat(path)
        if st.st_mode & 0o022:
            raise AuditToolError("signer config %s is writable by group or others; make it 0600" % path)
        with open(path, "rb") as handle:
            data = handle.read(65537)
    except OSError as exc:
        raise AuditToolError("cannot read signer config %s: %s" % (path, exc.strerror or exc.__class__.__name__))
    try:
        config = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        config = None
    if len(data) > 65536 or not isinstance(config, dict):
        raise AuditToolError("signer config %s is not a JSON object" % path)
    if "pin" in config:
        raise AuditToolError("signer config %s: a PIN does not go in the config; name a pin_file" % path)
    unknown = sorted(set(config) - set(SIGNER_FIELDS))
    missing = [f for f in SIGNER_FIELDS if f not in config]
    if unknown or missing:
        raise AuditToolError("signer config %s: %s" % (path, "; ".join(
            (["unknown field(s) %s" % ", ".join(unknown)] if unknown else [])
            + (["missing %s" % ", ".join(missing)] if missing else []))))
    bad = [f for f in SIGNER_FIELDS if not isinstance(config[f], str) or not config[f].strip()]
    bad += [f for f in ("module_path", "pin_file") if f not in bad and not os.path.isabs(config[f])]
    if bad:
        raise AuditToolError("signer config %s: %s must be non-empty strings, the paths absolute"
                             % (path, ", ".join(bad)))
    return dict((f, config[f]) for f in SIGNER_FIELDS)


def _parsed(line):
    try:
        obj = json.loads(line.decode("utf-8") if isinstance(line, bytes) else line)
    except (ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def _is_record(obj):
    return obj is not None and obj.get("type") not in (CHECKPOINT, CONTINUATION)


def _last_seq(lines):
    obj = _parsed(lines[-1]) if lines else None
    seq = obj.get("seq") if obj else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def file_lines(path):
    """The lines of a chain file as bytes; a last line without its newline is kept as it is."""
    with open(path, "rb") as handle:
        lines = handle.read().split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


def chain_series(directory):
    """The chain files of a directory, oldest first: audit.log.N by N, then audit.log."""
    numbered = []
    for name in os.listdir(directory):
        match = _ROTATED_NAME.match(name)
        if match:
            numbered.append((int(match.group(1)), name))
    paths = [os.path.join(directory, name) for _n, name in sorted(numbered)]
    current = os.path.join(directory, CHAIN_FILE)
    if os.path.isfile(current):
        paths.append(current)
    return paths


def verify_series(paths, verifier, expected_head=None, read=file_lines):
    """``(verdict, records, last_seq)`` of chain files in rotation order; ``verdict.file`` indexes
    ``paths`` (None for a problem with the head). Two files are in memory at a time: each with the
    one before it, which checks the link between them. The head is compared in the first window
    that reaches its seq (the last one if none does)."""
    records, last_seq, prev = 0, 0, None
    head_left = expected_head is not None
    want = expected_head.get("seq") if isinstance(expected_head, dict) else None
    want = want if isinstance(want, int) and not isinstance(want, bool) else -1
    for i, path in enumerate(paths):
        lines = read(path)
        window = [lines] if prev is None else [prev, lines]
        end = _last_seq(lines)
        head = None
        if head_left and (i == len(paths) - 1 or (end is not None and end >= want)):
            head, head_left = expected_head, False
        verdict = verify_files(window, verifier, head)
        if not verdict.ok:
            if verdict.line is None:
                return Verdict(verdict.kind, None, verdict.seq, verdict.detail, None), records, last_seq
            return Verdict(verdict.kind, verdict.line, verdict.seq, verdict.detail,
                           i - len(window) + 1 + (verdict.file or 0)), records, last_seq
        records += sum(1 for line in lines if _is_record(_parsed(line)))
        last_seq = end if end is not None else last_seq
        prev = lines
    if head_left:
        verdict = verify_files([], verifier, expected_head)
        if not verdict.ok:
            return Verdict(verdict.kind, None if verdict.line is None else 1, verdict.seq, verdict.detail,
                           None), records, last_seq
    return Verdict(), records, last_seq


def head_of(document):
    """The signed head in a head file: the head itself, or the follower's state.json."""
    if isinstance(document, dict) and isinstance(document.get("head"), dict):
        return document["head"]
    return document


# -- the token ---------------------------------------------------------------------------------

class TokenSigner:
    """The audit signing key in a PKCS#11 token: an EC P-256 key pair, non-extractable, allowed
    to sign (onprem.deepseek.pkcs11_key with key_type ec, curve secp256r1, usage [sign]).
    Use as a context manager: the session stays open while the follower runs."""

    def __init__(self, config, token_factory=None):
        self.config = config
        self.factory = token_factory or Token
        self.public_key_pem = None
        self._token = self._key = None

    def __enter__(self):
        if not HAS_PKCS11 and self.factory is Token:
            raise Pkcs11KeyError("python-pkcs11 is not installed for %s" % sys.executable)
        pin = read_pin_file(self.config["pin_file"])
        token = self.factory(self.config["module_path"], self.config["token_label"], pin)
        self._token = token.__enter__()
        try:
            self._find_key()
        except Exception:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    def close(self):
        if self._token is not None:
            self._token.close()
        self._token = self._key = None

    def _find_key(self):
        label, token_label = self.config["key_label"], self.config["token_label"]
        found = self._token.find_objects(label)
        facts = describe_key(found, label, token_label)
        if facts is None:
            raise Pkcs11KeyError("no key labelled %r on token %s; create it with onprem.deepseek.pkcs11_key "
                                 "(key_type ec, curve secp256r1, usage [sign])" % (label, token_label))
        problems = key_problems(facts, build_spec({"label": label, "key_type": "ec", "curve": "secp256r1"}))
        if not problems and "sign" not in facts["usage"]:
            problems.append("it may not sign (CKA_SIGN is not true)")
        if not problems and not facts["public_key_pem"]:
            problems.append("the token holds no public key object for it, which verify needs")
        if problems:
            raise Pkcs11KeyError("key %r on token %s cannot sign the audit chain: %s"
                                 % (label, token_label, "; ".join(problems)))
        self._key = found["private"][0]
        self.public_key_pem = facts["public_key_pem"]

    def sign(self, payload):
        digest = hashlib.sha256(payload).digest()
        try:
            raw = self._key.sign(digest, mechanism=Mechanism.ECDSA)
        except p11exc.PKCS11Error as exc:
            raise Pkcs11KeyError("token %s refused to sign with %r (%s)"
                                 % (self.config["token_label"], self.config["key_label"], _error_name(exc)))
        return ecdsa_der(raw)


# -- files ---------------------------------------------------------------------------------------

def _fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_atomically(path, data, mode=0o640):
    """Replace ``path`` with ``data``: a reader (or a crash) sees the old file or the new one."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


class RawLog:
    """Where the follower is in the raw log, across logrotate's renames and truncation."""

    def __init__(self, path, grace=ROTATE_GRACE, clock=time.monotonic, log=None):
        self.path, self.grace, self.clock = path, grace, clock
        self.log = log or (lambda message: None)
        self.fd, self.ident, self.offset = None, None, 0
        self._buf, self._pos, self._grown_at = b"", 0, clock()

    def _adopt(self, fd, offset):
        st = os.fstat(fd)
        self.fd, self.ident, self.offset = fd, (st.st_dev, st.st_ino), offset
        self._buf, self._pos, self._grown_at = b"", 0, self.clock()
        os.lseek(fd, offset, os.SEEK_SET)

    def _open_path(self):
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self.fd, self.ident, self.offset = None, None, 0
            return False
        self._adopt(fd, 0)
        return True

    def _prefix(self, fd, length):
        return hashlib.sha256(os.pread(fd, length, 0)).hexdigest()

    def position(self):
        if self.fd is None:
            return None
        length = min(self.offset, PREFIX_BYTES)
        return {"path": self.path, "dev": self.ident[0], "inode": self.ident[1], "offset": self.offset,
                "prefix_len": length, "prefix_sha256": self._prefix(self.fd, length)}

    def _candidates(self):
        yield self.path
        directory, base = os.path.split(self.path)
        try:
            names = sorted(os.listdir(directory or "."))
        except OSError:
            return
        for name in names:
            if name.startswith(base) and name != base:
                yield os.path.join(directory, name)

    def open_at(self, position):
        """Open the file ``position`` names at its offset (found under another name when logrotate
        renamed it); else the path from its start. Returns whether the position was found."""
        if position:
            for candidate in self._candidates():
                try:
                    st = os.stat(candidate)
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) != (position.get("dev"), position.get("inode")):
                    continue
                fd = os.open(candidate, os.O_RDONLY)
                offset, length = position.get("offset", 0), position.get("prefix_len", 0)
                if (isinstance(offset, int) and 0 <= offset <= st.st_size and isinstance(length, int)
                        and 0 <= length <= offset and self._prefix(fd, length) == position.get("prefix_sha256")):
                    self._adopt(fd, offset)
                    return True
                os.close(fd)
                self.log("raw log %s is not the file of the saved position (truncated or replaced); reading "
                         "%s from its start" % (candidate, self.path))
                break
            else:
                self.log("the raw file of the saved position is gone; reading %s from its start" % self.path)
        self._open_path()
        return False

    def _pending(self):
        return len(self._buf) - self._pos

    def read_lines(self, limit):
        """Up to ``limit`` complete lines (bytes, without the newline) past the position."""
        if self.fd is None and not self._open_path():
            return []
        if os.fstat(self.fd).st_size < self.offset + self._pending():
            self.log("raw log %s was truncated; reading it from its start" % self.path)
            self._adopt(self.fd, 0)
        lines = []
        while len(lines) < limit:
            end = self._buf.find(b"\n", self._pos)
            if end >= 0:
                lines.append(self._buf[self._pos:end])
                self.offset += end + 1 - self._pos
                self._pos = end + 1
                continue
            data = os.read(self.fd, READ_CHUNK)
            if not data:
                break
            self._buf, self._pos, self._grown_at = self._buf[self._pos:] + data, 0, self.clock()
        return lines

    def replaced(self):
        """At the end of the open file: whether the path names a new file that has taken over."""
        if self.fd is None:
            return False
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        if (st.st_dev, st.st_ino) == self.ident:
            return False
        if os.fstat(self.fd).st_size > self.offset + self._pending():
            return False
        return st.st_size > 0 or self.clock() - self._grown_at >= self.grace

    def take_partial(self):
        """The last line of a finished file that has no newline, consumed; None when there is none."""
        if not self._pending():
            return None
        line = self._buf[self._pos:]
        self.offset += len(line)
        self._buf, self._pos = b"", 0
        return line

    def switch(self):
        os.close(self.fd)
        self.fd = None
        self._open_path()

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class ChainDir:
    """The chain files: the current one open for appending, the rotated ones by number."""

    def __init__(self, directory):
        self.directory = directory
        self.current = os.path.join(directory, CHAIN_FILE)
        self.fd = None

    def _open(self, flags):
        self.fd = os.open(self.current, os.O_WRONLY | os.O_APPEND | os.O_CREAT | flags, 0o640)
        _fsync_dir(self.directory)

    def append(self, lines, path=None):
        data = "".join(line + "\n" for line in lines).encode("ascii")
        if path is not None:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            return
        if self.fd is None:
            self._open(0)
        _write_all(self.fd, data)
        os.fsync(self.fd)

    def start_new(self, opening):
        """Begin audit.log afresh (replacing an empty or cut-off one) with ``opening``."""
        self.close()
        self._open(os.O_TRUNC)
        self.append(opening)

    def cut(self, length):
        """Drop what follows ``length`` bytes of audit.log (a line a crash cut off)."""
        self.close()
        os.truncate(self.current, length)
        fd = os.open(self.current, os.O_WRONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def size(self):
        return os.fstat(self.fd).st_size if self.fd is not None else 0

    def rotate(self, closing, opening):
        """Close audit.log with ``closing``, rename it audit.log.N, start a new one with ``opening``."""
        if closing:
            self.append(closing)
        self.close()
        numbers = [int(_ROTATED_NAME.match(os.path.basename(p)).group(1))
                   for p in chain_series(self.directory) if p != self.current]
        target = os.path.join(self.directory, "%s.%d" % (CHAIN_FILE, max(numbers or [0]) + 1))
        os.rename(self.current, target)
        _fsync_dir(self.directory)
        self._open(os.O_EXCL)
        self.append(opening)
        return target

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# -- the follower -------------------------------------------------------------------------------

class Follower:
    """Raw log lines in, chained records out. ``signer`` has ``sign(payload) -> bytes`` and
    ``public_key_pem``; ``verifier`` defaults to one made from that key."""

    def __init__(self, raw, chain_dir, state_dir, signer, every=DEFAULT_EVERY, rotate_bytes=DEFAULT_ROTATE_BYTES,
                 batch=BATCH_LINES, grace=ROTATE_GRACE, clock=time.time, monotonic=time.monotonic, log=None,
                 verifier=None):
        self.log = log or (lambda message: None)
        self.raw = RawLog(raw, grace=grace, clock=monotonic, log=self.log)
        self.chain = ChainDir(chain_dir)
        self.state_dir, self.signer, self.verifier = state_dir, signer, verifier
        self.state_path = os.path.join(state_dir, STATE_FILE)
        self.writer = Writer(signer.sign, every=every, clock=clock)
        self.rotate_bytes, self.batch = rotate_bytes, batch
        self.records_in_current = 0
        self.rotate_requested = False
        self._lock = None

    # -- start -----------------------------------------------------------------------------

    def start(self):
        self._lock = os.open(os.path.join(self.state_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.close()
            raise FollowRefused("another follower holds %s" % os.path.join(self.state_dir, LOCK_FILE))
        if self.verifier is None:
            self.verifier = pem_verifier(self.signer.public_key_pem)
        probe = b"onprem-deepseek-audit: signing key check"
        if not self.verifier(probe, self.signer.sign(probe)):
            raise FollowRefused("the signing key's public key does not verify its signatures")
        lines = self._resume_chain()
        self._reconcile(lines, self._load_state())
        self._save_state()
        self.log("following %s at offset %d; chain at seq %d" % (self.raw.path, self.raw.offset, self.writer.seq))
        return self

    def _resume(self, lines, path):
        try:
            self.writer.resume(lines, self.verifier)
        except AuditChainError as exc:
            raise FollowRefused("%s: %s" % (path, exc))

    def _resume_chain(self):
        """Continue the chain where its files end; returns the lines of the file it resumed from."""
        current = self.chain.current
        data = b""
        if os.path.isfile(current):
            with open(current, "rb") as handle:
                data = handle.read()
        whole = data[:data.rfind(b"\n") + 1]
        lines = whole.split(b"\n")[:-1]
        if lines:
            self._resume(lines, current)
            if len(whole) < len(data):
                self.chain.cut(len(whole))
                self.log("%s ended in a line cut off by a crash (%d bytes); removed it, its raw line is "
                         "chained again" % (current, len(data) - len(whole)))
            self.records_in_current = sum(1 for line in lines if _is_record(_parsed(line)))
            return lines
        rotated = [path for path in chain_series(self.chain.directory) if path != current]
        if rotated:
            lines = file_lines(rotated[-1])
            self._resume(lines, rotated[-1])
            closing, opening = self.writer.rotate()
            if closing:
                self.chain.append(closing, path=rotated[-1])
            self.chain.start_new(opening)
            self.log("%s was missing or empty: continued the chain of %s" % (current, rotated[-1]))
            return lines
        if data:
            self.chain.start_new([])
        return []

    def _load_state(self):
        try:
            with open(self.state_path, "rb") as handle:
                state = json.loads(handle.read().decode("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise FollowRefused("cannot read %s: %s" % (self.state_path, exc))
        if (not isinstance(state, dict) or state.get("version") != STATE_VERSION
                or not isinstance(state.get("head"), dict)):
            raise FollowRefused("%s is not a state file of version %d" % (self.state_path, STATE_VERSION))
        return state

    def _reconcile(self, lines, state):
        if state is None:
            if self.writer.seq:
                raise FollowRefused("the chain is at seq %d but %s is missing, so the position in the raw log "
                                    "is unknown; restore it, or move the chain files aside to start a new chain"
                                    % (self.writer.seq, self.state_path))
            self.raw.open_at(None)
            return
        head = state["head"]
        verdict = verify_files([lines], self.verifier, head)
        if not verdict.ok:
            raise FollowRefused("the chain does not match the signed head in %s: %s" % (self.state_path, verdict))
        ahead = [obj for obj in map(_parsed, lines) if _is_record(obj) and obj["seq"] > head["seq"]]
        found = self.raw.open_at(state.get("raw"))
        if not ahead:
            return
        if not found:
            self.log("seq %d to %d were chained from a raw file that is gone or replaced; not compared"
                     % (ahead[0]["seq"], ahead[-1]["seq"]))
            return
        got = self.raw.read_lines(len(ahead))
        for obj, line in zip(ahead, got):
            body = dict((k, v) for k, v in obj.items() if k not in ("prev", "hash"))
            if canonical(dict(raw_record(line), seq=obj["seq"])) != canonical(body):
                raise FollowRefused("seq %d in the chain is not the raw line it should have come from" % obj["seq"])
        if len(got) < len(ahead):
            raise FollowRefused("the chain holds seq %d to %d past the saved head, but the raw log has only %d "
                                "lines after the saved position" % (ahead[0]["seq"], ahead[-1]["seq"], len(got)))
        self.log("seq %d to %d were chained before the position was saved; skipped their raw lines"
                 % (ahead[0]["seq"], ahead[-1]["seq"]))

    # -- running ---------------------------------------------------------------------------

    def _save_state(self):
        state = {"version": STATE_VERSION, "raw": self.raw.position(), "head": self.writer.signed_head()}
        write_atomically(self.state_path, canonical(state) + b"\n")

    def _commit(self, lines):
        out = []
        for line in lines:
            out.extend(self.writer.append(raw_record(line)))
        self.chain.append(out)
        self.records_in_current += len(lines)
        self._save_state()
        if self.rotate_bytes and self.chain.size() >= self.rotate_bytes:
            self.rotate_chain()

    def step(self):
        """One batch (or the switch to a new raw file); whether anything happened."""
        lines = self.raw.read_lines(self.batch)
        if lines:
            self._commit(lines)
            return True
        if not self.raw.replaced():
            return False
        # One file per batch: a saved position always names the file its records came from.
        tail = self.raw.take_partial()
        if tail is not None:
            self._commit([tail])
            return True
        self.raw.switch()
        self._save_state()
        self.log("raw log %s was rotated; reading the new file from its start" % self.raw.path)
        return True

    def rotate_chain(self):
        """Start a new chain file; None when the current one has no records yet."""
        if not self.records_in_current:
            return None
        closing, opening = self.writer.rotate()
        target = self.chain.rotate(closing, opening)
        self.records_in_current = 0
        self._save_state()
        self.log("chain file rotated to %s at seq %d" % (target, self.writer.seq))
        return target

    def run(self, should_stop, sleep, poll=DEFAULT_POLL):
        while not should_stop():
            if self.rotate_requested:
                self.rotate_requested = False
                self.rotate_chain()
            if not self.step():
                sleep(poll)

    def stop(self):
        """Sign what is pending, so that the file ends with a checkpoint, then close."""
        if self.writer.pending:
            self.chain.append([self.writer.checkpoint()])
            self._save_state()
        self.close()

    def close(self):
        self.chain.close()
        self.raw.close()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


# -- the command ---------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise AuditToolError("usage: %s" % message)


def _bounded(convert, low, high, what):
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError("%s expected, got %r" % (what, text))
        return value
    return parse


def command_parser():
    parser = _Parser(prog=PROG, allow_abbrev=False,
                     description="The gateway's tamper-evident audit chain: follow the raw log, verify the chain.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    follow = sub.add_parser("follow", allow_abbrev=False, help="chain the raw audit log as it grows (a service)")
    follow.add_argument("--raw", required=True, help="the raw JSON audit log nginx writes")
    follow.add_argument("--chain-dir", required=True, help="where audit.log and its rotated files are")
    follow.add_argument("--state-dir", required=True, help="where state.json (signed head, raw position) is")
    follow.add_argument("--signer-config", required=True, help="JSON: module_path, token_label, key_label, pin_file")
    follow.add_argument("--every", type=_bounded(int, 1, 10 ** 6, "an integer from 1"), default=DEFAULT_EVERY,
                        help="records between checkpoints")
    follow.add_argument("--rotate-bytes", type=_bounded(int, 0, 2 ** 40, "an integer from 0"),
                        default=DEFAULT_ROTATE_BYTES,
                        help="start a new chain file past this size (0: only on SIGHUP)")
    follow.add_argument("--poll", type=_bounded(float, 0.01, 60, "seconds from 0.01 to 60"), default=DEFAULT_POLL,
                        help="seconds between reads at the end of the raw log")
    check = sub.add_parser("verify", allow_abbrev=False, help="verify chain files (oldest first) or a chain dir")
    check.add_argument("--head", help="a signed head: the follower's state.json or a copy of its head")
    check.add_argument("--public-key", help="PEM of the signing key (public-key prints it)")
    check.add_argument("files", nargs="+", metavar="FILE")
    key = sub.add_parser("public-key", allow_abbrev=False, help="print the signing key's public key (PEM)")
    key.add_argument("--signer-config", required=True)
    return parser


def _read_json(path, what):
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except OSError as exc:
        raise AuditToolError("cannot read %s %s: %s" % (what, path, exc.strerror or exc.__class__.__name__))
    except (ValueError, UnicodeDecodeError):
        raise AuditToolError("%s %s is not JSON" % (what, path))


def command_verify(args, stdout):
    if len(args.files) == 1 and os.path.isdir(args.files[0]):
        paths = chain_series(args.files[0])
        if not paths:
            raise AuditToolError("no chain files (audit.log, audit.log.N) in %s" % args.files[0])
    else:
        paths = args.files
        for path in paths:
            if not os.path.isfile(path):
                raise AuditToolError("%s is not a file (give chain files oldest first, or one chain dir)" % path)
    if args.public_key:
        try:
            with open(args.public_key, "rb") as handle:
                verifier = pem_verifier(handle.read())
        except OSError as exc:
            raise AuditToolError("cannot read %s: %s" % (args.public_key, exc.strerror or exc.__class__.__name__))
        except AuditToolError as exc:
            raise AuditToolError("%s: %s" % (args.public_key, exc))
    else:
        def verifier(payload, sig):
            return True
    head = head_of(_read_json(args.head, "head file")) if args.head else None
    try:
        verdict, records, last_seq = verify_series(paths, verifier, head)
    except OSError as exc:
        raise AuditToolError("cannot read %s: %s" % (exc.filename, exc.strerror or exc.__class__.__name__))
    if not verdict.ok:
        if verdict.file is None:
            stdout.write("%s: head: %s: %s\n" % (args.head, verdict.kind, verdict.detail))
        else:
            where = (paths[verdict.file], verdict.line, verdict.seq, verdict.kind, verdict.detail)
            stdout.write("%s:%s: seq %s: %s: %s\n" % where)
        return EXIT_PROBLEM
    notes = [] if args.public_key else ["signatures not checked (no --public-key)"]
    if head is not None:
        notes.insert(0, "signed head at seq %d matches" % head["seq"])
    stdout.write("ok: %d records, last seq %d%s\n" % (records, last_seq, "".join("; " + n for n in notes)))
    return 0


def command_public_key(args, stdout, signer_factory):
    with signer_factory(load_signer_config(args.signer_config)) as signer:
        stdout.write(signer.public_key_pem)
    return 0


def command_follow(args, stderr, signer_factory, install_signals=True):
    config = load_signer_config(args.signer_config)
    for directory in (args.chain_dir, args.state_dir):
        if not os.path.isdir(directory):
            raise AuditToolError("%s is not a directory" % directory)

    def log(message):
        stderr.write("%s: %s\n" % (PROG, message))
        stderr.flush()

    stopping = []
    with signer_factory(config) as signer:
        follower = Follower(args.raw, args.chain_dir, args.state_dir, signer, every=args.every,
                            rotate_bytes=args.rotate_bytes, log=log)
        if install_signals:
            signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
            signal.signal(signal.SIGINT, lambda signum, frame: stopping.append(signum))
            signal.signal(signal.SIGHUP, lambda signum, frame: setattr(follower, "rotate_requested", True))
        try:
            follower.start()
            follower.run(lambda: bool(stopping), time.sleep, poll=args.poll)
            follower.stop()
        finally:
            follower.close()
    log("stopped at seq %d" % follower.writer.seq)
    return 0


def main(argv=None, stdout=None, stderr=None, signer_factory=TokenSigner):
    """Exit status: 0 done (verify: intact), 1 a problem (verify: the first one is printed), 2 usage
    or configuration, 3 follow refuses to start until a person has looked."""
    argv = sys.argv[1:] if argv is None else argv
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        args = command_parser().parse_args(argv)
        if args.command == "verify":
            return command_verify(args, stdout)
        if args.command == "public-key":
            return command_public_key(args, stdout, signer_factory)
        return command_follow(args, stderr, signer_factory)
    except AuditToolError as exc:
        stderr.write("%s: %s\n" % (PROG, exc))
        return EXIT_USAGE
    except FollowRefused as exc:
        stderr.write("%s: refusing to continue: %s\n" % (PROG, exc))
        return EXIT_REFUSED
    except (Pkcs11KeyError, AuditChainError, OSError) as exc:
        stderr.write("%s: %s\n" % (PROG, exc))
        return EXIT_PROBLEM


if __name__ == "__main__":
    sys.exit(main())
