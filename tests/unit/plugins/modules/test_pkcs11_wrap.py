"""onprem.deepseek.pkcs11_wrap: the blob format (pure) and main() against a real SoftHSM2 token.

Each token test gets its own SoftHSM2 token directory (SOFTHSM2_CONF points at a temporary config).
The throwaway test PINs are passed as process arguments only to softhsm2-util in that setup.
"""
import base64
import json
import stat
import subprocess

import pytest

import softhsm_tokens

from ansible.module_utils.testing import patch_module_args

from ansible_collections.onprem.deepseek.plugins.module_utils import _pkcs11_wrap as w

USER_PIN = "Tst-Wrap-Pin-31337"
SO_PIN = "Tst-Wrap-So-64021"
SOFTHSM_LIB = softhsm_tokens.SOFTHSM_LIB
needs_softhsm = softhsm_tokens.needs_softhsm_and_pkcs11


# -- pure part ------------------------------------------------------------------------------------

def test_blob_round_trip_and_header_is_the_aad():
    head = w.header("luks-wrap", "0a0b", "vol-1")
    blob = w.build_blob(head, b"\x01" * 12, b"\x02" * 80)
    parsed_head, nonce, ct = w.parse_blob(blob)
    assert parsed_head == head
    assert nonce == b"\x01" * 12 and ct == b"\x02" * 80
    aad = w.additional_data(head)
    assert aad == (b'{"context":"vol-1","format":"onprem.deepseek/wrapped-key","key_id":"0a0b",'
                   b'"key_label":"luks-wrap","mechanism":"AES-GCM","version":1}')
    doc = json.loads(blob)
    assert doc["tag_bits"] == 128 and base64.b64decode(doc["nonce"]) == b"\x01" * 12


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(format="other"), "format is not"),
    (lambda d: d.update(version=2), "version 2 is not supported"),
    (lambda d: d.update(mechanism="AES-CBC"), "mechanism"),
    (lambda d: d.update(nonce=base64.b64encode(b"x" * 8).decode()), "nonce is 8 bytes"),
    (lambda d: d.update(ciphertext="@@@"), "ciphertext is not base64"),
    (lambda d: d.update(ciphertext=base64.b64encode(b"x" * 20).decode()), "too short"),
    (lambda d: d.pop("context"), "context is missing"),
])
def test_parse_blob_refuses_damaged_documents(mutate, message):
    doc = json.loads(w.build_blob(w.header("k", "01", "c"), b"\x00" * 12, b"\x00" * 80))
    mutate(doc)
    with pytest.raises(w.WrapError, match=message):
        w.parse_blob(json.dumps(doc).encode())


def test_parse_blob_refuses_non_json_and_huge_input():
    with pytest.raises(w.WrapError, match="not a JSON document"):
        w.parse_blob(b"\xff\xfe")
    with pytest.raises(w.WrapError, match="too large"):
        w.parse_blob(b" " * (w.MAX_BLOB_BYTES + 1))


@pytest.mark.parametrize("count", [0, 15, 513, "64"])
def test_key_bytes_bounds(count):
    with pytest.raises(w.WrapError, match="key_bytes"):
        w.check_key_bytes(count)


