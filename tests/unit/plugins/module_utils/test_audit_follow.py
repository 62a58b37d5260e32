"""onprem-deepseek-audit (_audit_follow): the raw nginx audit log followed into the signed chain,
across restarts, crashes, logrotate and chain rotation; verify names every kind of tampering.

Most tests sign with a software P-256 key standing in for the token; the SoftHSM2 tests sign in a
real token and run the built one-file command as the host runs it.
"""
import base64
import importlib.util
import io
import json
import os
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
    builder = load_builder()
    target = next(t for t in builder.TARGETS if t.path == BUILT)
    assert BUILT.read_text() == builder.build(target)
    assert [t.path.name for t in builder.TARGETS] == ["onprem_keywrap.py", "onprem_deepseek_audit.py"]


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
