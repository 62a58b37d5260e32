# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Probe an OpenAI-compatible inference endpoint (vLLM, SGLang, TensorRT-LLM's trtllm-serve).

Read-only: GET /health and /v1/models, POST /v1/chat/completions (plain and streamed).
Private to the collection.
"""

from __future__ import annotations

import json
import re
import time

from ansible.module_utils.urls import open_url

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError


class ProbeError(Exception):
    """The endpoint did not behave as an OpenAI-compatible server serving the model should."""


_KEY_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def read_api_key(text, variable=None):
    """The API key from a key file: either the key alone, or an environment file.

    In an environment file (C(NAME=value) lines, as systemd's EnvironmentFile= reads them) the
    key is the value of ``variable``, or of the only variable whose name ends in API_KEY.
    """
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    pairs = {}
    for line in lines:
        m = _KEY_LINE.match(line)
        if m:
            value = m.group(2)
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            pairs[m.group(1)] = value
    if not pairs:
        if len(lines) != 1:
            raise ProbeError("api_key_file: expected one line with the key, or NAME=value lines")
        return lines[0].strip()
    if variable:
        if variable not in pairs:
            raise ProbeError("api_key_file: no variable %s in the file" % variable)
        return pairs[variable]
    keys = [name for name in pairs if name.endswith("API_KEY")]
    if len(keys) != 1:
        raise ProbeError("api_key_file: set api_key_variable; the file has %d variables ending in API_KEY"
                         % len(keys))
    return pairs[keys[0]]


def iter_sse(lines):
    """Yield the data payloads of a server-sent event stream (one string per event).

    Lines are bytes or str. Comment lines (starting with ':') and fields other than
    C(data) are ignored; several C(data) lines of one event are joined with newlines.
    """
    data = []
    for raw in lines:
        line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        line = line.rstrip("\r\n")
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        field, _sep, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
    if data:
        yield "\n".join(data)


def parse_stream(lines, clock, started):
    """Read a streamed chat completion; returns (ttft, content chunks, usage, finish reason).

    Fails when the stream ends without C([DONE]) or carries an error object.
    """
    ttft = None
    chunks = 0
    usage = None
    finish = None
    done = False
    for payload in iter_sse(lines):
        if payload == "[DONE]":
            done = True
            break
        try:
            event = json.loads(payload)
        except ValueError:
            raise ProbeError("stream: an event is not JSON: %.200s" % payload)
        if "error" in event:
            raise ProbeError("stream: the server sent an error: %.300s" % json.dumps(event["error"]))
        if event.get("usage"):
            usage = event["usage"]
        for choice in event.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning"):
                chunks += 1
                if ttft is None:
                    ttft = clock() - started
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    if not done:
        raise ProbeError("stream: ended without data: [DONE]")
    return ttft, chunks, usage, finish


def summarize(values):
    """min / mean / median / max of a list of numbers, rounded; None when empty."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    n = len(values)
    median = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2.0
    return {
        "min": round(values[0], 4),
        "mean": round(sum(values) / n, 4),
        "median": round(median, 4),
        "max": round(values[-1], 4),
    }


class Prober:
    """Runs the probe. ``opener`` and ``clock`` are replaceable for tests."""

    def __init__(self, params, opener=open_url, clock=time.monotonic, sleep=time.sleep):
        self.p = params
        self.base = params["url"].rstrip("/")
        if self.base.endswith("/v1"):
            self.base = self.base[:-3]
        self.opener = opener
        self.clock = clock
        self.sleep = sleep
        self.key = params.get("api_key")

    def _headers(self, json_body=False):
        headers = {"Accept": "application/json"}
        if json_body:
            headers["Content-Type"] = "application/json"
        if self.key:
            headers["Authorization"] = "Bearer %s" % self.key
        return headers

    def _open(self, method, path, body=None):
        data = json.dumps(body).encode("utf-8") if body is not None else None
        try:
            return self.opener(
                self.base + path, method=method, data=data, headers=self._headers(body is not None),
                timeout=self.p["timeout"], validate_certs=self.p["validate_certs"],
                ca_path=self.p.get("ca_path"), use_proxy=False, follow_redirects="none",
            )
        except HTTPError as exc:
            try:
                detail = exc.read().decode("utf-8", "replace")[:300]
            except Exception:  # pylint: disable=broad-except
                detail = ""
            hint = " (wrong or missing API key)" if exc.code == 401 else ""
            raise ProbeError("%s %s: HTTP %s%s %s" % (method, path, exc.code, hint, detail.strip()))
        except (URLError, OSError, ValueError) as exc:
            raise ProbeError("%s %s%s: %s" % (method, self.base, path, getattr(exc, "reason", exc)))

    def _json(self, method, path, body=None):
        resp = self._open(method, path, body)
        try:
            raw = resp.read()
        finally:
            resp.close()
        try:
            return json.loads(raw)
        except ValueError:
            raise ProbeError("%s %s: the answer is not JSON: %.200r" % (method, path, raw))

    def wait_health(self):
        """GET /health until it answers 200, for at most health_timeout seconds."""
        deadline = self.clock() + self.p["health_timeout"]
        waited = 0
        while True:
            try:
                self._open("GET", "/health").close()
                return waited
            except ProbeError as exc:
                if self.clock() >= deadline:
                    raise ProbeError("not healthy after %ss: %s" % (self.p["health_timeout"], exc))
            self.sleep(self.p["health_interval"])
            waited += 1

    def model_entries(self):
        """The entries of GET /v1/models (dicts)."""
        answer = self._json("GET", "/v1/models")
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list):
            raise ProbeError("GET /v1/models: no 'data' list in the answer")
        return [m for m in data if isinstance(m, dict)]

    def models(self):
        return [m.get("id") for m in self.model_entries()]

    def _request_body(self, model, stream):
        body = {
            "model": model,
            "messages": [{"role": "user", "content": self.p["prompt"]}],
            "max_tokens": self.p["max_tokens"],
            "temperature": self.p["temperature"],
        }
        if self.p.get("ignore_eos"):
            # vLLM and SGLang extension: always generate max_tokens, for steady figures.
            body["ignore_eos"] = True
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def chat(self, model):
        started = self.clock()
        answer = self._json("POST", "/v1/chat/completions", self._request_body(model, False))
        total = self.clock() - started
        choices = answer.get("choices") if isinstance(answer, dict) else None
        if not choices:
            raise ProbeError("POST /v1/chat/completions: no choices in the answer")
        if answer.get("model") != model:
            raise ProbeError("POST /v1/chat/completions: answered by model %r, expected %r"
                             % (answer.get("model"), model))
        usage = answer.get("usage") or {}
        tokens = usage.get("completion_tokens")
        return {
            "stream": False,
            "total_s": total,
            "ttft_s": None,
            "completion_tokens": tokens,
            "prompt_tokens": usage.get("prompt_tokens"),
            "tokens_per_s": (tokens / total) if tokens and total > 0 else None,
            "finish_reason": choices[0].get("finish_reason"),
        }

    def chat_stream(self, model):
        started = self.clock()
        resp = self._open("POST", "/v1/chat/completions", self._request_body(model, True))
        try:
            ttft, chunks, usage, finish = parse_stream(iter(resp.readline, b""), self.clock, started)
        finally:
            resp.close()
        total = self.clock() - started
        if not chunks:
            raise ProbeError("POST /v1/chat/completions (stream): no content in the stream")
        tokens = (usage or {}).get("completion_tokens") or chunks
        return {
            "stream": True,
            "total_s": total,
            "ttft_s": ttft,
            "completion_tokens": tokens,
            "prompt_tokens": (usage or {}).get("prompt_tokens"),
            "tokens_per_s": (tokens / total) if total > 0 else None,
            "finish_reason": finish,
            "chunks": chunks,
        }

    def run(self):
        result = {"url": self.base}
        if self.p["health_timeout"] > 0:
            result["health_retries"] = self.wait_health()
        entries = self.model_entries()
        names = [m.get("id") for m in entries]
        result["models"] = names
        # The directory each model was loaded from, where the engine says (vLLM and SGLang do).
        result["model_roots"] = dict((m["id"], m["root"]) for m in entries if isinstance(m.get("id"), str)
                                     and isinstance(m.get("root"), str) and m["root"])
        model = self.p.get("model")
        if model:
            if model not in names:
                raise ProbeError("served model %r not in /v1/models (%s)" % (model, ", ".join(map(str, names)) or "none"))
        else:
            if not names:
                raise ProbeError("/v1/models lists no model")
            model = names[0]
        result["model"] = model
        samples = []
        for _i in range(self.p["requests"]):
            samples.append(self.chat(model))
            if self.p["stream"]:
                samples.append(self.chat_stream(model))
        result["samples"] = [dict((k, round(v, 4) if isinstance(v, float) else v) for k, v in s.items()) for s in samples]
        result["requests"] = len(samples)
        result["latency"] = {
            "total_s": summarize([s["total_s"] for s in samples]),
            "ttft_s": summarize([s["ttft_s"] for s in samples if s["stream"]]),
            "tokens_per_s": summarize([s["tokens_per_s"] for s in samples]),
        }
        result["completion_tokens"] = sum(s["completion_tokens"] or 0 for s in samples)
        return result
