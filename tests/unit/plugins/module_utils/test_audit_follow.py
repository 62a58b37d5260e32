"""onprem-deepseek-audit (_audit_follow): the raw nginx audit log followed into the signed chain,
across restarts, crashes, logrotate and chain rotation; verify names every kind of tampering.

Most tests sign with a software P-256 key standing in for the token; the SoftHSM2 tests sign in a
real token and run the built one-file command as the host runs it.
"""
import base64
import hashlib
import importlib.util
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import softhsm_tokens

from ansible_collections.onprem.deepseek.plugins.module_utils import _audit_follow as af

ec = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ec")
hashes = pytest.importorskip("cryptography.hazmat.primitives.hashes")
serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
utils = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.utils")

ROOT = Path(__file__).resolve().parents[4]
BUILT = ROOT / "roles" / "gateway" / "files" / "onprem_deepseek_audit.py"
EVERY = 3


class SoftSigner:
    """The token's part, with a software key: ECDSA P-256 over SHA-256, DER signatures."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.public_key_pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")

    def sign(self, payload):
        return self.key.sign(payload, ec.ECDSA(hashes.SHA256()))


def clock():
    return 1700000000


def nginx_line(i, pad=60):
    return json.dumps({"time": "2024-05-01T10:00:%02d+00:00" % (i % 60), "request_id": "%032x" % i,
                       "principal": "analyst", "status": 200, "model": "deepseek-r1", "pad": "x" * pad},
                      separators=(",", ":"))


class Site:
    """A raw log, a chain dir and a state dir in tmp_path, and followers over them."""

    def __init__(self, tmp_path, signer):
        self.tmp, self.signer = tmp_path, signer
        self.raw = tmp_path / "log" / "gateway-audit.log"
        self.chain = tmp_path / "chain"
        self.state = tmp_path / "state"
        for d in (self.raw.parent, self.chain, self.state):
            d.mkdir()
        self.pem = tmp_path / "audit.pub.pem"
        self.pem.write_text(signer.public_key_pem)
        self.written = []
        self.messages = []

    def write(self, lines, path=None, newline=True):
        with open(path or self.raw, "ab") as handle:
            for line in lines:
                data = line.encode() if isinstance(line, str) else line
                handle.write(data + (b"\n" if newline else b""))
                self.written.append(data)

    def write_n(self, count, path=None):
        start = len(self.written)
        self.write([nginx_line(i) for i in range(start, start + count)], path)

    def follower(self, **kw):
        options = dict(every=EVERY, rotate_bytes=0, grace=0.0, clock=clock, log=self.messages.append)
        options.update(kw)
        return af.Follower(str(self.raw), str(self.chain), str(self.state), self.signer, **options)

    def state_doc(self):
        return json.loads((self.state / af.STATE_FILE).read_text())

    def lines(self, name=af.CHAIN_FILE):
        return (self.chain / name).read_text().splitlines()

    def bodies(self):
        """The chained records of every chain file, in order, as raw_record made them."""
        out = []
        for path in af.chain_series(str(self.chain)):
            for line in Path(path).read_text().splitlines():
                obj = json.loads(line)
                if obj.get("type") not in ("checkpoint", "continuation"):
                    out.append(dict((k, v) for k, v in obj.items() if k not in ("seq", "prev", "hash")))
        return out

    def expected(self):
        return [af.raw_record(line) for line in self.written]


def drain(follower, limit=1000):
    for _turn in range(limit):
        if not follower.step():
            return
    raise AssertionError("the follower never caught up")


def cli(*argv, signer_factory=None):
    out, err = io.StringIO(), io.StringIO()
    kwargs = {"signer_factory": signer_factory} if signer_factory else {}
    rc = af.main([str(a) for a in argv], stdout=out, stderr=err, **kwargs)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture
def signer():
    return SoftSigner()


@pytest.fixture
def site(tmp_path, signer):
    return Site(tmp_path, signer)


def line_no(lines, seq, kind=None):
    for n, text in enumerate(lines, 1):
        obj = json.loads(text)
        if obj["seq"] == seq and obj.get("type") == kind:
            return n
    raise LookupError(seq)


# -- raw lines --------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, record", [
    (b'{"status":200,"principal":"a"}', {"status": 200, "principal": "a"}),
    (b'{"type":"request","n":1}', {"type": "request", "n": 1}),
    (b"not json at all", {"type": "unparsed", "line": "not json at all"}),
    (b"", {"type": "unparsed", "line": ""}),
    (b"[1,2]", {"type": "unparsed", "line": "[1,2]"}),
    (b'{"seq":5}', {"type": "unparsed", "line": '{"seq":5}'}),
    (b'{"hash":"x"}', {"type": "unparsed", "line": '{"hash":"x"}'}),
    (b'{"type":"checkpoint"}', {"type": "unparsed", "line": '{"type":"checkpoint"}'}),
    (b'{"a":1,"a":2}', {"type": "unparsed", "line": '{"a":1,"a":2}'}),
    (b'{"a":NaN}', {"type": "unparsed", "line": '{"a":NaN}'}),
    (b'{"a":"\xff"}', {"type": "unparsed", "line": '{"a":"\\xff"}'}),
])
def test_a_raw_line_is_its_object_or_an_unparsed_record_never_dropped(line, record):
    assert af.raw_record(line) == record


def test_ecdsa_signature_from_the_token_is_stored_as_der():
    for r, s in ((1, 2), (2 ** 255 + 7, 2 ** 200), (2 ** 256 - 1, 0x80), (0x7f << 248, 1 << 255)):
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        assert af.ecdsa_der(raw) == utils.encode_dss_signature(r, s)
    for size in (63, 65, 0):
        with pytest.raises(af.Pkcs11KeyError, match="ECDSA signature of %d bytes" % size):
            af.ecdsa_der(b"\x01" * size)


def test_a_der_signature_made_from_r_and_s_verifies_with_the_public_key(signer):
    payload = b"payload"
    r, s = utils.decode_dss_signature(signer.sign(payload))
    der = af.ecdsa_der(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    check = af.pem_verifier(signer.public_key_pem)
    assert check(payload, der) and not check(b"other", der) and not check(payload, b"\x30\x00")


def test_pem_verifier_takes_only_a_p256_public_key(signer):
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(af.AuditToolError, match="not an EC P-256 public key"):
        af.pem_verifier(p384)
    with pytest.raises(af.AuditToolError, match="not a PEM public key"):
        af.pem_verifier("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


# -- follow, verify ---------------------------------------------------------------------------------

def test_follow_then_verify_round_trip(site):
    site.write_n(3)
    site.write([b"a line that is not JSON"])
    site.write_n(3)
    f = site.follower().start()
    drain(f)
    f.stop()
    assert site.bodies() == site.expected()
    assert site.bodies()[3] == {"type": "unparsed", "line": "a line that is not JSON"}
    lines = site.lines()
    kinds = [(json.loads(t).get("type"), json.loads(t)["seq"]) for t in lines if "count" in json.loads(t)]
    # every 3 records, and one at the stop so that the file ends signed
    assert kinds == [("checkpoint", 3), ("checkpoint", 6), ("checkpoint", 7)]
    state = site.state_doc()
    st = os.stat(site.raw)
    assert (state["raw"]["inode"], state["raw"]["offset"], state["head"]["seq"]) == (st.st_ino, st.st_size, 7)
    assert oct(os.stat(site.state / af.STATE_FILE).st_mode & 0o777) == "0o640"
    rc, out, err = cli("verify", "--public-key", site.pem, "--head", site.state / af.STATE_FILE, site.chain)
    assert (rc, out, err) == (0, "ok: 7 records, last seq 7; signed head at seq 7 matches\n", "")
    assert cli("verify", site.chain / af.CHAIN_FILE) == (
        0, "ok: 7 records, last seq 7; signatures not checked (no --public-key)\n", "")


def test_a_line_is_chained_only_once_it_is_complete(site):
    site.write([nginx_line(0)])
    site.write([b'{"status":'], newline=False)
    f = site.follower().start()
    drain(f)
    assert f.writer.seq == 1
    with open(site.raw, "ab") as handle:
        handle.write(b'201}\n')
    drain(f)
    f.close()
    assert site.bodies() == [af.raw_record(nginx_line(0).encode()), {"status": 201}]


def test_restart_mid_stream_loses_and_repeats_nothing(site):
    site.write_n(5)
    f = site.follower().start()
    drain(f)
    f.stop()
    site.write_n(4)
    g = site.follower().start()
    assert g.writer.seq == 5
    drain(g)
    g.close()
    assert site.bodies() == site.expected() and len(site.written) == 9
    assert cli("verify", "--public-key", site.pem, "--head", site.state / af.STATE_FILE, site.chain)[0] == 0


def crash_after_chain_write(site, f):
    """The process dies after writing (and fsyncing) a batch to the chain, before saving the state."""
    def die():
        raise OSError("simulated crash")
    f._save_state = die
    with pytest.raises(OSError, match="simulated crash"):
        f.step()
    f.close()


def test_a_crash_between_chain_and_state_neither_loses_nor_repeats(site):
    site.write_n(20)
    f = site.follower().start()
    drain(f)
    site.write_n(4)
    crash_after_chain_write(site, f)
    assert site.state_doc()["head"]["seq"] == 20
    # and the next record was half written when the power went
    with open(site.chain / af.CHAIN_FILE, "ab") as handle:
        handle.write(b'{"hash":"ab')
    site.write_n(3)
    g = site.follower().start()
    assert g.writer.seq == 24
    assert any("seq 21 to 24 were chained before the position was saved" in m for m in site.messages)
    assert any("cut off by a crash (11 bytes)" in m for m in site.messages)
    drain(g)
    g.stop()
    assert site.bodies() == site.expected() and len(site.written) == 27
    rc, out, _err = cli("verify", "--public-key", site.pem, "--head", site.state / af.STATE_FILE, site.chain)
    assert (rc, out) == (0, "ok: 27 records, last seq 27; signed head at seq 27 matches\n")


def test_records_past_the_saved_head_that_are_not_the_raw_lines_stop_the_follower(site):
    site.write_n(20)
    f = site.follower().start()
    drain(f)
    site.write_n(4)
    crash_after_chain_write(site, f)
    data = site.raw.read_bytes()
    # one of the four lines chained without a saved position now reads differently (same length)
    site.raw.write_bytes(data.replace(b'"%032x"' % 22, b'"%032x"' % 0xfff))
    with pytest.raises(af.FollowRefused, match="seq 23 in the chain is not the raw line it should have come from"):
        site.follower().start()


def test_a_chain_that_ends_before_the_signed_head_stops_the_follower(site):
    site.write_n(5)
    f = site.follower().start()
    drain(f)
    f.stop()
    path = site.chain / af.CHAIN_FILE
    lines = site.lines()
    path.write_text("\n".join(lines[:-3]) + "\n")
    with pytest.raises(af.FollowRefused, match=r"does not match the signed head in .*: line \d+, seq 4: truncated"):
        site.follower().start()


def test_a_chain_without_its_state_stops_the_follower(site):
    site.write_n(2)
    f = site.follower().start()
    drain(f)
    f.stop()
    (site.state / af.STATE_FILE).unlink()
    with pytest.raises(af.FollowRefused, match="the chain is at seq 2 but .* is missing"):
        site.follower().start()


def test_a_forged_state_stops_the_follower(site):
    site.write_n(2)
    f = site.follower().start()
    drain(f)
    f.stop()
    state = site.state_doc()
    state["head"] = af.Writer(SoftSigner().sign).resume(site.lines(), lambda p, s: True).signed_head()
    (site.state / af.STATE_FILE).write_text(json.dumps(state))
    with pytest.raises(af.FollowRefused, match="forged_checkpoint"):
        site.follower().start()


def test_only_one_follower_at_a_time(site):
    f = site.follower().start()
    with pytest.raises(af.FollowRefused, match="another follower holds"):
        site.follower().start()
    f.close()
    site.follower().start().close()


def test_a_signer_whose_public_key_does_not_match_is_refused(site):
    class Mismatched(SoftSigner):
        def __init__(self):
            super().__init__()
            self.public_key_pem = SoftSigner().public_key_pem
    f = af.Follower(str(site.raw), str(site.chain), str(site.state), Mismatched())
    with pytest.raises(af.FollowRefused, match="public key does not verify its signatures"):
        f.start()
    f.close()


# -- the raw log rotated, truncated ----------------------------------------------------------------

def test_raw_log_renamed_by_logrotate_is_finished_then_the_new_one_read(site):
    site.write_n(3)
    f = site.follower().start()
    drain(f)
    old = site.raw.with_name("gateway-audit.log.1")
    site.raw.rename(old)
    # nginx writes to the renamed file until it reopens its logs; its last line has no newline
    site.write_n(2, path=old)
    site.write([b'{"last":true}'], path=old, newline=False)
    site.write_n(2)
    drain(f)
    f.stop()
    assert site.bodies() == site.expected() and len(site.written) == 8
    st = os.stat(site.raw)
    raw = site.state_doc()["raw"]
    assert (raw["inode"], raw["offset"]) == (st.st_ino, st.st_size)
    assert any("was rotated" in m for m in site.messages)


def test_the_follower_waits_for_nginx_to_reopen_before_leaving_the_old_file(site):
    now = [100.0]
    site.write_n(2)
    f = site.follower(grace=5.0, monotonic=lambda: now[0]).start()
    drain(f)
    old = site.raw.with_name("gateway-audit.log.1")
    site.raw.rename(old)
    site.raw.touch()
    now[0] += 4.9
    assert f.step() is False
    site.write_n(1, path=old)
    assert f.step() is True and f.writer.seq == 3
    now[0] += 4.9
    assert f.step() is False
    now[0] += 0.2
    assert f.step() is True
    site.write_n(1)
    drain(f)
    f.close()
    assert site.bodies() == site.expected() and len(site.written) == 4


def test_a_line_nginx_writes_to_the_old_file_at_the_switch_is_not_lost(site):
    site.write_n(2)
    f = site.follower().start()
    drain(f)
    old = site.raw.with_name("gateway-audit.log.1")
    site.raw.rename(old)
    site.write_n(1)
    late = nginx_line(99)
    read_lines, raced = f.raw.read_lines, []

    def racing(limit):
        lines = read_lines(limit)
        if not lines and not raced:
            # between reaching the end of the old file and looking at the path
            raced.append(late)
            with open(old, "ab") as handle:
                handle.write(late.encode() + b"\n")
        return lines
    f.raw.read_lines = racing
    drain(f)
    assert raced and f.writer.seq == 2  # it stays on the old file for now
    drain(f)
    f.close()
    assert raced and site.bodies() == [af.raw_record(line) for line in site.written[:2] + [late.encode()]
                                       + site.written[2:]]


def test_restart_after_logrotate_finishes_the_renamed_file_first(site):
    site.write_n(3)
    f = site.follower().start()
    drain(f)
    f.stop()
    old = site.raw.with_name("gateway-audit.log.1")
    site.raw.rename(old)
    site.write_n(2, path=old)
    site.write_n(2)
    g = site.follower().start()
    drain(g)
    g.close()
    assert site.bodies() == site.expected() and len(site.written) == 7


def test_a_raw_file_gone_while_stopped_is_left_and_the_new_one_read_from_its_start(site):
    site.write_n(3)
    f = site.follower().start()
    drain(f)
    f.stop()
    site.raw.unlink()
    site.write_n(2)
    g = site.follower().start()
    drain(g)
    g.close()
    assert site.bodies() == site.expected()
    assert any("is not the file of the saved position" in m or "is gone" in m for m in site.messages)


def test_a_raw_file_rewritten_in_place_while_stopped_is_read_from_its_start(site):
    site.write_n(3)
    f = site.follower().start()
    drain(f)
    f.stop()
    inode = os.stat(site.raw).st_ino
    # same inode, longer than the saved offset: only its first bytes tell it is another file
    with open(site.raw, "r+b") as handle:
        handle.truncate(0)
    site.write([b'{"other":"start"}'])
    site.write_n(4)
    assert os.stat(site.raw).st_ino == inode
    g = site.follower().start()
    drain(g)
    g.close()
    assert site.bodies() == site.expected()
    assert any("is not the file of the saved position" in m for m in site.messages)


def test_truncated_raw_log_is_read_again_from_its_start(site):
    site.write_n(4)
    f = site.follower().start()
    drain(f)
    site.raw.write_bytes(b"")
    site.write_n(2)
    drain(f)
    f.close()
    assert site.bodies() == site.expected() and len(site.written) == 6
    assert any("was truncated" in m for m in site.messages)


def test_raw_log_that_does_not_exist_yet_is_waited_for(site):
    f = site.follower().start()
    assert f.step() is False and site.state_doc()["raw"] is None
    site.write_n(2)
    drain(f)
    f.close()
    assert site.bodies() == site.expected()


# -- the chain rotated -------------------------------------------------------------------------------

def test_chain_rotation_by_size_gives_a_series_verify_accepts(site):
    site.write_n(30)
    f = site.follower(rotate_bytes=2000, batch=4).start()
    drain(f)
    f.stop()
    series = af.chain_series(str(site.chain))
    names = [os.path.basename(p) for p in series]
    assert len(names) >= 4 and names[-1] == "audit.log"
    assert names[:-1] == ["audit.log.%d" % n for n in range(1, len(names))]
    first = json.loads(site.lines("audit.log.2")[0])
    assert (first["type"], first["seq"]) == ("continuation", json.loads(site.lines("audit.log.1")[-1])["seq"])
    assert site.bodies() == site.expected()
    ok = "ok: 30 records, last seq 30; signed head at seq 30 matches\n"
    head = site.state / af.STATE_FILE
    assert cli("verify", "--public-key", site.pem, "--head", head, site.chain) == (0, ok, "")
    assert cli("verify", "--public-key", site.pem, "--head", head, *series) == (0, ok, "")
    # the older files may be removed: the rest still verifies from its continuation
    start = json.loads(Path(series[2]).read_text().splitlines()[0])["seq"]
    assert cli("verify", "--public-key", site.pem, "--head", head, *series[2:]) == (
        0, "ok: %d records, last seq 30; signed head at seq 30 matches\n" % (30 - start), "")
    # given out of order: the older file's first record comes after the newer file's last
    rc, out, _err = cli("verify", "--public-key", site.pem, *(series[1:2] + series[0:1] + series[2:]))
    end = json.loads(Path(series[1]).read_text().splitlines()[-1])["seq"]
    assert (rc, out) == (1, "%s:1: seq 1: reordered: seq 1 after seq %d\n" % (series[0], end))


def test_an_older_head_is_compared_in_the_file_that_holds_its_seq(site):
    site.write_n(30)
    f = site.follower(rotate_bytes=2000, batch=4).start()
    drain(f)
    f.stop()
    series = af.chain_series(str(site.chain))
    lines = Path(series[1]).read_text().splitlines()
    record = json.loads(lines[2])
    head = {"type": "head", "seq": record["seq"], "head_hash": record["hash"], "time": "2024-05-01T10:00:00Z"}
    head["sig"] = base64.b64encode(site.signer.sign(af.canonical(head))).decode()
    path = site.tmp / "old-head.json"
    path.write_text(json.dumps(head))
    assert cli("verify", "--public-key", site.pem, "--head", path, site.chain) == (
        0, "ok: 30 records, last seq 30; signed head at seq %d matches\n" % record["seq"], "")
    # a head signed over another history at that seq
    head["head_hash"] = "1" * 64
    head["sig"] = base64.b64encode(site.signer.sign(af.canonical(
        dict((k, v) for k, v in head.items() if k != "sig")))).decode()
    path.write_text(json.dumps(head))
    rc, out, _err = cli("verify", "--public-key", site.pem, "--head", path, site.chain)
    assert (rc, out) == (1, "%s:3: seq %d: edited: hash differs from the signed head\n" % (series[1], record["seq"]))


def test_a_series_missing_a_middle_file_is_truncated_at_its_end(site):
    site.write_n(30)
    f = site.follower(rotate_bytes=2000, batch=4).start()
    drain(f)
    f.stop()
    series = af.chain_series(str(site.chain))
    rc, out, _err = cli("verify", "--public-key", site.pem, series[0], *series[2:])
    end = len(Path(series[0]).read_text().splitlines()) + 1
    assert rc == 1 and out.startswith("%s:%d: seq " % (series[0], end)) and ": truncated: " in out


def test_sighup_rotates_the_chain_file_at_the_next_turn(site):
    site.write_n(4)
    f = site.follower().start()
    turns = []

    def stop():
        turns.append(1)
        if len(turns) == 3:
            f.rotate_requested = True
        return len(turns) > 5
    f.run(stop, lambda seconds: None)
    assert f.rotate_chain() is None  # nothing since the rotation: no empty file
    site.write_n(2)
    drain(f)
    f.stop()
    assert [os.path.basename(p) for p in af.chain_series(str(site.chain))] == ["audit.log.1", "audit.log"]
    assert json.loads(site.lines("audit.log.1")[-1])["type"] == "checkpoint"
    assert site.bodies() == site.expected()
    assert cli("verify", "--public-key", site.pem, site.chain)[1] == "ok: 6 records, last seq 6\n"


def test_a_crash_between_rename_and_the_new_file_continues_the_chain(site):
    site.write_n(4)
    f = site.follower().start()
    drain(f)
    f.rotate_chain()
    f.close()
    (site.chain / af.CHAIN_FILE).write_bytes(b"")  # created, the continuation line never written
    site.write_n(2)
    g = site.follower().start()
    drain(g)
    g.stop()
    assert json.loads(site.lines()[0])["type"] == "continuation"
    assert site.bodies() == site.expected()
    assert cli("verify", "--public-key", site.pem, "--head", site.state / af.STATE_FILE, site.chain)[0] == 0


# -- verify names tampering -----------------------------------------------------------------------

@pytest.fixture
def chain(site):
    site.write_n(10)
    f = site.follower().start()
    drain(f)
    f.stop()
    return site


def tampered(chain, lines):
    path = chain.chain / af.CHAIN_FILE
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_verify_names_an_edited_record(chain):
    lines = chain.lines()
    n = line_no(lines, 5)
    obj = json.loads(lines[n - 1])
    obj["principal"] = "someone-else"
    lines[n - 1] = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    path = tampered(chain, lines)
    rc, out, _err = cli("verify", "--public-key", chain.pem, path)
    assert (rc, out) == (1, "%s:%d: seq 5: edited: hash does not match the record\n" % (path, n))


def test_verify_names_a_deleted_record(chain):
    lines = chain.lines()
    n = line_no(lines, 4)
    del lines[n - 1]
    path = tampered(chain, lines)
    rc, out, _err = cli("verify", "--public-key", chain.pem, path)
    assert (rc, out) == (1, "%s:%d: seq 4: deleted: seq 4 to 4 missing before seq 5\n" % (path, n))


def test_verify_names_swapped_records(chain):
    lines = chain.lines()
    a, b = line_no(lines, 4), line_no(lines, 5)
    lines[a - 1], lines[b - 1] = lines[b - 1], lines[a - 1]
    path = tampered(chain, lines)
    rc, out, _err = cli("verify", "--public-key", chain.pem, path)
    assert (rc, out) == (1, "%s:%d: seq 5: reordered: seq 5 comes before seq 4\n" % (path, a))


def test_a_cut_off_tail_needs_the_head_file(chain):
    lines = chain.lines()
    n = line_no(lines, 8)
    path = tampered(chain, lines[:n])
    # from the log alone a shorter log is a valid log
    assert cli("verify", "--public-key", chain.pem, path) == (0, "ok: 8 records, last seq 8\n", "")
    rc, out, _err = cli("verify", "--public-key", chain.pem, "--head", chain.state / af.STATE_FILE, path)
    assert (rc, out) == (1, "%s:%d: seq 9: truncated: log ends at seq 8, the signed head is at seq 10\n"
                         % (path, n + 1))
    # a bare head (a copy kept elsewhere) works as well as the state file
    head = chain.tmp / "head.json"
    head.write_text(json.dumps(chain.state_doc()["head"]))
    assert cli("verify", "--public-key", chain.pem, "--head", head, path)[:2] == (1, out)


def test_verify_names_a_forged_checkpoint(chain):
    lines = chain.lines()
    n = line_no(lines, 6, "checkpoint")
    obj = json.loads(lines[n - 1])
    forger = SoftSigner()
    unsigned = dict((k, v) for k, v in obj.items() if k != "sig")
    obj["sig"] = base64.b64encode(forger.sign(af.canonical(unsigned))).decode()
    lines[n - 1] = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    path = tampered(chain, lines)
    rc, out, _err = cli("verify", "--public-key", chain.pem, path)
    assert (rc, out) == (1, "%s:%d: seq 6: forged_checkpoint: checkpoint signature does not verify\n" % (path, n))
    # without the public key the signature cannot be judged
    assert cli("verify", path)[0] == 0


def test_verify_names_a_malformed_line_and_a_forged_head(chain):
    lines = chain.lines()
    path = tampered(chain, lines[:2] + ["garbage"] + lines[2:])
    rc, out, _err = cli("verify", "--public-key", chain.pem, path)
    assert (rc, out) == (1, "%s:3: seq None: malformed: not an audit line (JSON object with the fields of its "
                            "type)\n" % path)
    tampered(chain, lines)
    head = chain.tmp / "head.json"
    doc = chain.state_doc()["head"]
    doc["seq"] = 9
    head.write_text(json.dumps(doc))
    rc, out, _err = cli("verify", "--public-key", chain.pem, "--head", head, path)
    assert (rc, out) == (1, "%s: head: forged_checkpoint: expected head signature does not verify\n" % head)


@pytest.mark.parametrize("argv, message", [
    ([], "usage: the following arguments are required: FILE"),
    (["--public-key"], "usage: argument --public-key: expected one argument"),
    (["{tmp}/none"], "{tmp}/none is not a file (give chain files oldest first, or one chain dir)"),
    (["{tmp}"], "no chain files (audit.log, audit.log.N) in {tmp}"),
    (["--public-key", "{tmp}/bad.pem", "{chain}"], "{tmp}/bad.pem: not a PEM public key"),
    (["--head", "{tmp}/bad.pem", "{chain}"], "head file {tmp}/bad.pem is not JSON"),
    (["--pin", "1", "{chain}"], "usage: unrecognized arguments: --pin"),
])
def test_verify_usage_errors_exit_2(chain, tmp_path, argv, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "bad.pem").write_text("not a key")
    subst = dict(tmp=empty if argv == ["{tmp}"] else tmp_path, chain=chain.chain)
    rc, out, err = cli("verify", *[a.format(**subst) for a in argv])
    assert (rc, out) == (2, "")
    assert err.startswith("onprem-deepseek-audit: " + message.format(**subst))


# -- signer config ------------------------------------------------------------------------------------

def config_file(tmp_path, mode=0o600, **fields):
    doc = {"module_path": "/usr/lib/softhsm/libsofthsm2.so", "token_label": "deepseek",
           "key_label": "gateway-audit", "pin_file": "/etc/deepseek/hsm/user.pin"}
    doc.update(fields)
    doc = dict((k, v) for k, v in doc.items() if v is not None)
    path = tmp_path / "signer.json"
    path.write_text(json.dumps(doc))
    path.chmod(mode)
    return path


def test_signer_config_names_the_token_and_a_pin_file(tmp_path):
    assert af.load_signer_config(str(config_file(tmp_path))) == {
        "module_path": "/usr/lib/softhsm/libsofthsm2.so", "token_label": "deepseek",
        "key_label": "gateway-audit", "pin_file": "/etc/deepseek/hsm/user.pin"}
    assert af.load_signer_config(str(config_file(tmp_path, mode=0o640)))["key_label"] == "gateway-audit"


@pytest.mark.parametrize("mode, fields, message", [
    (0o620, {}, "is writable by group or others; make it 0600"),
    (0o602, {}, "is writable by group or others; make it 0600"),
    (0o600, {"pin": "123456"}, "a PIN does not go in the config; name a pin_file"),
    (0o600, {"key_label": None}, ": missing key_label"),
    (0o600, {"colour": "red"}, ": unknown field(s) colour"),
    (0o600, {"pin_file": "user.pin"}, ": pin_file must be non-empty strings, the paths absolute"),
    (0o600, {"token_label": ""}, ": token_label must be non-empty strings"),
])
def test_signer_config_errors_exit_2_without_touching_a_token(tmp_path, mode, fields, message):
    path = config_file(tmp_path, mode, **fields)

    def no_token(config):
        raise AssertionError("a token was opened")
    rc, out, err = cli("public-key", "--signer-config", path, signer_factory=no_token)
    assert (rc, out) == (2, "")
    assert err.startswith("onprem-deepseek-audit: ") and message in err
    assert "123456" not in err


def test_public_key_prints_the_signers_pem(tmp_path, signer):
    class Factory:
        def __init__(self, config):
            assert config["key_label"] == "gateway-audit"

        def __enter__(self):
            return signer

        def __exit__(self, *exc):
            return False
    assert cli("public-key", "--signer-config", config_file(tmp_path), signer_factory=Factory) == (
        0, signer.public_key_pem, "")


def test_follow_argument_bounds(tmp_path):
    base = ["follow", "--raw", "r", "--chain-dir", "c", "--state-dir", "s", "--signer-config", "x"]
    for extra, message in ((["--every", "0"], "argument --every: an integer from 1 expected, got '0'"),
                           (["--rotate-bytes", "-1"], "argument --rotate-bytes: an integer from 0 expected"),
                           (["--poll", "0"], "argument --poll: seconds from 0.01 to 60 expected")):
        rc, _out, err = cli(*(base + extra))
        assert rc == 2 and message in err, err
    rc, _out, err = cli(*(base[:-2] + ["--signer-config", config_file(tmp_path)]))
    assert (rc, err) == (2, "onprem-deepseek-audit: c is not a directory\n")


# -- the built command ------------------------------------------------------------------------------

def load_builder():
    path = ROOT / "tools" / "build_keywrap.py"
    if not path.exists():
        pytest.skip("the built collection ships no tools/: checked in the source tree")
    spec = importlib.util.spec_from_file_location("build_keywrap", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_role_ships_the_audit_command_built_from_the_current_module_utils():
    if "MUTANT_UNDER_TEST" in os.environ:
        # ./dev mutate: mutmut's copies of module_utils carry its trampolines, never the shipped code.
        pytest.skip("under mutmut, plugins/module_utils is not the source the command is built from")
    builder = load_builder()
    target = next(t for t in builder.TARGETS if t.path == BUILT)
    assert BUILT.read_text() == builder.build(target)
    assert [t.path.name for t in builder.TARGETS] == [
        "onprem_keywrap.py", "onprem_deepseek_audit.py", "onprem_deepseek_remediation.py", "onprem_deepseek_dr_entry.py",
        "onprem_deepseek_dr_replication.py"]


@pytest.mark.parametrize("sources, problem", [
    ([("a.py", "def f():\n    pass\n"), ("b.py", "f = 1\n")], "b.py binds f, already bound by a.py"),
    ([("a.py", "import time\n"), ("b.py", "def time():\n    pass\n")], "b.py binds time, already bound by a.py"),
    ([("a.py", "from x import y\n"), ("b.py", "from z import y\n")], "b.py binds y, already bound by a.py"),
    ([("a.py", "try:\n    import p\nexcept ImportError:\n    X = 1\n"), ("b.py", "X = 2\n")],
     "b.py binds X, already bound by a.py"),
    ([("a.py", "import json\nfrom p import e as q\n"), ("b.py", "import json\nfrom p import e as q\n")], None),
])
def test_the_builder_refuses_sources_whose_names_would_replace_each_other(sources, problem):
    assert load_builder().clashes(sources) == ([problem] if problem else [])


def test_the_built_command_verifies_on_its_own(chain, tmp_path):
    env = dict(os.environ, PYTHONPATH="/nonexistent")
    run = subprocess.run([sys.executable, "-I", str(BUILT), "verify", "--public-key", str(chain.pem), "--head",
                          str(chain.state / af.STATE_FILE), str(chain.chain)],
                         capture_output=True, text=True, timeout=60, env=env, cwd=str(tmp_path), check=False)
    assert (run.returncode, run.stdout, run.stderr) == (
        0, "ok: 10 records, last seq 10; signed head at seq 10 matches\n", "")
    lines = chain.lines()
    tampered(chain, lines[:3] + lines[4:])
    run = subprocess.run([sys.executable, "-I", str(BUILT), "verify", str(chain.chain)],
                         capture_output=True, text=True, timeout=60, env=env, cwd=str(tmp_path), check=False)
    assert run.returncode == 1 and ": deleted: " in run.stdout


# -- against SoftHSM2 -----------------------------------------------------------------------------------

USER_PIN = "Tst-Audit-Pin-16180"
SO_PIN = "Tst-Audit-So-14142"
needs_softhsm = softhsm_tokens.needs_softhsm_and_pkcs11


@pytest.fixture
def token(tmp_path, monkeypatch):
    softhsm_tokens.init_tokens(tmp_path, monkeypatch, ["audittest"], SO_PIN, USER_PIN)
    from ansible_collections.onprem.deepseek.plugins.module_utils._pkcs11_spec import build_spec
    from ansible_collections.onprem.deepseek.plugins.module_utils._pkcs11_token import ensure_key
    keys = {}
    for label, extractable in (("gateway-audit", False), ("audit-extractable", True)):
        spec = build_spec({"label": label, "key_type": "ec", "usage": ["sign"], "extractable": extractable})
        keys[label] = ensure_key(softhsm_tokens.SOFTHSM_LIB, "audittest", USER_PIN, spec, "present")["key"]
    pin_file = tmp_path / "user.pin"
    pin_file.write_text(USER_PIN + "\n")
    pin_file.chmod(0o600)
    config = config_file(tmp_path, module_path=softhsm_tokens.SOFTHSM_LIB, token_label="audittest",
                         pin_file=str(pin_file))
    return {"config": config, "pin_file": pin_file, "keys": keys, "dir": tmp_path}


@needs_softhsm
def test_the_token_signs_and_its_exported_public_key_verifies(token, tmp_path):
    rc, pem, err = cli("public-key", "--signer-config", token["config"])
    assert (rc, err) == (0, "")
    assert pem == token["keys"]["gateway-audit"]["public_key_pem"] and pem.startswith("-----BEGIN PUBLIC KEY-----")
    config = af.load_signer_config(str(token["config"]))
    with af.TokenSigner(config) as signer:
        (tmp_path / "site").mkdir()
        site = Site(tmp_path / "site", signer)
        site.write_n(5)
        f = site.follower().start()
        drain(f)
        f.stop()
    (tmp_path / "exported.pem").write_text(pem)
    rc, out, err = cli("verify", "--public-key", tmp_path / "exported.pem", "--head", site.state / af.STATE_FILE,
                       site.chain)
    assert (rc, out, err) == (0, "ok: 5 records, last seq 5; signed head at seq 5 matches\n", "")
    # another key's public key does not verify the token's checkpoints
    (tmp_path / "other.pem").write_text(SoftSigner().public_key_pem)
    rc, out, _err = cli("verify", "--public-key", tmp_path / "other.pem", site.chain)
    assert rc == 1 and ": forged_checkpoint: " in out


@needs_softhsm
def test_an_extractable_key_a_missing_key_and_a_wrong_pin_are_refused(token):
    for fields, message in (
            ({"key_label": "audit-extractable"}, "key 'audit-extractable' on token audittest cannot sign the audit "
                                                 "chain: it is extractable"),
            ({"key_label": "nothing"}, "no key labelled 'nothing' on token audittest; create it with "
                                       "onprem.deepseek.pkcs11_key")):
        path = config_file(token["dir"], module_path=softhsm_tokens.SOFTHSM_LIB, token_label="audittest",
                           pin_file=str(token["pin_file"]), **fields)
        rc, out, err = cli("public-key", "--signer-config", path)
        assert (rc, out) == (1, "") and message in err, err
    token["pin_file"].write_text("Wrong-Pin-99999\n")
    rc, out, err = cli("public-key", "--signer-config", token["config"])
    assert (rc, out, err) == (1, "", "onprem-deepseek-audit: PIN rejected by token audittest (CKR_PIN_INCORRECT)\n")


def wait_for(predicate, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


@needs_softhsm
def test_the_built_command_follows_as_a_service_rotates_on_sighup_and_stops_on_sigterm(token, tmp_path):
    (tmp_path / "site").mkdir()
    site = Site(tmp_path / "site", SoftSigner())
    env = dict(os.environ, PYTHONPATH="/nonexistent")
    command = [sys.executable, "-I", str(BUILT), "follow", "--raw", str(site.raw), "--chain-dir", str(site.chain),
               "--state-dir", str(site.state), "--signer-config", str(token["config"]), "--every", "2",
               "--poll", "0.05"]
    assert USER_PIN not in " ".join(command)
    proc = subprocess.Popen(command, env=env, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        state = site.state / af.STATE_FILE

        def head_seq():
            try:
                return json.loads(state.read_text())["head"]["seq"]
            except (OSError, ValueError):
                return None
        wait_for(lambda: head_seq() == 0, "the follower to start")
        site.write_n(3)
        wait_for(lambda: head_seq() == 3, "three records")
        proc.send_signal(signal.SIGHUP)
        wait_for((site.chain / "audit.log.1").exists, "the chain file to rotate")
        site.write_n(2)
        wait_for(lambda: head_seq() == 5, "two more records")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, out) == (0, b""), err
    assert b"chain file rotated to" in err and b"stopped at seq 5" in err and USER_PIN.encode() not in err
    pem = tmp_path / "token.pem"
    pem.write_text(token["keys"]["gateway-audit"]["public_key_pem"])
    run = subprocess.run([sys.executable, "-I", str(BUILT), "verify", "--public-key", str(pem), "--head", str(state),
                          str(site.chain)], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert (run.returncode, run.stdout, run.stderr) == (
        0, "ok: 5 records, last seq 5; signed head at seq 5 matches\n", "")
    assert site.bodies() == site.expected()


# -- the command line, in process -------------------------------------------------------------------

FOLLOW_ARGS = ["--raw", "r", "--chain-dir", "c", "--state-dir", "s", "--signer-config", "x"]


def parse(*argv):
    return af.command_parser().parse_args(list(argv))


def usage_error(*argv):
    with pytest.raises(af.AuditToolError) as raised:
        parse(*argv)
    return str(raised.value)


def test_follow_options_their_defaults_and_their_bounds():
    args = parse("follow", *FOLLOW_ARGS)
    assert (args.command, args.raw, args.chain_dir, args.state_dir, args.signer_config) == (
        "follow", "r", "c", "s", "x")
    assert (args.every, args.rotate_bytes, args.poll) == (100, 64 * 1024 * 1024, 0.5)
    args = parse("follow", *FOLLOW_ARGS, "--every", "1", "--rotate-bytes", "0", "--poll", "0.01")
    assert (args.every, args.rotate_bytes, args.poll) == (1, 0, 0.01)
    args = parse("follow", *FOLLOW_ARGS, "--every", "1000000", "--rotate-bytes", str(2 ** 40), "--poll", "60")
    assert (args.every, args.rotate_bytes, args.poll) == (10 ** 6, 2 ** 40, 60.0)


@pytest.mark.parametrize("extra, message", [
    (["--every", "0"], "argument --every: an integer from 1 expected, got '0'"),
    (["--every", "1000001"], "argument --every: an integer from 1 expected, got '1000001'"),
    (["--every", "x"], "argument --every: an integer from 1 expected, got 'x'"),
    (["--rotate-bytes", "-1"], "argument --rotate-bytes: an integer from 0 expected, got '-1'"),
    (["--rotate-bytes", str(2 ** 40 + 1)],
     "argument --rotate-bytes: an integer from 0 expected, got '%d'" % (2 ** 40 + 1)),
    (["--poll", "0.009"], "argument --poll: seconds from 0.01 to 60 expected, got '0.009'"),
    (["--poll", "60.5"], "argument --poll: seconds from 0.01 to 60 expected, got '60.5'"),
    (["--ev", "5"], "unrecognized arguments: --ev 5"),  # no abbreviations: a typo is not another option
])
def test_follow_options_out_of_bounds_are_usage_errors(extra, message):
    assert usage_error("follow", *FOLLOW_ARGS, *extra) == "usage: " + message


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: command"),
    (["--he"], "the following arguments are required: command"),
    (["follow"], "the following arguments are required: --raw, --chain-dir, --state-dir, --signer-config"),
    (["verify", "--pub", "k", "f"], "unrecognized arguments: --pub"),
    (["verify", "--he", "f"], "unrecognized arguments: --he"),
    (["public-key"], "the following arguments are required: --signer-config"),
    (["public-key", "--signer", "x"], "the following arguments are required: --signer-config"),
    (["follow", "--he"], "the following arguments are required: --raw, --chain-dir, --state-dir, --signer-config"),
])
def test_commands_their_required_options_and_no_abbreviations(argv, message):
    assert usage_error(*argv) == "usage: " + message


def test_help_names_the_command_and_says_what_each_option_is(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "500")
    for argv in (["--help"], ["follow", "--help"], ["verify", "--help"], ["public-key", "--help"]):
        with pytest.raises(SystemExit) as exited:
            parse(*argv)
        assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for part in (
            "usage: onprem-deepseek-audit [-h] {follow,verify,public-key} ...",
            "{follow,verify,public-key} ... The gateway's tamper-evident audit chain: follow the raw log, verify the "
            "chain. positional arguments:",
            "follow chain the raw audit log as it grows (a service)",
            "verify verify chain files (oldest first) or a chain dir",
            "public-key print the signing key's public key (PEM)",
            "usage: onprem-deepseek-audit follow [-h] --raw RAW --chain-dir CHAIN_DIR --state-dir STATE_DIR "
            "--signer-config SIGNER_CONFIG [--every EVERY] [--rotate-bytes ROTATE_BYTES] [--poll POLL]",
            "--raw RAW the raw JSON audit log nginx writes",
            "--chain-dir CHAIN_DIR where audit.log and its rotated files are",
            "--state-dir STATE_DIR where state.json (signed head, raw position) is",
            "--signer-config SIGNER_CONFIG JSON: module_path, token_label, key_label, pin_file",
            "--every EVERY records between checkpoints",
            "--rotate-bytes ROTATE_BYTES start a new chain file past this size (0: only on SIGHUP)",
            "--poll POLL seconds between reads at the end of the raw log",
            "usage: onprem-deepseek-audit verify [-h] [--head HEAD] [--public-key PUBLIC_KEY] FILE [FILE ...]",
            "--head HEAD a signed head: the follower's state.json or a copy of its head",
            "--public-key PUBLIC_KEY PEM of the signing key (public-key prints it)",
            "usage: onprem-deepseek-audit public-key [-h] --signer-config SIGNER_CONFIG"):
        assert part in text, part


def soft_factory(signer, configs):
    """A ``signer_factory`` for main(): the software signer in place of the token."""
    class Factory:
        def __init__(self, config):
            configs.append(config)

        def __enter__(self):
            return signer

        def __exit__(self, *exc):
            return False
    return Factory


@pytest.fixture
def handlers():
    """The command's signal handlers, called as the kernel would; ignored before, restored after."""
    saved = dict((s, signal.getsignal(s)) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP))
    for s in saved:
        signal.signal(s, signal.SIG_IGN)
    yield lambda s: signal.getsignal(s)(s, None)
    for s, handler in saved.items():
        signal.signal(s, handler)


