"""Call the engine's routes and ports from wherever this runs; prints one JSON object.

Environment: HOST (the node's service address), MODEL (the served model name), PORTS (comma-separated engine ports), EXTRA_PORTS
(comma-separated, other TCP ports to try to connect to, optional), TIMEOUT (seconds per attempt,
default 5). No key is sent: a route that answers at all (any HTTP status) was reached.
Bounded: one request per route and port, one connection per extra port.
"""
import http.client
import json
import os
import socket
import sys

# vLLM's routes, among them those that answer without a key (the fault injection's list).
ROUTES = [
    ("GET", "/health"), ("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/invocations"),
    ("GET", "/metrics"), ("POST", "/tokenize"), ("POST", "/detokenize"), ("GET", "/docs"),
    ("GET", "/openapi.json"), ("GET", "/version"), ("GET", "/load"), ("POST", "/scale_elastic_ep"),
]
HOST = os.environ["HOST"]
MODEL = os.environ.get("MODEL", "x")
TIMEOUT = float(os.environ.get("TIMEOUT", "5"))


def outcome(exc):
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout"
    return "error: %s" % exc.__class__.__name__


def call(port, method, path):
    connection = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT)
    try:
        # One token at most: /invocations serves it as a completion.
        body = json.dumps({"model": MODEL, "prompt": "hi", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})
        connection.request(method, path, body=body if method == "POST" else None,
                           headers={"Content-Type": "application/json"})
        return connection.getresponse().status
    except OSError as exc:
        return outcome(exc)
    finally:
        connection.close()


def connect(port):
    try:
        with socket.create_connection((HOST, port), timeout=TIMEOUT):
            return "connected"
    except OSError as exc:
        return outcome(exc)


def main():
    ports = [int(p) for p in os.environ["PORTS"].split(",")]
    extra = [int(p) for p in os.environ.get("EXTRA_PORTS", "").split(",") if p]
    out = {"routes": {}, "ports": {}}
    for port in ports:
        for method, path in ROUTES:
            out["routes"]["%d %s %s" % (port, method, path)] = call(port, method, path)
    for port in extra:
        out["ports"][str(port)] = connect(port)
    json.dump(out, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
