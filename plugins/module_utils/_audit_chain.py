# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit log's hash chain: how a record is linked, when a signed checkpoint is due, and
whether a log (or a series of rotated logs) is intact.

A record line is the record plus ``seq``, ``prev`` and ``hash = sha256(prev || canonical JSON of
the record with its seq)``, ``prev`` being the previous record's hash (64 zeros for seq 1). Every
``every`` records the writer adds a checkpoint line ``{type: checkpoint, seq, head_hash, count,
time, sig}`` signed over its canonical JSON without ``sig``; ``count`` is the number of records
since the previous checkpoint or continuation. A rotated file starts with a signed ``{type:
continuation, seq, head_hash, time, sig}`` line carrying the previous file's last seq and hash.

``verify`` names the first problem: line, seq and kind. From the log alone it finds:

- ``edited``: a record whose hash does not match its content; a record rewritten with a
  recomputed hash (the next record's ``prev`` or the next checkpoint's ``head_hash`` differ);
- ``deleted``: a seq gap; a checkpoint line removed (the next checkpoint's count is larger);
- ``reordered``: a seq that goes backwards, or jumps ahead while the missing one comes later;
- ``forged_checkpoint``: a checkpoint, continuation or head whose signature does not verify;
- ``malformed``: a line that is not a JSON object of the expected shape.

It cannot find, without an external head, a tail cut off: removing the last records and
checkpoints leaves a valid shorter log. The writer therefore keeps its latest signed head
(``Writer.signed_head``) elsewhere; given as ``expected_head`` it reveals a log that ends before
that seq (``truncated``) or holds a different hash there (``edited``). Nothing here detects a
rewrite by whoever holds the signing key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time

from ansible_collections.onprem.deepseek.plugins.module_utils._strict_json import strict_loads

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
