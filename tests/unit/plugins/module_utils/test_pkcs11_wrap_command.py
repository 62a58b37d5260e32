"""keywrap, the host-side command of _pkcs11_wrap (installed by the hsm role, used by storage_tiers).

Argument handling is tested without a token; the round trips run against a real SoftHSM2 token
in a temporary directory (SOFTHSM2_CONF), in-process and through the launcher the hsm role renders
from roles/hsm/templates/keywrap.j2, laid out as the role installs it. The throwaway test PINs are
passed as process arguments only to softhsm2-util in the setup.
"""
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

import softhsm_tokens

from ansible_collections.onprem.deepseek.plugins.module_utils import _pkcs11_wrap as w
from ansible_collections.onprem.deepseek.plugins.module_utils import _pkcs11_wrap_command as cmd

ROOT = Path(__file__).resolve().parents[4]
USER_PIN = "Tst-Keywrap-Pin-27182"
SO_PIN = "Tst-Keywrap-So-31415"
SOFTHSM_LIB = softhsm_tokens.SOFTHSM_LIB
needs_softhsm = softhsm_tokens.needs_softhsm_and_pkcs11
KEY = bytes(range(64))
CTX = "onprem.deepseek.storage_tiers/hot"


class FakeOut(io.BytesIO):
    def __init__(self, tty=False):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def call(argv, data=b"", defaults=None, tty=False):
    out, err = FakeOut(tty), io.StringIO()
    rc = cmd.command_main(argv, defaults=defaults, stdin=io.BytesIO(data), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


# -- arguments, without a token -------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["wrap"], "the following arguments are required: --context"),
    (["seal", "--context", "c"], "argument action: invalid choice: 'seal' (choose from 'wrap', 'unwrap')"),
    (["unwrap", "--context", "c", "--pin", "1234"], "unrecognized arguments: --pin 1234"),
    ([], "the following arguments are required: action, --context"),
])
def test_usage_errors_exit_2_and_there_is_no_pin_option(argv, message):
    rc, out, err = call(argv)
    assert (rc, out) == (2, b"")
    assert err == "keywrap: usage: %s\n" % message


@pytest.mark.parametrize("argv, defaults, message", [
    (["wrap", "--context", "c", "--pin-file", "/x"], {}, "--token-label is required"),
    (["wrap", "--context", "c", "--token-label", "t"], {}, "--pin-file is required"),
    (["wrap", "--context", "c"], {"token_label": "t", "pin_file": "/x"}, "--key-label is required to wrap"),
    (["unwrap", "--context", ""], {"token_label": "t", "pin_file": "/x"}, "--context must not be empty"),
])
def test_missing_settings_exit_1(argv, defaults, message):
    rc, out, err = call(argv, defaults=defaults)
    assert (rc, out, err) == (1, b"", "keywrap: %s\n" % message)


def test_defaults_fill_the_options_and_arguments_override_them():
    parser = cmd.command_parser({"module_path": "/lib/p11.so", "token_label": "deepseek",
                                 "pin_file": "/etc/pin", "key_label": "disk-wrap"})
    args = parser.parse_args(["wrap", "--context", "c"])
    assert (args.module_path, args.token_label, args.pin_file, args.key_label) == (
        "/lib/p11.so", "deepseek", "/etc/pin", "disk-wrap")
    args = parser.parse_args(["unwrap", "--context", "c", "--key-label", "other", "--token-label", "t2"])
    assert (args.action, args.key_label, args.token_label) == ("unwrap", "other", "t2")


def test_unwrap_refuses_a_terminal_before_touching_the_pin(tmp_path):
    rc, out, err = call(["unwrap", "--context", "c", "--token-label", "t", "--pin-file", str(tmp_path / "none")],
                        data=b"{}", tty=True)
    assert (rc, out) == (1, b"")
    assert "refusing to write a clear key to a terminal" in err


def test_help_names_the_command_and_says_what_each_option_is():
    text = " ".join(cmd.command_parser().format_help().split())  # argparse wraps lines
    assert text.startswith("usage: keywrap [-h] ")
    for words in ("Wrap a key read on stdin under the token's AES key, or unwrap one; the result goes to stdout.",
                  "what the key belongs to (for example a storage tier); unwrap needs the same context",
                  "AES key in the token (wrap); unwrap checks the wrapped key names it"):
        assert " %s " % words in text
    assert cmd.command_parser().parse_args(["wrap", "--context", "c"]).module_path == "/usr/lib/softhsm/libsofthsm2.so"


