"""Pure logic of onprem.deepseek.pkcs11_key: validation, plan, comparison and DER encoding.

These tests need neither python-pkcs11 nor a token. Public key encodings are checked against the
``cryptography`` package (part of the pinned toolchain) on keys it generates.
"""
import hashlib

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils import _pkcs11_der as der
from ansible_collections.onprem.deepseek.plugins.module_utils import _pkcs11_spec as p11
from ansible_collections.onprem.deepseek.plugins.module_utils._pkcs11_spec import Pkcs11KeyError

serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
ec = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ec")
rsa = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.rsa")


def spec(**params):
    base = {"label": "gateway-tls", "state": "present"}
    base.update(params)
    return p11.build_spec(base)


def facts(**over):
    base = {
        "label": "gateway-tls",
        "id": p11.default_key_id("gateway-tls").hex(),
        "type": "ec",
        "curve": "secp256r1",
        "bits": None,
        "objects": ["private", "public"],
        "usage": ["sign", "verify"],
        "attributes": {"sensitive": True, "extractable": False, "never_extractable": True,
                       "always_sensitive": True, "local": True},
    }
    attrs = over.pop("attributes", {})
    base.update(over)
    base["attributes"] = dict(base["attributes"], **attrs)
    return base


# -- build_spec ---------------------------------------------------------------------------------

def test_spec_defaults_per_type():
    s = spec(key_type="ec")
    assert (s.key_type, s.curve, s.bits, s.usage, s.usage_given) == ("ec", "secp256r1", None, ["sign", "verify"], False)
    assert s.key_id == hashlib.sha256(b"gateway-tls").digest()[:16] and s.id_given is False
    assert s.extractable is False
    r = spec(key_type="rsa")
    assert (r.bits, r.curve, r.usage) == (3072, None, ["sign", "verify"])
    a = spec(key_type="aes")
    assert (a.bits, a.usage) == (256, ["encrypt", "decrypt", "wrap", "unwrap"])


def test_spec_usage_is_ordered_and_deduplicated():
    s = spec(key_type="aes", usage=["unwrap", "wrap", "unwrap", "sign"])
    assert s.usage == ["sign", "wrap", "unwrap"] and s.usage_given is True


@pytest.mark.parametrize("params, message", [
    ({"key_type": "rsa", "curve": "secp256r1"}, "curve applies to key_type=ec only (key_type is rsa)"),
    ({"key_type": "ec", "rsa_bits": 2048}, "rsa_bits applies to key_type=rsa only (key_type is ec)"),
    ({"key_type": "rsa", "aes_bits": 256}, "aes_bits applies to key_type=aes only (key_type is rsa)"),
    ({"key_type": "rsa", "rsa_bits": 1024}, "rsa_bits must be one of 2048, 3072, 4096, got 1024"),
    ({"key_type": "ec", "curve": "secp521r1"}, "curve must be one of secp256r1, secp384r1, got 'secp521r1'"),
    ({"key_type": "ec", "usage": ["encrypt", "sign"]},
     "usage encrypt is not possible for key_type=ec (allowed: sign, verify, derive)"),
    ({"key_type": "rsa", "usage": ["derive"]},
     "usage derive is not possible for key_type=rsa (allowed: sign, verify, encrypt, decrypt, wrap, unwrap)"),
    ({"key_type": "aes", "usage": []}, "usage must name at least one of sign, verify, encrypt, decrypt, wrap, unwrap, derive"),
    ({}, "key_type is required with state=present"),
    ({"key_type": "ec", "label": "  "}, "label must not be empty"),
    ({"key_type": "ec", "id": "xyz"}, "id 'xyz' is not hex bytes (for example 0a1b2c or 0a:1b:2c)"),
    ({"key_type": "dsa"}, "key_type must be one of ec, rsa, aes, got 'dsa'"),
    ({"key_type": "aes", "aes_bits": 192}, "aes_bits must be one of 256, got 192"),
    ({"key_type": "ec", "usage": ["sign", "seal", "mint"]},
     "usage: unknown value(s) seal, mint; choose from sign, verify, encrypt, decrypt, wrap, unwrap, derive"),
    ({"state": "absent", "curve": "secp256r1"}, "curve applies to key_type=ec only (key_type is not set)"),
])
def test_spec_rejects(params, message):
    with pytest.raises(Pkcs11KeyError) as exc:
        spec(**params)
    assert str(exc.value) == message


