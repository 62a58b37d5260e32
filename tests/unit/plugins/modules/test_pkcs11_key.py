"""main() of onprem.deepseek.pkcs11_key against a real SoftHSM2 token.

Each test gets its own SoftHSM2 token directory (SOFTHSM2_CONF points at a temporary config),
with two tokens initialised by softhsm2-util and one free slot. The throwaway test PINs below are
passed as process arguments only to softhsm2-util in that setup; pkcs11-tool reads the PIN from
an environment variable (``--pin env:NAME``).
"""
import contextlib
import hashlib
import json
import os
import shutil
import subprocess

import pytest

import softhsm_tokens

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

pkcs11 = pytest.importorskip("pkcs11")
serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
ec = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ec")
rsa = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.rsa")

from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass  # noqa: E402
from pkcs11 import exceptions as p11exc  # noqa: E402

from ansible_collections.onprem.deepseek.plugins.modules import pkcs11_key  # noqa: E402

USER_PIN = "Tst-Usr-Pin-58213"
SO_PIN = "Tst-So-Pin-90417"
WRONG_PIN = "Wrong-Pin-77324"
PIN_ENV = "ONPREM_TEST_PKCS11_PIN"
SOFTHSM_LIB = softhsm_tokens.SOFTHSM_LIB

pytestmark = pytest.mark.skipif(not softhsm_tokens.AVAILABLE, reason=softhsm_tokens.MISSING)


class Hsm(object):
    def __init__(self, root):
        self.root = root
        self.conf = root / "softhsm2.conf"
        self.lib = SOFTHSM_LIB

    def args(self, **kw):
        base = {"module_path": self.lib, "token_label": "deepseek-a", "pin": USER_PIN}
        base.update(kw)
        return base


@pytest.fixture
def hsm(tmp_path, monkeypatch):
    h = Hsm(tmp_path)
    h.conf = softhsm_tokens.init_tokens(tmp_path, monkeypatch, ["deepseek-a", "deepseek-b"], SO_PIN, USER_PIN)
    return h


def run_main(monkeypatch, capsys, args, check_mode=False, diff=False):
    """Run the module; return (exit code, result, log lines). Fails the test if the module starts a
    process or if the user PIN shows up in the output or in what the module logs."""
    logged = []

    def no_process(*a, **kw):
        raise AssertionError("pkcs11_key started a process: %r" % (a,))
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    if diff:
        args = dict(args, _ansible_diff=True)
    with monkeypatch.context() as m:
        m.setattr(basic.AnsibleModule, "log",
                  lambda self, msg, log_args=None: logged.append("%s %r" % (msg, log_args)))
        m.setattr(subprocess, "Popen", no_process)
        with patch_module_args(args):
            with pytest.raises(SystemExit) as exc:
                pkcs11_key.main()
    raw = capsys.readouterr().out
    for pin in (USER_PIN, WRONG_PIN):
        assert pin not in raw
        assert not any(pin in line for line in logged)
    return exc.value.code, json.loads(raw), logged


@contextlib.contextmanager
def session(hsm, token="deepseek-a"):
    lib = pkcs11.lib(hsm.lib)
    try:
        with lib.get_token(token_label=token).open(rw=True, user_pin=USER_PIN) as s:
            yield s
    finally:
        lib.finalize()


def objects_labelled(hsm, label):
    with session(hsm) as s:
        return sorted(ObjectClass(o[Attribute.CLASS]).name for o in s.get_objects({Attribute.LABEL: label}))


def pkcs11_tool(hsm, *args):
    env = dict(os.environ, **{PIN_ENV: USER_PIN})
    cmd = ["pkcs11-tool", "--module", hsm.lib, "--token-label", "deepseek-a"] + list(args)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)


def spki_der(pem):
    key = serialization.load_pem_public_key(pem.encode())
    return key, key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


# -- creation and idempotence -------------------------------------------------------------------

