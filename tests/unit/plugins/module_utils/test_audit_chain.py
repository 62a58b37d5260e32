"""The audit hash chain: every kind of tampering is named at its exact line and seq."""
import base64
import hashlib
import hmac
import json

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils._audit_chain import (
    GENESIS,
    AuditChainError,
    Writer,
    chain_record,
    verify,
    verify_files,
)

KEY = b"checkpoint test key"
EVERY = 3


def signer(payload):
    return hmac.new(KEY, payload, hashlib.sha256).digest()


def verifier(payload, sig):
    return hmac.compare_digest(signer(payload), sig)


def other_signer(payload):
    return hmac.new(b"someone else", payload, hashlib.sha256).digest()


def clock():
    return 1700000000


def writer(every=EVERY):
    return Writer(signer, every=every, clock=clock)


def event(i):
    return {"event": "request", "n": i, "principal": "alice", "status": 200}


def write(count, w=None, start=0):
    w = w or writer()
    lines = []
    for i in range(start, start + count):
        lines += w.append(event(i))
    return w, lines


def parsed(lines):
    return [json.loads(line) for line in lines]


def line_of(lines, seq, kind=None):
    """1-based line number of the record (or checkpoint, with kind) for seq."""
    for n, obj in enumerate(parsed(lines), 1):
        if obj["seq"] == seq and obj.get("type") == kind:
            return n
    raise LookupError(seq)


def expect(verdict, kind, line, seq, file=None):
    assert (verdict.kind, verdict.line, verdict.seq, verdict.file) == (kind, line, seq, file), str(verdict)
    assert not verdict.ok


