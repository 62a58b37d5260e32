"""The scenario's client for the gateway (bounded: a fixed list of requests, 5 s timeouts).

Keys are read from files named on the command line, never passed as arguments. Prints one JSON
document. Subcommands:
  matrix POLICY KEYDIR CERTDIR
                         every principal x route x model, with the answer _gateway_policy.decide
                         gives for the compiled POLICY (the file the role wrote on the gateway);
                         "mtls" and "stranger" present CERTDIR's service-app / stranger-app client
                         certificates and no key
  burst KEYFILE LIMIT    LIMIT + 1 requests inside one clock second: which got 429
  audit MATRIX LOG SKIP   the audit lines (after the first SKIP) of the requests in MATRIX's output
  stream KEYFILE         one streamed chat completion, its events
  openai KEYFILE         the same through the official openai client (streamed)
  split POLICY SPLITS KEYDIR
                         4 completions per principal: the stand-in that answered each, and the
                         variant _gateway_policy.split_assign gives the principal
  load KEYFILE MARKER AFTER [MOST]
                         completions 0.15 s apart until the file MARKER exists, then AFTER more
                         (at most MOST, default 400, in all): status and answering stand-in of each
  tls12                  whether a TLS 1.2 handshake is refused
  cert CERT              one chat completion (deepseek-r1) presenting the client certificate
                         CERT.crt / CERT.key and no key: its status
  same-policy A B        whether two gateways' compiled policies grant the same: equal but for each
                         stored key hash's own salt and digest (each host salts its hash of a
                         shared key itself) and the generation computed over them
  router-counts BEFORE AFTER
                         from two JSON lists of {pool, metrics} (a router's /metrics text): the
                         requests each pool's router passed to each server in between
"""
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time

GATEWAY = os.environ["GATEWAY_ADDRESS"]
CA = os.environ["GATEWAY_CA"]
sys.path.insert(0, os.environ["GATEWAY_COLLECTIONS"])
from ansible_collections.onprem.deepseek.plugins.module_utils import _pki_secrets  # noqa: E402
from ansible_collections.onprem.deepseek.plugins.module_utils._gateway_policy import decide, split_assign  # noqa: E402

MODELS = ("deepseek-r1", "deepseek-coder")
PRINCIPALS = ("admin", "analyst", "former", "unknown", "anonymous", "mtls", "stranger")
# The client certificate each certificate caller presents, and the principal it stands for.
CERTIFICATES = {"mtls": "service-app", "stranger": "stranger-app"}
AUDIT_NAME = {"mtls": "service"}


def connect(cert=None):
    context = ssl.create_default_context(cafile=CA)
    if cert:
        context.load_cert_chain(cert + ".crt", cert + ".key")
    return http.client.HTTPSConnection(GATEWAY, 443, timeout=5, context=context)


def certificate_facts(cert):
    """What nginx's $ssl_client_* say of a certificate it verified."""
    def field(*args):
        out = subprocess.run(["openssl", "x509", "-noout", "-in", cert + ".crt"] + list(args),
                             capture_output=True, text=True, check=True).stdout.strip()
        return out.split("=", 1)[1]
    return {"verify": "SUCCESS", "subject": field("-subject", "-nameopt", "RFC2253"), "serial": field("-serial")}


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