def test_the_terminal_refusal_whole(tmp_path):
    rc, _out, err = call(["unwrap", "--context", "c", "--token-label", "t", "--pin-file", str(tmp_path / "none")],
                         data=b"{}", tty=True)
    assert (rc, err) == (1, "keywrap: refusing to write a clear key to a terminal; pipe it into the program "
                            "that needs it\n")


def test_without_python_pkcs11_it_says_for_which_interpreter(monkeypatch):
    monkeypatch.setattr(cmd, "HAS_PKCS11", False)
    rc, out, err = call(["wrap", "--context", "c", "--token-label", "t", "--pin-file", "/x", "--key-label", "k"], KEY)
    assert (rc, out, err) == (1, b"", "keywrap: python-pkcs11 is not installed for %s\n" % sys.executable)


class FakeToken:
    """Stands in for the token where the wrap logic itself is replaced (see fake_wrap)."""

    def __init__(self, module_path, token_label, pin):
        assert (module_path, token_label, pin) == ("/lib/p11.so", "t", "pin-from-file")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def fake_wrap(monkeypatch):
    """wrap/unwrap replaced by a reversible stand-in, the PIN file by a fixed PIN: the command's own
    flow (limits, the read-back check, default streams) without a token."""
    monkeypatch.setattr(cmd, "HAS_PKCS11", True)
    monkeypatch.setattr(cmd, "read_pin_file", lambda path: "pin-from-file")
    monkeypatch.setattr(cmd, "wrap", lambda token, label, context, plaintext: b"W:" + plaintext)
    monkeypatch.setattr(cmd, "unwrap", lambda token, blob, context: blob[2:])
    monkeypatch.setattr(cmd, "parse_blob", lambda blob: ({"key_label": "k"}, None))
    return ["--context", "c", "--token-label", "t", "--pin-file", "/x", "--key-label", "k", "--module-path", "/lib/p11.so"]


def fake_call(argv, data):
    out, err = FakeOut(), io.StringIO()
    rc = cmd.command_main(argv, stdin=io.BytesIO(data), stdout=out, stderr=err, token_factory=FakeToken)
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("size", [cmd.MIN_KEY_BYTES, cmd.MAX_KEY_BYTES])
def test_keys_at_both_bounds_are_wrapped(fake_wrap, size):
    assert fake_call(["wrap"] + fake_wrap, b"k" * size) == (0, b"W:" + b"k" * size, "")


def test_a_wrapped_key_at_the_limit_is_read_and_one_byte_more_is_refused(fake_wrap):
    blob = b"W:" + b"b" * (w.MAX_BLOB_BYTES - 2)
    assert fake_call(["unwrap"] + fake_wrap, blob) == (0, b"b" * (w.MAX_BLOB_BYTES - 2), "")
    assert fake_call(["unwrap"] + fake_wrap, blob + b"b") == (
        1, b"", "keywrap: the wrapped key on stdin is longer than %d bytes\n" % w.MAX_BLOB_BYTES)


def test_nothing_leaves_when_the_wrapped_key_does_not_read_back(fake_wrap, monkeypatch):
    monkeypatch.setattr(cmd, "unwrap", lambda token, blob, context: b"something else")
    assert fake_call(["wrap"] + fake_wrap, KEY) == (1, b"", "keywrap: the wrapped key does not unwrap to the key read\n")


def test_stdin_is_read_up_to_one_byte_past_the_limit_only(fake_wrap):
    class Stream(io.BytesIO):
        asked = []

        def read(self, size=-1):
            self.asked.append(size)
            return super().read(size)

    out, err = FakeOut(), io.StringIO()
    assert cmd.command_main(["wrap"] + fake_wrap, stdin=Stream(KEY), stdout=out, stderr=err, token_factory=FakeToken) == 0
    assert Stream.asked == [cmd.MAX_KEY_BYTES + 1]


def test_errors_go_to_the_process_stderr_by_default(monkeypatch):
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    assert cmd.command_main(["seal", "--context", "c"], stdin=io.BytesIO(), stdout=FakeOut()) == 2
    assert stderr.getvalue().startswith("keywrap: usage: argument action: invalid choice")