def canon(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def test_record_hash_covers_prev_and_the_record_with_its_seq():
    first = json.loads(chain_record(GENESIS, 1, {"a": 1}))
    assert first["prev"] == GENESIS and first["seq"] == 1
    assert first["hash"] == hashlib.sha256(GENESIS.encode() + canon({"a": 1, "seq": 1})).hexdigest()
    second = json.loads(chain_record(first["hash"], 2, {"a": 1}))
    assert second["prev"] == first["hash"]
    assert second["hash"] == hashlib.sha256(first["hash"].encode() + canon({"a": 1, "seq": 2})).hexdigest()


@pytest.mark.parametrize("prev,seq,record,message", [
    (GENESIS, 1, {"seq": 3}, "'seq' is reserved"),
    (GENESIS, 1, {"hash": "x"}, "'hash' is reserved"),
    (GENESIS, 1, {"type": "checkpoint"}, "type 'checkpoint' is reserved"),
    (GENESIS, 1, {"type": "continuation"}, "type 'continuation' is reserved"),
    (GENESIS, 1, ["not", "a", "mapping"], "must be a mapping"),
    ("0" * 63, 1, {}, "prev_hash"),
    ("A" * 64, 1, {}, "prev_hash"),
    (GENESIS, 0, {}, "seq must be"),
    (GENESIS, True, {}, "seq must be"),
])
def test_chain_record_refuses_what_would_break_the_chain(prev, seq, record, message):
    with pytest.raises(AuditChainError, match=message):
        chain_record(prev, seq, record)


def test_plain_type_field_is_allowed_in_records():
    assert json.loads(chain_record(GENESIS, 1, {"type": "login"}))["type"] == "login"


def test_checkpoint_is_due_every_n_records_and_is_signed():
    w = writer(every=EVERY)
    sizes = [len(w.append(event(i))) for i in range(2 * EVERY + 1)]
    assert sizes == [1] * (EVERY - 1) + [2] + [1] * (EVERY - 1) + [2] + [1]
    _writer, lines = write(EVERY)
    cp = json.loads(lines[-1])
    assert (cp["type"], cp["seq"], cp["count"]) == ("checkpoint", EVERY, EVERY)
    assert cp["head_hash"] == json.loads(lines[-2])["hash"]
    assert cp["time"] == "2023-11-14T22:13:20Z"
    body = {k: v for k, v in cp.items() if k != "sig"}
    assert verifier(canon(body), base64.b64decode(cp["sig"]))


@pytest.mark.parametrize("every,ok", [(0, False), (1, True), (True, False), ("3", False)])
def test_checkpoint_interval_must_be_a_positive_integer(every, ok):
    if ok:
        assert len(Writer(signer, every=every, clock=clock).append(event(0))) == 2
    else:
        with pytest.raises(AuditChainError, match="interval"):
            Writer(signer, every=every)


def test_intact_log_verifies_with_and_without_head():
    w, lines = write(7)
    assert verify(lines, verifier).ok
    assert verify(lines, verifier, expected_head=w.signed_head()).ok
    assert verify([], verifier).ok
    assert str(verify(lines, verifier)) == "intact"


def test_edited_field_is_named_at_its_line():
    _writer, lines = write(7)
    n = line_of(lines, 5)
    lines[n - 1] = lines[n - 1].replace('"principal":"alice"', '"principal":"mallory"')
    verdict = verify(lines, verifier)
    expect(verdict, "edited", n, 5)
    assert "line %d, seq 5: edited" % n in str(verdict)


def test_edit_with_recomputed_hash_is_named_through_the_next_prev():
    _writer, lines = write(7)
    n = line_of(lines, 5)
    prev = parsed(lines)[n - 2]["hash"]
    lines[n - 1] = chain_record(prev, 5, dict(event(4), principal="mallory"))
    expect(verify(lines, verifier), "edited", n, 5)


def test_edit_with_recomputed_hash_before_a_checkpoint_is_named_by_the_checkpoint():
    _writer, lines = write(7)
    n = line_of(lines, 6)
    lines[n - 1] = chain_record(parsed(lines)[n - 2]["hash"], 6, dict(event(5), status=500))
    expect(verify(lines, verifier), "edited", line_of(lines, 6, "checkpoint"), 6)


def test_deleted_record_is_named_by_its_missing_seq():
    _writer, lines = write(7)
    n = line_of(lines, 5)
    del lines[n - 1]
    verdict = verify(lines, verifier)
    expect(verdict, "deleted", n, 5)
    assert "seq 5 to 5 missing" in verdict.detail


def test_deleted_first_record_and_record_before_a_checkpoint():
    _writer, lines = write(7)
    expect(verify(lines[1:], verifier), "deleted", 1, 1)
    n = line_of(lines, 3)
    del lines[n - 1]
    expect(verify(lines, verifier), "deleted", n, 3)


def test_deleted_checkpoint_is_caught_by_the_next_count():
    _writer, lines = write(7)
    del lines[line_of(lines, 3, "checkpoint") - 1]
    verdict = verify(lines, verifier)
    expect(verdict, "deleted", line_of(lines, 6, "checkpoint"), 6)
    assert "checkpoint line is missing" in verdict.detail


def test_swapped_records_are_reordered_not_deleted():
    _writer, lines = write(7)
    a, b = line_of(lines, 4), line_of(lines, 5)
    lines[a - 1], lines[b - 1] = lines[b - 1], lines[a - 1]
    expect(verify(lines, verifier), "reordered", a, 5)


def test_swapped_record_and_checkpoint_are_reordered():
    _writer, lines = write(7)
    r, c = line_of(lines, 3), line_of(lines, 3, "checkpoint")
    lines[r - 1], lines[c - 1] = lines[c - 1], lines[r - 1]
    expect(verify(lines, verifier), "reordered", r, 3)


def test_checkpoint_moved_past_a_later_record_is_reordered():
    _writer, lines = write(7)
    c = line_of(lines, 3, "checkpoint")
    lines[c - 1], lines[c] = lines[c], lines[c - 1]
    expect(verify(lines, verifier), "reordered", c + 1, 3)


def test_first_record_must_start_from_genesis():
    lines = [chain_record("1" * 64, 1, event(0))]
    expect(verify(lines, verifier), "edited", 1, 1)


def test_replayed_record_and_repeated_checkpoint_are_reordered():
    _writer, lines = write(7)
    n = line_of(lines, 7)
    expect(verify(lines + [lines[n - 1]], verifier), "reordered", len(lines) + 1, 7)
    c = line_of(lines, 3, "checkpoint")
    repeated = lines[:c] + [lines[c - 1]] + lines[c:]
    expect(verify(repeated, verifier), "reordered", c + 1, 3)


def test_truncated_tail_needs_the_external_head():
    w, lines = write(7)
    head = w.signed_head()
    for cut in (lines[:-1], lines[:line_of(lines, 6)]):
        assert verify(cut, verifier).ok  # a shorter valid log: undetectable alone
        verdict = verify(cut, verifier, expected_head=head)
        expect(verdict, "truncated", len(cut) + 1, parsed(cut)[-1]["seq"] + 1)
        assert "signed head is at seq 7" in verdict.detail


def test_head_at_the_last_seq_passes_and_one_past_it_fails():
    w, lines = write(5)
    at_end = w.signed_head()
    assert verify(lines, verifier, expected_head=at_end).ok
    w.append(event(5))
    expect(verify(lines, verifier, expected_head=w.signed_head()), "truncated", len(lines) + 1, 6)


def test_older_head_passes_on_a_grown_log_and_a_different_history_is_edited():
    w, lines = write(4)
    head = w.signed_head()
    _unused, more = write(3, w, start=4)
    assert verify(lines + more, verifier, expected_head=head).ok
    _unused, other = write(7, writer(), start=100)
    expect(verify(other, verifier, expected_head=head), "edited", line_of(other, 4), 4)


@pytest.mark.parametrize("tamper", ["sig", "head", "count", "time", "key"])
def test_forged_checkpoint(tamper):
    _writer, lines = write(7)
    c = line_of(lines, 3, "checkpoint")
    cp = json.loads(lines[c - 1])
    if tamper == "sig":
        raw = bytearray(base64.b64decode(cp["sig"]))
        raw[0] ^= 1
        cp["sig"] = base64.b64encode(bytes(raw)).decode()
    elif tamper == "head":
        cp["head_hash"] = "f" * 64
    elif tamper == "count":
        cp["count"] = 2
    elif tamper == "time":
        cp["time"] = "2030-01-01T00:00:00Z"
    else:
        body = {k: v for k, v in cp.items() if k != "sig"}
        cp["sig"] = base64.b64encode(other_signer(canon(body))).decode()
    lines[c - 1] = json.dumps(cp)
    expect(verify(lines, verifier), "forged_checkpoint", c, 3)


@pytest.mark.parametrize("sig", ["", "not base64!", None])
def test_checkpoint_with_unusable_signature_is_forged(sig):
    _writer, lines = write(3)
    cp = json.loads(lines[-1])
    cp["sig"] = sig
    lines[-1] = json.dumps(cp)
    expect(verify(lines, verifier), "forged_checkpoint", len(lines), 3)


def test_an_empty_signature_is_never_accepted():
    _writer, lines = write(3)
    cp = json.loads(lines[-1])
    cp["sig"] = ""
    lines[-1] = json.dumps(cp)
    expect(verify(lines, lambda payload, sig: True), "forged_checkpoint", len(lines), 3)


def test_genesis_head():
    _writer, lines = write(2)
    assert verify(lines, verifier, expected_head={"seq": 0, "head_hash": GENESIS}).ok
    expect(verify(lines, verifier, expected_head={"seq": 0, "head_hash": "1" * 64}), "edited", None, 0)


@pytest.mark.parametrize("head", [{"seq": 1}, {"seq": -1, "head_hash": GENESIS}, {"seq": 1, "head_hash": "x"}, "h"])
def test_unusable_expected_head(head):
    _writer, lines = write(2)
    expect(verify(lines, verifier, expected_head=head), "malformed", None, None)


def test_verdict_as_dict():
    _writer, lines = write(2)
    assert verify(lines, verifier).as_dict() == {"ok": True, "kind": None, "file": None, "line": None, "seq": None,
                                                 "detail": ""}
    bad = verify(lines[1:], verifier).as_dict()
    assert (bad["ok"], bad["kind"], bad["line"], bad["seq"]) == (False, "deleted", 1, 1)


def test_forged_expected_head():
    w, lines = write(4)
    head = dict(w.signed_head(), seq=3)
    expect(verify(lines, verifier, expected_head=head), "forged_checkpoint", None, 3)
    assert verify(lines, verifier, expected_head={"seq": 4, "head_hash": w.head}).ok


@pytest.mark.parametrize("bad,seq", [
    ("{not json", None), ("[1, 2]", None), ("", None), (b"\xff\xfe", None),
    ('{"seq": 4, "prev": "%s"}' % GENESIS, 4),
    ('{"seq": 4, "seq": 4, "prev": "%s", "hash": "%s"}' % (GENESIS, GENESIS), None),
    ('{"type": "head", "seq": 4, "head_hash": "%s", "time": "t", "sig": ""}' % GENESIS, 4),
    ('{"type": "checkpoint", "seq": 4, "head_hash": "%s", "time": "t", "sig": ""}' % GENESIS, 4),
])
def test_malformed_line(bad, seq):
    _writer, lines = write(7)
    n = line_of(lines, 4)
    lines.insert(n - 1, bad)
    expect(verify(lines, verifier), "malformed", n, seq)


def test_first_problem_wins():
    _writer, lines = write(7)
    n = line_of(lines, 2)
    lines[n - 1] = lines[n - 1].replace('"status":200', '"status":201')
    lines.append("{not json")
    expect(verify(lines, verifier), "edited", n, 2)


def rotated():
    w, first = write(4)
    closing, opening = w.rotate()
    first += closing
    _unused, rest = write(4, w, start=4)
    return w, first, opening + rest


def test_rotation_closes_with_a_checkpoint_and_continues_the_chain():
    w, first, second = rotated()
    cp, cont = json.loads(first[-1]), json.loads(second[0])
    assert (cp["type"], cp["seq"], cp["count"]) == ("checkpoint", 4, 1)
    assert (cont["type"], cont["seq"], cont["head_hash"]) == ("continuation", 4, cp["head_hash"])
    assert json.loads(second[1])["prev"] == cont["head_hash"]
    assert verify_files([first, second], verifier, expected_head=w.signed_head()).ok
    assert verify(second, verifier).ok  # a file alone starts from its signed continuation


def test_rotation_with_nothing_pending_adds_no_checkpoint():
    w, lines = write(EVERY)
    closing, opening = w.rotate()
    assert closing == [] and len(opening) == 1


def test_problems_across_rotation_name_the_file():
    _unused, first, second = rotated()
    n = line_of(second, 6)
    second[n - 1] = second[n - 1].replace("alice", "mallory")
    expect(verify_files([first, second], verifier), "edited", n, 6, file=1)
    _unused, first, second = rotated()
    cut = first[:line_of(first, 3, "checkpoint")]
    expect(verify_files([cut, second], verifier), "truncated", len(cut) + 1, 4, file=0)
    expect(verify_files([second, first], verifier), "reordered", 1, 1, file=1)
    cont = json.loads(second[0])
    cont["head_hash"] = "e" * 64
    second[0] = json.dumps(cont)
    expect(verify_files([first, second], verifier), "forged_checkpoint", 1, 4, file=1)


def test_file_without_its_closing_checkpoint_is_truncated():
    _unused, first, second = rotated()
    expect(verify_files([first[:-1], second], verifier), "truncated", len(first), 4, file=0)


def test_continuation_from_an_earlier_seq_is_reordered():
    _unused, first, second = rotated()
    expect(verify_files([first + second[1:], second[:1]], verifier), "reordered", 1, 4, file=1)


def test_continuation_must_open_its_file():
    _unused, first, second = rotated()
    expect(verify(first + second, verifier), "reordered", len(first) + 1, 4)
    expect(verify(first[:1] + second, verifier), "reordered", 2, 4)


def test_file_continuing_another_chain_names_the_last_record_it_disagrees_with():
    _unused, first, second = rotated()
    other = writer()
    write(4, other, start=50)
    _unused, opening = other.rotate()
    expect(verify_files([first, opening + second[1:]], verifier), "edited", line_of(first, 4), 4, file=0)


def test_resume_after_restart_continues_the_chain():
    _writer, lines = write(7)
    w = writer().resume(lines, verifier)
    assert (w.seq, w.head) == (7, parsed(lines)[-1]["hash"])
    more = w.append(event(7)) + w.append(event(8))
    first = json.loads(more[0])
    assert (first["seq"], first["prev"]) == (8, parsed(lines)[-1]["hash"])
    cp = json.loads(more[-1])
    assert (cp["type"], cp["seq"], cp["count"]) == ("checkpoint", 9, EVERY)
    assert verify(lines + more, verifier, expected_head=w.signed_head()).ok


def test_resume_from_a_fresh_rotated_file():
    w, first, second = rotated()
    resumed = writer().resume(second[:1], verifier)
    assert (resumed.seq, resumed.head, resumed.pending) == (4, json.loads(second[0])["head_hash"], 0)
    assert verify_files([first, second[:1] + resumed.append(event(4))], verifier).ok


def test_resume_refuses_a_damaged_or_empty_file():
    _writer, lines = write(7)
    n = line_of(lines, 5)
    del lines[n - 1]
    with pytest.raises(AuditChainError, match="line %d, seq 5: deleted" % n):
        writer().resume(lines, verifier)
    with pytest.raises(AuditChainError, match="nothing to resume"):
        writer().resume([], verifier)


def test_asymmetric_signatures():
    ed25519 = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
    exceptions = pytest.importorskip("cryptography.exceptions")
    private = ed25519.Ed25519PrivateKey.generate()
    public = private.public_key()

    def check(payload, sig):
        try:
            public.verify(sig, payload)
        except exceptions.InvalidSignature:
            return False
        return True

    w = Writer(private.sign, every=2, clock=clock)
    lines = [line for i in range(5) for line in w.append(event(i))]
    assert verify(lines, check, expected_head=w.signed_head()).ok
    expect(verify(lines, verifier), "forged_checkpoint", line_of(lines, 2, "checkpoint"), 2)


def test_a_problem_in_a_later_file_names_file_line_and_seq_in_its_text():
    _unused, first, second = rotated()
    n = line_of(second, 6)
    second[n - 1] = second[n - 1].replace("alice", "mallory")
    verdict = verify_files([first, second], verifier)
    assert str(verdict) == "file 1 line %d, seq 6: edited: hash does not match the record" % n
    assert verdict.as_dict()["file"] == 1


def test_a_record_missing_from_a_later_file_is_deleted_in_that_file():
    _unused, first, second = rotated()
    n = line_of(second, 6)
    del second[n - 1]
    verdict = verify_files([first, second], verifier)
    expect(verdict, "deleted", n, 6, file=1)
    assert verdict.detail == "seq 6 to 6 missing before seq 7"


@pytest.mark.parametrize("later_lines_before", [0, 1, 2])
def test_a_record_moved_to_the_next_file_is_reordered_wherever_it_lands(later_lines_before):
    """The missing record is looked for in the rest of this file and in all of every later file."""
    _writer, lines = write(7)
    n = line_of(lines, 5)
    moved = lines.pop(n - 1)
    filler = [json.dumps({"pad": i}) for i in range(later_lines_before)]
    verdict = verify_files([lines, filler + [moved]], verifier)
    expect(verdict, "reordered", n, 6, file=0)
    assert verdict.detail == "seq 6 comes before seq 5"


@pytest.mark.parametrize("prev,seq,record,message", [
    (GENESIS, 1, ["not", "a", "mapping"], "record must be a mapping, got list"),
    (GENESIS, 1, {"seq": 3}, "record field 'seq' is reserved for the chain"),
    (GENESIS, 1, {"prev": GENESIS}, "record field 'prev' is reserved for the chain"),
    (GENESIS, 1, {"hash": "x", "prev": "y"}, "record field 'hash' is reserved for the chain"),
    (GENESIS, 1, {"type": "head"}, "record type 'head' is reserved for the chain"),
    ("0" * 63, 1, {}, "prev_hash must be 64 lowercase hex digits"),
    (GENESIS, -1, {}, "seq must be an integer from 1, got -1"),
])
def test_chain_record_refusals_in_full(prev, seq, record, message):
    with pytest.raises(AuditChainError) as raised:
        chain_record(prev, seq, record)
    assert str(raised.value) == message


def test_records_are_hashed_as_ascii_json_and_nan_is_refused():
    line = chain_record(GENESIS, 1, {"principal": "caf\u00e9"})
    assert "caf\\u00e9" in line and line.isascii()
    assert json.loads(line)["hash"] == hashlib.sha256(GENESIS.encode() + canon({"principal": "caf\u00e9", "seq": 1})
                                                      ).hexdigest()
    assert verify([line], verifier).ok
    with pytest.raises(ValueError):
        chain_record(GENESIS, 1, {"latency": float("nan")})
    with pytest.raises(ValueError):
        writer().append({"latency": float("inf")})


def test_default_checkpoint_interval_is_100_records():
    w = Writer(signer, clock=clock)
    sizes = [len(w.append(event(i))) for i in range(201)]
    assert [i + 1 for i, size in enumerate(sizes) if size == 2] == [100, 200]


def test_interval_refusal_in_full():
    with pytest.raises(AuditChainError) as raised:
        Writer(signer, every=0)
    assert str(raised.value) == "checkpoint interval must be an integer from 1, got 0"


def test_signed_head_is_a_signed_head_line():
    w, _lines = write(4)
    head = w.signed_head()
    assert {k: v for k, v in head.items() if k != "sig"} == {"type": "head", "seq": 4, "head_hash": w.head,
                                                             "time": "2023-11-14T22:13:20Z"}
    assert verifier(canon({k: v for k, v in head.items() if k != "sig"}), base64.b64decode(head["sig"]))


def test_a_checkpoint_or_a_rotation_before_the_first_record_verifies():
    w = writer()
    opening = [w.checkpoint()]
    assert (json.loads(opening[0])["seq"], json.loads(opening[0])["count"]) == (0, 0)
    closing, continuation = w.rotate()
    assert closing == [] and json.loads(continuation[0])["seq"] == 0
    _unused, lines = write(2, w)
    assert verify(opening, verifier).ok
    assert verify(continuation + lines, verifier, expected_head=w.signed_head()).ok


def test_resume_refusals_in_full():
    with pytest.raises(AuditChainError) as raised:
        writer().resume([], verifier)
    assert str(raised.value) == "nothing to resume from: an empty file does not say where the chain stands"
    _writer, lines = write(7)
    del lines[line_of(lines, 5) - 1]
    with pytest.raises(AuditChainError) as raised:
        writer().resume(lines, verifier)
    assert str(raised.value) == "cannot resume: line 6, seq 5: deleted: seq 5 to 5 missing before seq 6"


@pytest.mark.parametrize("edit", [
    lambda sig: sig[:4] + "!" + sig[4:],   # not base64: a lax decoder would skip the '!'
    lambda sig: sig[:4] + "\n" + sig[4:],
])
def test_a_signature_must_be_strict_base64(edit):
    _writer, lines = write(3)
    cp = json.loads(lines[-1])
    cp["sig"] = edit(cp["sig"])
    lines[-1] = json.dumps(cp)
    expect(verify(lines, verifier), "forged_checkpoint", len(lines), 3)


def test_a_missing_signature_is_never_accepted():
    _writer, lines = write(3)
    cp = json.loads(lines[-1])
    del cp["sig"]
    lines[-1] = json.dumps(cp)
    expect(verify(lines, lambda payload, sig: True), "forged_checkpoint", len(lines), 3)


@pytest.mark.parametrize("tail", ["X", "\x0c", "\u00a0"])
def test_a_line_with_more_than_its_json_and_line_ending_is_malformed(tail):
    _writer, lines = write(2)
    assert verify([line + "\r\n" for line in lines], verifier).ok
    lines[0] += tail
    verdict = verify(lines, verifier)
    expect(verdict, "malformed", 1, None)
    assert verdict.detail == "not an audit line (JSON object with the fields of its type)"


def test_a_continuation_needs_its_time():
    _unused, _first, second = rotated()
    cont = json.loads(second[0])
    cont["time"] = 1700000000
    del cont["sig"]
    second[0] = json.dumps(dict(cont, sig=base64.b64encode(signer(canon(cont))).decode()))
    expect(verify(second, verifier), "malformed", 1, 4)


def rotated_long():
    """A closed first file (seq 1-4) and a second one: continuation, seq 5-11, checkpoints at 7 and 10.

    Lines of the second file: 1 continuation, 2 seq 5, 3 seq 6, 4 seq 7, 5 checkpoint 7, 6 seq 8, 7 seq 9,
    8 seq 10, 9 checkpoint 10, 10 seq 11.
    """
    w, first = write(4)
    closing, opening = w.rotate()
    _unused, rest = write(7, w, start=4)
    return w, first + closing, opening + rest


def recomputed(lines, seq, **change):
    """Record ``seq`` rewritten with ``change`` and a hash that matches it."""
    n = line_of(lines, seq)
    obj = parsed(lines)[n - 1]
    body = {k: v for k, v in obj.items() if k not in ("seq", "prev", "hash")}
    lines[n - 1] = chain_record(obj["prev"], seq, dict(body, **change))


def swap(lines, a, b):
    lines[a - 1], lines[b - 1] = lines[b - 1], lines[a - 1]


@pytest.mark.parametrize("tamper,verdict", [
    (lambda s: s.__setitem__(2, s[2].replace("alice", "mallory")),
     "file 1 line 3, seq 6: edited: hash does not match the record"),
    (lambda s: recomputed(s, 6, principal="mallory"),
     "file 1 line 3, seq 6: edited: seq 7's prev does not match this record: it was rewritten with a recomputed hash"),
    (lambda s: recomputed(s, 7, status=500),
     "file 1 line 5, seq 7: edited: signed head hash differs from the chain: a record up to seq 7 was rewritten"),
    (lambda s: s.pop(2), "file 1 line 3, seq 6: deleted: seq 6 to 6 missing before seq 7"),
    (lambda s: s.pop(3), "file 1 line 4, seq 7: deleted: seq 7 to 7 missing before the checkpoint for seq 7"),
    (lambda s: s.pop(4),
     "file 1 line 8, seq 10: deleted: 6 records since the last checkpoint, signed count 3: a checkpoint line is "
     "missing"),
    (lambda s: swap(s, 2, 3), "file 1 line 2, seq 6: reordered: seq 6 comes before seq 5"),
    (lambda s: swap(s, 4, 5), "file 1 line 4, seq 7: reordered: the checkpoint for seq 7 comes before seq 7"),
    (lambda s: swap(s, 5, 6), "file 1 line 6, seq 7: reordered: checkpoint for seq 7 after seq 8"),
    (lambda s: s.insert(5, s[4]),
     "file 1 line 6, seq 7: reordered: 0 records since the last checkpoint, signed count 3: checkpoint line "
     "repeated or moved"),
    (lambda s: s.insert(2, s[0]), "file 1 line 3, seq 4: reordered: continuation line is not the first line of a file"),
    (lambda s: s.insert(2, "{not json"),
     "file 1 line 3, seq None: malformed: not an audit line (JSON object with the fields of its type)"),
])
def test_each_problem_in_a_later_file_is_named_in_full(tamper, verdict):
    _writer, first, second = rotated_long()
    assert verify_files([first, second], verifier).ok
    tamper(second)
    assert str(verify_files([first, second], verifier)) == verdict


def test_problems_at_a_rotation_are_named_in_full():
    _unused, first, second = rotated()
    cut = first[:line_of(first, 3, "checkpoint")]
    assert verify_files([cut, second], verifier).detail == "file ends at seq 3, the next file continues from seq 4"
    assert verify_files([first[:-1], second], verifier).detail == "file ends without the checkpoint that closes it"
    assert verify_files([first + second[1:], second[:1]], verifier).detail == \
        "continues from seq 4, the previous file ends at seq 8"
    other = writer()
    write(4, other, start=50)
    _unused, opening = other.rotate()
    assert verify_files([first, opening + second[1:]], verifier).detail == \
        "hash differs from the one the next file continues from"


def test_a_file_that_starts_the_walk_with_its_continuation_is_where_the_chain_stands():
    """After an empty (or removed) earlier file, the continuation line is the start of the chain."""
    _unused, _first, second = rotated()
    other = writer()
    write(4, other, start=50)
    _unused, opening = other.rotate()
    foreign = opening + second[1:]
    assert str(verify_files([[], foreign], verifier)) == \
        "file 1 line 1, seq 4: edited: seq 5's prev does not match this record: it was rewritten with a recomputed hash"
    assert str(verify_files([[], second], verifier, expected_head={"seq": 4, "head_hash": "e" * 64})) == \
        "file 1 line 1, seq 4: edited: hash differs from the signed head"
    start = [chain_record("1" * 64, 1, event(0))]
    assert str(verify_files([[], start], verifier)) == \
        "file 1 line 1, seq 1: edited: prev is not the hash the chain starts from"


def test_truncation_is_named_in_the_last_file():
    w, first, second = rotated_long()
    head = w.signed_head()
    assert str(verify_files([first, second[:-1]], verifier, expected_head=head)) == \
        "file 1 line 10, seq 11: truncated: log ends at seq 10, the signed head is at seq 11"
    assert str(verify_files([], verifier, expected_head=head)) == \
        "line 1, seq 1: truncated: log ends at seq 0, the signed head is at seq 11"


@pytest.mark.parametrize("head", [{"seq": 1}, "h"])
def test_unusable_expected_head_detail(head):
    assert verify(write(2)[1], verifier, expected_head=head).detail == "expected head needs seq and head_hash"
