"""vllm-router (gateway_router: vllm-router) with the arguments the role renders, in front of two
stand-in engines, on 127.0.0.1: it routes, passes on the key nginx sends and adds none, retries past
a stopped engine, and passes streams as they come. Skipped where vllm-router is not installed."""
import http.client
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gateway_harness as harness

sys.path.insert(0, str(harness.HERE.parent / "unit"))
from role_templates import (DataLoader, ROLES, Templar, render_file,  # noqa: E402 pylint: disable=wrong-import-position
                            role_variables, trust_as_template)


def router_binary():
    for candidate in (os.environ.get("ONPREM_VLLM_ROUTER"), Path(sys.executable).with_name("vllm-router"),
                      shutil.which("vllm-router")):
        if candidate and os.access(str(candidate), os.X_OK):
            return str(candidate)
    return None


ROUTER = router_binary()
pytestmark = pytest.mark.skipif(
    ROUTER is None, reason="vllm-router is not installed (pip install vllm-router==0.1.17, or set ONPREM_VLLM_ROUTER "
                           "to its command)")
ENGINE_KEY = "sk-engine-loopback-0123456789"
CHAT = "/v1/chat/completions"
API = {CHAT, "/v1/completions", "/v1/embeddings"}
PROMPT = "prompt-text-4f1c9e"


class EngineHandler(harness.EngineHandler):
    """The stand-in without keep-alive (a stopped engine refuses at once) and with 404 for the
    helper routes the router may try (/tokenize, .../render), as an engine without them."""

    protocol_version = "HTTP/1.0"

    def do_POST(self):
        if self.path in API:
            return super().do_POST()
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.seen.append({"path": self.path, "headers": dict(self.headers), "body": b""})
        return self._json(404, {"error": "no route"})


def engine(name):
    started = harness.Engine(name, ["deepseek-r1"])
    started.RequestHandlerClass = EngineHandler
    return started


def rendered_args(servers, port, metrics_port):
    """ROUTER_ARGS of the role's onprem-deepseek-router.env.j2 for one pool, split as systemd does."""
    loader = DataLoader()
    variables = role_variables(loader, "gateway")
    variables.update(ansible_managed="test", inventory_hostname="gw", ansible_host="127.0.0.1",
                     gateway_router="vllm-router", gateway_router_port=port, gateway_router_metrics_port=metrics_port,
                     gateway_upstreams=[{"name": "main", "servers": servers, "engine_key": ENGINE_KEY}])
    variables["item"] = Templar(loader=loader, variables=variables).template(
        trust_as_template("{{ __gateway_router_pools }}"))[0]
    text = render_file(ROLES / "gateway" / "templates" / "onprem-deepseek-router.env.j2", loader, variables)
    line = [row for row in text.splitlines() if row.startswith("ROUTER_ARGS=")][0]
    return shlex.split(line[len("ROUTER_ARGS="):])