def test_the_process_streams_are_the_default(fake_wrap, monkeypatch):
    stdin, stdout = io.TextIOWrapper(io.BytesIO(KEY)), io.TextIOWrapper(FakeOut())
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.setattr(sys, "stdout", stdout)
    assert cmd.command_main(["wrap"] + fake_wrap, token_factory=FakeToken) == 0
    assert stdout.buffer.getvalue() == b"W:" + KEY


# -- against SoftHSM2 -----------------------------------------------------------------------------

@pytest.fixture
def token(tmp_path, monkeypatch):
    softhsm_tokens.init_tokens(tmp_path, monkeypatch, ["kwtest"], SO_PIN, USER_PIN)
    from ansible_collections.onprem.deepseek.plugins.module_utils._pkcs11_spec import build_spec
    from ansible_collections.onprem.deepseek.plugins.module_utils._pkcs11_token import ensure_key
    for label in ("disk-wrap", "disk-other"):
        ensure_key(SOFTHSM_LIB, "kwtest", USER_PIN, build_spec({"label": label, "key_type": "aes"}), "present")
    pin_file = tmp_path / "user.pin"
    pin_file.write_text(USER_PIN)
    pin_file.chmod(0o600)
    return {"module_path": SOFTHSM_LIB, "token_label": "kwtest", "pin_file": str(pin_file),
            "key_label": "disk-wrap", "dir": tmp_path}


def settings(token):
    return dict((k, token[k]) for k in ("module_path", "token_label", "pin_file", "key_label"))


@needs_softhsm
def test_round_trip_and_the_context_binds_the_key_to_its_tier(token):
    rc, blob, err = call(["wrap", "--context", CTX], KEY, settings(token))
    assert (rc, err) == (0, "")
    doc = json.loads(blob)
    assert (doc["format"], doc["key_label"], doc["context"]) == ("onprem.deepseek/wrapped-key", "disk-wrap", CTX)
    assert KEY not in blob and KEY.hex().encode() not in blob
    assert call(["unwrap", "--context", CTX], blob, settings(token)) == (0, KEY, "")
    rc, out, err = call(["unwrap", "--context", "onprem.deepseek.storage_tiers/cold"], blob, settings(token))
    assert (rc, out) == (1, b"")
    assert err == ("keywrap: wrapped key belongs to context 'onprem.deepseek.storage_tiers/hot', "
                   "not 'onprem.deepseek.storage_tiers/cold'\n")
    rc, out, err = call(["unwrap", "--context", CTX, "--key-label", "disk-other"], blob, settings(token))
    assert (rc, out, err) == (1, b"", "keywrap: the key was wrapped under 'disk-wrap', not 'disk-other'\n")
    # A header edited to claim another tier fails GCM authentication in the token.
    doc["context"] = "onprem.deepseek.storage_tiers/cold"
    rc, out, err = call(["unwrap", "--context", doc["context"]], json.dumps(doc).encode(), settings(token))
    assert (rc, out) == (1, b"")
    assert "could not decrypt the wrapped key with 'disk-wrap'" in err


@needs_softhsm
def test_each_wrap_of_the_same_key_differs(token):
    first = call(["wrap", "--context", CTX], KEY, settings(token))[1]
    second = call(["wrap", "--context", CTX], KEY, settings(token))[1]
    assert json.loads(first)["nonce"] != json.loads(second)["nonce"]
    assert call(["unwrap", "--context", CTX], second, settings(token))[1] == KEY


@needs_softhsm
@pytest.mark.parametrize("size, message", [
    (15, "the key on stdin is 15 bytes; at least 16 are needed"),
    (513, "the key on stdin is longer than 512 bytes"),
])
def test_wrap_refuses_keys_out_of_bounds(token, size, message):
    assert call(["wrap", "--context", CTX], b"k" * size, settings(token)) == (1, b"", "keywrap: %s\n" % message)