def follow_cli(site, tmp_path, *extra, configs=None):
    return cli("follow", "--raw", site.raw, "--chain-dir", site.chain, "--state-dir", site.state,
               "--signer-config", config_file(tmp_path), *extra,
               signer_factory=soft_factory(site.signer, [] if configs is None else configs))


def test_follow_runs_as_the_service_rotating_on_sighup_and_stopping_on_sigterm(site, tmp_path, monkeypatch, handlers):
    """main() with the software signer; the signals come at the follower's idle turns (its sleeps)."""
    site.write_n(3)
    turns = []

    def sleep(seconds):
        turns.append(seconds)
        assert len(turns) <= 3, "the follower did not stop on SIGTERM"
        if len(turns) == 1:
            site.write_n(2)
            handlers(signal.SIGHUP)
        elif len(turns) == 2:
            site.write_n(1)
        else:
            handlers(signal.SIGTERM)
    monkeypatch.setattr(af.time, "sleep", sleep)
    configs = []
    rc, out, err = follow_cli(site, tmp_path, "--every", "2", "--rotate-bytes", "0", "--poll", "0.25",
                              configs=configs)
    assert (rc, out) == (0, "")
    assert err == ("onprem-deepseek-audit: following %s at offset 0; chain at seq 0\n"
                   "onprem-deepseek-audit: chain file rotated to %s at seq 3\n"
                   "onprem-deepseek-audit: stopped at seq 6\n" % (site.raw, site.chain / "audit.log.1"))
    assert turns == [0.25, 0.25, 0.25]
    assert configs == [af.load_signer_config(str(config_file(tmp_path)))]
    assert [os.path.basename(p) for p in af.chain_series(str(site.chain))] == ["audit.log.1", "audit.log"]
    lines = site.lines("audit.log.1") + site.lines()
    assert [(json.loads(t)["seq"], json.loads(t)["count"]) for t in lines if '"type":"checkpoint"' in t] == [
        (2, 2), (3, 1), (5, 2), (6, 1)]
    assert site.bodies() == site.expected()
    assert cli("verify", "--public-key", site.pem, "--head", site.state / af.STATE_FILE, site.chain) == (
        0, "ok: 6 records, last seq 6; signed head at seq 6 matches\n", "")


