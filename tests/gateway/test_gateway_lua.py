"""The nginx Lua access layer against the Python policy: same status for every request, limits,
streaming, A/B variants, reload, audit log. Everything runs on 127.0.0.1 with bounded requests."""
import functools
import http.client
import json
import random
import socket
import time

import pytest

import gateway_harness as harness
from ansible_collections.onprem.deepseek.plugins.module_utils import _gateway_policy as gp
from ansible_collections.onprem.deepseek.plugins.module_utils import _pki_secrets as secrets

# tools/bootstrap installs them: a missing one is a broken toolchain, not a reason to skip.
if not harness.nginx_binary() or not harness.module_dir():
    pytest.fail("nginx and its Lua module are not installed (run tools/bootstrap; Debian 12: nginx-light "
                "libnginx-mod-http-lua lua-resty-core libluajit2-5.1-2 lua-cjson)", pytrace=False)

MODELS = ["deepseek-r1", "deepseek-coder-v2", "deepseek-ai/DeepSeek-V3"]
SERVED = MODELS + ["engine-only"]
ROLES = {
    "operator": {"resources": ["model/*"], "actions": ["read", "execute", "admin"]},
    "reader": {"resources": ["model/*"], "actions": ["read"]},
    "r1": {"resources": ["model/deepseek-r1"], "actions": ["read", "execute"]},
}
BIG = {"requests_per_second": 100000, "tokens_per_minute": 10 ** 9, "concurrency": 100}
AB = ["ab-%d" % i for i in range(4)]
CHAT = "/v1/chat/completions"


def spec(name, roles, **limits):
    return {"name": name, "roles": roles, "limits": dict(BIG, **limits)}


PRINCIPALS = [
    spec("admin", ["operator"]), spec("analyst", ["reader", "r1"]), spec("r1-only", ["r1"]),
    spec("nobody", []),
    spec("revoked", ["operator"]), spec("burst", ["operator"], requests_per_second=3),
    spec("busy", ["operator"], concurrency=2), spec("tokens", ["operator"], tokens_per_minute=30),
    spec("rotating", ["operator"]),
] + [spec(name, ["operator"]) for name in AB]


@pytest.fixture(scope="module")
def keys():
    made = {}
    for entry in PRINCIPALS + [{"name": "unknown"}]:
        key, key_id = secrets.new_key("dsk")
        made[entry["name"]] = {"key": key, "id": key_id, "stored": secrets.hash_key(key)}
    # The admin's key id with another secret: found in the policy, refused by scrypt.
    made["forged"] = {"key": made["admin"]["key"][:-43] + "A" * 43}
    return made


def compile_for(keys, revoke=()):
    principals = []
    for entry in PRINCIPALS:
        entry = dict(entry, keys=[keys[entry["name"]]["stored"]])
        revoked = [keys[n]["id"] for n in revoke if n == entry["name"]]
        if entry["name"] == "revoked":
            revoked.append(keys["revoked"]["id"])
        if revoked:
            entry["revoked_keys"] = revoked
        principals.append(entry)
    return gp.compile_policy(ROLES, principals, {}, MODELS)


@pytest.fixture(scope="module")
def policy(keys):
    return compile_for(keys)


@pytest.fixture(scope="module")
def split():
    """A split whose variants both occur among the AB principals, found with split_assign."""
    for i in range(100):
        candidate = {"name": "chat", "salt": "salt-%d" % i,
                     "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]}
        if len({gp.split_assign(p, candidate) for p in AB}) == 2:
            return candidate
    raise AssertionError("no salt splits the AB principals")


@pytest.fixture(scope="module")
def oracle():
    """decide() with verify_key memoised: same answers, one scrypt run per key."""
    original = gp.verify_key
    gp.verify_key = functools.lru_cache(maxsize=None)(original)
    yield gp.decide
    gp.verify_key = original


@pytest.fixture(scope="module")
def engines():
    pair = [harness.Engine("a", SERVED), harness.Engine("b", SERVED)]
    yield pair
    for engine in pair:
        engine.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, policy, split, engines):
    gw = harness.Gateway(tmp_path_factory.mktemp("nginx"), policy, [split], engines).start()
    yield gw
    gw.stop()


def call(gw, method, path, auth=None, body=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=timeout)
    headers = {"Connection": "close"}
    if auth is not None:
        headers["Authorization"] = auth
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def bearer(keys, name):
    return None if name == "anonymous" else "Bearer " + keys[name]["key"]


