"""nginx with the gateway Lua package in a temporary prefix, and stand-in engines, on loopback."""
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jinja2

HERE = Path(__file__).resolve().parent
LUA_DIR = HERE.parents[1] / "roles" / "gateway" / "files" / "lua"
MODULE_DIRS = ("/usr/share/nginx/modules", "/usr/lib/nginx/modules")
# What the stand-in engine reports for every non-streamed and streamed answer.
PROMPT_TOKENS, COMPLETION_TOKENS = 7, 13
# Longest time a stand-in holds a stream open waiting for the test (bounds every test).
HOLD_S = 8
# The one model and one-variant split of the small gateways (conftest's admin_only, answering_engines).
ONE_MODEL = ["deepseek-r1"]
ONE_SPLIT = {"name": "chat", "salt": "s", "variants": [{"name": "a", "weight": 1}]}


def nginx_binary():
    found = shutil.which("nginx")
    return found or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)


def module_dir():
    for directory in MODULE_DIRS:
        if all(os.path.exists(os.path.join(directory, m)) for m in ("ngx_http_lua_module.so", "ndk_http_module.so")):
            return directory
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Engine(ThreadingHTTPServer):
    """An OpenAI-style engine: /v1/models, completions with ``usage``, SSE when asked to stream."""

    daemon_threads = True

    def __init__(self, name, models, drop_posts=False):
        """``drop_posts``: read each POST, then close the connection without an answer (an engine
        that died while a request was in flight)."""
        super().__init__(("127.0.0.1", 0), EngineHandler)
        self.name, self.models, self.drop_posts = name, models, drop_posts
        self.seen, self.holding, self.waits = [], 0, []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self):
        return self.server_address[1]

    def stop(self):
        self.release.set()
        self.shutdown()
        self.server_close()


class EngineHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _json(self, status, data):
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("X-Engine", self.server.name)
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self):
        if self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "owned_by": "engine", "permission": [], "root": m}
                for m in self.server.models]})
        elif self.path == "/health":
            self._json(200, {"status": "ok"})
        else:
            self._json(404, {"error": "no route"})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if self.server.drop_posts:
            self.close_connection = True
            return
        request = json.loads(body)
        usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                 "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}
        if request.get("stream") is True:
            self._stream(request, usage)
        else:
            # "pad" makes a long answer, "say" puts text the caller chose into the content.
            self._json(200, {"id": "cmpl-1", "object": "chat.completion", "model": request.get("model"),
                             "padding": "x" * int(request.get("pad", 0)),
                             "choices": [{"index": 0, "message": {"role": "assistant",
                                                                  "content": request.get("say", "hello")}}],
                             "usage": usage})

    def _stream(self, request, usage):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.send_header("X-Engine", self.server.name)
        self.end_headers()
        self.close_connection = True

        def event(data):
            self.wfile.write(b"data: " + data + b"\n\n")
            self.wfile.flush()

        chunk = {"object": "chat.completion.chunk", "model": request.get("model")}
        # Counted before the first chunk leaves, so a client that sees it also sees the hold.
        with self.server.lock:
            self.server.holding += 1
        event(json.dumps(dict(chunk, choices=[{"index": 0, "delta": {"content": "hel"}}])).encode())
        released = self.server.release.wait(HOLD_S)
        with self.server.lock:
            self.server.holding -= 1
            self.server.waits.append(released)
        event(json.dumps(dict(chunk, choices=[{"index": 0, "delta": {"content": "lo"}}])).encode())
        if (request.get("stream_options") or {}).get("include_usage") is True:
            event(json.dumps(dict(chunk, choices=[], usage=usage)).encode())
        event(b"[DONE]")


def start_nginx(prefix, conf, port):
    """nginx in the foreground with ``conf``, returned once it listens on 127.0.0.1:``port``:
    ``(process, stderr)``, stderr being prefix/stderr.log open for the caller to close."""
    stderr = open(Path(prefix) / "stderr.log", "wb")
    proc = subprocess.Popen([nginx_binary(), "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
                            stdout=stderr, stderr=stderr)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stderr.close()
            raise RuntimeError("nginx exited: " + (Path(prefix) / "stderr.log").read_text()
                               + (Path(prefix) / "error.log").read_text())
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, stderr
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nginx did not listen on 127.0.0.1:%d" % port)


class Gateway:
    """nginx run in the foreground from a temporary prefix with the gateway configuration."""

    def __init__(self, prefix, policy, splits, engines, workers=2, max_body="1m", split_name="chat",
                 metrics_allow=("127.0.0.1",), tls=None, syslog=None, payload_max=0, spare=None):
        """``tls``: ``certificate``, ``key`` and ``client_ca`` files for a second, TLS listener that
        asks for client certificates (its port is ``tls_port``). ``syslog``: ``host:port`` that also
        gets the audit lines. ``payload_max``: bodies in the audit lines, cut at that many bytes.
        ``spare``: a second engine in pool a (the first variant's)."""
        self.prefix = Path(prefix)
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.metrics_port = free_port()
        while self.metrics_port == self.port:
            self.metrics_port = free_port()
        self.tls_port = None
        if tls:
            self.tls_port = free_port()
            while self.tls_port in (self.port, self.metrics_port):
                self.tls_port = free_port()
            tls = dict(tls, port=self.tls_port)
        self.policy_path = self.prefix / "policy.json"
        self.splits_path = self.prefix / "splits.json"
        self.write_policy(policy)
        self.splits_path.write_text(json.dumps(splits))
        template = jinja2.Template((HERE / "nginx.conf.j2").read_text(), undefined=jinja2.StrictUndefined)
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(template.render(
            prefix=str(self.prefix), module_dir=module_dir(), lua_dir=str(LUA_DIR), workers=workers,
            policy_path=str(self.policy_path), splits_path=str(self.splits_path), port=self.port,
            upstream_a=engines[0].port, upstream_b=engines[1].port, max_body=max_body,
            upstream_a_spare=spare.port if spare else None,
            read_timeout="3600s", split_name=split_name, metrics_port=self.metrics_port,
            metrics_allow=list(metrics_allow), tls=tls, syslog=syslog, payload_max=payload_max))
        self.proc = None

    def write_policy(self, policy):
        tmp = self.policy_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(policy))
        os.replace(tmp, self.policy_path)

    def _command(self, *extra):
        return [nginx_binary(), "-p", str(self.prefix), "-c", str(self.conf), *extra]

    def start(self):
        check = subprocess.run(self._command("-t"), capture_output=True, text=True, timeout=30, check=False)
        if check.returncode:
            raise RuntimeError("nginx -t failed: " + check.stderr)
        self.proc, self.stderr = start_nginx(self.prefix, self.conf, self.port)
        return self

    def workers(self):
        found = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                found.add(int(stat.parent.name))
        return found

    def reload(self, policy):
        """Write ``policy`` and reload; returns once only workers of the new generation run."""
        old = self.workers()
        self.write_policy(policy)
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = self.workers()
            if now and not now & old:
                return
            time.sleep(0.05)
        raise RuntimeError("nginx reload did not replace its workers")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc:
            self.stderr.close()

    def log_lines(self, name="audit.log"):
        path = self.prefix / name
        return path.read_text().splitlines() if path.exists() else []