def test_follow_rotates_by_size_and_stops_on_sigint(site, tmp_path, monkeypatch, handlers):
    site.write_n(3)
    turns = []

    def sleep(seconds):
        turns.append(seconds)
        assert len(turns) == 1, "the follower did not stop on SIGINT"
        handlers(signal.SIGINT)
    monkeypatch.setattr(af.time, "sleep", sleep)
    rc, out, err = follow_cli(site, tmp_path, "--rotate-bytes", "1")
    assert (rc, out) == (0, "")
    assert err == ("onprem-deepseek-audit: following %s at offset 0; chain at seq 0\n"
                   "onprem-deepseek-audit: chain file rotated to %s at seq 3\n"
                   "onprem-deepseek-audit: stopped at seq 3\n" % (site.raw, site.chain / "audit.log.1"))
    # the default interval: no checkpoint until the rotation closes the file
    assert [json.loads(t).get("type") for t in site.lines("audit.log.1")] == [None, None, None, "checkpoint"]


def test_follow_that_must_not_continue_exits_3(site, tmp_path, handlers):
    site.write_n(2)
    f = site.follower().start()
    drain(f)
    f.stop()
    (site.state / af.STATE_FILE).unlink()
    assert follow_cli(site, tmp_path) == (
        3, "", "onprem-deepseek-audit: refusing to continue: the chain is at seq 2 but %s is missing, so the "
               "position in the raw log is unknown; restore it, or move the chain files aside to start a new "
               "chain\n" % (site.state / af.STATE_FILE))