@pytest.mark.parametrize("params, curve_cls, bits", [
    ({"key_type": "ec"}, ec.SECP256R1, None),
    ({"key_type": "ec", "curve": "secp384r1"}, ec.SECP384R1, None),
    ({"key_type": "rsa", "rsa_bits": 2048}, None, 2048),
])
def test_creates_key_pair_and_is_idempotent(hsm, monkeypatch, capsys, params, curve_cls, bits):
    args = hsm.args(label="gw-tls", **params)
    code, out, _log = run_main(monkeypatch, capsys, args)
    assert code == 0, out
    assert out["changed"] is True and out["action"] == "create"
    key = out["key"]
    assert key["label"] == "gw-tls" and key["type"] == params["key_type"]
    assert key["id"] == hashlib.sha256(b"gw-tls").hexdigest()[:32]
    assert key["objects"] == ["private", "public"]
    assert key["usage"] == ["sign", "verify"]
    assert key["attributes"] == {"sensitive": True, "extractable": False, "never_extractable": True,
                                 "always_sensitive": True, "local": True}
    assert key["uri"] == "pkcs11:token=deepseek-a;object=gw-tls;id=%s;type=private" % "".join(
        "%%%s" % key["id"][i:i + 2].upper() for i in range(0, 32, 2))
    public, der = spki_der(key["public_key_pem"])
    assert key["public_key_sha256"] == hashlib.sha256(der).hexdigest()
    if curve_cls:
        assert isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, curve_cls)
        assert key["curve"] == params.get("curve", "secp256r1") and key["bits"] is None
    else:
        assert isinstance(public, rsa.RSAPublicKey) and public.key_size == bits
        assert public.public_numbers().e == 65537 and key["bits"] == bits and key["curve"] is None

    # The same key rebuilt by cryptography from the token's raw attributes.
    with session(hsm) as s:
        pub = s.get_key(label="gw-tls", object_class=ObjectClass.PUBLIC_KEY)
        if curve_cls:
            point = pub[Attribute.EC_POINT]
            rebuilt = ec.EllipticCurvePublicKey.from_encoded_point(curve_cls(), point[2:] if point[1] < 0x80 else point[3:])
        else:
            rebuilt = rsa.RSAPublicNumbers(int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big"),
                                           int.from_bytes(pub[Attribute.MODULUS], "big")).public_key()
    assert rebuilt.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == der

    # And pkcs11-tool's export of the public key (OpenSC 0.23 cannot export P-384 public keys at all).
    if shutil.which("pkcs11-tool") and params.get("curve") != "secp384r1":
        res = pkcs11_tool(hsm, "--read-object", "--type", "pubkey", "--label", "gw-tls",
                          "--output-file", str(hsm.root / "pub.der"))
        assert res.returncode == 0, res.stderr
        assert hashlib.sha256((hsm.root / "pub.der").read_bytes()).hexdigest() == key["public_key_sha256"]

    code, again, _log = run_main(monkeypatch, capsys, args)
    assert code == 0 and again["changed"] is False and again["action"] == "keep"
    assert again["key"] == key
    assert objects_labelled(hsm, "gw-tls") == ["PRIVATE_KEY", "PUBLIC_KEY"]


def test_creates_aes_key(hsm, monkeypatch, capsys):
    args = hsm.args(label="luks-wrap", key_type="aes", id="4c55", usage=["wrap", "unwrap"])
    code, out, _log = run_main(monkeypatch, capsys, args)
    assert code == 0 and out["changed"] is True
    key = out["key"]
    assert (key["type"], key["bits"], key["id"], key["objects"]) == ("aes", 256, "4c55", ["secret"])
    assert key["usage"] == ["wrap", "unwrap"]
    assert key["public_key_pem"] is None and key["public_key_sha256"] is None
    assert key["uri"] == "pkcs11:token=deepseek-a;object=luks-wrap;id=%4C%55;type=secret"
    assert key["attributes"]["extractable"] is False and key["attributes"]["sensitive"] is True
    with session(hsm) as s:
        secret = s.get_key(label="luks-wrap", object_class=ObjectClass.SECRET_KEY)
        assert secret[Attribute.VALUE_LEN] == 32
        assert secret[Attribute.WRAP] is True and secret[Attribute.ENCRYPT] is False
    code, again, _log = run_main(monkeypatch, capsys, args)
    assert code == 0 and again["changed"] is False and again["key"] == key