def test_the_blob_is_written_in_one_canonical_layout():
    blob = w.build_blob(w.header("k", "01", "c"), b"\x00" * 12, b"\x00" * 32)
    assert blob == (b'{\n "ciphertext": "' + base64.b64encode(b"\x00" * 32) + b'",\n "context": "c",\n'
                    b' "format": "onprem.deepseek/wrapped-key",\n "key_id": "01",\n "key_label": "k",\n'
                    b' "mechanism": "AES-GCM",\n "nonce": "AAAAAAAAAAAAAAAA",\n "tag_bits": 128,\n "version": 1\n}\n')


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(format="other"), "wrapped key: format is not onprem.deepseek/wrapped-key"),
    (lambda d: d.update(version=2), "wrapped key: version 2 is not supported (this module reads 1)"),
    (lambda d: d.update(mechanism="AES-CBC"), "wrapped key: mechanism 'AES-CBC'/128 is not AES-GCM/128"),
    (lambda d: d.update(tag_bits=96), "wrapped key: mechanism 'AES-GCM'/96 is not AES-GCM/128"),
    (lambda d: d.update(key_id=1), "wrapped key: key_id is missing or not text"),
    (lambda d: d.update(nonce="@@"), "wrapped key: nonce is not base64"),
    (lambda d: d.update(nonce=None), "wrapped key: nonce is not base64"),
    (lambda d: d.update(nonce=base64.b64encode(b"x" * 13).decode()), "wrapped key: nonce is 13 bytes, not 12"),
    (lambda d: d.update(ciphertext=base64.b64encode(b"x" * 31).decode()), "wrapped key: ciphertext is too short"),
])
def test_parse_blob_refusals_whole(mutate, message):
    doc = json.loads(w.build_blob(w.header("k", "01", "c"), b"\x00" * 12, b"\x00" * 80))
    mutate(doc)
    with pytest.raises(w.WrapError) as caught:
        w.parse_blob(json.dumps(doc).encode())
    assert str(caught.value) == message


def test_parse_blob_limits_and_whole_messages():
    # The shortest ciphertext: a 16-byte key and the 16-byte tag.
    assert w.parse_blob(w.build_blob(w.header("k", "01", "c"), b"\x00" * 12, b"\x00" * 32))[2] == b"\x00" * 32
    blob = w.build_blob(w.header("k", "01", "c"), b"\x00" * 12, b"\x00" * 32)
    padded = blob + b" " * (w.MAX_BLOB_BYTES - len(blob))  # JSON allows trailing whitespace
    assert len(padded) == w.MAX_BLOB_BYTES and w.parse_blob(padded)[0]["key_label"] == "k"
    with pytest.raises(w.WrapError) as caught:
        w.parse_blob(padded + b" ")
    assert str(caught.value) == "wrapped key: 8193 bytes is too large for a wrapped key"
    with pytest.raises(w.WrapError) as caught:
        w.parse_blob(b"[]")
    assert str(caught.value) == "wrapped key: format is not onprem.deepseek/wrapped-key"
    with pytest.raises(w.WrapError) as caught:
        w.parse_blob(b"{")
    assert str(caught.value) == "wrapped key: not a JSON document"
    with pytest.raises(w.WrapError) as caught:
        w.build_blob(w.header("k", "01", "c"), b"\x00" * 11, b"\x00" * 32)
    assert str(caught.value) == "nonce must be 12 bytes, not 11"


@pytest.mark.parametrize("count", [16, 512])
def test_key_bytes_at_the_bounds(count):
    assert w.check_key_bytes(count) is None


def test_key_bytes_message():
    with pytest.raises(w.WrapError) as caught:
        w.check_key_bytes(15)
    assert str(caught.value) == "key_bytes must be between 16 and 512, got 15"


def test_write_private_sets_mode_before_content(tmp_path):
    target = tmp_path / "k"
    w.write_private(str(target), b"abc", 0o400)
    assert stat.S_IMODE(target.stat().st_mode) == 0o400
    assert target.read_bytes() == b"abc"
    assert [p.name for p in tmp_path.iterdir()] == ["k"]


class TokenStandIn:
    """Stands in for _pkcs11_token.Token: one AES key whose CKA_EXTRACTABLE reads as given."""

    token_label = "standin"

    def __init__(self, extractable):
        self.extractable = extractable

    def find_objects(self, label):
        return {"private": [], "public": [], "secret": ["aes-key-handle"]}

    def describe(self, label):
        return {"type": "aes", "id": "0a", "attributes": {"extractable": self.extractable}}