def test_main_reads_its_arguments_from_the_command_line(chain, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["onprem-deepseek-audit", "verify", str(chain.chain / af.CHAIN_FILE)])
    out, err = io.StringIO(), io.StringIO()
    assert af.main(stdout=out, stderr=err) == 0
    assert (out.getvalue(), err.getvalue()) == (
        "ok: 10 records, last seq 10; signatures not checked (no --public-key)\n", "")


# -- the signer config in full -----------------------------------------------------------------------

def sized_config(tmp_path, size):
    """A valid signer config padded with spaces to ``size`` bytes."""
    path = config_file(tmp_path)
    text = path.read_text()
    path.write_text(text + " " * (size - len(text)))
    return str(path)


def test_signer_config_limits_and_modes_that_are_accepted(tmp_path):
    assert af.load_signer_config(sized_config(tmp_path, 65536))["token_label"] == "deepseek"
    # only write bits for group or others are refused
    assert af.load_signer_config(str(config_file(tmp_path, mode=0o645)))["token_label"] == "deepseek"


@pytest.mark.parametrize("make, message", [
    (lambda t: sized_config(t, 65537), "signer config {path} is not a JSON object"),
    (lambda t: t / "none.json", "cannot read signer config {path}: No such file or directory"),
    (lambda t: config_file(t, mode=0o620), "signer config {path} is writable by group or others; make it 0600"),
    (lambda t: config_file(t, pin="123456"), "signer config {path}: a PIN does not go in the config; name a pin_file"),
    (lambda t: config_file(t, colour="red"), "signer config {path}: unknown field(s) colour"),
    (lambda t: config_file(t, colour="red", a=1, key_label=None, pin_file=None),
     "signer config {path}: unknown field(s) a, colour; missing key_label, pin_file"),
    (lambda t: config_file(t, token_label="", module_path="lib.so", pin_file="user.pin"),
     "signer config {path}: token_label, module_path, pin_file must be non-empty strings, the paths absolute"),
])
def test_signer_config_refusals_in_full(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(af.AuditToolError) as raised:
        af.load_signer_config(str(path))
    assert str(raised.value) == message.format(path=path)


def test_signer_config_that_is_json_but_no_object(tmp_path):
    path = config_file(tmp_path)
    path.write_text("[]")
    with pytest.raises(af.AuditToolError) as raised:
        af.load_signer_config(str(path))
    assert str(raised.value) == "signer config %s is not a JSON object" % path


def test_token_signer_without_python_pkcs11(tmp_path, monkeypatch):
    monkeypatch.setattr(af, "HAS_PKCS11", False)
    signer = af.TokenSigner(af.load_signer_config(str(config_file(tmp_path))))
    with pytest.raises(af.Pkcs11KeyError) as raised:
        signer.__enter__()
    assert str(raised.value) == "python-pkcs11 is not installed for %s" % sys.executable
    signer.close()
    signer.close()


def test_verifying_needs_the_cryptography_package(signer, monkeypatch):
    monkeypatch.setitem(sys.modules, "cryptography.exceptions", None)
    with pytest.raises(af.AuditToolError) as raised:
        af.pem_verifier(signer.public_key_pem)
    assert str(raised.value) == "checking signatures needs the cryptography package (python3-cryptography)"


def test_key_and_signature_refusals_in_full():
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(af.AuditToolError) as raised:
        af.pem_verifier(p384)
    assert str(raised.value) == "not an EC P-256 public key"
    with pytest.raises(af.Pkcs11KeyError) as raised:
        af.ecdsa_der(b"\x01" * 63)
    assert str(raised.value) == "the token gave an ECDSA signature of 63 bytes, not 64 (P-256 r||s)"


# -- verify: series, heads and messages in full ---------------------------------------------------------

def test_verify_series_of_no_files_against_a_head(chain):
    check = af.pem_verifier(chain.signer.public_key_pem)
    verdict, records, last = af.verify_series([], check, chain.state_doc()["head"])
    assert (verdict.kind, verdict.line, verdict.seq, verdict.file, verdict.detail, records, last) == (
        "truncated", 1, 1, None, "log ends at seq 0, the signed head is at seq 10", 0, 0)
    verdict, records, last = af.verify_series([], check, {"seq": 0, "head_hash": af.GENESIS})
    assert verdict.ok and (records, last) == (0, 0)
    verdict, _records, _last = af.verify_series([], check, {"seq": 3})
    assert (verdict.kind, verdict.line, verdict.seq, verdict.file) == ("malformed", None, None, None)


def test_verify_series_reports_a_forged_head_with_its_seq(chain):
    check = af.pem_verifier(chain.signer.public_key_pem)
    head = dict(chain.state_doc()["head"], seq=9)
    verdict, records, last = af.verify_series([str(chain.chain / af.CHAIN_FILE)], check, head)
    assert (verdict.kind, verdict.line, verdict.seq, verdict.file, records, last) == (
        "forged_checkpoint", None, 9, None, 0, 0)


def test_a_head_without_a_seq_is_malformed_over_a_series(site):
    site.write_n(30)
    f = site.follower(rotate_bytes=2000, batch=4).start()
    drain(f)
    f.stop()
    series = af.chain_series(str(site.chain))
    verdict, _records, _last = af.verify_series(series, af.pem_verifier(site.signer.public_key_pem),
                                                {"head_hash": af.GENESIS})
    assert (verdict.kind, verdict.line, verdict.file, verdict.detail) == (
        "malformed", None, None, "expected head needs seq and head_hash")


def test_verify_an_empty_current_file_after_a_rotation(chain):
    (chain.chain / af.CHAIN_FILE).rename(chain.chain / "audit.log.1")
    (chain.chain / af.CHAIN_FILE).write_bytes(b"")
    assert cli("verify", "--public-key", chain.pem, "--head", chain.state / af.STATE_FILE, chain.chain) == (
        0, "ok: 10 records, last seq 10; signed head at seq 10 matches\n", "")
    assert cli("verify", chain.chain / af.CHAIN_FILE) == (
        0, "ok: 0 records, last seq 0; signatures not checked (no --public-key)\n", "")


@pytest.mark.parametrize("last", ["garbage", "[1, 2]"])
def test_verify_a_file_whose_last_line_is_garbage(chain, last):
    lines = chain.lines()
    path = tampered(chain, lines + [last])
    assert cli("verify", "--public-key", chain.pem, path) == (
        1, "%s:%d: seq None: malformed: not an audit line (JSON object with the fields of its type)\n"
        % (path, len(lines) + 1), "")


@pytest.mark.parametrize("seq", ['"7"', "true"])
def test_a_series_whose_first_file_ends_in_a_line_with_a_bad_seq(site, seq):
    site.write_n(30)
    f = site.follower(rotate_bytes=2000, batch=4).start()
    drain(f)
    f.stop()
    series = af.chain_series(str(site.chain))
    with open(series[0], "a") as handle:
        handle.write('{"seq":%s}\n' % seq)
    n = len(Path(series[0]).read_text().splitlines())
    rc, out, _err = cli("verify", "--public-key", site.pem, "--head", site.state / af.STATE_FILE, site.chain)
    assert (rc, out) == (1, "%s:%d: seq %s: malformed: not an audit line (JSON object with the fields of its type)\n"
                         % (series[0], n, {"true": "True"}.get(seq, "7")))


def test_verify_with_a_head_but_no_key_says_both(chain):
    assert cli("verify", "--head", chain.state / af.STATE_FILE, chain.chain) == (
        0, "ok: 10 records, last seq 10; signed head at seq 10 matches; signatures not checked (no --public-key)\n",
        "")


def test_verify_refuses_unreadable_keys_and_heads(chain, tmp_path):
    binary = tmp_path / "binary.pem"
    binary.write_bytes(b"\xff\xfe not a key")
    missing = tmp_path / "missing"
    assert cli("verify", "--public-key", binary, chain.chain) == (
        2, "", "onprem-deepseek-audit: %s: not a PEM public key\n" % binary)
    assert cli("verify", "--public-key", missing, chain.chain) == (
        2, "", "onprem-deepseek-audit: cannot read %s: No such file or directory\n" % missing)
    assert cli("verify", "--head", missing, chain.chain) == (
        2, "", "onprem-deepseek-audit: cannot read head file %s: No such file or directory\n" % missing)


# -- the follower's refusals and messages in full ------------------------------------------------------

def refusal(site, **kw):
    f = site.follower(**kw)
    with pytest.raises(af.FollowRefused) as raised:
        f.start()
    f.close()  # as command_follow does: a refused start still holds the lock
    return str(raised.value)


def stopped_after(site, count):
    site.write_n(count)
    f = site.follower().start()
    drain(f)
    f.stop()


def crashed_with_four_unsaved(site):
    """20 records saved, 4 more chained whose position was never saved."""
    site.write_n(20)
    f = site.follower().start()
    drain(f)
    site.write_n(4)
    crash_after_chain_write(site, f)
    site.messages.clear()


def test_start_refusals_in_full(site):
    f = site.follower().start()
    assert refusal(site) == "another follower holds %s" % (site.state / af.LOCK_FILE)
    f.close()

    class Mismatched(SoftSigner):
        def __init__(self):
            super().__init__()
            self.public_key_pem = SoftSigner().public_key_pem
    g = af.Follower(str(site.raw), str(site.chain), str(site.state), Mismatched())
    with pytest.raises(af.FollowRefused) as raised:
        g.start()
    g.close()
    assert str(raised.value) == "the signing key's public key does not verify its signatures"


def test_state_refusals_in_full(site):
    stopped_after(site, 2)
    state = site.state / af.STATE_FILE
    good = state.read_text()
    state.write_text("{not json")
    # the rest is json's own words for the error
    assert re.fullmatch(r"cannot read %s: Expecting .* \(char 1\)" % re.escape(str(state)), refusal(site))
    for doc in ([], {"version": 2, "head": json.loads(good)["head"]}, {"version": 1, "raw": None}):
        state.write_text(json.dumps(doc))
        assert refusal(site) == "%s is not a state file of version 1" % state
    state.write_text(good)
    path = site.chain / af.CHAIN_FILE
    lines = site.lines()
    path.write_text("\n".join(lines[:-2]) + "\n")
    assert refusal(site) == ("the chain does not match the signed head in %s: line 2, seq 2: truncated: log ends "
                             "at seq 1, the signed head is at seq 2" % state)
    path.write_text("\n".join(lines[1:]) + "\n")
    assert refusal(site) == "%s: cannot resume: line 1, seq 1: deleted: seq 1 to 1 missing before seq 2" % path


def test_unsaved_records_that_are_not_the_raw_lines_in_full(site):
    crashed_with_four_unsaved(site)
    data = site.raw.read_bytes()
    site.raw.write_bytes(data.replace(b'"%032x"' % 22, b'"%032x"' % 0xfff))
    assert refusal(site) == "seq 23 in the chain is not the raw line it should have come from"


def test_unsaved_records_past_the_end_of_the_raw_log(site):
    crashed_with_four_unsaved(site)
    lines = site.raw.read_bytes().split(b"\n")
    site.raw.write_bytes(b"\n".join(lines[:22]) + b"\n")  # two of the four lines are gone
    assert refusal(site) == ("the chain holds seq 21 to 24 past the saved head, but the raw log has only 2 lines "
                             "after the saved position")


def test_unsaved_records_are_skipped_in_the_raw_log(site):
    crashed_with_four_unsaved(site)
    offset = site.raw.stat().st_size
    g = site.follower().start()
    g.close()
    assert site.messages == ["seq 21 to 24 were chained before the position was saved; skipped their raw lines",
                             "following %s at offset %d; chain at seq 24" % (site.raw, offset)]


def test_unsaved_records_from_a_raw_file_that_is_gone_are_not_compared(site):
    crashed_with_four_unsaved(site)
    site.raw.rename(site.raw.with_name("elsewhere.log"))  # not a name logrotate gives it
    site.write_n(2)
    g = site.follower().start()
    drain(g)
    g.close()
    assert site.messages == [
        "the raw file of the saved position is gone; reading %s from its start" % site.raw,
        "seq 21 to 24 were chained from a raw file that is gone or replaced; not compared",
        "following %s at offset 0; chain at seq 24" % site.raw]
    assert site.bodies() == site.expected()[:24] + site.expected()[-2:]


def test_a_raw_file_rewritten_in_place_is_read_from_its_start_and_named(site):
    stopped_after(site, 3)
    inode = site.raw.stat().st_ino
    with open(site.raw, "r+b") as handle:
        handle.truncate(0)
    site.write_n(4)
    site.messages.clear()
    g = site.follower().start()
    assert site.messages == [
        "raw log %s is not the file of the saved position (truncated or replaced); reading %s from its start"
        % (site.raw, site.raw), "following %s at offset 0; chain at seq 3" % site.raw]
    assert site.state_doc()["raw"]["inode"] == inode
    drain(g)
    g.close()
    assert site.bodies() == site.expected()


def test_a_restart_at_the_end_of_the_raw_log_reads_nothing_again(site):
    stopped_after(site, 3)
    site.messages.clear()
    g = site.follower().start()
    drain(g)
    g.close()
    assert site.messages == ["following %s at offset %d; chain at seq 3" % (site.raw, site.raw.stat().st_size)]
    assert site.bodies() == site.expected()


def test_a_restart_on_an_empty_raw_log_finds_it_at_offset_0(site):
    site.raw.touch()
    stopped_after(site, 0)
    site.messages.clear()
    site.write_n(2)
    g = site.follower().start()
    drain(g)
    g.close()
    assert site.messages == ["following %s at offset 0; chain at seq 0" % site.raw]
    assert site.bodies() == site.expected()


def test_a_position_without_offset_and_prefix_length_is_the_start(site):
    site.write_n(2)
    st = site.raw.stat()
    raw = af.RawLog(str(site.raw))
    assert raw.open_at({"dev": st.st_dev, "inode": st.st_ino, "prefix_sha256": hashlib.sha256(b"").hexdigest()})
    assert raw.offset == 0 and len(raw.read_lines(10)) == 2
    raw.close()
    raw.close()


def test_restart_finds_the_renamed_raw_file_before_nginx_made_a_new_one(site):
    stopped_after(site, 3)
    old = site.raw.with_name("gateway-audit.log.1")
    site.raw.rename(old)
    site.write_n(2, path=old)
    g = site.follower().start()
    drain(g)
    g.close()
    assert site.bodies() == site.expected() and len(site.written) == 5


def test_a_raw_log_named_relative_to_the_working_directory(site, monkeypatch):
    monkeypatch.chdir(site.raw.parent)

    def follower():
        return af.Follower(site.raw.name, str(site.chain), str(site.state), site.signer, every=EVERY, rotate_bytes=0,
                           grace=0.0, clock=clock, log=site.messages.append)
    site.write_n(3)
    f = follower().start()
    drain(f)
    f.stop()
    old = site.raw.with_name("gateway-audit.log.1")
    site.raw.rename(old)
    site.write_n(2, path=old)
    g = follower().start()
    drain(g)
    g.close()
    assert site.bodies() == site.expected() and len(site.written) == 5


def test_an_empty_raw_line_is_chained_as_unparsed(site):
    site.write([b"", nginx_line(0).encode()])
    f = site.follower().start()
    drain(f)
    f.close()
    assert site.bodies() == [{"type": "unparsed", "line": ""}, af.raw_record(nginx_line(0).encode())]


def test_without_grace_an_empty_new_raw_file_takes_over_at_once(site):
    site.write_n(2)
    f = site.follower().start()
    drain(f)
    site.raw.rename(site.raw.with_name("gateway-audit.log.1"))
    site.raw.touch()
    assert f.step() is True
    assert site.messages[-1] == "raw log %s was rotated; reading the new file from its start" % site.raw
    f.close()


@pytest.mark.parametrize("advance, content, switched", [
    (5.0, b"", True), (4.99, b"", False), (0.0, b"\n", True)])
def test_the_grace_ends_exactly_at_its_seconds_or_when_the_new_file_has_a_byte(site, advance, content, switched):
    now = [100.0]
    site.write_n(2)
    f = site.follower(grace=5.0, monotonic=lambda: now[0]).start()
    drain(f)
    site.raw.rename(site.raw.with_name("gateway-audit.log.1"))
    site.raw.write_bytes(content)
    now[0] += advance
    assert f.step() is switched
    f.close()


def test_a_rotated_file_without_its_closing_checkpoint_is_closed_before_the_chain_continues(site):
    site.write_n(4)
    f = site.follower().start()
    drain(f)
    f.close()  # seq 4 is past the last checkpoint
    (site.chain / af.CHAIN_FILE).rename(site.chain / "audit.log.1")
    site.write_n(2)
    site.messages.clear()
    g = site.follower().start()
    drain(g)
    g.stop()
    assert site.messages[0] == "%s was missing or empty: continued the chain of %s" % (
        site.chain / af.CHAIN_FILE, site.chain / "audit.log.1")
    closing = json.loads(site.lines("audit.log.1")[-1])
    assert (closing["type"], closing["seq"], closing["count"]) == ("checkpoint", 4, 1)
    assert cli("verify", "--public-key", site.pem, "--head", site.state / af.STATE_FILE, site.chain) == (
        0, "ok: 6 records, last seq 6; signed head at seq 6 matches\n", "")


def test_a_current_file_holding_only_a_cut_off_line_starts_afresh(site):
    (site.chain / af.CHAIN_FILE).write_bytes(b'{"hash":"ab')
    site.write_n(2)
    f = site.follower().start()
    drain(f)
    f.stop()
    assert site.bodies() == site.expected()
    assert cli("verify", "--public-key", site.pem, "--head", site.state / af.STATE_FILE, site.chain)[0] == 0


def test_a_cut_off_line_is_named_with_its_length(site):
    stopped_after(site, 2)
    with open(site.chain / af.CHAIN_FILE, "ab") as handle:
        handle.write(b'{"hash":"ab')
    site.messages.clear()
    site.follower().start().close()
    assert site.messages[0] == ("%s ended in a line cut off by a crash (11 bytes); removed it, its raw line is "
                                "chained again" % (site.chain / af.CHAIN_FILE))


def test_what_there_is_to_rotate_after_a_start(site):
    site.follower().close()  # never started
    f = site.follower().start()
    assert f.rotate_chain() is None  # a new chain: nothing yet
    assert not (site.chain / af.CHAIN_FILE).exists()
    site.write_n(2)
    drain(f)
    f.close()
    g = site.follower().start()
    site.write_n(2)
    stops = iter([False, False, False, True])
    sleeps = []
    g.run(lambda: next(stops), sleeps.append, poll=0.5)  # not asked to rotate
    assert sleeps == [0.5, 0.5]  # no sleep after a turn that chained something
    assert af.chain_series(str(site.chain)) == [str(site.chain / af.CHAIN_FILE)]
    assert g.rotate_chain() == str(site.chain / "audit.log.1")  # the resumed file and the new lines
    g.close()
    g.close()


def test_the_follower_stays_on_a_renamed_raw_file_until_a_new_one_exists(site):
    site.write_n(2)
    f = site.follower().start()
    drain(f)
    old = site.raw.with_name("gateway-audit.log.1")
    site.raw.rename(old)
    assert f.step() is False
    site.write_n(1, path=old)  # nginx has not reopened its log yet
    drain(f)
    assert f.writer.seq == 3 and site.state_doc()["raw"]["path"] == str(site.raw)
    f.close()


def test_an_empty_raw_file_rotated_away_is_left_for_the_new_one(site):
    site.raw.touch()
    f = site.follower().start()
    assert f.step() is False
    site.raw.rename(site.raw.with_name("gateway-audit.log.1"))
    site.write_n(2)
    drain(f)
    f.close()
    assert site.bodies() == site.expected()


def test_a_raw_log_cut_below_a_pending_partial_line_is_read_again(site):
    site.write([nginx_line(0)])
    site.write([b'{"partial":'], newline=False)
    f = site.follower().start()
    drain(f)
    offset = f.raw.offset
    with open(site.raw, "r+b") as handle:
        handle.truncate(offset + 1)
    drain(f)
    f.close()
    assert site.messages[-1] == "raw log %s was truncated; reading it from its start" % site.raw


def test_a_damaged_rotated_file_to_continue_from_is_named(site):
    site.write_n(4)
    f = site.follower().start()
    drain(f)
    f.close()
    lines = site.lines()
    (site.chain / af.CHAIN_FILE).unlink()
    (site.chain / "audit.log.1").write_text("\n".join(lines[1:]) + "\n")
    assert refusal(site) == "%s: cannot resume: line 1, seq 1: deleted: seq 1 to 1 missing before seq 2" % (
        site.chain / "audit.log.1")


def test_rotation_by_size_starts_at_exactly_the_size(site):
    site.write_n(3)
    w = af.Writer(site.signer.sign, every=1000)
    size = sum(len(line) + 1 for raw in site.written for line in w.append(af.raw_record(raw)))
    f = site.follower(every=1000, rotate_bytes=size + 1).start()
    drain(f)
    f.close()
    assert af.chain_series(str(site.chain)) == [str(site.chain / af.CHAIN_FILE)]
    for name in os.listdir(site.chain):
        os.unlink(site.chain / name)
    for name in os.listdir(site.state):
        os.unlink(site.state / name)
    f = site.follower(every=1000, rotate_bytes=size).start()
    drain(f)
    f.close()
    assert [os.path.basename(p) for p in af.chain_series(str(site.chain))] == ["audit.log.1", "audit.log"]


def test_checkpoints_carry_the_follower_clock_and_files_are_0640(site):
    old = os.umask(0o022)
    try:
        stopped_after(site, 3)
    finally:
        os.umask(old)
    assert {json.loads(t)["time"] for t in site.lines() if '"type":"checkpoint"' in t} == {"2023-11-14T22:13:20Z"}
    for path in (site.chain / af.CHAIN_FILE, site.state / af.LOCK_FILE, site.state / af.STATE_FILE):
        assert oct(path.stat().st_mode & 0o777) == "0o640", path


@needs_softhsm
def test_a_key_that_may_not_sign_and_a_missing_key_are_named_in_full(token):
    from ansible_collections.onprem.deepseek.plugins.module_utils._pkcs11_spec import build_spec
    from ansible_collections.onprem.deepseek.plugins.module_utils._pkcs11_token import ensure_key
    spec = build_spec({"label": "audit-derive", "key_type": "ec", "usage": ["derive"], "extractable": False})
    ensure_key(softhsm_tokens.SOFTHSM_LIB, "audittest", USER_PIN, spec, "present")
    for label, message in (
            ("audit-derive", "key 'audit-derive' on token audittest cannot sign the audit chain: it may not sign "
                             "(CKA_SIGN is not true)"),
            ("nothing", "no key labelled 'nothing' on token audittest; create it with onprem.deepseek.pkcs11_key "
                        "(key_type ec, curve secp256r1, usage [sign])")):
        path = config_file(token["dir"], module_path=softhsm_tokens.SOFTHSM_LIB, token_label="audittest",
                           pin_file=str(token["pin_file"]), key_label=label)
        assert cli("public-key", "--signer-config", path) == (1, "", "onprem-deepseek-audit: %s\n" % message)
    with pytest.raises(ValueError, match="raised inside"):
        config = config_file(token["dir"], module_path=softhsm_tokens.SOFTHSM_LIB, token_label="audittest",
                             pin_file=str(token["pin_file"]))
        with af.TokenSigner(af.load_signer_config(str(config))) as signer:
            assert signer.public_key_pem == token["keys"]["gateway-audit"]["public_key_pem"]
            raise ValueError("raised inside")
