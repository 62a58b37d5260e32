"""inference_probe against a small fake OpenAI-compatible server on 127.0.0.1.

The fake serves /health, /v1/models and /v1/chat/completions (plain and SSE) the way vLLM
does (chunk layout of vLLM's OpenAI server: a role chunk, content chunks, a finish chunk, a
usage chunk with stream_options.include_usage, then `data: [DONE]`). Every test makes a
bounded number of requests and the server is shut down by the fixture.
"""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.onprem.deepseek.plugins.module_utils import _inference_probe as probe_utils
from ansible_collections.onprem.deepseek.plugins.module_utils._inference_probe import (
    ProbeError,
    iter_sse,
    parse_stream,
    read_api_key,
    summarize,
)
from ansible_collections.onprem.deepseek.plugins.modules import inference_probe

KEY = "sk-test-7c1f0b"
MODEL = "deepseek-v3-tiny-sandbox"


class FakeServer:
    def __init__(self):
        self.key = KEY
        self.models = [MODEL]
        self.roots = {}  # model to the "root" /v1/models gives (vLLM: the directory it loaded)
        self.answer_model = MODEL
        self.tokens = 4
        self.unhealthy_for = 0  # /health answers 503 this many times first
        self.stream_done = True
        self.log = []
        self.bodies = []


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, code, body, ctype="application/json"):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self):
            if self.headers.get("Authorization") != "Bearer %s" % state.key:
                self._send(401, {"error": "Unauthorized"})
                return False
            return True

        def do_GET(self):
            state.log.append(("GET", self.path))
            if self.path == "/health":
                if state.unhealthy_for > 0:
                    state.unhealthy_for -= 1
                    self._send(503, b"", "text/plain")
                else:
                    self._send(200, b"", "text/plain")
            elif self.path == "/v1/models":
                if self._authorized():
                    self._send(200, {"object": "list", "data": [
                        dict({"id": m, "object": "model", "owned_by": "vllm", "max_model_len": 4096},
                             **({"root": state.roots[m]} if m in state.roots else {})) for m in state.models]})
            else:
                self._send(404, {"detail": "Not Found"})

        def do_POST(self):
            state.log.append(("POST", self.path))
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length))
            state.bodies.append(body)
            if not self._authorized():
                return
            if self.path != "/v1/chat/completions":
                self._send(404, {"detail": "Not Found"})
                return
            if body["model"] not in state.models:
                self._send(404, {"error": {"message": "The model `%s` does not exist." % body["model"],
                                           "type": "NotFoundError", "code": 404}})
                return
            usage = {"prompt_tokens": 12, "completion_tokens": state.tokens,
                     "total_tokens": 12 + state.tokens}
            if not body.get("stream"):
                self._send(200, {
                    "id": "chatcmpl-1", "object": "chat.completion", "model": state.answer_model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "tok " * state.tokens},
                                 "finish_reason": "length"}],
                    "usage": usage})
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def event(obj):
                data = ("data: %s\n\n" % (obj if isinstance(obj, str) else json.dumps(obj))).encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            base = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "model": state.answer_model}
            event(dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""},
                                       "finish_reason": None}]))
            for i in range(state.tokens):
                event(dict(base, choices=[{"index": 0, "delta": {"content": "t%d " % i}, "finish_reason": None}]))
            event(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "length"}]))
            if body.get("stream_options", {}).get("include_usage"):
                event(dict(base, choices=[], usage=usage))
            if state.stream_done:
                event("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler


@pytest.fixture
def server():
    state = FakeServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = "http://127.0.0.1:%d" % httpd.server_address[1]
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
    assert len(state.log) <= 40  # bounded request count


def run(args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            inference_probe.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


# --- pure parts ---------------------------------------------------------------------------

def test_read_api_key_plain_and_env_file():
    assert read_api_key("sk-abc\n") == "sk-abc"
    env = "# managed\nVLLM_API_KEY=sk-env\nVLLM_CPU_KVCACHE_SPACE=1\n"
    assert read_api_key(env) == "sk-env"
    assert read_api_key("export OPENAI_API_KEY='sk-q'\n") == "sk-q"
    assert read_api_key("A=1\nB_API_KEY=x\n", "A") == "1"
    with pytest.raises(ProbeError, match="no variable C"):
        read_api_key("A=1\n", "C")
    with pytest.raises(ProbeError, match="2 variables ending in API_KEY"):
        read_api_key("X_API_KEY=1\nY_API_KEY=2\n")
    with pytest.raises(ProbeError, match="one line"):
        read_api_key("a\nb\n")


def test_iter_sse_joins_data_lines_and_skips_comments():
    lines = [b": ping\n", b"data: {\"a\": 1}\n", b"\n", b"event: x\n", b"data: line1\n", b"data:line2\n",
             b"\r\n", b"data: [DONE]\n"]
    assert list(iter_sse(lines)) == ['{"a": 1}', "line1\nline2", "[DONE]"]


def test_parse_stream_measures_first_token_and_needs_done():
    ticks = iter([0.25, 0.5])
    lines = [
        'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}', "",
        'data: {"choices":[{"delta":{"content":"a"}}]}', "",
        'data: {"choices":[{"delta":{"content":"b"},"finish_reason":"stop"}]}', "",
        'data: {"choices":[],"usage":{"completion_tokens":2,"prompt_tokens":5}}', "",
        "data: [DONE]", "",
    ]
    ttft, chunks, usage, finish = parse_stream(lines, lambda: next(ticks), 0.0)
    assert ttft == 0.25 and chunks == 2 and finish == "stop"
    assert usage == {"completion_tokens": 2, "prompt_tokens": 5}
    with pytest.raises(ProbeError, match=r"without data: \[DONE\]"):
        parse_stream(lines[:6], lambda: 1.0, 0.0)
    with pytest.raises(ProbeError, match="server sent an error"):
        parse_stream(['data: {"error": {"message": "boom"}}', ""], lambda: 1.0, 0.0)


def test_summarize():
    assert summarize([3.0, 1.0, 2.0, None]) == {"min": 1.0, "mean": 2.0, "median": 2.0, "max": 3.0}
    assert summarize([1.0, 2.0])["median"] == 1.5
    assert summarize([None]) is None


# --- against the fake server --------------------------------------------------------------

def test_probe_plain_and_stream_with_key(server, capsys):
    rc, out = run({"url": server.url + "/v1", "model": MODEL, "api_key": KEY, "requests": 2,
                   "max_tokens": 4, "health_timeout": 5}, capsys)
    assert rc == 0, out
    assert out["changed"] is False
    assert out["url"] == server.url
    assert out["models"] == [MODEL] and out["model"] == MODEL
    assert out["health_retries"] == 0
    assert out["requests"] == 4
    assert out["completion_tokens"] == 16
    assert [s["stream"] for s in out["samples"]] == [False, True, False, True]
    streamed = out["samples"][1]
    assert streamed["chunks"] == 4 and streamed["finish_reason"] == "length" and streamed["prompt_tokens"] == 12
    # TTFT is measured on the streamed requests only, and within each one's total time.
    assert [s["ttft_s"] is not None for s in out["samples"]] == [False, True, False, True]
    assert all(0 < s["ttft_s"] <= s["total_s"] for s in out["samples"] if s["stream"])
    assert 0 < out["latency"]["ttft_s"]["min"] <= out["latency"]["ttft_s"]["max"] <= out["latency"]["total_s"]["max"]
    assert out["latency"]["tokens_per_s"]["min"] > 0
    # Requests as sent: the key in the header only, usage asked for in streams.
    assert server.bodies[0] == {"model": MODEL, "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
                                "max_tokens": 4, "temperature": 0.0}
    assert server.bodies[1]["stream"] is True and server.bodies[1]["stream_options"] == {"include_usage": True}
    assert KEY not in json.dumps(out)
    assert server.log[:2] == [("GET", "/health"), ("GET", "/v1/models")]
    assert len(server.log) == 6


def test_the_directory_each_model_was_loaded_from_is_returned_where_the_engine_gives_it(server, capsys):
    server.models = [MODEL, "deepseek-coder", "deepseek-lite"]
    server.roots = {MODEL: "/srv/deepseek/hot/models/%s/versions/v2" % MODEL, "deepseek-lite": ""}
    rc, out = run({"url": server.url, "model": MODEL, "api_key": KEY, "stream": False}, capsys)
    assert rc == 0, out
    assert out["models"] == [MODEL, "deepseek-coder", "deepseek-lite"]
    assert out["model_roots"] == {MODEL: "/srv/deepseek/hot/models/%s/versions/v2" % MODEL}


def test_probe_key_from_environment_file(server, capsys, tmp_path):
    env = tmp_path / "main.env"
    env.write_text("VLLM_API_KEY=%s\nVLLM_CPU_KVCACHE_SPACE=1\n" % KEY)
    rc, out = run({"url": server.url, "model": MODEL, "api_key_file": str(env), "stream": False,
                   "_ansible_check_mode": True}, capsys)
    assert rc == 0, out
    assert out["requests"] == 1 and out["samples"][0]["ttft_s"] is None
    assert out["latency"]["ttft_s"] is None
    assert KEY not in json.dumps(out)


def test_wrong_key_fails_naming_401(server, capsys):
    rc, out = run({"url": server.url, "model": MODEL, "api_key": "sk-wrong"}, capsys)
    assert rc == 1
    assert "HTTP 401" in out["msg"] and "wrong or missing API key" in out["msg"]
    assert "sk-wrong" not in out["msg"]
    assert server.log == [("GET", "/v1/models")]


def test_model_not_served_fails(server, capsys):
    rc, out = run({"url": server.url, "model": "deepseek-r1", "api_key": KEY}, capsys)
    assert rc == 1
    assert out["msg"] == "served model 'deepseek-r1' not in /v1/models (%s)" % MODEL
    assert ("POST", "/v1/chat/completions") not in server.log


def test_answer_from_another_model_fails(server, capsys):
    server.answer_model = "other"
    rc, out = run({"url": server.url, "model": MODEL, "api_key": KEY, "stream": False}, capsys)
    assert rc == 1
    assert "answered by model 'other'" in out["msg"]


def test_stream_without_done_fails(server, capsys):
    server.stream_done = False
    rc, out = run({"url": server.url, "model": MODEL, "api_key": KEY}, capsys)
    assert rc == 1
    assert "ended without data: [DONE]" in out["msg"]


def test_health_is_waited_for(server, capsys):
    server.unhealthy_for = 2
    rc, out = run({"url": server.url, "api_key": KEY, "health_timeout": 10, "health_interval": 1,
                   "stream": False}, capsys)
    assert rc == 0, out
    assert out["health_retries"] == 2
    assert out["model"] == MODEL  # first listed model when none is named
    assert server.log[:3] == [("GET", "/health")] * 3


def test_health_timeout_fails(server, capsys, monkeypatch):
    server.unhealthy_for = 100
    clock = iter(range(0, 1000, 1))
    monkeypatch.setattr(probe_utils.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(probe_utils.time, "sleep", lambda s: None)
    # Prober binds the clock at definition time; pass through a fresh class default.
    monkeypatch.setattr(probe_utils.Prober.__init__, "__defaults__",
                        (probe_utils.open_url, probe_utils.time.monotonic, probe_utils.time.sleep))
    rc, out = run({"url": server.url, "api_key": KEY, "health_timeout": 3}, capsys)
    assert rc == 1
    assert out["msg"].startswith("not healthy after 3s: GET /health: HTTP 503")
    assert len(server.log) <= 5


def test_unreachable_endpoint_fails(capsys):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    rc, out = run({"url": "http://127.0.0.1:%d" % port, "timeout": 2}, capsys)
    assert rc == 1
    assert out["msg"].startswith("GET http://127.0.0.1:%d/v1/models: " % port)


def test_bad_arguments(capsys, tmp_path):
    rc, out = run({"url": "http://127.0.0.1:1", "requests": 0}, capsys)
    assert rc == 1 and out["msg"] == "requests: must be at least 1"
    rc, out = run({"url": "http://127.0.0.1:1", "api_key_file": str(tmp_path / "none")}, capsys)
    assert rc == 1 and out["msg"].startswith("api_key_file %s: " % (tmp_path / "none"))
    rc, out = run({"url": "http://127.0.0.1:1", "api_key": "sk-conflict", "api_key_file": "/x"}, capsys)
    assert rc == 1 and "mutually exclusive" in out["msg"]