@pytest.mark.parametrize("extractable", [True, None])
def test_aes_key_that_is_or_may_be_extractable_is_refused(extractable):
    # None: the token did not say; a wrapping key must be known not to leave the token.
    with pytest.raises(w.WrapError, match="is extractable; a key that can leave the token"):
        w._aes_key(TokenStandIn(extractable), "luks-wrap")


def test_aes_key_known_not_extractable_is_used():
    assert w._aes_key(TokenStandIn(False), "luks-wrap")[0] == "aes-key-handle"


# -- against SoftHSM2 -----------------------------------------------------------------------------

@pytest.fixture
def token(tmp_path, monkeypatch):
    softhsm_tokens.init_tokens(tmp_path, monkeypatch, ["wraptest"], SO_PIN, USER_PIN)
    from ansible_collections.onprem.deepseek.plugins.module_utils._pkcs11_spec import build_spec
    from ansible_collections.onprem.deepseek.plugins.module_utils._pkcs11_token import ensure_key
    for label, extractable, kind in (("luks-wrap", False, "aes"), ("luks-other", False, "aes"),
                                     ("loose", True, "aes"), ("pair", False, "ec")):
        ensure_key(SOFTHSM_LIB, "wraptest", USER_PIN,
                   build_spec({"label": label, "key_type": kind, "extractable": extractable}), "present")
    return tmp_path


def no_process(*args, **kwargs):
    raise AssertionError("pkcs11_wrap started a process: %r" % (args,))


def run_main(monkeypatch, capsys, args, check_mode=False):
    from ansible_collections.onprem.deepseek.plugins.modules import pkcs11_wrap
    base = {"module_path": SOFTHSM_LIB, "token_label": "wraptest", "pin": USER_PIN, "key_label": "luks-wrap",
            "context": "models-volume"}
    base.update(args)
    base = dict((k, v) for k, v in base.items() if v is not None)
    if check_mode:
        base["_ansible_check_mode"] = True
    with monkeypatch.context() as m:
        m.setattr(subprocess, "Popen", no_process)
        with patch_module_args(base):
            with pytest.raises(SystemExit) as exc:
                pkcs11_wrap.main()
    raw = capsys.readouterr().out
    assert USER_PIN not in raw
    return exc.value.code, json.loads(raw)