class Router:
    def __init__(self, prefix, engines):
        self.port, self.metrics_port = harness.free_port(), harness.free_port()
        args = rendered_args(["127.0.0.1:%d" % e.port for e in engines], self.port, self.metrics_port)
        self.log_path = Path(prefix) / "router.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([ROUTER, *args], stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        # It listens once an engine answers GET /health.
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("vllm-router exited: " + self.tail())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("vllm-router did not listen: " + self.tail())
                time.sleep(0.1)

    def tail(self):
        return self.log_path.read_text(errors="replace")[-3000:]

    def call(self, path, body=None, auth=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=harness.HOLD_S + 20)
        sent = dict(headers or {}, Connection="close")
        if auth:
            sent["Authorization"] = auth
        if body is not None:
            sent["Content-Type"] = "application/json"
        try:
            conn.request("POST" if body is not None else "GET", path,
                         body=json.dumps(body).encode() if body is not None else None, headers=sent)
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def metric(self, name):
        conn = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=10)
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        return sum(float(v) for v in re.findall(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.fixture()
def engines():
    pair = [engine("a"), engine("b")]
    for started in pair:
        started.release.set()
    yield pair
    for started in pair:
        started.stop()


@pytest.fixture()
def router(tmp_path, engines):
    started = Router(tmp_path, engines)
    yield started
    started.stop()


def chat(text="hi", **extra):
    return dict(extra, model="deepseek-r1", messages=[{"role": "user", "content": text}])


def sent_by_router(engines):
    return [(e.name, r) for e in engines for r in e.seen]


def header(request, name):
    return {k.lower(): v for k, v in request["headers"].items()}.get(name.lower())


def test_it_routes_and_the_engine_gets_the_key_nginx_sent(router, engines):
    status, headers, raw = router.call(CHAT, chat(PROMPT, say="routed"), auth="Bearer " + ENGINE_KEY,
                                       headers={"X-Request-Id": "gw-req-1"})
    assert status == 200, raw
    assert json.loads(raw)["choices"][0]["message"]["content"] == "routed"
    answered = [r for name, r in sent_by_router(engines) if r["path"] == CHAT and name == headers["x-engine"]]
    assert len(answered) == 1
    assert header(answered[0], "Authorization") == "Bearer " + ENGINE_KEY
    assert header(answered[0], "X-Request-Id") == "gw-req-1"
    forwarded = json.loads(answered[0]["body"])
    assert forwarded["messages"] == [{"role": "user", "content": PROMPT}] and forwarded["say"] == "routed"
    # Its own calls to the engines (tokenising for cache_aware) carry the same key, never another.
    assert {header(r, "Authorization") for _ignored, r in sent_by_router(engines)} == {"Bearer " + ENGINE_KEY}
    # Neither the key nor the prompt reaches the router's log.
    log = router.log_path.read_text(errors="replace")
    assert "Router ready" in log or "Starting server" in log
    assert ENGINE_KEY not in log and PROMPT not in log


def test_it_adds_no_key_of_its_own(router, engines):
    # Whoever reaches the loopback port without nginx reaches the engines without a key.
    status, _headers, raw = router.call(CHAT, chat())
    assert status == 200, raw
    sent = sent_by_router(engines)
    assert any(r["path"] == CHAT for _ignored, r in sent)
    assert [header(r, "Authorization") for _ignored, r in sent] == [None] * len(sent)


def test_a_stopped_engine_fails_no_request(router, engines):
    status, headers, _raw = router.call(CHAT, chat("first"), auth="Bearer " + ENGINE_KEY)
    assert status == 200
    # Stop the engine the router chose, so that the next requests are sent to it first.
    chosen = {e.name: e for e in engines}[headers["x-engine"]]
    other = [e for e in engines if e is not chosen][0]
    chosen.stop()
    results = [router.call(CHAT, chat("question %d" % n), auth="Bearer " + ENGINE_KEY) for n in range(6)]
    assert [(status, headers.get("x-engine")) for status, headers, _raw in results] == [(200, other.name)] * 6
    # It did try the stopped engine, and retried on the other.
    assert router.metric("vllm_router_retries_total") >= 1
    assert router.metric("vllm_router_retries_exhausted_total") == 0


def test_streams_pass_as_they_come(router, engines):
    for started in engines:
        started.release.clear()
    payload = json.dumps(chat(stream=True, stream_options={"include_usage": True})).encode()
    sock = socket.create_connection(("127.0.0.1", router.port), timeout=harness.HOLD_S + 10)
    try:
        sock.sendall(b"POST " + CHAT.encode() + b" HTTP/1.1\r\nHost: router\r\nConnection: close\r\n"
                     b"Authorization: Bearer " + ENGINE_KEY.encode() + b"\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        received = b""
        while b'"hel"' not in received:
            data = sock.recv(65536)
            assert data, received
            received += data
        # The engine still holds the rest: the first chunk came through alone.
        assert received.startswith(b"HTTP/1.1 200") and b'"lo"' not in received and b"[DONE]" not in received
        assert sum(e.holding for e in engines) == 1
        for started in engines:
            started.release.set()
        while True:
            data = sock.recv(65536)
            if not data:
                break
            received += data
    finally:
        sock.close()
    assert b'"lo"' in received and b'"usage"' in received and b"data: [DONE]" in received
    assert [w for e in engines for w in e.waits] == [True]