def test_spec_absent_needs_no_type():
    s = spec(state="absent")
    assert s.key_type is None and s.usage is None


@pytest.mark.parametrize("text, raw", [
    ("01", b"\x01"), ("0A1b", b"\x0a\x1b"), ("0a:1b:2c", b"\x0a\x1b\x2c"), ("0x4c55", b"LU"), (" ff ", b"\xff"),
])
def test_parse_key_id(text, raw):
    assert p11.parse_key_id(text) == raw


@pytest.mark.parametrize("text", ["", "1", "0g", "0a:1", "0a::1b", "0x"])
def test_parse_key_id_rejects(text):
    with pytest.raises(Pkcs11KeyError):
        p11.parse_key_id(text)


def test_parse_key_id_limits_length():
    with pytest.raises(Pkcs11KeyError) as exc:
        p11.parse_key_id("ab" * 65)
    assert str(exc.value) == "id is 65 bytes long; at most 64 are allowed"


# -- key_problems and plan ----------------------------------------------------------------------

def test_matching_key_is_kept():
    assert p11.key_problems(facts(), spec(key_type="ec")) == []
    assert p11.plan(facts(), spec(key_type="ec"), "present", False) == "keep"
    assert p11.plan(None, spec(key_type="ec"), "present", False) == "create"


def test_existing_key_id_is_accepted_when_no_id_asked():
    assert p11.key_problems(facts(id="01"), spec(key_type="ec")) == []
    assert p11.key_problems(facts(id="01"), spec(key_type="ec", id="02")) == ["its id is 01, not 02"]


@pytest.mark.parametrize("existing, params, problems", [
    (facts(), {"key_type": "rsa"}, ["it is an EC secp256r1 key, not RSA"]),
    (facts(), {"key_type": "ec", "curve": "secp384r1"}, ["it is on curve secp256r1, not secp384r1"]),
    (facts(type="rsa", curve=None, bits=2048), {"key_type": "rsa"}, ["it has 2048 bits, not 3072"]),
    (facts(attributes={"extractable": True, "never_extractable": False}), {"key_type": "ec"},
     ["it is extractable (CKA_EXTRACTABLE=true); it may already have been exported, "
      "so it cannot stand in for a non-extractable key"]),
    (facts(attributes={"never_extractable": False}), {"key_type": "ec"},
     ["it was extractable at some time (CKA_NEVER_EXTRACTABLE=false)"]),
    (facts(), {"key_type": "ec", "extractable": True}, ["it is not extractable, and extractable=true was asked for"]),
    (facts(attributes={"sensitive": False}), {"key_type": "ec"}, ["it is not sensitive (CKA_SENSITIVE=false)"]),
    (facts(attributes={"always_sensitive": False}), {"key_type": "ec"},
     ["it was not sensitive at some time (CKA_ALWAYS_SENSITIVE=false)"]),
    (facts(usage=["sign", "verify", "derive"]), {"key_type": "ec", "usage": ["sign", "verify"]},
     ["its usage is [sign, verify, derive], not [sign, verify]"]),
])
def test_key_problems(existing, params, problems):
    assert p11.key_problems(existing, spec(**params)) == problems


def test_usage_not_checked_when_not_given():
    assert p11.key_problems(facts(usage=["sign", "verify", "derive"]), spec(key_type="ec")) == []


def test_usage_of_a_missing_public_object_is_not_compared():
    # Only the private key is on the token: verify cannot be seen, so it is not held against the key.
    assert p11.key_problems(facts(objects=["private"], usage=["sign"]),
                            spec(key_type="ec", usage=["sign", "verify"])) == []