def body(model, **extra):
    return json.dumps(dict(extra, model=model)).encode()


CALLERS = ["admin", "analyst", "r1-only", "nobody", "revoked", "unknown", "forged", "anonymous"]
BODIES = [
    b"", b"not json", b"[]", b'"deepseek-r1"', b'{"model": 1}', b'{"model": ""}', b'{"model": null}',
    b'{"model":"deepseek-r1","model":"deepseek-r1"}', b'{"model":"deepseek-r1","t":NaN}',
    b'{"model":"deepseek-r1","t":-Infinity}', b'\xef\xbb\xbf{"model":"deepseek-r1"}',
    b'{"model":"\\u0064eepseek-r1"}', b'{"model":"deepseek-r1","m":{"a":1,"a":2}}',
    b'{"model":"deepseek-r1"} x', b' {"model":"deepseek-r1"}\n', b'{"model":"deepseek-r1","s":"a\x01"}',
    b'{"model":"deepseek-r1","n":01}', b'{"model":"\\ud800"}', b'{"model":"deepseek-r1","s":"\xff"}',
    b'{"model":"deepseek-r1","n":' + b"1" * 4300 + b"}", b'{"model":"deepseek-r1","n":' + b"1" * 4301 + b"}",
    b'{"model":"deepseek-r1","n":-0.5e+3,"l":[true,false,null,{}],"e":"\\n\\"\\/"}',
    b'{"model":"deepseek-r1",}', b'{"model":"deepseek-r1","x":"\\x"}',
]
REQUESTS = (
    [("GET", "/v1/models", None), ("POST", "/v1/models", b"{}"), ("GET", "/health", None),
     ("POST", "/health", b"{}"), ("GET", CHAT, None), ("PUT", CHAT, body("deepseek-r1")), ("GET", "/nope", None),
     ("GET", "/v1/models/", None), ("HEAD", "/v1/models", None)]
    + [("POST", route, body(model)) for route in (CHAT, "/v1/completions", "/v1/embeddings")
       for model in MODELS + ["engine-only", "deepseek-*"]]
    + [("POST", CHAT, raw) for raw in BODIES])


def test_every_caller_route_and_body_gets_decides_status(gateway, keys, policy, oracle):
    seen = set()
    mismatches = []
    for caller in CALLERS:
        for method, path, raw in REQUESTS:
            expected = oracle(policy, bearer(keys, caller), method, path, raw)[0]
            status = call(gateway, method, path, bearer(keys, caller), raw)[0]
            seen.add(expected)
            if status != expected:
                mismatches.append((caller, method, path, raw[:60] if raw else raw, status, expected))
    assert mismatches == []
    # The matrix reaches every answer decide can give.
    assert seen >= {200, 400, 401, 403, 404, 405}


FRAGMENTS = [b"{", b"}", b"[", b"]", b'"model"', b":", b",", b'"deepseek-r1"', b'"m"', b"1", b"-0", b"01",
             b"1e5", b"1.", b"true", b"null", b"NaN", b'"\\u0064"', b'"\\ud800"', b" ", b"\n", b"\t",
             b'"a\\"b"', b"\xc3\xa9", b"\xff", b'"\x01"', b'"model":"deepseek-r1"', b'"stream":true', b"\\"]


def random_body(chooser):
    members = ['"model": "%s"' % chooser.choice(MODELS + ["other"])]
    for _n in range(chooser.randint(0, 3)):
        members.append('"%s": %s' % (chooser.choice("abm"), chooser.choice(['1', '"x"', '[1, {"k": null}]', '{}'])))
    chooser.shuffle(members)
    raw = ("{" + ", ".join(members) + "}").encode()
    for _n in range(chooser.randint(0, 2)):
        at = chooser.randint(0, len(raw))
        cut = chooser.choice([0, 0, 1, 2])
        raw = raw[:at] + chooser.choice(FRAGMENTS) + raw[at + cut:]
    return raw


def test_random_bodies_match_decide(gateway, keys, policy, oracle, engines):
    """Valid bodies with random damage, fixed seed (250 requests): the Lua JSON reader agrees with json.loads."""
    for engine in engines:
        engine.release.set()  # a damaged body may ask for a stream
    chooser = random.Random(3)
    auth, answers, mismatches = bearer(keys, "admin"), set(), []
    for _n in range(250):
        raw = random_body(chooser)
        expected = oracle(policy, auth, "POST", CHAT, raw)[0]
        answers.add(expected)
        status = call(gateway, "POST", CHAT, auth, raw)[0]
        if status != expected:
            mismatches.append((raw, status, expected))
    assert mismatches == []
    assert answers >= {200, 400, 403}