@needs_softhsm
def test_without_the_token_nothing_unwraps_and_the_pin_is_not_shown(token):
    blob = call(["wrap", "--context", CTX], KEY, settings(token))[1]
    pin_file = Path(token["pin_file"])
    pin_file.rename(pin_file.with_name("user.pin.aside"))
    rc, out, err = call(["unwrap", "--context", CTX], blob, settings(token))
    assert (rc, out) == (1, b"")
    assert err == "keywrap: cannot read pin_file %s: No such file or directory\n" % pin_file
    pin_file.write_text("Wrong-Pin-99999")
    rc, out, err = call(["unwrap", "--context", CTX], blob, settings(token))
    assert (rc, out, err) == (1, b"", "keywrap: PIN rejected by token kwtest (CKR_PIN_INCORRECT)\n")
    assert "Wrong-Pin" not in err and USER_PIN not in err
    rc, out, err = call(["unwrap", "--context", CTX], blob, dict(settings(token), token_label="absent"))
    assert (rc, out) == (1, b"")
    assert "token 'absent' not found" in err


def install_like_the_role(token, tmp_path):
    """Lay keywrap out as roles/hsm does: the role's built library in a lib directory, the launcher."""
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(ROOT / "roles" / "hsm" / "files" / "onprem_keywrap.py", lib / "onprem_keywrap.py")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["to_json"] = json.dumps
    text = env.from_string((ROOT / "roles" / "hsm" / "templates" / "keywrap.j2").read_text()).render(
        ansible_managed="test", hsm_python_venv=sys.prefix, __hsm_keywrap_lib=str(lib),
        __hsm_module=token["module_path"], hsm_token_label=token["token_label"],
        hsm_pin_file=token["pin_file"], __hsm_wrap_key_label=token["key_label"])
    launcher = tmp_path / "keywrap"
    launcher.write_text(text)
    launcher.chmod(0o755)
    return launcher, text


@needs_softhsm
def test_the_installed_launcher_round_trips_with_only_its_own_files(token, tmp_path):
    launcher, text = install_like_the_role(token, tmp_path)
    assert text.startswith("#!%s/bin/python -I\n" % sys.prefix)
    assert USER_PIN not in text
    env = dict(os.environ, PYTHONPATH="/nonexistent")
    run = dict(capture_output=True, timeout=60, env=env, cwd=str(tmp_path))
    wrapped = subprocess.run([str(launcher), "wrap", "--context", CTX], input=KEY, check=False, **run)
    assert (wrapped.returncode, wrapped.stderr) == (0, b"")
    assert json.loads(wrapped.stdout)["key_label"] == "disk-wrap"
    back = subprocess.run([str(launcher), "unwrap", "--context", CTX], input=wrapped.stdout, check=False, **run)
    assert (back.returncode, back.stdout, back.stderr) == (0, KEY, b"")
    other = subprocess.run([str(launcher), "unwrap", "--context", "x"], input=wrapped.stdout, check=False, **run)
    assert (other.returncode, other.stdout) == (1, b"")
    assert other.stderr.startswith(b"keywrap: wrapped key belongs to context")
    usage = subprocess.run([str(launcher), "unwrap"], input=b"", check=False, **run)
    assert (usage.returncode, usage.stdout) == (2, b"")


@needs_softhsm
def test_the_module_opens_what_keywrap_wrapped(token):
    blob = call(["wrap", "--context", CTX], KEY, settings(token))[1]
    path, dest = token["dir"] / "hot.key.wrapped", token["dir"] / "hot.key"
    path.write_bytes(blob)
    result = w.ensure_wrapped(token["module_path"], "kwtest", USER_PIN, "disk-wrap", CTX, str(path), "unwrapped",
                              dest=str(dest))
    assert (result["changed"], result["created"], result["dest_changed"]) == (True, False, True)
    assert dest.read_bytes() == KEY


@pytest.mark.skipif(not (ROOT / "tools" / "build_keywrap.py").exists(),
                    reason="the built collection ships no tools/: checked in the source tree")
def test_the_role_ships_keywrap_built_from_the_current_module_utils():
    """roles/hsm/files/onprem_keywrap.py is what tools/build_keywrap.py makes of the _pkcs11_*
    module_utils today: an edit to either without a rebuild fails here."""
    if "MUTANT_UNDER_TEST" in os.environ:
        # ./dev mutate: mutmut's copies of module_utils carry its trampolines, never the shipped code.
        pytest.skip("under mutmut, plugins/module_utils is not the source the commands are built from")
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "build_keywrap.py"), "--check"],
                         capture_output=True, text=True, check=False)
    assert (run.returncode, run.stderr) == (0, "")