def matrix(policy_path, key_dir, cert_dir):
    with open(policy_path) as f:
        policy = json.load(f)
    keys = {name: read_key(os.path.join(key_dir, "%s.key" % name)) for name in ("admin", "analyst", "former")}
    keys["unknown"] = _pki_secrets.new_key("dsk")[0]
    certs = {who: os.path.join(cert_dir, name) for who, name in CERTIFICATES.items()}
    cases = [("GET", "/v1/models", None), ("GET", "/health", None)]
    # Each route's own body: vllm-router (site B) checks it against the OpenAI schema (422 otherwise).
    bodies = {"/v1/chat/completions": {"messages": [{"role": "user", "content": "hi"}]},
              "/v1/completions": {"prompt": "hi"}, "/v1/embeddings": {"input": "hi"}}
    for route, body in bodies.items():
        cases += [("POST", route, dict(body, model=m)) for m in MODELS]
    cases.append(("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "no model"}]}))
    results = []
    for who in PRINCIPALS:
        key, cert = keys.get(who), certs.get(who)
        facts = certificate_facts(cert) if cert else None
        conn = connect(cert)
        for method, path, body in cases:
            raw = json.dumps(body).encode() if body is not None else None
            answer, data = request(conn, method, path, key, raw)
            expected = decide(policy, "Bearer " + key if key else None, method, path, raw or b"", certificate=facts)
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
        want = {"principal": AUDIT_NAME.get(r["who"], r["who"]) if proved else "", "status": r["status"],
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


def openai_stream(key_file):
    import openai

    client = openai.OpenAI(base_url="https://%s/v1" % GATEWAY, api_key=read_key(key_file), max_retries=0, timeout=10,
                           http_client=openai.DefaultHttpxClient(verify=ssl.create_default_context(cafile=CA)))
    parts, usage = [], None
    for chunk in client.chat.completions.create(model="deepseek-r1", stream=True,
                                                messages=[{"role": "user", "content": "hi"}]):
        parts += [c.delta.content or "" for c in chunk.choices]
        usage = chunk.usage.model_dump() if chunk.usage else usage
    return {"text": "".join(parts), "usage": usage}


def chat(conn, key):
    body = json.dumps({"model": "deepseek-r1", "messages": [{"role": "user", "content": "hi"}]}).encode()
    answer, _data = request(conn, "POST", "/v1/chat/completions", key, body)
    return answer.status, answer.getheader("X-Standin-Engine")


# The stand-in ports of each pool (molecule/gateway/inventory).
POOLS = {"8000": "standin", "8001": "standin", "8002": "canary"}


def split(policy_path, splits_path, key_dir):
    with open(splits_path) as f:
        release = [s for s in json.load(f) if s["name"] == "release"][0]
    out = {}
    conn = connect()
    for who in ("admin", "analyst", "burst"):
        key = read_key(os.path.join(key_dir, "%s.key" % who))
        answers = []
        for _i in range(4):
            answers.append(chat(conn, key))
            time.sleep(0.4)  # under burst's 3 requests per second
        out[who] = {"expected": split_assign(who, release), "statuses": [a[0] for a in answers],
                    "pools": sorted({POOLS.get(a[1], a[1]) for a in answers})}
    conn.close()
    return out


class Unanswered(Exception):
    """The connection ended before any byte of an answer."""


def chat_once(conn, key):
    """chat(), telling a connection that ended before any answer (Unanswered) from other failures."""
    body = json.dumps({"model": "deepseek-r1", "messages": [{"role": "user", "content": "hi"}]}).encode()
    try:
        conn.request("POST", "/v1/chat/completions", body=body,
                     headers={"Content-Type": "application/json", "Authorization": "Bearer " + key})
        answer = conn.getresponse()
    except (http.client.RemoteDisconnected, ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError,
            BrokenPipeError) as exc:
        raise Unanswered(exc)
    answer.read()
    return answer.status, answer.getheader("X-Standin-Engine")


def load(key_file, marker, after, most=400):
    """Driven by the marker, not a count, so a slow stop of the server still leaves answers after it.

    Like HTTP clients (the OpenAI SDKs among them), a request sent on a kept-alive connection that
    the gateway closed while it was idle (as nginx does to idle connections when it reloads) is sent
    again once on a new connection: nothing had been answered, so nothing had been done. Such a
    sample says "resent"; any other failure, or a second one, is the sample's failure."""
    key = read_key(key_file)
    samples = []
    conn, served = connect(), 0
    left = None
    while len(samples) < most and left != 0:
        if left is None and os.path.exists(marker):
            left = after
        if left:
            left -= 1
        start = time.time()
        resent = False
        for attempt in (1, 2):
            try:
                status, engine = chat_once(conn, key)
                served += 1
                break
            except Unanswered as exc:
                conn.close()
                conn, was_reused, served = connect(), served > 0, 0
                status, engine = 0, str(exc)
                if not was_reused or attempt == 2:
                    break
                resent = True
            except OSError as exc:
                status, engine = 0, str(exc)
                conn.close()
                conn, served = connect(), 0
                break
        samples.append({"t": round(start, 3), "status": status, "engine": engine, "resent": resent})
        time.sleep(0.15)  # under the default 10 requests per second
    conn.close()
    return samples


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


def policy_without_salts(path):
    with open(path) as f:
        policy = json.load(f)
    policy.pop("generation", None)
    policy["keys"] = {key_id: {k: v for k, v in entry.items() if k not in ("salt", "hash")}
                      for key_id, entry in policy["keys"].items()}
    return policy


def same_policy(path_a, path_b):
    a, b = policy_without_salts(path_a), policy_without_salts(path_b)
    return {"same": a == b, "differ": sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)),
            "keys": len(a["keys"])}


def processed_per_worker(metrics_text):
    """vllm_router_processed_requests_total per worker, from a router's /metrics."""
    counts = {}
    for line in metrics_text.splitlines():
        match = re.match(r'vllm_router_processed_requests_total\{worker="([^"]+)"\} (\S+)$', line)
        if match:
            counts[match.group(1)] = float(match.group(2))
    return counts


def router_counts(before_path, after_path):
    with open(before_path) as f:
        before = {item["pool"]: processed_per_worker(item["metrics"]) for item in json.load(f)}
    with open(after_path) as f:
        after = {item["pool"]: processed_per_worker(item["metrics"]) for item in json.load(f)}
    out = {}
    for pool, counts in after.items():
        sent = {worker: n - before.get(pool, {}).get(worker, 0.0) for worker, n in counts.items()}
        out[pool] = {worker: n for worker, n in sent.items() if n > 0}
    return out


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
    elif command == "openai":
        out = openai_stream(args[0])
    elif command == "split":
        out = split(*args)
    elif command == "load":
        out = load(args[0], args[1], int(args[2]), *[int(a) for a in args[3:4]])
    elif command == "same-policy":
        out = same_policy(*args)
    elif command == "router-counts":
        out = router_counts(*args)
    elif command == "cert":
        conn = connect(args[0])
        body = json.dumps({"model": "deepseek-r1", "messages": [{"role": "user", "content": "hi"}]}).encode()
        out = {"status": request(conn, "POST", "/v1/chat/completions", None, body)[0].status}
        conn.close()
    else:
        out = tls12()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
