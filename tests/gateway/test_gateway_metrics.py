"""The gateway's Prometheus metrics: exact counts after a known set of requests, a consistent
histogram, bounded and escaped label values, the scrape allow list, and the production template's
metrics server. Everything runs on loopback with the real Lua package."""
import collections
import http.client
import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import jinja2
import pytest
import yaml

import gateway_harness as harness
from ansible_collections.onprem.deepseek.plugins.module_utils import _gateway_policy as gp
from ansible_collections.onprem.deepseek.plugins.module_utils import _pki_secrets as secrets

if not harness.nginx_binary() or not harness.module_dir():
    pytest.fail("nginx and its Lua module are not installed (run tools/bootstrap)", pytrace=False)

ROLE = Path(__file__).resolve().parents[2] / "roles" / "gateway"
MODELS = ["deepseek-r1", "deepseek-coder-v2"]
CHAT, MODELS_ROUTE, EMBED = "/v1/chat/completions", "/v1/models", "/v1/embeddings"
ROLES = {
    "operator": {"resources": ["model/*"], "actions": ["read", "execute"]},
    "r1": {"resources": ["model/deepseek-r1"], "actions": ["read", "execute"]},
    "limited": {"resources": ["model/*"], "actions": ["read", "execute"]},
}
BIG = {"requests_per_second": 100000, "tokens_per_minute": 10 ** 9, "concurrency": 100}
PRINCIPALS = [
    ("admin", ["operator"], {}), ("r1-only", ["r1"], {}), ("nobody", [], {}), ("revoked", ["operator"], {}),
    ("burst", ["limited"], {"requests_per_second": 1}), ("tokens", ["limited"], {"tokens_per_minute": 1}),
    ("busy", ["limited"], {"concurrency": 1}), ("doomed", ["operator"], {}),
]
# Variant b's engine is stopped: only "doomed" is sent there.
ON_B = {"doomed"}
# The scrape client's address: the metrics server allows it and not 127.0.0.1.
SCRAPER = "127.0.0.2"
BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "120",
           "300", "+Inf"]
# A model no policy lists, with characters that would break the exposition if copied into it.
ARBITRARY = 'evil"model\\{x="1"}'


@pytest.fixture(scope="module")
def keys():
    made = {}
    for name, _roles, _limits in PRINCIPALS + [("unknown", [], {})]:
        key, key_id = secrets.new_key("dsk")
        made[name] = {"key": key, "id": key_id, "stored": secrets.hash_key(key)}
    return made


def compile_for(keys):
    principals = []
    for name, roles, limits in PRINCIPALS:
        entry = {"name": name, "roles": roles, "limits": dict(BIG, **limits), "keys": [keys[name]["stored"]]}
        if name == "revoked":
            entry["revoked_keys"] = [keys[name]["id"]]
        principals.append(entry)
    return gp.compile_policy(ROLES, principals, {}, MODELS)


@pytest.fixture(scope="module")
def split():
    for i in range(5000):
        candidate = {"name": "chat", "salt": "m-%d" % i,
                     "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]}
        if all((gp.split_assign(name, candidate) == "b") == (name in ON_B) for name, _r, _l in PRINCIPALS):
            return candidate
    raise AssertionError("no salt sends only %s to variant b" % sorted(ON_B))


@pytest.fixture(scope="module")
def engines():
    live, dead = harness.Engine("a", MODELS), harness.Engine("b", MODELS)
    dead.stop()  # its port refuses connections: nginx answers 502
    yield [live, dead]
    live.stop()


def start(tmp_path_factory, policy, splits, engines, allow):
    return harness.Gateway(tmp_path_factory.mktemp("nginx"), policy, splits, engines, metrics_allow=allow).start()


def call(port, method, path, auth=None, body=None, source=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                      source_address=(source, 0) if source else None)
    headers = {"Connection": "close"}
    if auth is not None:
        headers["Authorization"] = auth
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def scrape(gw, source=SCRAPER):
    status, headers, raw = call(gw.metrics_port, "GET", "/metrics", source=source)
    assert status == 200, raw
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return raw.decode()


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def unescape(value):
    return re.sub(r'\\(.)', lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], value)


def parse(text):
    """{name: {frozenset(labels): value}}; every line must be a comment or a well-formed sample."""
    families = collections.defaultdict(dict)
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) onprem_gateway_\w+ \S", line), line
            continue
        m = SAMPLE.match(line)
        assert m, line
        labels, at = {}, 0
        for lm in LABEL.finditer(m.group(2) or ""):
            assert lm.start() == at, line
            labels[lm.group(1)] = unescape(lm.group(2))
            at = lm.end()
        assert at == len(m.group(2) or ""), line
        families[m.group(1)][frozenset(labels.items())] = float(m.group(3))
    return families


