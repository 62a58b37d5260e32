#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Requests per second and latency of the API gateway compared with a plain nginx reverse proxy.

Everything runs on 127.0.0.1 from a temporary directory, with three nginx instances:

  stand-in  answers POST /v1/chat/completions with a fixed small answer that carries usage
            (nginx `return`), so the engine is never the bottleneck; plain HTTP, keep-alive
  gateway   roles/gateway/templates/nginx.conf.j2 as the role renders it (TLS with the tls_policy
            defaults, upstream keep-alive), the role's Lua package, and a policy compiled by
            _gateway_policy.compile_policy: one principal with a dsk_ key stored as its scrypt
            hash, limits that never refuse, the audit log on. Only the paths (pid, logs, temp
            files) move into the temporary directory; the certificate is a throwaway self-signed
            P-256 one made with openssl.
  plain     nginx proxying to the same stand-in with the gateway's TLS lines, no Lua, and the
            combined access log a stock nginx writes

wrk sends the same authenticated, authorized POST (HTTPS, keep-alive) to gateway and plain in
turns, after a warm-up of each; the medians over the rounds are printed with the ratio
gateway/plain and the targets (>= 5000 QPS with audit on, p99 <= 20 ms, ratio >= 0.7) as
information. A figure is refused when wrk saw a socket error or any answer was not 2xx (wrk's
count and the logs' statuses). The audit log must hold one line per request wrk counted, plus at
most one per connection for requests in flight when wrk stopped.

If vllm-router is on PATH, its overhead per request in front of the stand-in is measured too
(one connection, plain HTTP); otherwise that part says it was skipped.

wrk and the three nginx share this machine's CPUs: figures are per host and only
comparable between runs on the same, otherwise idle, host.

Usage: tools/bench/gateway.py [-t 2] [-c 32] [-d 10s] [--rounds 2] [--warmup 2s] [--keep]
Exit status: 0 when the figures were measured (met targets or not), 1 when a figure was refused,
the audit log does not match, or a setup step failed, 2 when wrk or nginx is missing.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jinja2
import jinja2.nativetypes
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "roles" / "gateway" / "templates"
MODEL = "deepseek-r1"
PRINCIPAL = "bench"
CHAT = "/v1/chat/completions"
REQUEST = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16},
                     separators=(",", ":"))
ANSWER = json.dumps({"id": "cmpl-bench", "object": "chat.completion", "created": 0, "model": MODEL,
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."},
                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}},
                    separators=(",", ":"))
TARGET_QPS, TARGET_P99_MS, TARGET_RATIO = 5000.0, 20.0, 0.7
# One wrk run may last at most this long; a longer -d is refused rather than left unbounded.
MAX_RUN_S = 300.0
_TIME_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


class BenchError(Exception):
    """A setup or run step failed; the message says which."""


# --- wrk output -----------------------------------------------------------------------------

def wrk_time_ms(text):
    """A wrk time ("812.00us", "1.20ms", "2.00s", "1.00m") in milliseconds."""
    found = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h)", text.strip())
    if not found:
        raise ValueError("not a wrk time: %r" % text)
    return float(found.group(1)) * _TIME_MS[found.group(2)]


