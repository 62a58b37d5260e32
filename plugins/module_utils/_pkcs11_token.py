# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""PKCS#11 token I/O for the onprem.deepseek modules (private to the collection): sessions, key
discovery and creation through python-pkcs11, imported behind a guard so that the pure parts
(``_pkcs11_spec``, ``_pkcs11_der``) work without it.
"""

from __future__ import annotations

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

from ansible_collections.onprem.deepseek.plugins.module_utils._pkcs11_der import (
    curve_from_ec_params,
    der_oid,
    ec_spki_der,
    pem_encode,
    rsa_spki_der,
    spki_sha256,
)
from ansible_collections.onprem.deepseek.plugins.module_utils._pkcs11_spec import (
    CURVES,
    USAGE_OBJECT,
    Pkcs11KeyError,
    key_problems,
    pkcs11_uri,
    plan,
    planned_key,
    scrub,
)

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