def by(family, *names):
    return {tuple(dict(labels)[n] for n in names): value for labels, value in family.items()}


def wait_for_requests(gw, expected, timeout=5):
    """The log phase runs after the answer is sent, in whichever worker served it, one counter
    after the other: scrape until every request is counted and two scrapes agree."""
    deadline = time.monotonic() + timeout
    previous = None
    while True:
        text = scrape(gw)
        counted = sum(parse(text)["onprem_gateway_requests_total"].values())
        if (counted >= expected and text == previous) or time.monotonic() > deadline:
            return text
        previous = text
        time.sleep(0.1)


def bearer(keys, name):
    return None if name == "anonymous" else "Bearer " + keys[name]["key"]


def body(model, **extra):
    return json.dumps(dict(extra, model=model)).encode()


class Tally:
    """What the client saw, as the labels each request should be counted under."""

    def __init__(self, gw, keys):
        self.gw, self.keys = gw, keys
        self.requests = collections.Counter()
        self.rejections = collections.Counter()
        self.tokens = collections.Counter()

    def count(self, status, route, model, klass, limit=None):
        self.requests[(route, model, str(status), klass)] += 1
        if status == 429:
            self.rejections[(limit, klass)] += 1
        if status == 200 and route in (CHAT, EMBED):
            self.tokens[(model, "prompt")] += harness.PROMPT_TOKENS
            self.tokens[(model, "completion")] += harness.COMPLETION_TOKENS
        return status

    def __call__(self, caller, method, path, model_sent, route, model, klass, limit=None):
        raw = body(model_sent) if model_sent is not None else None
        status = call(self.gw.port, method, path, bearer(self.keys, caller), raw)[0]
        return self.count(status, route, model, klass, limit)


def fresh_window(period, margin):
    left = period - time.time() % period
    if left < margin:
        time.sleep(left + 0.05)


def stream(gw, auth):
    payload = body("deepseek-r1", stream=True)
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=harness.HOLD_S + 5)
    sock.sendall(b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nAuthorization: "
                 + auth.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: "
                 + str(len(payload)).encode() + b"\r\n\r\n" + payload)
    return sock


def read_until(sock, marker, received=b""):
    while marker not in received:
        data = sock.recv(65536)
        if not data:
            break
        received += data
    return received


@pytest.fixture(scope="module")
def traffic(tmp_path_factory, keys, split, engines):
    """One gateway, a known set of requests, and the scrape taken after them."""
    gw = start(tmp_path_factory, compile_for(keys), [split], engines, ["10.0.0.0/8", SCRAPER])
    try:
        t = Tally(gw, keys)
        live = engines[0]
        live.release.set()
        assert t("admin", "GET", MODELS_ROUTE, None, MODELS_ROUTE, "none", "operator") == 200
        assert t("admin", "POST", CHAT, "deepseek-r1", CHAT, "deepseek-r1", "operator") == 200
        assert t("admin", "POST", EMBED, "deepseek-coder-v2", EMBED, "deepseek-coder-v2", "operator") == 200
        assert t("anonymous", "POST", CHAT, "deepseek-r1", CHAT, "none", "anonymous") == 401
        assert t("unknown", "POST", CHAT, "deepseek-r1", CHAT, "none", "anonymous") == 401
        assert t("revoked", "POST", CHAT, "deepseek-r1", CHAT, "none", "revoked") == 401
        assert t("r1-only", "POST", CHAT, "deepseek-coder-v2", CHAT, "deepseek-coder-v2", "r1") == 403
        assert t("nobody", "GET", MODELS_ROUTE, None, MODELS_ROUTE, "none", "none") == 403
        # 404 and 405 are answered before the key is looked at.
        assert t("admin", "GET", "/nope", None, "other", "none", "anonymous") == 404
        assert t("admin", "GET", "/v1/models/", None, "other", "none", "anonymous") == 404
        assert t("admin", "PUT", CHAT, "deepseek-r1", CHAT, "none", "anonymous") == 405
        assert t("anonymous", "GET", "/health", None, "/health", "none", "anonymous") == 200
        assert t("admin", "POST", CHAT, ARBITRARY, CHAT, "other", "operator") == 403
        assert t("admin", "POST", CHAT, "deepseek-r1-" + "x" * 40, CHAT, "other", "operator") == 403
        # Past requests_per_second 1: two in one second.
        seen = set()
        for _attempt in range(5):
            fresh_window(1, 0.8)
            seen |= {t("burst", "GET", MODELS_ROUTE, None, MODELS_ROUTE, "none", "limited", "requests_per_second")
                     for _n in range(2)}
            if 429 in seen:
                break
        assert seen == {200, 429}
        # Past tokens_per_minute 1: the first answer uses 20 tokens.
        fresh_window(60, 5)
        assert t("tokens", "POST", CHAT, "deepseek-r1", CHAT, "deepseek-r1", "limited") == 200
        time.sleep(0.2)  # usage is charged in the log phase
        assert t("tokens", "POST", CHAT, "deepseek-r1", CHAT, "deepseek-r1", "limited", "tokens_per_minute") == 429
        # Past concurrency 1: a stream held open (over 0.25 s, for the histogram), then a second request.
        live.release.clear()
        sock = stream(gw, bearer(keys, "busy"))
        try:
            assert read_until(sock, b'"hel"').startswith(b"HTTP/1.1 200")
            assert t("busy", "POST", CHAT, "deepseek-r1", CHAT, "deepseek-r1", "limited", "concurrency") == 429
            time.sleep(0.4)
            live.release.set()
            assert b'"usage"' in read_until(sock, b"[DONE]")
        finally:
            live.release.set()
            sock.close()
        t.count(200, CHAT, "deepseek-r1", "limited")
        # The engine of variant b is down.
        for _n in range(2):
            assert t("doomed", "POST", CHAT, "deepseek-r1", CHAT, "deepseek-r1", "operator") == 502
        text = wait_for_requests(gw, sum(t.requests.values()))
        yield gw, t, text
    finally:
        gw.stop()


