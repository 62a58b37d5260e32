# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""API keys for onprem.deepseek.api_key (private to the collection). Standard library only.

A key is ``<prefix>_<key id>_<secret>``: the key id (public) lets a verifier find the stored
record, the secret is 32 random bytes. Hosts store only a salted scrypt hash of the whole key,
``scrypt$<n>$<r>$<p>$<key id>$<salt b64>$<hash b64>``; the key itself is written once to a
file on the controller for the operator and never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import tempfile

SCRYPT_N = 2 ** 14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
SECRET_BYTES = 32
KEY_ID_BYTES = 6
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{1,15}$")
_KEY_RE = re.compile(r"^([a-z][a-z0-9]{1,15})_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_HASH_RE = re.compile(r"^scrypt\$(\d+)\$(\d+)\$(\d+)\$([0-9a-f]{12})\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")


class SecretError(Exception):
    """A failure reported with fail_json; never carries a key."""


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def check_prefix(prefix):
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
        raise SecretError("prefix %r must be 2-16 lowercase letters or digits, starting with a letter" % (prefix,))


def new_key(prefix, randbytes=secrets.token_bytes):
    """A new API key and its public key id."""
    check_prefix(prefix)
    key_id = randbytes(KEY_ID_BYTES).hex()
    secret = base64.urlsafe_b64encode(randbytes(SECRET_BYTES)).decode("ascii").rstrip("=")
    return "%s_%s_%s" % (prefix, key_id, secret), key_id


def key_id_of(key):
    match = _KEY_RE.match(key or "")
    if not match:
        raise SecretError("not an API key of this collection's format")
    return match.group(2)


def _scrypt(key, salt, n, r, p):
    return hashlib.scrypt(key.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=128 * r * n * 2, dklen=32)


def hash_key(key, salt=None):
    """The salted hash a host stores for ``key``."""
    key_id = key_id_of(key)
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = _scrypt(key, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "scrypt$%d$%d$%d$%s$%s$%s" % (SCRYPT_N, SCRYPT_R, SCRYPT_P, key_id, _b64(salt), _b64(digest))


def parse_hash(stored):
    match = _HASH_RE.match((stored or "").strip())
    if not match:
        raise SecretError("stored API key hash is not in scrypt$n$r$p$id$salt$hash form")
    n, r, p = (int(match.group(i)) for i in (1, 2, 3))
    if n < 2 ** 14 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise SecretError("stored API key hash has weak or invalid scrypt parameters")
    return {"n": n, "r": r, "p": p, "key_id": match.group(4),
            "salt": base64.b64decode(match.group(5)), "hash": base64.b64decode(match.group(6))}


def verify_key(key, stored):
    """True when ``key`` matches the stored hash (constant-time comparison)."""
    record = parse_hash(stored)
    try:
        if key_id_of(key) != record["key_id"]:
            return False
    except SecretError:
        return False
    return hmac.compare_digest(_scrypt(key, record["salt"], record["n"], record["r"], record["p"]), record["hash"])


def write_once(path, text):
    """Write ``text`` to a new file with mode 0600; refuse to overwrite."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise SecretError("directory %s for the API key file does not exist" % directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".api-key-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.link(tmp, path)
    except FileExistsError:
        raise SecretError("%s exists; the key in it was already handed out" % path)
    finally:
        os.unlink(tmp)


def read_key_file(path, prefix):
    """The key in an existing key file, checked against the collection's format and ``prefix``."""
    try:
        with open(path) as handle:
            key = handle.read().strip()
    except OSError as exc:
        raise SecretError("cannot read the API key file %s: %s" % (path, exc.strerror))
    if not _KEY_RE.match(key):
        raise SecretError("%s does not hold an API key of this collection's format" % path)
    if key.split("_", 1)[0] != prefix:
        raise SecretError("the API key in %s does not have the prefix %r" % (path, prefix))
    return key


def issue(prefix, output_path, stored_hash=None, check_mode=False, reuse=False):
    """Make sure an API key exists. With ``stored_hash`` (what the host has) nothing is generated.
    Otherwise a key is made, written to ``output_path`` (0600) and only its hash returned.

    With ``reuse`` (a key several hosts check), a key already in ``output_path`` is the key: the
    stored hash is kept when it matches it, else the hash of that key is returned (changed)."""
    check_prefix(prefix)
    if reuse and os.path.exists(output_path):
        key = read_key_file(output_path, prefix)
        if stored_hash and verify_key(key, stored_hash):
            return {"changed": False, "hash": stored_hash.strip(), "key_id": key_id_of(key), "output_path": None}
        return {"changed": True, "hash": hash_key(key), "key_id": key_id_of(key), "output_path": None}
    if stored_hash:
        record = parse_hash(stored_hash)
        return {"changed": False, "hash": stored_hash.strip(), "key_id": record["key_id"], "output_path": None}
    if check_mode:
        return {"changed": True, "hash": None, "key_id": None, "output_path": output_path}
    key, key_id = new_key(prefix)
    write_once(output_path, key + "\n")
    return {"changed": True, "hash": hash_key(key), "key_id": key_id, "output_path": output_path}