@pytest.mark.parametrize("header", ["bearer {key}", "BEARER {key}", "Basic {key}", "Bearer  {key}",
                                    "Bearer {key}x", "{key}"])
def test_authorization_forms_match_decide(gateway, keys, policy, oracle, header):
    value = header.format(key=keys["admin"]["key"])
    expected = oracle(policy, value, "GET", "/v1/models", None)[0]
    assert call(gateway, "GET", "/v1/models", value)[0] == expected


PATHS = ["//v1//chat/completions", "/v1/./chat/completions", "/v1/%2e%2e/x", "/v1%2Fchat/completions",
         "/v1/chat%2Fcompletions", "/v1/./models", "/v1//models", "/v1/models/.", "/v1/models/..",
         "/v1/x/../models", "/../v1/models", "/v1/%2e%2e/v1/models", "/%76%31/models", "/v1/mo%zzdels",
         "/v1/mo%25dels", "/v1/models%3F", "/v1\\models", "/v1/%5cmodels", "/v1/%C3%A9", "/v1/%C3",
         "/v1/%ED%A0%80", "/v1/models%00", "/v1/models/%2e", "/health/", "/HEALTH", "/v1/models?x=1",
         "/v1/models?api_key=abc", "/v1/models?API-KEY=abc", "/v1/models?token", "/v1/models?%E2%84%AAey=1",
         "/v1/models?q=dsk_0123456789ab_", "/v1/models?q=dsk%5F0123456789ab%5Fz", "/v1/models?q=dsk_0123456789ab",
         "/v1/models?q=d_0123456789ab_", "/v1/models?keys=1", "/v1/models?a=1&Authorization=x",
         "/v1/models?a+key=1", "/v1/models?k%65y=1", "/v1/models?q=x_0123456789AB_", "/health?api_key=1",
         "/v1/models#x", "/v1/models?x#y", "/v1/models;key=1", "/v1/models?a;key=1"]


@pytest.mark.parametrize("path", PATHS)
def test_path_tricks_and_query_keys_match_decide(gateway, keys, policy, oracle, path):
    auth = bearer(keys, "admin")
    for method, raw in (("GET", None), ("POST", body("deepseek-r1"))):
        expected = oracle(policy, auth, method, path, raw)[0]
        assert (method, call(gateway, method, path, auth, raw)[0]) == (method, expected)


PIECES = ["/", "/", "/", ".", "..", "%2e", "%2E", "%2f", "%25", "%5c", "%5C", "v1", "models", "chat",
          "completions", "health", "%76", "%6d", "?", "?", "&", "=", "key", "KEY", "api_key", "dsk", "_",
          "0123456789ab", "%5F", "%E2%84%AA", "ey", "%C3", "%A9", "+", "%00", "%zz", "%", "#", ";", "a1"]


def test_random_raw_paths_match_decide(gateway, keys, policy, oracle):
    """Raw paths assembled from the pieces that matter, with a fixed seed (300 requests)."""
    chooser = random.Random(20261203)
    auth, answers, mismatches = bearer(keys, "admin"), set(), []
    for _n in range(300):
        path = "/" + "".join(chooser.choice(PIECES) for _n in range(chooser.randint(1, 9)))
        if chooser.random() < 0.5:
            path = "/v1/models" + chooser.choice(["", "?", "/", "?q="]) + path[1:]
        expected = oracle(policy, auth, "GET", path, None)[0]
        answers.add(expected)
        status = call(gateway, "GET", path, auth)[0]
        if status != expected:
            mismatches.append((path, status, expected))
    assert mismatches == []
    assert answers >= {200, 400, 401, 404}


def test_the_path_tricks_cover_refusal_and_success(policy, keys, oracle):
    answers = {oracle(policy, bearer(keys, "admin"), "GET", p, None)[0] for p in PATHS}
    assert answers >= {200, 400, 401, 404}


def test_a_key_in_the_query_is_refused_even_with_a_good_header(gateway, keys):
    admin = keys["admin"]["key"]
    assert call(gateway, "GET", "/v1/models?q=" + admin, bearer(keys, "admin"))[0] == 401
    assert call(gateway, "GET", "/v1/models?key=" + admin)[0] == 401
    assert call(gateway, "GET", "/v1/models?limit=5", bearer(keys, "admin"))[0] == 200


