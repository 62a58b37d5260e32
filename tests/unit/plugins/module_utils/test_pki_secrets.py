"""API keys: format, salted hashes, write-once file, and the api_key module's main()."""
import json
import os
import stat

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.onprem.deepseek.plugins.module_utils import _pki_secrets as s
from ansible_collections.onprem.deepseek.plugins.modules import api_key

FIXED_SALT = bytes(range(16))


def counting_bytes():
    state = {"n": 0}

    def randbytes(count):
        state["n"] += 1
        return bytes([state["n"]]) * count
    return randbytes


def test_new_key_format_and_id():
    key, key_id = s.new_key("dsk", counting_bytes())
    assert key_id == "010101010101"
    assert key == "dsk_010101010101_" + "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI"
    assert s.key_id_of(key) == key_id


def test_secret_may_contain_underscore_and_dash():
    # 0xff / 0xfb bytes encode to "_" / "-" in URL-safe base64.
    key, key_id = s.new_key("dsk", lambda count: b"\xff\xfb" * (count // 2))
    secret = key.split("_", 2)[2]
    assert "_" in secret and "-" in secret and len(secret) == 43
    assert key == "dsk_%s_%s" % (key_id, secret)
    assert s.key_id_of(key) == key_id
    assert s.verify_key(key, s.hash_key(key, FIXED_SALT))


def test_hash_is_salted_scrypt_and_verifies():
    key, key_id = s.new_key("dsk", counting_bytes())
    stored = s.hash_key(key, FIXED_SALT)
    assert stored.startswith("scrypt$16384$8$1$010101010101$AAECAwQFBgcICQoLDA0ODw==$")
    assert key not in stored and key.split("_", 2)[2] not in stored
    assert s.verify_key(key, stored)
    assert not s.verify_key(key[:-1] + ("A" if key[-1] != "A" else "B"), stored)
    assert not s.verify_key("dsk_ffffffffffff_" + key.split("_", 2)[2], stored)
    assert not s.verify_key("garbage", stored)
    # Another salt, another hash for the same key.
    assert s.hash_key(key) != s.hash_key(key)


@pytest.mark.parametrize("stored, message", [
    ("sha256$abc", "not in scrypt"),
    ("scrypt$1024$8$1$010101010101$AA==$AA==", "weak or invalid"),
    ("scrypt$16385$8$1$010101010101$AA==$AA==", "weak or invalid"),
])
def test_parse_hash_refuses_bad_records(stored, message):
    with pytest.raises(s.SecretError, match=message):
        s.parse_hash(stored)


@pytest.mark.parametrize("prefix", ["", "a", "DSK", "1ab", "with_underscore", "x" * 17])
def test_prefix_rules(prefix):
    with pytest.raises(s.SecretError, match="prefix"):
        s.new_key(prefix)


def test_write_once_mode_and_refusal(tmp_path):
    target = tmp_path / "k"
    s.write_once(str(target), "secret\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_text() == "secret\n"
    with pytest.raises(s.SecretError, match="already handed out"):
        s.write_once(str(target), "other\n")
    assert target.read_text() == "secret\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k"]


def run_main(capsys, args, check_mode=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            api_key.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def test_module_generates_once_and_never_returns_the_key(tmp_path, capsys):
    out = tmp_path / "admin.key"
    rc, res = run_main(capsys, {"output_path": str(out)}, check_mode=True)
    assert rc == 0 and res["changed"] and res["hash"] is None and not out.exists()

    rc, res = run_main(capsys, {"output_path": str(out), "prefix": "gw"})
    key = out.read_text().strip()
    assert rc == 0 and res["changed"] and key.startswith("gw_" + res["key_id"] + "_")
    # The secret is URL-safe base64 and may itself contain "_": split off prefix and key id only.
    secret = key.split("_", 2)[2]
    assert len(secret) == 43
    assert key not in json.dumps(res) and secret not in json.dumps(res)
    assert s.verify_key(key, res["hash"])

    rc, again = run_main(capsys, {"output_path": str(out), "stored_hash": res["hash"] + "\n"})
    assert rc == 0 and not again["changed"] and again["hash"] == res["hash"] and again["output_path"] is None

    rc, res = run_main(capsys, {"output_path": str(out)})
    assert rc == 1 and "already handed out" in res["msg"] and out.read_text().strip() == key


@pytest.mark.parametrize("n, r, p, ok", [
    (2 ** 14, 1, 1, True), (2 ** 13, 8, 1, False),     # n: at least 2^14
    (2 ** 15, 8, 1, True), (3 * 2 ** 13, 8, 1, False),  # n: a power of two
    (2 ** 14, 32, 1, True), (2 ** 14, 33, 1, False), (2 ** 14, 0, 1, False),
    (2 ** 14, 8, 16, True), (2 ** 14, 8, 17, False), (2 ** 14, 8, 0, False),
])
def test_parse_hash_parameter_bounds(n, r, p, ok):
    stored = "scrypt$%d$%d$%d$010101010101$AAECAw==$BAUGBw==" % (n, r, p)
    if ok:
        assert s.parse_hash(stored) == {"n": n, "r": r, "p": p, "key_id": "010101010101",
                                        "salt": b"\x00\x01\x02\x03", "hash": b"\x04\x05\x06\x07"}
    else:
        with pytest.raises(s.SecretError, match="weak or invalid"):
            s.parse_hash(stored)


def test_issue_with_stored_hash_generates_nothing(tmp_path):
    key, key_id = s.new_key("dsk", counting_bytes())
    stored = s.hash_key(key, FIXED_SALT)
    out = tmp_path / "admin.key"
    assert s.issue("dsk", str(out), stored_hash=stored + "\n") == {
        "changed": False, "hash": stored, "key_id": key_id, "output_path": None}
    assert not out.exists()


def test_write_once_needs_an_existing_directory(tmp_path):
    with pytest.raises(s.SecretError, match="does not exist"):
        s.write_once(str(tmp_path / "missing" / "admin.key"), "k\n")
    assert list(tmp_path.iterdir()) == []


def test_hash_is_a_32_byte_scrypt_digest():
    key, key_id = s.new_key("dsk", counting_bytes())
    record = s.parse_hash(s.hash_key(key, FIXED_SALT))
    assert len(record["hash"]) == 32 and record["salt"] == FIXED_SALT


def test_write_once_stages_in_the_target_directory(tmp_path, monkeypatch):
    # The temporary file must sit beside the target: link(2) does not cross filesystems.
    links = []
    real_link = s.os.link

    def recording_link(src, dst):
        links.append((src, dst))
        return real_link(src, dst)
    monkeypatch.setattr(s.os, "link", recording_link)
    s.write_once(str(tmp_path / "admin.key"), "k\n")
    (src, dst), = links
    assert os.path.dirname(src) == str(tmp_path) and os.path.basename(src).startswith(".api-key-")
    assert dst == str(tmp_path / "admin.key")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["admin.key"]


@pytest.mark.parametrize("call, message", [
    (lambda tmp: s.new_key("DSK"), "prefix 'DSK' must be 2-16 lowercase letters or digits, starting with a letter"),
    (lambda tmp: s.key_id_of("dsk_nothex_x"), "not an API key of this collection's format"),
    (lambda tmp: s.parse_hash(None), "stored API key hash is not in scrypt$n$r$p$id$salt$hash form"),
    (lambda tmp: s.parse_hash("scrypt$1024$8$1$010101010101$AA==$AA=="),
     "stored API key hash has weak or invalid scrypt parameters"),
    (lambda tmp: s.write_once(str(tmp / "no" / "k"), "k"),
     "directory %s for the API key file does not exist"),
])
def test_error_messages(tmp_path, call, message):
    with pytest.raises(s.SecretError) as exc:
        call(tmp_path)
    expected = message % str(tmp_path / "no") if "%s" in message else message
    assert str(exc.value) == expected


def test_second_write_names_the_file(tmp_path):
    out = tmp_path / "admin.key"
    s.write_once(str(out), "k\n")
    with pytest.raises(s.SecretError) as exc:
        s.write_once(str(out), "other\n")
    assert str(exc.value) == "%s exists; the key in it was already handed out" % out


# Shared keys (reuse): one controller file, checked by several hosts.

def write_key(path, key):
    path.write_text(key + "\n")
    return key


def test_reuse_makes_the_key_when_no_file_exists(tmp_path):
    out = tmp_path / "admin.key"
    result = s.issue("dsk", str(out), reuse=True)
    key = out.read_text().strip()
    assert result["changed"] and result["output_path"] == str(out)
    assert s.verify_key(key, result["hash"]) and result["key_id"] == s.key_id_of(key)


def test_reuse_hashes_the_existing_file_for_a_host_without_a_hash(tmp_path):
    out = tmp_path / "admin.key"
    key = write_key(out, s.new_key("dsk", counting_bytes())[0])
    for check_mode in (True, False):
        result = s.issue("dsk", str(out), check_mode=check_mode, reuse=True)
        assert result["changed"] is True and result["output_path"] is None
        assert s.verify_key(key, result["hash"]) and result["key_id"] == s.key_id_of(key)
    assert out.read_text() == key + "\n"


def test_reuse_keeps_a_stored_hash_that_matches_the_file(tmp_path):
    out = tmp_path / "admin.key"
    key = write_key(out, s.new_key("dsk", counting_bytes())[0])
    stored = s.hash_key(key, FIXED_SALT)
    assert s.issue("dsk", str(out), stored_hash=stored + "\n", reuse=True) == {
        "changed": False, "hash": stored, "key_id": s.key_id_of(key), "output_path": None}


def test_reuse_replaces_a_stored_hash_of_another_key(tmp_path):
    out = tmp_path / "admin.key"
    old_key = s.new_key("dsk", counting_bytes())[0]
    key = write_key(out, s.new_key("dsk")[0])
    result = s.issue("dsk", str(out), stored_hash=s.hash_key(old_key, FIXED_SALT), reuse=True)
    assert result["changed"] is True and s.verify_key(key, result["hash"])
    assert not s.verify_key(old_key, result["hash"])


def test_without_reuse_an_existing_file_is_not_read(tmp_path):
    out = tmp_path / "admin.key"
    out.write_text("not a key\n")
    key = s.new_key("dsk", counting_bytes())[0]
    stored = s.hash_key(key, FIXED_SALT)
    assert s.issue("dsk", str(out), stored_hash=stored)["hash"] == stored
    with pytest.raises(s.SecretError, match="exists; the key in it was already handed out"):
        s.issue("dsk", str(out))


def test_reuse_with_a_stored_hash_and_no_file_generates_nothing(tmp_path):
    out = tmp_path / "admin.key"
    key = s.new_key("dsk", counting_bytes())[0]
    stored = s.hash_key(key, FIXED_SALT)
    assert s.issue("dsk", str(out), stored_hash=stored, reuse=True)["changed"] is False
    assert not out.exists()


@pytest.mark.parametrize("content, prefix, message", [
    ("not a key", "dsk", "%s does not hold an API key of this collection's format"),
    ("dsk_010101010101_" + "A" * 42, "dsk", "%s does not hold an API key of this collection's format"),
    ("svc_010101010101_" + "A" * 43, "dsk", "the API key in %s does not have the prefix 'dsk'"),
])
def test_reuse_refuses_a_file_that_is_not_a_key_of_the_prefix(tmp_path, content, prefix, message):
    out = tmp_path / "admin.key"
    out.write_text(content + "\n")
    with pytest.raises(s.SecretError) as exc:
        s.issue(prefix, str(out), reuse=True)
    assert str(exc.value) == message % out


def test_reuse_names_an_unreadable_file(tmp_path):
    out = tmp_path / "admin.key"
    out.mkdir()
    with pytest.raises(s.SecretError, match=r"^cannot read the API key file %s: " % out):
        s.issue("dsk", str(out), reuse=True)


def test_module_reuse_option(tmp_path, capsys):
    out = tmp_path / "shared.key"
    key = write_key(out, s.new_key("dsk")[0])
    with patch_module_args({"prefix": "dsk", "output_path": str(out), "reuse": True}):
        with pytest.raises(SystemExit):
            api_key.main()
    result = json.loads(capsys.readouterr().out)
    assert result["changed"] is True and s.verify_key(key, result["hash"])
    assert key not in json.dumps(result)


def test_check_mode_predicts_a_new_key_and_writes_nothing(tmp_path):
    out = tmp_path / "admin.key"
    for reuse in (False, True):
        assert s.issue("dsk", str(out), check_mode=True, reuse=reuse) == {
            "changed": True, "hash": None, "key_id": None, "output_path": str(out)}
    assert not out.exists()