def test_default_rsa_size_is_3072(hsm, monkeypatch, capsys):
    code, out, _log = run_main(monkeypatch, capsys, hsm.args(label="pki-signer", key_type="rsa"))
    assert code == 0 and out["key"]["bits"] == 3072
    public, _der = spki_der(out["key"]["public_key_pem"])
    assert public.key_size == 3072


def test_check_mode_creates_nothing(hsm, monkeypatch, capsys):
    args = hsm.args(label="gw-tls", key_type="ec", curve="secp384r1")
    code, out, _log = run_main(monkeypatch, capsys, args, check_mode=True, diff=True)
    assert code == 0 and out["changed"] is True and out["action"] == "create"
    assert out["key"]["public_key_pem"] is None and out["key"]["curve"] == "secp384r1"
    assert out["key"]["id"] == hashlib.sha256(b"gw-tls").hexdigest()[:32]
    assert out["diff"]["before"] == {"state": "absent"} and out["diff"]["after"]["state"] == "present"
    assert objects_labelled(hsm, "gw-tls") == []
    # Nothing was created, so a real run still creates, with the id check mode announced.
    code, real, _log = run_main(monkeypatch, capsys, args)
    assert real["changed"] is True and real["key"]["id"] == out["key"]["id"]


# -- the private value cannot leave the token ---------------------------------------------------

@pytest.mark.parametrize("params, object_class, secret_attr", [
    ({"key_type": "ec"}, ObjectClass.PRIVATE_KEY, Attribute.VALUE),
    ({"key_type": "rsa", "rsa_bits": 2048}, ObjectClass.PRIVATE_KEY, Attribute.PRIVATE_EXPONENT),
    ({"key_type": "aes"}, ObjectClass.SECRET_KEY, Attribute.VALUE),
])
def test_key_value_cannot_be_read_or_wrapped(hsm, monkeypatch, capsys, params, object_class, secret_attr):
    code, out, _log = run_main(monkeypatch, capsys, hsm.args(label="guarded", **params))
    assert code == 0 and out["changed"] is True
    with session(hsm) as s:
        key = s.get_key(label="guarded", object_class=object_class)
        with pytest.raises(p11exc.AttributeSensitive):
            key[secret_attr]
        wrapper = s.generate_key(KeyType.AES, 256, label="session-wrapper", store=False,
                                 capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP)
        mechanism = Mechanism.AES_KEY_WRAP if object_class == ObjectClass.SECRET_KEY else Mechanism.AES_KEY_WRAP_PAD
        with pytest.raises(p11exc.KeyUnextractable):
            wrapper.wrap_key(key, mechanism=mechanism)


def test_extractable_only_when_asked(hsm, monkeypatch, capsys):
    # The control for the test above: the same wrap succeeds on a key made with extractable=true,
    # whose value still cannot be read in clear.
    code, out, _log = run_main(monkeypatch, capsys, hsm.args(label="exportable", key_type="aes", extractable=True))
    assert code == 0 and out["key"]["attributes"]["extractable"] is True
    assert out["key"]["attributes"]["never_extractable"] is False
    with session(hsm) as s:
        key = s.get_key(label="exportable", object_class=ObjectClass.SECRET_KEY)
        with pytest.raises(p11exc.AttributeSensitive):
            key[Attribute.VALUE]
        wrapper = s.generate_key(KeyType.AES, 256, label="session-wrapper", store=False,
                                 capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP)
        assert len(wrapper.wrap_key(key, mechanism=Mechanism.AES_KEY_WRAP)) == 40


@pytest.mark.skipif(shutil.which("pkcs11-tool") is None, reason="pkcs11-tool (opensc) is not installed")
def test_pkcs11_tool_cannot_export(hsm, monkeypatch, capsys):
    assert run_main(monkeypatch, capsys, hsm.args(label="tls", key_type="ec"))[0] == 0
    assert run_main(monkeypatch, capsys, hsm.args(label="kek", key_type="aes"))[0] == 0

    out_priv = hsm.root / "priv.der"
    res = pkcs11_tool(hsm, "--login", "--pin", "env:" + PIN_ENV, "--read-object", "--type", "privkey",
                      "--label", "tls", "--output-file", str(out_priv))
    # OpenSC 0.23 refuses with a message but exit status 0; what counts is that nothing was written.
    assert not out_priv.exists()
    assert res.returncode != 0 or "not (yet) supported" in res.stderr or "SENSITIVE" in res.stderr

    out_secret = hsm.root / "secret.bin"
    res = pkcs11_tool(hsm, "--login", "--pin", "env:" + PIN_ENV, "--read-object", "--type", "secrkey",
                      "--label", "kek", "--output-file", str(out_secret))
    assert res.returncode != 0
    assert "CKR_ATTRIBUTE_SENSITIVE" in res.stderr
    assert not out_secret.exists() or out_secret.stat().st_size == 0