def test_a_second_authorization_header_is_refused_before_any_lua(gateway, keys):
    """nginx answers 400 itself, so the access phase reads the one header ($http_authorization)."""
    lines_before = len(gateway.log_lines())
    for second in (bearer(keys, "admin"), bearer(keys, "analyst"), "Basic eA=="):
        conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
        try:
            conn.putrequest("GET", "/v1/models")
            conn.putheader("Authorization", bearer(keys, "admin"))
            conn.putheader("Authorization", second)
            conn.putheader("Connection", "close")
            conn.endheaders()
            assert conn.getresponse().status == 400
        finally:
            conn.close()
    assert call(gateway, "GET", "/v1/models", bearer(keys, "admin"))[0] == 200
    # The refusals are nginx's own: no audit line names a principal for them. (Lines of earlier
    # tests' requests may still arrive: only the 400s are counted.)
    audit = [json.loads(line) for line in gateway.log_lines()[lines_before:]]
    assert [a["principal"] for a in audit if a["status"] == 400] == ["", "", ""]


def test_models_lists_only_visible_served_models(gateway, keys, policy):
    for caller in ("admin", "analyst", "r1-only"):
        status, _headers, raw = call(gateway, "GET", "/v1/models", bearer(keys, caller))
        listed = [entry["id"] for entry in json.loads(raw)["data"]]
        visible = gp.visible_models(policy, caller)
        assert status == 200
        assert listed == [m for m in SERVED if m in visible]
    narrow = json.loads(call(gateway, "GET", "/v1/models", bearer(keys, "r1-only"))[2])["data"]
    assert [entry["id"] for entry in narrow] == ["deepseek-r1"]
    # Entries come through byte for byte, empty lists included.
    assert narrow[0]["permission"] == []


def test_the_engine_never_sees_the_key(gateway, keys, engines):
    before = len(engines[0].seen) + len(engines[1].seen)
    assert call(gateway, "POST", CHAT, bearer(keys, "admin"), body("deepseek-r1"))[0] == 200
    seen = (engines[0].seen + engines[1].seen)[before:]
    assert len(seen) == 1
    assert "Authorization" not in seen[0]["headers"]
    assert seen[0]["path"] == CHAT
    assert keys["admin"]["key"] not in json.dumps(seen[0]["headers"])


def fresh_window(period, margin):
    """Sleep into a new fixed window when fewer than ``margin`` seconds of this one are left."""
    left = period - time.time() % period
    if left < margin:
        time.sleep(left + 0.05)


def test_requests_per_second_limit_429_only_above_the_limit(gateway, keys):
    auth = bearer(keys, "burst")
    assert call(gateway, "GET", "/v1/models", auth)[0] == 200  # verdict cached before timing
    for _attempt in range(3):
        fresh_window(1, 1.0)
        start = time.time()
        answers = [call(gateway, "GET", "/v1/models", auth) for _n in range(4)]
        if int(time.time()) == int(start):
            break
    else:
        pytest.fail("four requests never fitted into one second")
    assert [answer[0] for answer in answers] == [200, 200, 200, 429]
    assert answers[3][1]["retry-after"] == "1"
    assert "retry-after" not in answers[2][1]
    time.sleep(1.05)
    assert call(gateway, "GET", "/v1/models", auth)[0] == 200


