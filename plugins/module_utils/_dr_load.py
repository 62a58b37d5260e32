# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A bounded load of authenticated chat completions for disaster recovery drills.

Each request opens a new connection (as clients that reconnect do), one in ``stream_every`` is
streamed, ``workers`` threads send until the stop file exists, ``duration_s`` passed or
``max_requests`` were sent; with ``interval_s`` each thread starts a request at most that often
(an open loop: a busy machine does not turn the load into a closed loop that takes what CPU it
finds). Each request is recorded as the ``dr_report`` filter reads it (start,
end, ok, site, streamed: the site is the answering gateway's ``X-Deepseek-Site`` header) plus the
engine that answered (the ``engine_header``, when the engines name themselves) and, for a
failure, why. ``watch`` (an argv run every ``watch_interval_s``) records each change of its output
with the time: on the sandbox, the routers' route to the global entry point.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import threading
import time
from urllib.parse import urlsplit


class DrLoadError(ValueError):
    pass


def check_params(params):
    """Refuse what cannot run, naming the option."""
    parts = urlsplit(params.get("url") or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DrLoadError("url: %r is not an http or https URL" % params.get("url"))
    for name, low, high in (("workers", 1, 64), ("stream_every", 0, 1000), ("max_requests", 1, 1000000)):
        value = params.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise DrLoadError("%s: must be an integer from %d to %d, not %r" % (name, low, high, value))
    for name, low, high in (("duration_s", 0.1, 3600.0), ("timeout_s", 0.1, 600.0), ("watch_interval_s", 0.01, 60.0),
                            ("interval_s", 0.0, 60.0)):
        value = params.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise DrLoadError("%s: must be a number from %s to %s, not %r" % (name, low, high, value))
    if not params.get("api_key"):
        raise DrLoadError("api_key: must not be empty")
    if not params.get("model"):
        raise DrLoadError("model: must not be empty")
    return params


def completion_ok(status, data, streamed):
    """A success: 200, and the stream's final [DONE] or a JSON body with choices."""
    if status != 200:
        return False
    if streamed:
        return b"data: [DONE]" in data
    try:
        return bool(json.loads(data).get("choices"))
    except (ValueError, AttributeError):
        return False


def one_request(params, context, streamed, clock=time.time):
    """One completion on a new connection: (sample, why it failed or None)."""
    parts = urlsplit(params["url"])
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    host_header = params.get("server_name") or parts.hostname
    body = {"model": params["model"], "max_tokens": params.get("max_tokens", 8),
            "messages": [{"role": "user", "content": "drill"}]}
    if streamed:
        body["stream"] = True
    start = clock()
    ok, site, engine, why = False, None, None, None
    conn = http.client.HTTPConnection(parts.hostname, port, timeout=params["timeout_s"])
    try:
        raw = socket.create_connection((parts.hostname, port), timeout=params["timeout_s"])
        conn.sock = context.wrap_socket(raw, server_hostname=host_header) if secure else raw
        conn.request("POST", parts.path or "/v1/chat/completions", body=json.dumps(body),
                     headers={"Authorization": "Bearer " + params["api_key"], "Content-Type": "application/json",
                              "Host": host_header})
        answer = conn.getresponse()
        site = answer.getheader("X-Deepseek-Site")
        if params.get("engine_header"):
            engine = answer.getheader(params["engine_header"])
        data = answer.read()
        ok = completion_ok(answer.status, data, streamed)
        why = None if ok else "status %d" % answer.status
    except (OSError, ValueError, http.client.HTTPException) as exc:
        ok, why = False, type(exc).__name__
    finally:
        conn.close()
    sample = {"start": start, "end": clock(), "ok": ok, "site": site if ok else None, "streamed": streamed}
    if params.get("engine_header"):
        sample["engine"] = engine if ok else None
    return sample, why


def watch_output(argv, timeout):
    """The stripped output of the watch command, or None when it fails."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def summarize(samples, failures, watched):
    """The run's result, samples in start order."""
    return {
        "samples": sorted(samples, key=lambda s: s["start"]),
        "failures": sorted(failures, key=lambda f: f["start"]),
        "watched": watched,
        "requests": len(samples),
        "failed_requests": sum(1 for s in samples if not s["ok"]),
    }


def run_load(params, request=one_request, watch=watch_output, monotonic=time.monotonic, clock=time.time,
             sleep=time.sleep):
    """Send the load and return summarize()'s result."""
    params = check_params(dict({"interval_s": 0.0}, **params))
    context = ssl.create_default_context(cafile=params.get("ca_path") or None)
    samples, failures, watched, lock = [], [], [], threading.Lock()
    sent = [0]  # requests begun: a slot is taken before the request, so max_requests is exact
    deadline = monotonic() + params["duration_s"]
    stop_file = params.get("stop_file") or ""

    def done():
        return (stop_file and os.path.exists(stop_file)) or monotonic() > deadline

    def pause(seconds):
        # In slices, so that the stop file ends a long interval early.
        end = monotonic() + seconds
        while not done():
            left = end - monotonic()
            if left <= 0:
                return
            sleep(min(left, 0.25))

    def worker():
        while not done():
            with lock:
                if sent[0] >= params["max_requests"]:
                    return
                number = sent[0]
                sent[0] += 1
            every = params["stream_every"]
            began = monotonic()
            sample, why = request(params, context, bool(every) and number % every == 0)
            with lock:
                samples.append(sample)
                if why:
                    failures.append({"start": sample["start"], "why": why})
            # A refused connection fails at once: do not spin on it.
            wait = max(params["interval_s"] - (monotonic() - began), 0.0 if sample["ok"] else 0.05)
            if wait > 0:
                pause(wait)

    workers_done = threading.Event()

    def watcher():
        last = object()
        while not done() and not workers_done.is_set():
            output = watch(params["watch"], 5)
            if output != last:
                with lock:
                    watched.append({"time": clock(), "output": output})
                last = output
            time.sleep(params["watch_interval_s"])

    threads = [threading.Thread(target=worker) for number in range(params["workers"])]
    watching = threading.Thread(target=watcher) if params.get("watch") else None
    for thread in threads + ([watching] if watching else []):
        thread.start()
    for thread in threads:
        thread.join()
    workers_done.set()
    if watching:
        watching.join()
    return summarize(samples, failures, watched)
