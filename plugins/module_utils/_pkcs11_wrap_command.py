# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The host-side ``keywrap`` command over ``_pkcs11_wrap`` (private to the collection): a key on
stdin, the wrapped or unwrapped result on stdout. The hsm role installs it (built into one file
with the code it uses, tools/build_keywrap.py); storage_tiers pipes disk keys through it.
"""

from __future__ import annotations

import argparse
import sys

from ansible_collections.onprem.deepseek.plugins.module_utils._pkcs11_spec import Pkcs11KeyError, read_pin_file
from ansible_collections.onprem.deepseek.plugins.module_utils._pkcs11_token import HAS_PKCS11, Token
from ansible_collections.onprem.deepseek.plugins.module_utils._pkcs11_wrap import (
    MAX_BLOB_BYTES,
    MAX_KEY_BYTES,
    MIN_KEY_BYTES,
    WrapError,
    parse_blob,
    unwrap,
    wrap,
)

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