def test_request_counts_are_exact(traffic):
    _gw, t, text = traffic
    got = by(parse(text)["onprem_gateway_requests_total"], "route", "model", "status", "principal_class")
    assert got == {k: float(v) for k, v in t.requests.items()}


def test_limit_rejections_name_the_limit(traffic):
    _gw, t, text = traffic
    got = by(parse(text)["onprem_gateway_limit_rejections_total"], "limit", "principal_class")
    assert got == {("requests_per_second", "limited"): float(t.rejections[("requests_per_second", "limited")]),
                   ("tokens_per_minute", "limited"): 1.0, ("concurrency", "limited"): 1.0}
    assert t.rejections[("requests_per_second", "limited")] >= 1


def test_upstream_failures_per_pool(traffic):
    _gw, _t, text = traffic
    assert by(parse(text)["onprem_gateway_upstream_failures_total"], "upstream") == {("b",): 2.0}


def test_tokens_per_model_and_kind(traffic):
    _gw, t, text = traffic
    got = by(parse(text)["onprem_gateway_tokens_total"], "model", "kind")
    assert got == {k: float(v) for k, v in t.tokens.items()}
    assert got[("deepseek-r1", "prompt")] == 3 * harness.PROMPT_TOKENS  # admin, tokens, the stream


def test_histogram_is_consistent_with_the_counts(traffic):
    _gw, t, text = traffic
    families = parse(text)
    buckets = families["onprem_gateway_request_duration_seconds_bucket"]
    counts = by(families["onprem_gateway_request_duration_seconds_count"], "route", "model")
    sums = by(families["onprem_gateway_request_duration_seconds_sum"], "route", "model")
    expected = collections.Counter()
    for (route, model, _status, _class), n in t.requests.items():
        expected[(route, model)] += n
    assert counts == {k: float(v) for k, v in expected.items()}
    assert sum(counts.values()) == sum(families["onprem_gateway_requests_total"].values())
    for series, count in counts.items():
        cumulative = [buckets[frozenset({"route": series[0], "model": series[1], "le": le}.items())] for le in BUCKETS]
        assert cumulative == sorted(cumulative), series
        assert cumulative[-1] == count, series
        assert 0 <= sums[series] <= count * 60, series
    assert len(buckets) == len(BUCKETS) * len(counts)
    # The held stream took over 0.25 s; every other request on its series is fast.
    chat = ("/v1/chat/completions", "deepseek-r1")
    assert buckets[frozenset({"route": chat[0], "model": chat[1], "le": "0.25"}.items())] < counts[chat]
    assert sums[chat] >= 0.4


def test_an_arbitrary_model_adds_no_label_value(traffic):
    _gw, _t, text = traffic
    models = {dict(labels).get("model") for family in parse(text).values() for labels in family}
    assert models - {None} == {"none", "other", "deepseek-r1", "deepseek-coder-v2"}
    assert "evil" not in text and "xxxx" not in text