def test_plan_refuses_to_touch_mismatching_key():
    with pytest.raises(Pkcs11KeyError) as exc:
        p11.plan(facts(), spec(key_type="aes"), "present", True)
    assert str(exc.value) == (
        "key 'gateway-tls' exists on token but does not match the request: it is an EC secp256r1 key, not AES. "
        "The module never changes or replaces an existing key; delete it (state=absent, force=true) or use "
        "another label")


def test_plan_absent():
    assert p11.plan(None, spec(state="absent"), "absent", False) == "none"
    assert p11.plan(facts(), spec(state="absent"), "absent", True) == "delete"
    with pytest.raises(Pkcs11KeyError) as exc:
        p11.plan(facts(), spec(state="absent"), "absent", False)
    assert str(exc.value).startswith("key 'gateway-tls' (EC secp256r1, id %s) exists; deleting a key"
                                     % p11.default_key_id("gateway-tls").hex())
    assert str(exc.value).endswith("so state=absent needs force=true")
    with pytest.raises(Pkcs11KeyError) as exc:
        p11.plan(facts(), spec(state="absent", key_type="aes"), "absent", True)
    assert str(exc.value) == "key 'gateway-tls' is an EC key, not AES; refusing to delete it"
    with pytest.raises(Pkcs11KeyError) as exc:
        p11.plan(facts(id="01"), spec(state="absent", id="02"), "absent", True)
    assert str(exc.value) == "key 'gateway-tls' has id 01, not 02; refusing to delete it"


def test_planned_key_for_check_mode():
    key = p11.planned_key(spec(key_type="aes", id="4c55"), "deepseek")
    assert key["id"] == "4c55" and key["bits"] == 256 and key["objects"] == ["secret"]
    assert key["uri"] == "pkcs11:token=deepseek;object=gateway-tls;id=%4C%55;type=secret"
    assert key["public_key_pem"] is None
    assert key["attributes"]["extractable"] is False and key["attributes"]["never_extractable"] is True


# -- DER / PEM ----------------------------------------------------------------------------------

def test_der_oid_known_encodings():
    assert der.der_oid("1.2.840.10045.3.1.7").hex() == "06082a8648ce3d030107"
    assert der.der_oid("1.3.132.0.34").hex() == "06052b81040022"
    assert der.der_oid("1.2.840.113549.1.1.1").hex() == "06092a864886f70d010101"


def test_curve_from_ec_params():
    assert der.curve_from_ec_params(bytes.fromhex("06082a8648ce3d030107")) == "secp256r1"
    assert der.curve_from_ec_params(bytes.fromhex("06052b81040022")) == "secp384r1"
    assert der.curve_from_ec_params(bytes.fromhex("06052b81040023")) is None  # secp521r1


@pytest.mark.parametrize("curve_name, curve", [("secp256r1", ec.SECP256R1()), ("secp384r1", ec.SECP384R1())])
@pytest.mark.parametrize("der_wrapped", [True, False])
def test_ec_spki_matches_cryptography(curve_name, curve, der_wrapped):
    public = ec.generate_private_key(curve).public_key()
    point = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    attr = (bytes([0x04, len(point)]) + point) if der_wrapped else point
    want = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert der.ec_spki_der(curve_name, attr) == want
    pem = der.pem_encode(want)
    assert pem == public.public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert der.spki_sha256(want) == hashlib.sha256(want).hexdigest()


def test_ec_point_rejects_wrong_size():
    with pytest.raises(Pkcs11KeyError) as exc:
        der.ec_point_octets(b"\x04" + b"\x01" * 64, "secp384r1")
    assert str(exc.value) == "CKA_EC_POINT of 65 bytes is not an uncompressed secp384r1 point"