def parse_wrk(text):
    """wrk --latency output as qps, p50_ms, p99_ms, avg_ms, requests, duration_s, non2xx, errors.

    non2xx is wrk's "Non-2xx or 3xx responses" (which counts statuses from 400 up) and errors the
    sum of its socket errors (connect, read, write, timeout); both lines are absent when zero.
    """
    def need(pattern, what):
        found = re.search(pattern, text, re.M)
        if not found:
            raise ValueError("wrk output without %s" % what)
        return found

    time_re = r"([0-9.]+(?:us|ms|s|m|h))"
    done = need(r"^\s*(\d+) requests in " + time_re + ",", "the requests line")
    figures = {
        "qps": float(need(r"^Requests/sec:\s+([0-9.]+)\s*$", "Requests/sec").group(1)),
        "p50_ms": wrk_time_ms(need(r"^\s+50%\s+" + time_re + r"\s*$", "the 50% line (run with --latency)").group(1)),
        "p99_ms": wrk_time_ms(need(r"^\s+99%\s+" + time_re + r"\s*$", "the 99% line (run with --latency)").group(1)),
        "avg_ms": wrk_time_ms(need(r"^\s+Latency\s+" + time_re + r"\s", "the Latency line").group(1)),
        "requests": int(done.group(1)),
        "duration_s": wrk_time_ms(done.group(2)) / 1000.0,
        "non2xx": 0,
        "errors": 0,
    }
    found = re.search(r"^\s*Non-2xx or 3xx responses:\s+(\d+)\s*$", text, re.M)
    if found:
        figures["non2xx"] = int(found.group(1))
    found = re.search(r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$", text, re.M)
    if found:
        figures["errors"] = sum(int(n) for n in found.groups())
    return figures


def refusal(figures):
    """Why a run's figures cannot be reported, or None."""
    why = []
    if figures["errors"]:
        why.append("%d socket errors" % figures["errors"])
    if figures["non2xx"]:
        why.append("%d answers of 400 or more (wrk)" % figures["non2xx"])
    if figures.get("log_non2xx"):
        why.append("%d non-2xx statuses in the log" % figures["log_non2xx"])
    # 499: wrk closed a connection with a request in flight when it stopped; only those may be.
    if figures.get("log_499", 0) > max(0, figures.get("logged", 0) - figures["requests"]):
        why.append("%d requests given up by wrk (499) while it ran" % figures["log_499"])
    if not figures["requests"]:
        why.append("no request completed")
    return ", ".join(why) or None


def audit_matches(logged, requests, connections):
    """One line per counted request; each connection may add one request wrk did not count."""
    return requests <= logged <= requests + connections


def duration_s(text):
    """A wrk -d value ("10", "10s", "1m") in seconds."""
    return wrk_time_ms(text if re.search(r"[a-z]$", text) else text + "s") / 1000.0


def wrk_duration(text):
    """An argparse type: a -d value of at most MAX_RUN_S."""
    try:
        seconds = duration_s(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a wrk duration (10s, 1m): %r" % text) from None
    if not 0 < seconds <= MAX_RUN_S:
        raise argparse.ArgumentTypeError("duration must be above 0 and at most %ds" % MAX_RUN_S)
    return text


# --- nginx instances --------------------------------------------------------------------------

TEMP_PATHS = "".join("    %s_temp_path {prefix}/%s;\n" % (k, k)
                     for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
# The rendered production configuration, with only its host paths moved into the prefix.
# Workers run as nginx's default user, as in tests/gateway: the master opens logs and loads
# the policy and the Lua code before it forks.
PROD_LOCAL = (
    ("user www-data;\n", ""),
    ("pid /run/nginx.pid;", "pid {prefix}/nginx.pid;"),
    ("error_log /var/log/nginx/error.log notice;", "error_log {prefix}/error.log notice;"),
    ("    server_tokens off;\n", "    server_tokens off;\n" + TEMP_PATHS),
)

STANDIN_CONF = """\
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log notice;
events {{
    worker_connections 1024;
}}
http {{
    server_tokens off;
    access_log off;
{temp_paths}
    server {{
        listen 127.0.0.1:{port};
        # The gateway and the plain proxy reuse their upstream connections without limit.
        keepalive_requests 1000000;
        default_type application/json;
        location = {chat} {{
            return 200 '{answer}';
        }}
        location = /v1/models {{
            return 200 '{models}';
        }}
        location = /health {{
            return 200 '{{"status":"ok"}}';
        }}
    }}
}}
"""

PLAIN_CONF = """\
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log notice;
events {{
    worker_connections 1024;
}}
http {{
    server_tokens off;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
{temp_paths}
    access_log {prefix}/access.log combined;
    upstream standin {{
        server 127.0.0.1:{standin};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port} ssl default_server;
        server_name _;
{tls}
        client_max_body_size {max_body};
        client_body_buffer_size {max_body};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_buffering off;
        proxy_read_timeout {read_timeout};
        location / {{
            proxy_pass http://standin;
        }}
    }}
}}
"""


def localise(rendered, prefix):
    """The production configuration with its host paths in ``prefix``; each must match once."""
    for old, new in PROD_LOCAL:
        if rendered.count(old) != 1:
            raise BenchError("roles/gateway/templates/nginx.conf.j2 no longer has %r once: update "
                             "PROD_LOCAL in tools/bench/gateway.py" % old.strip())
        rendered = rendered.replace(old, new.format(prefix=prefix))
    return rendered


def tls_lines(rendered):
    """The TLS directives of the gateway's server block, for the plain proxy."""
    lines = [line for line in rendered.splitlines()
             if re.match(r"\s*(ssl_\w+ |add_header Strict-Transport-Security )", line)]
    if not any("ssl_certificate " in line for line in lines) or not any("ssl_protocols " in line for line in lines):
        raise BenchError("no ssl_certificate or ssl_protocols line in the rendered gateway configuration")
    return "\n".join(lines)


def yaml_vars(path, context=None):
    """A role's defaults or vars file, string values rendered as Ansible would (native types)."""
    raw = yaml.safe_load(path.read_text()) or {}
    env = jinja2.nativetypes.NativeEnvironment(undefined=jinja2.StrictUndefined)
    context = dict(context or {})
    for name, value in raw.items():
        if isinstance(value, str) and "{{" in value:
            value = env.from_string(value).render(**context)
        context[name] = value
    return context


def render_production(harness, work, ports, taken, policy_path, splits_path):
    """nginx.conf as the role renders it (engine-keys.conf written beside it), and its variables."""
    tls = yaml_vars(ROOT / "roles" / "tls_policy" / "vars" / "main.yml",
                    yaml_vars(ROOT / "roles" / "tls_policy" / "defaults" / "main.yml"))
    # The role's defaults as written: the ones the templates use are plain values.
    defaults = yaml.safe_load((ROOT / "roles" / "gateway" / "defaults" / "main.yml").read_text())
    template = (TEMPLATES / "nginx.conf.j2").read_text()
    vars_ = dict(defaults, **tls)
    # Every listen address the template has goes to a free loopback port.
    for name in sorted(set(re.findall(r"\b(gateway_\w*listen\w*)\b", template))):
        vars_[name] = "127.0.0.1:%d" % (ports[name] if name in ports else new_port(harness, taken))
    vars_.update({
        "ansible_managed": "rendered by tools/bench/gateway.py",
        "__gateway_module_dir": harness.module_dir(),
        "__gateway_lua_dir": str(harness.LUA_DIR),
        "__gateway_policy_file": str(policy_path),
        "__gateway_splits_file": str(splits_path),
        "__gateway_engine_keys_file": str(work / "engine-keys.conf"),
        "gateway_audit_log": str(work / "audit.log"),
        "gateway_metrics_allow": ["127.0.0.1"],
        "gateway_upstreams": [{"name": "main", "servers": ["127.0.0.1:%d" % ports["standin"]]}],
        "pki_issued": {vars_["gateway_tls_certificate"]: {
            "chain": str(work / "cert.pem"), "key_file": str(work / "key.pem"), "key_engine_uri": ""}},
    })
    # The template module's defaults: trim_blocks on.
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, keep_trailing_newline=True)
    keys = env.from_string((TEMPLATES / "engine-keys.conf.j2").read_text()).render(**vars_)
    (work / "engine-keys.conf").write_text(keys)
    return localise(env.from_string(template).render(**vars_), work), vars_


def new_port(harness, taken):
    """A free loopback port not yet in ``taken``, added to it."""
    while True:
        port = harness.free_port()
        if port not in taken:
            taken.add(port)
            return port


def nginx_class(harness):
    class Nginx(harness.Gateway):
        """harness.Gateway's start and stop for a configuration given as text."""

        def __init__(self, prefix, conf_text, port):  # pylint: disable=super-init-not-called
            self.prefix, self.port, self.proc = Path(prefix), port, None
            self.prefix.mkdir(parents=True, exist_ok=True)
            self.conf = self.prefix / "nginx.conf"
            self.conf.write_text(conf_text)

    return Nginx


class LogTail:
    """The lines a log gains from now on, once nginx has stopped writing to it."""

    def __init__(self, path):
        self.path = Path(path)
        self.offset = self._size()

    def _size(self):
        return self.path.stat().st_size if self.path.exists() else 0

    def new_lines(self, settle_s=0.3, limit_s=5.0):
        deadline, last, stable_since = time.monotonic() + limit_s, -1, time.monotonic()
        while time.monotonic() < deadline:
            size = self._size()
            if size != last:
                last, stable_since = size, time.monotonic()
            elif time.monotonic() - stable_since >= settle_s:
                break
            time.sleep(0.05)
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(last - self.offset)
        self.offset = last
        return data.decode("utf-8", "replace").splitlines()


def audit_status(line):
    return int(json.loads(line)["status"])


def combined_status(line):
    # $remote_addr - $remote_user [$time_local] "$request" $status ...
    return int(line.split('"')[2].split()[0])


# --- runs -------------------------------------------------------------------------------------

def run_wrk(url, script, threads, connections, duration):
    seconds = duration_s(duration)
    command = ["wrk", "-t%d" % threads, "-c%d" % connections, "-d%s" % duration, "--latency", "-s", str(script), url]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=False)
    except subprocess.TimeoutExpired:
        raise BenchError("wrk ran 30 s past its -d: %s" % " ".join(command)) from None
    if done.returncode:
        raise BenchError("wrk failed (%d) against %s: %s" % (done.returncode, url,
                                                           (done.stdout + done.stderr).strip()))
    return done.stdout


def measure(target, script, args, label, duration=None):
    tail = LogTail(target["log"])
    text = run_wrk(target["url"], script, args.threads, args.connections, duration or args.duration)
    # Kept with the logs (--keep) to check a figure against wrk's own words.
    (target["log"].parent / ("wrk-%s.txt" % label)).write_text(text)
    figures = parse_wrk(text)
    lines = tail.new_lines()
    statuses = [target["status"](line) for line in lines]
    figures["logged"] = len(lines)
    figures["log_499"] = statuses.count(499)
    figures["log_non2xx"] = sum(1 for status in statuses if not 200 <= status < 300 and status != 499)
    figures["refused"] = refusal(figures)
    return figures


def check_once(port, key):
    """One request over TLS: the answer must be the stand-in's, the protocol is printed."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # a throwaway certificate
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    try:
        conn.request("POST", CHAT, body=REQUEST, headers={"Authorization": "Bearer " + key,
                                                          "Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
        if response.status != 200 or json.loads(body).get("usage") is None:
            raise BenchError("127.0.0.1:%d answered %d: %r" % (port, response.status, body[:300]))
        return conn.sock.version()
    finally:
        conn.close()


def wait_http(port, path, proc, limit_s):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return True
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        time.sleep(0.2)
    return False


def router_overhead(harness, standin_port, script, work, duration):
    """vllm-router's added latency per request at one connection, or a line saying why not."""
    exe = shutil.which("vllm-router")
    if not exe:
        return "router: skipped: vllm-router is not installed (not on PATH)"
    port = harness.free_port()
    command = [exe, "--worker-urls", "http://127.0.0.1:%d" % standin_port, "--host", "127.0.0.1",
               "--port", str(port), "--policy", "round_robin"]
    with open(work / "router.log", "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        if not wait_http(port, "/health", proc, 60):
            return "router: skipped: vllm-router did not answer /health within 60 s (%s; log %s)" % (
                " ".join(command), work / "router.log")
        runs = {}
        for name, url in (("direct", "http://127.0.0.1:%d%s" % (standin_port, CHAT)),
                          ("router", "http://127.0.0.1:%d%s" % (port, CHAT))):
            runs[name] = parse_wrk(run_wrk(url, script, 1, 1, duration))
            if refusal(runs[name]):
                return "router: refused (%s): %s" % (name, refusal(runs[name]))
        direct, routed = runs["direct"], runs["router"]
        return ("router: vllm-router adds %.3f ms per request (mean at one connection: %.3f ms direct, %.3f ms "
                "through it; p50 %.3f vs %.3f ms)" % (routed["avg_ms"] - direct["avg_ms"], direct["avg_ms"],
                                                      routed["avg_ms"], direct["p50_ms"], routed["p50_ms"]))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# --- output -----------------------------------------------------------------------------------

def summarise(runs):
    """Medians over the rounds, or the first refusal."""
    for figures in runs:
        if figures["refused"]:
            return {"refused": figures["refused"]}
    return {key: statistics.median(f[key] for f in runs) for key in ("qps", "p50_ms", "p99_ms")}


def report(results, args, protocol, connections):
    failed = False
    print("\n%-5s %-8s %10s %9s %9s %10s %10s" % ("round", "target", "QPS", "p50 ms", "p99 ms", "requests",
                                                 "log lines"))
    for round_no, name, figures in results:
        print("%-5d %-8s %10.0f %9.2f %9.2f %10d %10d%s" % (
            round_no, name, figures["qps"], figures["p50_ms"], figures["p99_ms"], figures["requests"],
            figures["logged"], "  REFUSED: " + figures["refused"] if figures["refused"] else ""))
    summary = {name: summarise([f for _r, n, f in results if n == name]) for name in ("gateway", "plain")}
    print("\nmedians over %d round(s) (wrk -t%d -c%d -d%s, %s, keep-alive, 127.0.0.1):" % (
        args.rounds, args.threads, args.connections, args.duration, protocol))
    labels = {"gateway": "gateway (key, RBAC, limits, audit)", "plain": "plain nginx reverse proxy"}
    for name in ("gateway", "plain"):
        s = summary[name]
        if "refused" in s:
            failed = True
            print("  %-36s REFUSED: %s" % (labels[name], s["refused"]))
        else:
            print("  %-36s %10.0f QPS   p50 %7.2f ms   p99 %7.2f ms" % (
                labels[name], s["qps"], s["p50_ms"], s["p99_ms"]))
    gw, plain = summary["gateway"], summary["plain"]
    ratio = None
    if "refused" not in gw and "refused" not in plain:
        ratio = gw["qps"] / plain["qps"]
        print("  %-36s %10.2f" % ("ratio gateway/plain (QPS)", ratio))
        print("  %-36s %10.2f ms at p50, %.2f ms at p99" % ("gateway added latency", gw["p50_ms"] - plain["p50_ms"],
                                                           gw["p99_ms"] - plain["p99_ms"]))
    print("\ntargets (information; this host's figures):")
    if "refused" in gw:
        print("  gateway figures refused: no target checked")
    else:
        rows = [("QPS >= %d, audit on" % TARGET_QPS, "%.0f" % gw["qps"], gw["qps"] >= TARGET_QPS),
                ("p99 <= %d ms" % TARGET_P99_MS, "%.2f" % gw["p99_ms"], gw["p99_ms"] <= TARGET_P99_MS)]
        if ratio is not None:
            rows.append(("ratio >= %.1f" % TARGET_RATIO, "%.2f" % ratio, ratio >= TARGET_RATIO))
        for label, figure, ok in rows:
            print("  %-28s %10s   %s" % (label, figure, "met" if ok else "NOT met"))
    print("\naudit log (gateway runs, warm-up excluded):")
    for round_no, name, figures in results:
        if name != "gateway":
            continue
        ok = audit_matches(figures["logged"], figures["requests"], connections)
        failed = failed or not ok
        print("  round %d: %d lines for %d requests wrk counted (+%d in flight when it stopped, at most %d): %s" % (
            round_no, figures["logged"], figures["requests"], figures["logged"] - figures["requests"], connections,
            "ok" if ok else "MISMATCH"))
    return failed


# --- setup ------------------------------------------------------------------------------------

def import_modules():
    """tests/gateway's harness, and this tree as ansible_collections.onprem.deepseek."""
    sys.path.insert(0, str(ROOT / "tests" / "gateway"))
    import gateway_harness  # pylint: disable=import-outside-toplevel

    tree = None
    if ROOT.parts[-3:] == ("ansible_collections", "onprem", "deepseek"):
        sys.path.insert(0, str(ROOT.parents[2]))
    else:
        tree = Path(tempfile.mkdtemp(prefix="onprem-deepseek-bench-"))
        (tree / "ansible_collections" / "onprem").mkdir(parents=True)
        (tree / "ansible_collections" / "onprem" / "deepseek").symlink_to(ROOT)
        sys.path.insert(0, str(tree))
    from ansible_collections.onprem.deepseek.plugins.module_utils import (  # pylint: disable=import-outside-toplevel
        _gateway_policy, _pki_secrets)
    return gateway_harness, _gateway_policy, _pki_secrets, tree


def make_certificate(work):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(work / "key.pem"), "-out", str(work / "cert.pem"), "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)


def write_script(work, key):
    # The key stays in this file (mode 0600), not on wrk's command line.
    path = work / "request.lua"
    path.write_text('wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n'
                    'wrk.headers["Authorization"] = %s\n' % (json.dumps(REQUEST), json.dumps("Bearer " + key)))
    path.chmod(0o600)
    return path


def run(args):
    harness, gp, secrets, tree = import_modules()
    if not harness.nginx_binary() or not harness.module_dir():
        print("nginx or its Lua module is missing (tools/bootstrap installs them)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="onprem-gateway-bench-"))
    started = []
    try:
        Nginx = nginx_class(harness)
        taken = set()
        ports = {name: new_port(harness, taken) for name in ("standin", "gateway_listen_https", "plain")}
        gw_dir, plain_dir, standin_dir = work / "gateway", work / "plain", work / "standin"
        gw_dir.mkdir()
        make_certificate(gw_dir)
        key, _key_id = secrets.new_key("dsk")
        roles = {"operator": {"resources": ["model/*"], "actions": ["read", "execute"]}}
        high = {"requests_per_second": gp.LIMIT_MAX, "tokens_per_minute": gp.LIMIT_MAX, "concurrency": gp.LIMIT_MAX}
        policy = gp.compile_policy(roles, [{"name": PRINCIPAL, "roles": ["operator"], "keys": [secrets.hash_key(key)],
                                            "limits": high}], {}, [MODEL])
        (gw_dir / "policy.json").write_text(json.dumps(policy))
        (gw_dir / "splits.json").write_text("[]")
        gw_conf, vars_ = render_production(harness, gw_dir, ports, taken, gw_dir / "policy.json",
                                           gw_dir / "splits.json")
        models = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}, separators=(",", ":"))
        standin = Nginx(standin_dir, STANDIN_CONF.format(
            prefix=standin_dir, temp_paths=TEMP_PATHS.format(prefix=standin_dir), port=ports["standin"], chat=CHAT,
            answer=ANSWER, models=models), ports["standin"])
        plain = Nginx(plain_dir, PLAIN_CONF.format(
            prefix=plain_dir, temp_paths=TEMP_PATHS.format(prefix=plain_dir), standin=ports["standin"],
            port=ports["plain"], tls=tls_lines(gw_conf), max_body=vars_["gateway_client_max_body_size"],
            read_timeout=vars_["gateway_read_timeout"]), ports["plain"])
        gateway = Nginx(gw_dir, gw_conf, ports["gateway_listen_https"])
        for server in (standin, gateway, plain):
            started.append(server)
            server.start()
        protocol = check_once(ports["gateway_listen_https"], key)
        if check_once(ports["plain"], key) != protocol:
            raise BenchError("the gateway and the plain proxy negotiated different TLS versions")
        script = write_script(work, key)
        targets = {
            "gateway": {"url": "https://127.0.0.1:%d%s" % (ports["gateway_listen_https"], CHAT),
                        "log": gw_dir / "audit.log", "status": audit_status},
            "plain": {"url": "https://127.0.0.1:%d%s" % (ports["plain"], CHAT),
                      "log": plain_dir / "access.log", "status": combined_status},
        }
        print("gateway benchmark on %s (%d CPUs), all on 127.0.0.1, nginx worker_processes auto:" % (
            os.uname().nodename, os.cpu_count()))
        print("  gateway  roles/gateway/templates/nginx.conf.j2 and the Lua package; one principal, its dsk_ key "
              "stored as an scrypt hash; audit log on")
        print("  plain    nginx reverse proxy with the gateway's TLS lines, no Lua, combined access log")
        print("  engine   nginx stand-in answering a fixed chat completion with usage (HTTP, upstream keep-alive)")
        print("  client   wrk -t%d -c%d -d%s --latency, POST %s with the key, %s, keep-alive; %d round%s in "
              "alternating order after a %s warm-up of each" % (
                  args.threads, args.connections, args.duration, CHAT, protocol, args.rounds,
                  "" if args.rounds == 1 else "s", args.warmup))
        for name in ("gateway", "plain"):
            measure(targets[name], script, args, "warmup", duration=args.warmup)
        results = []
        for round_no in range(1, args.rounds + 1):
            order = ("gateway", "plain") if round_no % 2 else ("plain", "gateway")
            for name in order:
                results.append((round_no, name, measure(targets[name], script, args, "round%d" % round_no)))
        failed = report(results, args, protocol, args.connections)
        print()
        print(router_overhead(harness, ports["standin"], script, work, args.router_duration))
        if args.keep:
            print("kept: %s" % work)
        return 1 if failed else 0
    except (BenchError, subprocess.SubprocessError, RuntimeError, ValueError, OSError) as exc:
        print("gateway benchmark failed: %s" % exc, file=sys.stderr)
        if args.keep:
            print("kept: %s" % work, file=sys.stderr)
        return 1
    finally:
        for server in reversed(started):
            server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        if tree:
            shutil.rmtree(tree, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-t", "--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("-c", "--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("-d", "--duration", type=wrk_duration, default="10s", help="each measured run (default 10s)")
    parser.add_argument("--rounds", type=int, default=2, help="gateway and plain runs each, alternating (default 2)")
    parser.add_argument("--warmup", type=wrk_duration, default="2s", help="unmeasured run of each first (default 2s)")
    parser.add_argument("--router-duration", type=wrk_duration, default="5s",
                        help="each of the two vllm-router runs, when it is installed (default 5s)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (configurations, logs)")
    args = parser.parse_args(argv)
    # Each gateway connection holds one upstream connection too: stay within worker_connections.
    if not 1 <= args.threads <= args.connections <= 512 or not 1 <= args.rounds <= 10:
        parser.error("need 1 <= threads <= connections <= 512 and 1 <= rounds <= 10")
    for tool in ("wrk", "openssl"):
        if not shutil.which(tool):
            print("%s is not installed (Debian: apt-get install %s; tools/bootstrap installs it)" % (tool, tool),
                  file=sys.stderr)
            return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