# -- existing keys that do not match --------------------------------------------------------------

def test_mismatching_key_fails_and_is_kept(hsm, monkeypatch, capsys):
    code, first, _log = run_main(monkeypatch, capsys, hsm.args(label="gw-tls", key_type="ec"))
    assert code == 0
    cases = [
        (hsm.args(label="gw-tls", key_type="rsa"), "it is an EC secp256r1 key, not RSA"),
        (hsm.args(label="gw-tls", key_type="ec", curve="secp384r1"), "it is on curve secp256r1, not secp384r1"),
        (hsm.args(label="gw-tls", key_type="ec", id="01"),
         "its id is %s, not 01" % first["key"]["id"]),
        (hsm.args(label="gw-tls", key_type="ec", usage=["sign", "verify", "derive"]),
         "its usage is [sign, verify], not [sign, verify, derive]"),
        (hsm.args(label="gw-tls", key_type="ec", extractable=True),
         "it is not extractable, and extractable=true was asked for"),
    ]
    for args, reason in cases:
        code, out, _log = run_main(monkeypatch, capsys, args)
        assert code == 1, args
        assert out["msg"] == (
            "key 'gw-tls' exists on token but does not match the request: %s. The module never changes or "
            "replaces an existing key; delete it (state=absent, force=true) or use another label" % reason)
    code, out, _log = run_main(monkeypatch, capsys, hsm.args(label="gw-tls", key_type="ec"))
    assert out["changed"] is False and out["key"]["public_key_sha256"] == first["key"]["public_key_sha256"]


def test_extractable_key_is_not_accepted_as_non_extractable(hsm, monkeypatch, capsys):
    assert run_main(monkeypatch, capsys, hsm.args(label="legacy", key_type="ec", extractable=True))[0] == 0
    code, out, _log = run_main(monkeypatch, capsys, hsm.args(label="legacy", key_type="ec"))
    assert code == 1
    assert "it is extractable (CKA_EXTRACTABLE=true); it may already have been exported" in out["msg"]


# -- errors ---------------------------------------------------------------------------------------

