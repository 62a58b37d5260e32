# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host command ``onprem-deepseek-audit`` over ``_audit_chain`` (private to the collection).
tools/build_keywrap.py builds it with the code it uses into roles/gateway/files/onprem_deepseek_audit.py.

``follow`` reads the gateway's raw audit log (one JSON object a line, written by nginx) and
appends every line as a chained record to ``CHAIN_DIR/audit.log``; a line that is not a JSON
object the chain can take becomes ``{"type": "unparsed", "line": ...}``. Checkpoints and the head
are signed in a PKCS#11 token. After each batch ``STATE_DIR/state.json`` is replaced (temporary
file, fsync, rename) with the signed head and the raw file's device, inode, offset and a hash of
its first bytes. ``verify`` checks a chain file or a rotated series; ``public-key`` prints the
signing key's public key so that ``verify`` runs without the token.

Signatures: ECDSA on P-256 over SHA-256 of the payload. The digest is computed here and signed
in the token with CKM_ECDSA; the ``sig`` field holds the signature DER-encoded (ECDSA-Sig-Value,
a SEQUENCE of the integers r and s, as X.509 and ``openssl dgst -sha256 -verify`` take it), in
base64.

Files: ``audit.log`` is the current chain file; rotation (SIGHUP, or ``--rotate-bytes``) closes
it with a checkpoint, renames it to ``audit.log.N`` (N from 1, higher is newer) and starts a new
one with a signed continuation line. Old files may be removed from the oldest end.

A restart neither loses nor repeats a line: the chain is written and fsynced before the state.
When the chain holds k records past the saved head (a stop between the two writes), the next
start checks that they are the k raw lines after the saved position and skips those. A chain
that ends before the saved head, or that disagrees with the raw log, stops the follower (exit
3) for a person to look at. A line cut off by a crash at the end of ``audit.log`` (it was never
in a saved head) is removed, and its raw line chained again.

Limits: polling sees a copy-truncate only when the file is shorter than the position; lines nginx
writes to a renamed raw file after the follower has moved on (the new file non-empty, or the old
one quiet for ROTATE_GRACE seconds) are not read; without the token's key nothing is signed.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import signal
import sys
import time

from ansible_collections.onprem.deepseek.plugins.module_utils._audit_chain import (
    CHECKPOINT,
    CONTINUATION,
    GENESIS,
    AuditChainError,
    Verdict,
    Writer,
    canonical,
    chain_record,
    verify_files,
)
from ansible_collections.onprem.deepseek.plugins.module_utils._pkcs11_der import _der, der_uint
from ansible_collections.onprem.deepseek.plugins.module_utils._pkcs11_spec import (
    Pkcs11KeyError,
    build_spec,
    key_problems,
    read_pin_file,
)
from ansible_collections.onprem.deepseek.plugins.module_utils._strict_json import strict_loads
from ansible_collections.onprem.deepseek.plugins.module_utils._pkcs11_token import (
    HAS_PKCS11,
    Token,
    _error_name,
    describe_key,
)

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