@pytest.mark.parametrize("bits", [2048, 3072])
def test_rsa_spki_matches_cryptography(bits):
    public = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    numbers = public.public_numbers()
    modulus = numbers.n.to_bytes(bits // 8, "big")
    want = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert der.rsa_spki_der(modulus, b"\x01\x00\x01") == want
    assert der.rsa_spki_der(numbers.n, numbers.e) == want


def test_pkcs11_uri_percent_encodes():
    uri = p11.pkcs11_uri("prod token;1", "tls/key é", b"\x00\xff", "private")
    assert uri == "pkcs11:token=prod%20token%3B1;object=tls%2Fkey%20%C3%A9;id=%00%FF;type=private"
    assert p11.pkcs11_uri("t", "k", b"", "secret") == "pkcs11:token=t;object=k;type=secret"


# -- PIN handling -------------------------------------------------------------------------------

def test_read_pin_file(tmp_path):
    f = tmp_path / "user.pin"
    f.write_bytes(b"Pin-From-File-2719\n")
    assert p11.read_pin_file(str(f)) == "Pin-From-File-2719"
    f.write_bytes(b"\n")
    with pytest.raises(Pkcs11KeyError) as exc:
        p11.read_pin_file(str(f))
    assert str(exc.value) == "pin_file %s is empty" % f
    with pytest.raises(Pkcs11KeyError) as exc:
        p11.read_pin_file(str(tmp_path / "missing.pin"))
    assert str(exc.value) == "cannot read pin_file %s: No such file or directory" % (tmp_path / "missing.pin")


def test_scrub():
    assert p11.scrub("login failed for PIN 4711-x", "4711-x") == "login failed for PIN ********"
    assert p11.scrub("nothing", None) == "nothing"


# -- attributes the token did not report ----------------------------------------------------------
# A token that leaves CKA_SENSITIVE or CKA_EXTRACTABLE unreadable proves nothing about the key:
# "unknown" must count as "not what was asked for", never as a pass.

def test_unknown_extractability_is_a_problem():
    problems = p11.key_problems(facts(attributes={"extractable": None}), spec(key_type="ec"))
    assert problems == ["it is extractable (CKA_EXTRACTABLE=unknown); it may already have been exported, "
                        "so it cannot stand in for a non-extractable key"]


def test_unknown_sensitivity_is_a_problem():
    problems = p11.key_problems(facts(attributes={"sensitive": None}), spec(key_type="ec"))
    assert problems == ["it is not sensitive (CKA_SENSITIVE=unknown)"]


def test_unknown_history_attributes_are_not_problems():
    # CKA_NEVER_EXTRACTABLE / CKA_ALWAYS_SENSITIVE unreadable: only an explicit false is evidence.
    existing = facts(attributes={"never_extractable": None, "always_sensitive": None})
    assert p11.key_problems(existing, spec(key_type="ec")) == []


def test_extractable_key_asked_for_and_unknown_is_accepted():
    assert p11.key_problems(facts(attributes={"extractable": None}), spec(key_type="ec", extractable=True)) == []


@pytest.mark.parametrize("key_type, curve, bits, text", [
    ("ec", "secp384r1", None, "EC secp384r1"),
    ("ec", None, None, "EC unknown curve"),
    ("rsa", None, 3072, "RSA-3072"),
    ("aes", None, 256, "AES-256"),
    ("aes", None, None, "AES-unknown size"),
    ("generic_secret", None, 256, "generic_secret"),
    ("", None, None, "unknown type"),
    (None, None, None, "unknown type"),
])
def test_describe_size(key_type, curve, bits, text):
    assert p11.describe_size(key_type, curve, bits) == text


def test_a_key_of_another_type_is_described_with_its_size():
    problems = p11.key_problems(facts(type="rsa", curve=None, bits=2048), spec(key_type="ec"))
    assert problems == ["it is an RSA-2048 key, not EC"]


def test_unknown_curve_and_several_problems_are_all_named():
    with pytest.raises(Pkcs11KeyError) as exc:
        p11.plan(facts(curve=None, attributes={"sensitive": False}), spec(key_type="ec", curve="secp384r1"),
                 "present", False)
    assert "does not match the request: it is on curve unknown, not secp384r1; it is not sensitive " in str(exc.value)


def test_an_id_of_exactly_64_bytes_is_allowed():
    assert p11.parse_key_id("ab" * 64) == b"\xab" * 64


@pytest.mark.parametrize("text", [None, 10, b"0a"])
def test_an_id_that_is_not_text_is_refused(text):
    with pytest.raises(Pkcs11KeyError, match="is not hex bytes"):
        p11.parse_key_id(text)


def aes_facts(**over):
    base = dict(type="aes", curve=None, bits=256, objects=["secret"], usage=["encrypt", "decrypt", "wrap", "unwrap"])
    base.update(over)
    return facts(**base)


@pytest.mark.parametrize("existing, params, problems", [
    (aes_facts(bits=128), {"key_type": "aes"}, ["it has 128 bits, not 256"]),
    (aes_facts(bits=None), {"key_type": "aes"}, ["it has an unknown number of bits, not 256"]),
    (facts(id=""), {"key_type": "ec", "id": "0a"}, ["its id is empty, not 0a"]),
    # An AES key is one object: its usage is always compared, whatever objects were listed.
    (aes_facts(usage=["encrypt", "decrypt"]), {"key_type": "aes", "usage": ["wrap", "unwrap"]},
     ["its usage is [encrypt, decrypt], not [wrap, unwrap]"]),
    # No objects listed for an EC key: no usage can be seen, so none is held against it.
    ({k: v for k, v in facts(usage=["sign"]).items() if k != "objects"}, {"key_type": "ec", "usage": ["sign", "verify"]},
     []),
])
def test_key_problems_more(existing, params, problems):
    assert p11.key_problems(existing, spec(**params)) == problems


@pytest.mark.parametrize("existing, params, message", [
    (facts(id=""), {"state": "absent", "key_type": "ec", "id": "0a"},
     "key 'gateway-tls' has id (empty), not 0a; refusing to delete it"),
    (facts(id="0b"), {"state": "absent", "key_type": "ec", "id": "0a"},
     "key 'gateway-tls' has id 0b, not 0a; refusing to delete it"),
])
def test_plan_refuses_to_delete_another_key(existing, params, message):
    with pytest.raises(Pkcs11KeyError) as exc:
        p11.plan(existing, spec(**params), "absent", True)
    assert str(exc.value) == message


def test_plan_deletes_a_key_of_another_id_when_no_id_is_asked():
    assert p11.plan(facts(id="0b"), spec(state="absent", key_type="ec"), "absent", True) == "delete"


def test_state_defaults_to_present_and_present_needs_a_type():
    assert p11.build_spec({"label": "k", "key_type": "rsa"}).size_text() == "RSA-3072"
    with pytest.raises(Pkcs11KeyError, match="^key_type is required with state=present$"):
        p11.build_spec({"label": "k"})


def test_planned_key_of_a_key_pair_whole():
    assert p11.planned_key(spec(key_type="ec", id="0a0b"), "deepseek") == {
        "label": "gateway-tls", "id": "0a0b", "type": "ec", "curve": "secp256r1", "bits": None,
        "objects": ["private", "public"], "usage": ["sign", "verify"],
        "uri": "pkcs11:token=deepseek;object=gateway-tls;id=%0A%0B;type=private",
        "public_key_pem": None, "public_key_sha256": None,
        "attributes": {"sensitive": True, "extractable": False, "never_extractable": True,
                       "always_sensitive": True, "local": True},
    }
    rsa = p11.planned_key(spec(key_type="rsa", extractable=True), "deepseek")
    assert (rsa["bits"], rsa["curve"], rsa["objects"]) == (3072, None, ["private", "public"])
    assert rsa["attributes"]["extractable"] is True and rsa["attributes"]["never_extractable"] is False


def test_delete_without_force_describes_the_key():
    with pytest.raises(Pkcs11KeyError) as exc:
        p11.plan(facts(type="rsa", curve=None, bits=4096, id=""), spec(state="absent"), "absent", False)
    assert str(exc.value).startswith("key 'gateway-tls' (RSA-4096, id (empty)) exists; deleting a key")