def open_stream(gw, auth, model="deepseek-r1"):
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=harness.HOLD_S + 5)
    payload = body(model, stream=True, messages=[{"role": "user", "content": "hi"}])
    sock.sendall(b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n"
                 b"Authorization: " + auth.encode() + b"\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
    return sock


def read_until(sock, marker, received=b""):
    while marker not in received:
        data = sock.recv(65536)
        if not data:
            break
        received += data
    return received


def test_stream_passes_chunk_by_chunk_and_counts_usage(gateway, keys, engines):
    for engine in engines:
        engine.release.clear()
    waits, seen = [len(e.waits) for e in engines], [len(e.seen) for e in engines]
    sock = open_stream(gateway, bearer(keys, "admin"))
    try:
        first = read_until(sock, b'"hel"')
        assert first.startswith(b"HTTP/1.1 200")
        assert b'"hel"' in first and b"[DONE]" not in first
        for engine in engines:
            engine.release.set()
        rest = read_until(sock, b"[DONE]", first)
    finally:
        sock.close()
    assert b'"usage"' in rest and b"[DONE]" in rest
    # The engine was still holding the stream when the first chunk reached the client.
    assert [w for e, n in zip(engines, waits) for w in e.waits[n:]] == [True]
    forwarded = [json.loads(r["body"]) for e, n in zip(engines, seen) for r in e.seen[n:]]
    assert len(forwarded) == 1 and forwarded[0]["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("options", [None, {"include_usage": False, "continuous_usage_stats": True}, "x"])
def test_the_gateway_owns_stream_options_and_leaves_the_rest_alone(gateway, keys, engines, options):
    for engine in engines:
        engine.release.set()
    extra = {"stream": True, "temperature": "0.12345678901234567890"}
    if options is not None:
        extra["stream_options"] = options
    payload = body("deepseek-r1", **extra).replace(b'"0.12345678901234567890"', b"0.12345678901234567890")
    before = [len(e.seen) for e in engines]
    status, _headers, raw = call(gateway, "POST", CHAT, bearer(keys, "admin"), payload)
    sent = [r["body"] for e, n in zip(engines, before) for r in e.seen[n:]]
    assert status == 200 and b"[DONE]" in raw and b'"usage"' in raw
    assert len(sent) == 1 and json.loads(sent[0])["stream_options"] == {"include_usage": True}
    assert b'"temperature": 0.12345678901234567890' in sent[0]
    # Without "stream": true the body goes through byte for byte.
    plain = payload.replace(b'"stream": true', b'"stream": false')
    before = [len(e.seen) for e in engines]
    assert call(gateway, "POST", CHAT, bearer(keys, "admin"), plain)[0] == 200
    assert [r["body"] for e, n in zip(engines, before) for r in e.seen[n:]] == [plain]


def test_concurrency_limit(gateway, keys, engines):
    auth = bearer(keys, "busy")
    for engine in engines:
        engine.release.clear()
    socks = [open_stream(gateway, auth) for _n in range(2)]
    try:
        for sock in socks:
            read_until(sock, b'"hel"')
        status, headers, _raw = call(gateway, "POST", CHAT, auth, body("deepseek-r1"))
        assert status == 429 and headers["retry-after"] == "1"
    finally:
        for engine in engines:
            engine.release.set()
        for sock in socks:
            read_until(sock, b"[DONE]")
            sock.close()
    deadline = time.monotonic() + 2
    status = None
    while time.monotonic() < deadline and status != 200:
        status = call(gateway, "POST", CHAT, auth, body("deepseek-r1"))[0]
    assert status == 200


def test_tokens_per_minute_limit_after_usage_is_consumed(gateway, keys, engines):
    auth, used = bearer(keys, "tokens"), harness.PROMPT_TOKENS + harness.COMPLETION_TOKENS
    assert used < 30 < 2 * used  # the limit falls between the first and the second answer
    fresh_window(60, 10)
    for engine in engines:
        engine.release.set()
    sock = open_stream(gateway, auth)
    try:
        assert b'"usage"' in read_until(sock, b"[DONE]")
    finally:
        sock.close()
    time.sleep(0.2)  # usage is charged in the log phase, right after the last byte
    assert call(gateway, "POST", CHAT, auth, body("deepseek-r1"))[0] == 200
    time.sleep(0.2)
    status, headers, _raw = call(gateway, "POST", CHAT, auth, body("deepseek-r1"))
    assert status == 429
    assert 1 <= int(headers["retry-after"]) <= 60
    assert call(gateway, "POST", CHAT, bearer(keys, "admin"), body("deepseek-r1"))[0] == 200


def test_ab_variant_is_split_assign(gateway, keys, split):
    for principal in AB:
        status, headers, _raw = call(gateway, "POST", CHAT, bearer(keys, principal), body("deepseek-r1"))
        assert status == 200
        assert headers["x-engine"] == gp.split_assign(principal, split)


def audit_entry(gw, request_id, wait=3):
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        for line in gw.log_lines():
            entry = json.loads(line)
            if entry["request_id"] == request_id:
                return entry
        time.sleep(0.05)
    raise AssertionError("no audit line for request %s" % request_id)


@pytest.mark.parametrize("model, logged", [
    ("m" * 256, "m" * 256), ("m" * 257, "m" * 256), ("caf\u00e9", "caf??"), ("a\tb\u007f", "a?b?"),
    ("x" * 255 + "\u00e9", "x" * 255 + "?"), (" ~", " ~")])
def test_the_audit_log_masks_and_cuts_model_names(gateway, keys, model, logged):
    """Printable ASCII as sent, anything else '?' per byte, at most 256 bytes."""
    status, headers, _raw = call(gateway, "POST", CHAT, bearer(keys, "admin"), body(model))
    assert status == 403
    assert audit_entry(gateway, headers["x-request-id"])["model"] == logged


def test_audit_log_lines_are_json_with_the_fields(gateway, keys):
    status, headers, _raw = call(gateway, "POST", CHAT, bearer(keys, "analyst"), body("deepseek-r1"))
    assert status == 200
    entry = audit_entry(gateway, headers["x-request-id"])
    assert entry["principal"] == "analyst" and entry["roles"] == "r1,reader"
    assert entry["action"] == "execute" and entry["model"] == "deepseek-r1" and entry["route"] == CHAT
    assert entry["status"] == 200 and float(entry["upstream_latency"]) >= 0
    assert (entry["prompt_tokens"], entry["completion_tokens"]) == (harness.PROMPT_TOKENS, harness.COMPLETION_TOKENS)
    status, headers, _raw = call(gateway, "POST", CHAT, bearer(keys, "analyst"), body("deepseek-coder-v2"))
    denied = audit_entry(gateway, headers["x-request-id"])
    assert (status, denied["status"], denied["model"], denied["prompt_tokens"]) == (403, 403, "deepseek-coder-v2", 0)
    for line in gateway.log_lines():
        json.loads(line)


@pytest.mark.parametrize("extra", [{"pad": 300000},
                                   {"say": '"usage": {"prompt_tokens": 999, "completion_tokens": 999}'}])
def test_usage_is_the_engines_for_long_answers_and_cannot_be_forged(gateway, keys, extra):
    status, headers, raw = call(gateway, "POST", CHAT, bearer(keys, "admin"), body("deepseek-r1", **extra))
    assert status == 200 and len(raw) > len(json.dumps(extra))
    entry = audit_entry(gateway, headers["x-request-id"])
    assert (entry["prompt_tokens"], entry["completion_tokens"]) == (harness.PROMPT_TOKENS, harness.COMPLETION_TOKENS)


def test_no_key_reaches_any_log(gateway, keys):
    call(gateway, "GET", "/v1/models?api_key=" + keys["admin"]["key"])
    time.sleep(0.3)
    logs = "\n".join(gateway.log_lines() + gateway.log_lines("error.log") + gateway.log_lines("stderr.log"))
    assert "dsk_" not in logs
    assert "api_key" not in logs


def test_a_revoked_key_stops_working_right_after_reload(tmp_path, keys, policy, split, engines):
    gw = harness.Gateway(tmp_path, policy, [split], engines).start()
    try:
        rotating, admin = bearer(keys, "rotating"), bearer(keys, "admin")
        assert call(gw, "GET", "/v1/models", rotating)[0] == 200
        assert call(gw, "GET", "/v1/models", rotating)[0] == 200  # now from the verdict cache
        gw.reload(compile_for(keys, revoke=["rotating"]))
        assert call(gw, "GET", "/v1/models", rotating)[0] == 401
        assert call(gw, "GET", "/v1/models", admin)[0] == 200
        gw.reload(policy)
        assert call(gw, "GET", "/v1/models", rotating)[0] == 200
    finally:
        gw.stop()


def test_a_cached_verdict_does_not_outlive_a_policy_change(tmp_path, keys, policy, split, engines):
    """Same key id, another principal: a verdict cached under the old generation is not reused."""
    gw = harness.Gateway(tmp_path, policy, [split], engines).start()
    try:
        auth = bearer(keys, "rotating")
        status, headers, _raw = call(gw, "POST", CHAT, auth, body("deepseek-r1"))
        assert status == 200 and audit_entry(gw, headers["x-request-id"])["principal"] == "rotating"
        moved = json.loads(json.dumps(policy))
        moved["keys"][keys["rotating"]["id"]]["principal"] = "analyst"
        moved["generation"] = "0" * 64
        gw.reload(moved)
        status, headers, _raw = call(gw, "POST", CHAT, auth, body("deepseek-r1"))
        assert status == 200 and audit_entry(gw, headers["x-request-id"])["principal"] == "analyst"
    finally:
        gw.stop()
