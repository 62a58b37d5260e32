"""Sample every instance while a roll restarts them; prints one JSON object at the end.

Environment: HOST (the node's service address), PORTS (comma-separated), OPENAI_API_KEY, MODEL,
STOP_FILE (stop a few samples after it appears), INTERVAL (seconds, default 0.5), MAX_SAMPLES
(default 600). Each sample asks every instance, at the same moment, for a one-token chat
completion (timeout TIMEOUT, default 20 s); an instance answered when it returned 200 with a choice.
Bounded: at most MAX_SAMPLES samples, so at most MAX_SAMPLES x len(PORTS) requests.
"""
import json
import os
import sys
import threading
import time
import urllib.request

HOST, MODEL, KEY = os.environ["HOST"], os.environ["MODEL"], os.environ["OPENAI_API_KEY"]
PORTS = [int(port) for port in os.environ["PORTS"].split(",")]
STOP_FILE = os.environ["STOP_FILE"]
INTERVAL = float(os.environ.get("INTERVAL", "0.5"))
MAX_SAMPLES = int(os.environ.get("MAX_SAMPLES", "600"))
TIMEOUT = float(os.environ.get("TIMEOUT", "20"))
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(port, path, body=None):
    request = urllib.request.Request(
        "http://%s:%d%s" % (HOST, port, path), data=json.dumps(body).encode() if body else None,
        headers={"Authorization": "Bearer " + KEY, "Content-Type": "application/json"})
    with OPENER.open(request, timeout=TIMEOUT) as response:
        return response.status, json.load(response)


def answered(port, into):
    try:
        status, reply = call(port, "/v1/chat/completions", {
            "model": MODEL, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1, "temperature": 0})
        into[port] = status == 200 and len(reply.get("choices", [])) == 1
    except Exception:  # pylint: disable=broad-except
        into[port] = False


def max_model_len(port):
    try:
        return call(port, "/v1/models")[1]["data"][0]["max_model_len"]
    except Exception:  # pylint: disable=broad-except
        return None


def main():
    out = {"before": {str(port): max_model_len(port) for port in PORTS}, "samples": []}
    started = time.monotonic()
    stop_seen = None
    for index in range(MAX_SAMPLES):
        due = started + index * INTERVAL
        time.sleep(max(0.0, due - time.monotonic()))
        results = {}
        threads = [threading.Thread(target=answered, args=(port, results)) for port in PORTS]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        out["samples"].append([round(due - started, 2)] + [results[port] for port in PORTS])
        if stop_seen is None and os.path.exists(STOP_FILE):
            stop_seen = index
        if stop_seen is not None and index >= stop_seen + 4:
            break
    samples = out.pop("samples")
    out["after"] = {str(port): max_model_len(port) for port in PORTS}
    out["count"] = len(samples)
    out["stopped_by_file"] = stop_seen is not None
    out["seconds"] = round(time.monotonic() - started, 1)
    out["answered"] = {str(port): sum(1 for s in samples if s[1 + i]) for i, port in enumerate(PORTS)}
    out["failed"] = {str(port): sum(1 for s in samples if not s[1 + i]) for i, port in enumerate(PORTS)}
    out["none_answered_at"] = [s[0] for s in samples if not any(s[1:])]
    # Per instance, the span of its failed samples (its restart as the prober saw it).
    out["down"] = {}
    for i, port in enumerate(PORTS):
        failed = [s[0] for s in samples if not s[1 + i]]
        out["down"][str(port)] = [failed[0], failed[-1]] if failed else []
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
