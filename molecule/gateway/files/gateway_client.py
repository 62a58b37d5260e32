"""The scenario's client for the gateway (bounded: a fixed list of requests, 5 s timeouts).

Keys are read from files named on the command line, never passed as arguments. Prints one JSON
document. Subcommands:
  matrix POLICY KEYDIR   every principal x route x model, with the answer _gateway_policy.decide
                         gives for the compiled POLICY (the file the role wrote on the gateway)
  burst KEYFILE LIMIT    LIMIT + 1 requests inside one clock second: which got 429
  audit MATRIX LOG SKIP   the audit lines (after the first SKIP) of the requests in MATRIX's output
  stream KEYFILE         one streamed chat completion, its events
  tls12                  whether a TLS 1.2 handshake is refused
"""
import http.client
import json
import os
import socket
import ssl
import sys
import time

GATEWAY = os.environ["GATEWAY_ADDRESS"]
CA = os.environ["GATEWAY_CA"]
sys.path.insert(0, os.environ["GATEWAY_COLLECTIONS"])
from ansible_collections.onprem.deepseek.plugins.module_utils import _pki_secrets  # noqa: E402
from ansible_collections.onprem.deepseek.plugins.module_utils._gateway_policy import decide  # noqa: E402

MODELS = ("deepseek-r1", "deepseek-coder")
PRINCIPALS = ("admin", "analyst", "former", "unknown", "anonymous")


def connect():
    return http.client.HTTPSConnection(GATEWAY, 443, timeout=5, context=ssl.create_default_context(cafile=CA))


def request(conn, method, path, key=None, body=None):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    conn.request(method, path, body=body, headers=headers)
    answer = conn.getresponse()
    data = answer.read()
    return answer, data


def read_key(path):
    with open(path) as f:
        return f.read().strip()


def matrix(policy_path, key_dir):
    with open(policy_path) as f:
        policy = json.load(f)
    keys = {name: read_key(os.path.join(key_dir, "mol-gw-a1-%s.key" % name)) for name in ("admin", "analyst", "former")}
    keys["unknown"] = _pki_secrets.new_key("dsk")[0]
    keys["anonymous"] = None
    cases = [("GET", "/v1/models", None), ("GET", "/health", None)]
    for route in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
        cases += [("POST", route, {"model": m, "messages": [{"role": "user", "content": "hi"}]}) for m in MODELS]
    cases.append(("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "no model"}]}))
    results = []
    conn = connect()
    for who in PRINCIPALS:
        for method, path, body in cases:
            raw = json.dumps(body).encode() if body is not None else None
            answer, data = request(conn, method, path, keys[who], raw)
            expected = decide(policy, "Bearer " + keys[who] if keys[who] else None, method, path, raw or b"")
            listed = None
            if path == "/v1/models" and answer.status == 200:
                listed = sorted(m["id"] for m in json.loads(data)["data"])
            results.append({"who": who, "method": method, "path": path, "model": (body or {}).get("model"),
                            "status": answer.status, "decide": expected[0], "ok": answer.status == expected[0],
                            "listed": listed,
                            "request_id": answer.getheader("X-Request-Id"),
                            "hsts": answer.getheader("Strict-Transport-Security")})
            # Stays well under the principals' requests_per_second.
            time.sleep(0.15)
    conn.close()
    return results


def audit(matrix_file, log_file, skip):
    """Problems with the audit lines of the matrix's requests: one line each, the right fields."""
    with open(matrix_file) as f:
        results = json.load(f)
    with open(log_file) as f:
        lines = [json.loads(line) for line in f.read().splitlines()[int(skip):]]
    problems = []
    for r in results:
        found = [line for line in lines if line["request_id"] == r["request_id"]]
        if len(found) != 1:
            problems.append("%s: %d lines" % (r["request_id"], len(found)))
            continue
        proved = r["status"] != 401 and r["path"] != "/health"
        want = {"principal": r["who"] if proved else "", "status": r["status"],
                "model": r["model"] if r["model"] and r["status"] in (200, 403) else ""}
        got = {k: found[0][k] for k in want}
        if got != want:
            problems.append({"request": r, "line": found[0]})
    return {"lines": len(lines), "problems": problems}


def burst(key_file, limit):
    key = read_key(key_file)
    conn = connect()
    request(conn, "GET", "/v1/models", key)  # opens the connection and caches the key's verdict
    for _attempt in range(3):
        time.sleep(1.05 - time.time() % 1)
        start = time.time()
        statuses = [request(conn, "GET", "/v1/models", key)[0].status for _i in range(limit + 1)]
        # All inside one second window, or the counter restarted: try again in the next second.
        if int(time.time()) == int(start):
            conn.close()
            return {"statuses": statuses, "seconds": round(time.time() - start, 3)}
    conn.close()
    return {"statuses": [], "error": "no burst fitted in one second"}


def stream(key_file):
    conn = connect()
    body = json.dumps({"model": "deepseek-r1", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    answer, data = request(conn, "POST", "/v1/chat/completions", read_key(key_file), body.encode())
    events = [line[6:] for line in data.decode().splitlines() if line.startswith("data: ")]
    return {"status": answer.status, "content_type": answer.getheader("Content-Type"),
            "request_id": answer.getheader("X-Request-Id"), "events": events}


def tls12():
    """Refused means the server's protocol alert, not any other TLS failure (a wrong CA, say)."""
    context = ssl.create_default_context(cafile=CA)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        with socket.create_connection((GATEWAY, 443), timeout=5) as sock:
            with context.wrap_socket(sock, server_hostname=GATEWAY):
                return {"refused": False}
    except ssl.SSLError as exc:
        return {"refused": "PROTOCOL_VERSION" in str(exc), "error": str(exc)}


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "matrix":
        out = matrix(*args)
    elif command == "audit":
        out = audit(*args)
    elif command == "burst":
        out = burst(args[0], int(args[1]))
    elif command == "stream":
        out = stream(args[0])
    else:
        out = tls12()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