def test_only_allowed_clients_scrape(traffic):
    gw, _t, _text = traffic
    time.sleep(0.2)  # the audit lines of the traffic are written by now
    audit = len(gw.log_lines())
    assert call(gw.metrics_port, "GET", "/metrics", source="127.0.0.1")[0] == 403
    assert call(gw.metrics_port, "GET", "/metrics", source=SCRAPER)[0] == 200
    assert call(gw.metrics_port, "GET", "/", source=SCRAPER)[0] == 404
    assert call(gw.metrics_port, "GET", "/", source="127.0.0.1")[0] == 404
    assert call(gw.metrics_port, "GET", "/metrics/x", source=SCRAPER)[0] == 404
    time.sleep(0.3)
    assert len(gw.log_lines()) == audit  # scrapes are not audit lines
    assert call(gw.port, "GET", "/metrics")[0] == 404  # the API server has no metrics


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(not PROMTOOL, reason="promtool is not installed (Debian: prometheus)")
def test_promtool_accepts_the_exposition(traffic):
    _gw, _t, text = traffic
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True,
                           timeout=30, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


WEIRD_ROLE, WEIRD_MODEL = 'ro"le\\x\ny', 'm"o\\del'


def test_label_values_are_escaped(tmp_path_factory, keys, engines):
    """Names the policy compiler refuses, put into the compiled table by hand."""
    policy = compile_for(keys)
    policy["models"] = sorted(policy["models"] + [WEIRD_MODEL])
    admin = policy["principals"]["admin"]
    admin["roles"] = [WEIRD_ROLE]
    admin["allow"]["execute"] = sorted(admin["allow"]["execute"] + [WEIRD_MODEL])
    engines[0].release.set()
    gw = start(tmp_path_factory, policy, [], engines, [SCRAPER])
    try:
        assert call(gw.port, "POST", CHAT, bearer(keys, "admin"), body(WEIRD_MODEL))[0] == 200
        text = wait_for_requests(gw, 1)
    finally:
        gw.stop()
    assert ('onprem_gateway_requests_total{route="/v1/chat/completions",model="m\\"o\\\\del",status="200",'
            'principal_class="ro\\"le\\\\x\\ny"} 1') in text.splitlines()
    got = by(parse(text)["onprem_gateway_requests_total"], "route", "model", "status", "principal_class")
    assert got == {(CHAT, WEIRD_MODEL, "200", WEIRD_ROLE): 1.0}
    if PROMTOOL:
        check = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True,
                               timeout=30, check=False)
        assert check.returncode == 0, check.stdout + check.stderr


def render(path, **variables):
    env = jinja2.Environment(undefined=jinja2.ChainableUndefined, trim_blocks=True)
    return env.from_string(path.read_text()).render(**dict({"gateway_upstream_retries": 1}, **variables))


def metrics_server(text):
    block = text[text.index("    # Prometheus scrapes"):]
    return re.sub(r"listen [^;]+;", "listen ADDRESS;", block)


def test_the_production_metrics_server():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    pools = [{"name": "main", "servers": ["10.0.1.21:8000"]}]
    text = render(ROLE / "templates" / "nginx.conf.j2", gateway_upstreams=pools,
                  gateway_metrics_listen=defaults["gateway_metrics_listen"],
                  gateway_metrics_allow=defaults["gateway_metrics_allow"])
    assert defaults["gateway_metrics_listen"] == "127.0.0.1:9145"
    assert "lua_shared_dict gw_metrics 10m;" in text
    block = text[text.index("    # Prometheus scrapes"):]
    assert "location = /metrics {\n            allow 127.0.0.1;\n            deny all;\n" in block
    assert "        listen 127.0.0.1:9145;\n        access_log off;\n" in block
    assert re.findall(r"location [^{]*", block) == ["location = /metrics ", "location / "]
    # The test configuration's metrics server is the production one but for its listen address.
    allow = ["10.0.0.0/8", "192.0.2.7"]
    production = render(ROLE / "templates" / "nginx.conf.j2", gateway_upstreams=pools,
                        gateway_metrics_listen="10.0.0.5:9145", gateway_metrics_allow=allow)
    test_copy = render(harness.HERE / "nginx.conf.j2", metrics_port=1, metrics_allow=allow)
    assert "allow 10.0.0.0/8;\n            allow 192.0.2.7;\n            deny all;" in production
    assert metrics_server(production) == metrics_server(test_copy)
