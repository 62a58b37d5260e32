"""A STAND-IN for an inference engine (test only): OpenAI-style answers with usage, no model.

Serves /health, /metrics (the requests in flight as vLLM's vllm:num_requests_running, and the
requests finished and their summed time as its vllm:e2e_request_latency_seconds histogram's count
and sum; no key, as vLLM serves it), /v1/models, /v1/chat/completions, /v1/completions and /v1/embeddings; a request
with "stream": true gets server-sent events ending in a usage chunk (when stream_options asks for
it, as the gateway always does) and [DONE]. Every /v1 request must carry the engine key (read from
the file named by the first argument) as "Authorization: Bearer": the gateway's, never a caller's.
Usage: standin-engine KEYFILE PORT [MODEL_DIR]; every answer names the instance in
"X-Standin-Engine: <port>", so the scenario sees which pool and which server of a pool answered.
With MODEL_DIR (a model store's current link), /v1/models gives each model the "root" a real
engine gives, the directory it serves: here that link's target, read on each request (a real
engine reads it once, at start; the scenario restarts the stand-ins when the store switches).
"""
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODELS = ("deepseek-r1", "deepseek-coder")
USAGE = {"prompt_tokens": 7, "completion_tokens": 13, "total_tokens": 20}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    key = b""
    name = ""
    in_flight = 0
    finished = 0
    seconds = 0.0
    lock = threading.Lock()

    model_dir = ""

    def log_message(self, *args):
        pass

    def _json(self, status, data):
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("X-Standin-Engine", self.name)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _authorized(self):
        given = (self.headers.get("Authorization") or "").encode()
        if hmac.compare_digest(given, b"Bearer " + self.key):
            return True
        self._json(401, {"error": {"message": "engine key missing or wrong", "code": 401}})
        return False

    def do_GET(self):
        if self.path == "/health":
            self._json(200, {"status": "ok"})
        elif self.path == "/metrics":
            with Handler.lock:
                figures = (Handler.in_flight, Handler.seconds, Handler.finished)
            raw = ("vllm:num_requests_running{model_name=\"standin\"} %d\nvllm:num_requests_waiting{model_name=\"standin\"} 0\n"
                   "vllm:e2e_request_latency_seconds_sum{model_name=\"standin\"} %f\n"
                   "vllm:e2e_request_latency_seconds_count{model_name=\"standin\"} %d\n" % figures).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        elif self.path == "/v1/models":
            if self._authorized():
                root = os.path.realpath(self.model_dir) if self.model_dir and os.path.isdir(self.model_dir) else None
                self._json(200, {"object": "list", "data": [dict({"id": m, "object": "model", "owned_by": "standin"},
                                                                 **({"root": root} if root else {})) for m in MODELS]})
        else:
            self._json(404, {"error": {"message": "no route", "code": 404}})

    def do_POST(self):
        start = time.monotonic()
        with Handler.lock:
            Handler.in_flight += 1
        try:
            self._post()
        finally:
            with Handler.lock:
                Handler.in_flight -= 1
                Handler.finished += 1
                Handler.seconds += time.monotonic() - start

    def _post(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self._authorized():
            return
        request = json.loads(body or b"{}")
        if self.path == "/v1/embeddings":
            self._json(200, {"object": "list", "model": request.get("model"),
                             "data": [{"object": "embedding", "index": 0, "embedding": [0.0, 1.0]}],
                             "usage": {"prompt_tokens": 7, "total_tokens": 7}})
        elif request.get("stream") is True:
            self._stream(request)
        else:
            self._json(200, {"id": "standin-1", "object": "chat.completion", "model": request.get("model"),
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}],
                             "usage": USAGE})

    def _stream(self, request):
        self.send_response(200)
        self.send_header("X-Standin-Engine", self.name)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        chunk = {"object": "chat.completion.chunk", "model": request.get("model")}
        for part in ("hel", "lo"):
            event = dict(chunk, choices=[{"index": 0, "delta": {"content": part}}])
            self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
            self.wfile.flush()
            time.sleep(0.2)
        if (request.get("stream_options") or {}).get("include_usage") is True:
            self.wfile.write(b"data: " + json.dumps(dict(chunk, choices=[], usage=USAGE)).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def main():
    with open(sys.argv[1], "rb") as f:
        Handler.key = f.read().strip()
    Handler.name = sys.argv[2]
    Handler.model_dir = sys.argv[3] if len(sys.argv) > 3 else ""
    ThreadingHTTPServer(("0.0.0.0", int(sys.argv[2])), Handler).serve_forever()


if __name__ == "__main__":
    main()