@needs_softhsm
def test_wrap_creates_then_keeps_and_unwraps(token, monkeypatch, capsys):
    path = token / "vol.wrapped"
    dest = token / "vol.key"
    rc, res = run_main(monkeypatch, capsys, {"path": str(path)}, check_mode=True)
    assert rc == 0 and res["changed"] and res["created"] and not path.exists()

    rc, res = run_main(monkeypatch, capsys, {"path": str(path)})
    assert rc == 0 and res["changed"] and res["created"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["key_label"] == "luks-wrap" and doc["context"] == "models-volume"
    assert doc["key_id"] == res["key_id"] and len(res["key_id"]) == 32
    blob_before = path.read_bytes()

    rc, res = run_main(monkeypatch, capsys, {"path": str(path)})
    assert rc == 0 and not res["changed"] and not res["created"]
    assert path.read_bytes() == blob_before

    rc, res = run_main(monkeypatch, capsys, {"path": str(path), "state": "unwrapped", "dest": str(dest)})
    assert rc == 0 and res["changed"] and res["dest_changed"]
    key = dest.read_bytes()
    assert len(key) == 64 and stat.S_IMODE(dest.stat().st_mode) == 0o400
    # The clear key appears neither in the wrapped file nor in the module's output.
    assert key not in blob_before and base64.b64encode(key) not in blob_before
    assert key.hex() not in json.dumps(res)

    rc, res = run_main(monkeypatch, capsys, {"path": str(path), "state": "unwrapped", "dest": str(dest)})
    assert rc == 0 and not res["changed"] and dest.read_bytes() == key


@needs_softhsm
def test_unwrap_refuses_other_context_tampering_and_other_key(token, monkeypatch, capsys):
    path = token / "vol.wrapped"
    assert run_main(monkeypatch, capsys, {"path": str(path)})[0] == 0
    rc, res = run_main(monkeypatch, capsys, {"path": str(path), "context": "other-volume"})
    assert rc == 1 and "belongs to context 'models-volume', not 'other-volume'" in res["msg"]

    rc, res = run_main(monkeypatch, capsys, {"path": str(path), "key_label": "luks-other"})
    assert rc == 1 and "was wrapped under 'luks-wrap', not 'luks-other'" in res["msg"]

    doc = json.loads(path.read_text())
    ct = bytearray(base64.b64decode(doc["ciphertext"]))
    ct[0] ^= 1
    doc["ciphertext"] = base64.b64encode(bytes(ct)).decode()
    path.write_text(json.dumps(doc))
    rc, res = run_main(monkeypatch, capsys, {"path": str(path)})
    assert rc == 1 and "could not decrypt" in res["msg"]


@needs_softhsm
def test_refuses_extractable_key_pair_missing_key_and_wrong_pin(token, monkeypatch, capsys):
    rc, res = run_main(monkeypatch, capsys, {"path": str(token / "a"), "key_label": "loose"})
    assert rc == 1 and "is extractable" in res["msg"] and not (token / "a").exists()
    rc, res = run_main(monkeypatch, capsys, {"path": str(token / "b"), "key_label": "pair"})
    assert rc == 1 and "is a key pair" in res["msg"]
    rc, res = run_main(monkeypatch, capsys, {"path": str(token / "c"), "key_label": "nope"})
    assert rc == 1 and "has no AES key labelled 'nope'" in res["msg"]
    rc, res = run_main(monkeypatch, capsys, {"path": str(token / "d"), "pin": "Wrong-Wrap-Pin-1"})
    assert rc == 1 and "CKR_PIN_INCORRECT" in res["msg"] and "Wrong-Wrap-Pin-1" not in json.dumps(res)


@needs_softhsm
def test_pin_file_and_unwrap_needs_dest(token, monkeypatch, capsys):
    pin_file = token / "pin"
    pin_file.write_text(USER_PIN)
    rc, res = run_main(monkeypatch, capsys, {"path": str(token / "v"), "pin": None, "pin_file": str(pin_file)})
    assert rc == 0 and res["created"], res
    rc, res = run_main(monkeypatch, capsys, {"path": str(token / "v"), "state": "unwrapped"})
    assert rc == 1 and "dest" in res["msg"]


def test_write_private_default_mode_and_its_temporary_file(tmp_path, monkeypatch):
    made = []
    real_mkstemp = w.tempfile.mkstemp

    def mkstemp(**kwargs):
        made.append(kwargs)
        return real_mkstemp(**kwargs)

    monkeypatch.setattr(w.tempfile, "mkstemp", mkstemp)
    w.write_private(str(tmp_path / "k"), b"abc")
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    assert made == [{"dir": str(tmp_path), "prefix": ".pkcs11-wrap-"}]


def test_write_private_removes_its_temporary_file_when_the_rename_fails(tmp_path):
    (tmp_path / "k").mkdir()   # a directory where the file should go: rename fails
    with pytest.raises(OSError):
        w.write_private(str(tmp_path / "k"), b"abc")
    assert [p.name for p in tmp_path.iterdir()] == ["k"]


def test_write_private_and_read_file_messages(tmp_path):
    with pytest.raises(w.WrapError) as caught:
        w.write_private(str(tmp_path / "none" / "k"), b"abc")
    assert str(caught.value) == "directory %s does not exist" % (tmp_path / "none")
    with pytest.raises(w.WrapError) as caught:
        w.read_file(str(tmp_path / "none"))
    assert str(caught.value) == "cannot read %s: No such file or directory" % (tmp_path / "none")


def test_read_file_reads_one_byte_past_the_blob_limit(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * (w.MAX_BLOB_BYTES + 10))
    assert len(w.read_file(str(tmp_path / "big"))) == w.MAX_BLOB_BYTES + 1