def test_wrong_pin(hsm, monkeypatch, capsys):
    code, out, logged = run_main(monkeypatch, capsys, hsm.args(pin=WRONG_PIN, label="gw-tls", key_type="ec"))
    assert code == 1
    assert out["msg"] == "PIN rejected by token deepseek-a (CKR_PIN_INCORRECT)"
    assert out["invocation"]["module_args"]["pin"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert logged  # the invocation was logged, without the PIN (checked in run_main)


def test_missing_token_lists_tokens(hsm, monkeypatch, capsys):
    code, out, _log = run_main(monkeypatch, capsys, hsm.args(token_label="deepseek-c", label="k", key_type="ec"))
    assert code == 1
    assert out["msg"] == ("token 'deepseek-c' not found in %s; tokens present: 'deepseek-a', 'deepseek-b' "
                          "(and 1 uninitialised)" % hsm.lib)


def test_missing_library(hsm, monkeypatch, capsys):
    path = str(hsm.root / "libvendor-pkcs11.so")
    code, out, _log = run_main(monkeypatch, capsys, hsm.args(module_path=path, label="k", key_type="ec"))
    assert code == 1
    assert out["msg"] == ("PKCS#11 library %s not found; install it (softhsm2 for SoftHSM2, or the HSM "
                          "vendor's client) or set module_path" % path)


def test_library_that_is_not_pkcs11(hsm, monkeypatch, capsys):
    path = hsm.root / "not-a-library.so"
    path.write_text("not an ELF file\n")
    code, out, _log = run_main(monkeypatch, capsys, hsm.args(module_path=str(path), label="k", key_type="ec"))
    assert code == 1
    assert out["msg"].startswith("cannot load or initialise PKCS#11 library %s (PKCS11Error: " % path)


def test_softhsm_without_config(hsm, monkeypatch, capsys):
    missing = hsm.root / "absent.conf"
    monkeypatch.setenv("SOFTHSM2_CONF", str(missing))
    code, out, _log = run_main(monkeypatch, capsys, hsm.args(label="k", key_type="ec"))
    assert code == 1
    assert out["msg"] == ("cannot load or initialise PKCS#11 library %s (GeneralError); SoftHSM2 reads %s: "
                          "check that it exists and that directories.tokendir is writable" % (hsm.lib, missing))


def test_invalid_options_fail_before_the_token_is_opened(hsm, monkeypatch, capsys):
    args = hsm.args(module_path="/nonexistent.so", label="k", key_type="rsa", curve="secp256r1")
    code, out, _log = run_main(monkeypatch, capsys, args)
    assert code == 1 and out["msg"] == "curve applies to key_type=ec only (key_type is rsa)"


def test_missing_python_pkcs11(hsm, monkeypatch, capsys):
    monkeypatch.setattr(pkcs11_key, "HAS_PKCS11", False)
    monkeypatch.setattr(pkcs11_key, "PKCS11_IMPORT_ERROR", "Traceback: ImportError")
    code, out, _log = run_main(monkeypatch, capsys, hsm.args(label="k", key_type="ec"))
    assert code == 1
    assert out["msg"] == basic.missing_required_lib("python-pkcs11")


# -- the PIN stays secret -------------------------------------------------------------------------

def test_pin_file(hsm, monkeypatch, capsys):
    pin_file = hsm.root / "user.pin"
    pin_file.write_text(USER_PIN + "\n")
    args = {"module_path": hsm.lib, "token_label": "deepseek-a", "pin_file": str(pin_file),
            "label": "gw-tls", "key_type": "ec"}
    code, out, _log = run_main(monkeypatch, capsys, args)
    assert code == 0 and out["changed"] is True
    assert out["invocation"]["module_args"]["pin_file"] == str(pin_file)
    assert out["invocation"]["module_args"]["pin"] is None

    pin_file.write_text(WRONG_PIN + "\n")
    code, out, _log = run_main(monkeypatch, capsys, args)
    assert code == 1 and out["msg"] == "PIN rejected by token deepseek-a (CKR_PIN_INCORRECT)"


def test_pin_never_in_result(hsm, monkeypatch, capsys):
    pin_file = hsm.root / "user.pin"
    pin_file.write_text(USER_PIN)
    runs = [
        hsm.args(label="a", key_type="ec"),
        hsm.args(label="a", key_type="ec", _ansible_diff=True),
        hsm.args(label="b", key_type="aes", _ansible_check_mode=True),
        hsm.args(label="a", key_type="rsa"),
        hsm.args(label="a", state="absent"),
        hsm.args(token_label="nope", label="a", key_type="ec"),
        hsm.args(pin=WRONG_PIN, label="a", key_type="ec"),
        {"module_path": hsm.lib, "token_label": "deepseek-a", "pin_file": str(pin_file), "label": "a",
         "key_type": "ec"},
    ]
    codes = []
    for args in runs:
        code, out, _log = run_main(monkeypatch, capsys, args)
        codes.append(code)
        text = json.dumps(out)
        assert USER_PIN not in text and WRONG_PIN not in text
    assert codes == [0, 0, 0, 1, 1, 1, 1, 0]


def test_pin_from_file_is_masked_even_if_echoed(hsm, monkeypatch, capsys):
    # Stand-ins for a library that puts the PIN into an error text or a returned value: the PIN read
    # from pin_file is masked like a no_log option.
    pin_file = hsm.root / "user.pin"
    pin_file.write_text(USER_PIN + "\n")
    args = {"module_path": hsm.lib, "token_label": "deepseek-a", "pin_file": str(pin_file), "label": "k",
            "key_type": "ec"}

    def echo_in_error(module_path, token_label, pin, spec, state, force=False, check_mode=False):
        raise pkcs11_key.Pkcs11KeyError("token said: bad login %s" % pin)
    monkeypatch.setattr(pkcs11_key, "ensure_key", echo_in_error)
    code, out, _log = run_main(monkeypatch, capsys, args)
    assert code == 1 and out["msg"] == "token said: bad login ********"

    def echo_in_result(module_path, token_label, pin, spec, state, force=False, check_mode=False):
        return {"changed": False, "action": "keep", "key": {"label": "k", "note": "pin=%s" % pin}}
    monkeypatch.setattr(pkcs11_key, "ensure_key", echo_in_result)
    code, out, _log = run_main(monkeypatch, capsys, args)
    assert code == 0 and out["key"]["note"] == "pin=********"


# -- state=absent ---------------------------------------------------------------------------------

def test_absent_needs_force(hsm, monkeypatch, capsys):
    code, created, _log = run_main(monkeypatch, capsys, hsm.args(label="old", key_type="ec"))
    assert code == 0
    key_id = created["key"]["id"]

    code, out, _log = run_main(monkeypatch, capsys, hsm.args(label="old", state="absent"))
    assert code == 1
    assert out["msg"].startswith("key 'old' (EC secp256r1, id %s) exists; deleting a key on a token cannot be "
                                 "undone" % key_id)
    assert objects_labelled(hsm, "old") == ["PRIVATE_KEY", "PUBLIC_KEY"]

    code, out, _log = run_main(monkeypatch, capsys, hsm.args(label="old", state="absent", key_type="aes", force=True))
    assert code == 1 and out["msg"] == "key 'old' is an EC key, not AES; refusing to delete it"

    args = hsm.args(label="old", state="absent", force=True)
    code, out, _log = run_main(monkeypatch, capsys, args, check_mode=True)
    assert code == 0 and out["changed"] is True and out["action"] == "delete"
    assert objects_labelled(hsm, "old") == ["PRIVATE_KEY", "PUBLIC_KEY"]

    code, out, _log = run_main(monkeypatch, capsys, hsm.args(label="old", state="absent", force=True), diff=True)
    assert code == 0 and out["changed"] is True and out["key"]["id"] == key_id
    assert out["diff"]["after"] == {"state": "absent"} and out["diff"]["before"]["id"] == key_id
    assert objects_labelled(hsm, "old") == []

    code, out, _log = run_main(monkeypatch, capsys, hsm.args(label="old", state="absent", force=True))
    assert code == 0 and out["changed"] is False and out["action"] == "none" and out["key"] is None


def test_absent_keeps_other_labels_and_tokens(hsm, monkeypatch, capsys):
    assert run_main(monkeypatch, capsys, hsm.args(label="one", key_type="aes"))[0] == 0
    assert run_main(monkeypatch, capsys, hsm.args(label="two", key_type="aes"))[0] == 0
    assert run_main(monkeypatch, capsys, hsm.args(token_label="deepseek-b", label="one", key_type="aes"))[0] == 0
    code, out, _log = run_main(monkeypatch, capsys, hsm.args(label="one", state="absent", force=True))
    assert code == 0 and out["changed"] is True
    assert objects_labelled(hsm, "one") == []
    assert objects_labelled(hsm, "two") == ["SECRET_KEY"]
    with session(hsm, "deepseek-b") as s:
        assert [o[Attribute.LABEL] for o in s.get_objects({Attribute.LABEL: "one"})] == ["one"]


def test_duplicate_labels_are_refused(hsm, monkeypatch, capsys):
    with session(hsm) as s:
        for key_id in (b"\x01", b"\x02"):
            s.generate_key(KeyType.AES, 256, id=key_id, label="twin", store=True)
    code, out, _log = run_main(monkeypatch, capsys, hsm.args(label="twin", key_type="aes"))
    assert code == 1
    assert out["msg"] == ("label 'twin' names more than one key on token deepseek-a (ids 01, 02); "
                          "the module needs the label to be unique")
    code, out, _log = run_main(monkeypatch, capsys, hsm.args(label="twin", state="absent", force=True))
    assert code == 1 and "names more than one key" in out["msg"]
