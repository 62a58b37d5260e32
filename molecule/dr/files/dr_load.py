"""A bounded load generator for the disaster recovery drill (molecule/dr, test only).

Sends authenticated chat completions to the global entry point, a new TLS connection each (as
clients that reconnect), every --stream-every'th streamed, from --workers threads, until STOP_FILE
exists, --max-seconds pass or --max-requests were sent. Each request is recorded with its start and
end (wall-clock seconds), whether it succeeded (200 and, streamed, the final [DONE]), the site that
answered (the gateway's X-Deepseek-Site header) and whether it was streamed: the samples the
onprem.deepseek.dr_report filter reads; each failure's reason (the status, or the error) beside them. A watcher records each change of the router namespace's
route to the service address (the site routers' choice). Writes OUT as JSON.

    python3 dr_load.py URL SERVER_NAME CA_FILE KEY_FILE MODEL STOP_FILE OUT --router-netns NS --address IP
"""
import argparse
import http.client
import json
import os
import socket
import ssl
import subprocess
import threading
import time
from urllib.parse import urlsplit


def one_request(args, key, context, streamed):
    parts = urlsplit(args.url)
    body = {"model": args.model, "max_tokens": 8, "messages": [{"role": "user", "content": "drill"}]}
    if streamed:
        body["stream"] = True
    start = time.time()
    ok, site, why = False, None, None
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 443, timeout=args.timeout)
    try:
        raw = socket.create_connection((parts.hostname, parts.port or 443), timeout=args.timeout)
        conn.sock = context.wrap_socket(raw, server_hostname=args.server_name)
        conn.request("POST", parts.path, body=json.dumps(body),
                     headers={"Authorization": "Bearer " + key, "Content-Type": "application/json",
                              "Host": args.server_name})
        answer = conn.getresponse()
        site = answer.getheader("X-Deepseek-Site")
        data = answer.read()
        if answer.status == 200:
            ok = b"data: [DONE]" in data if streamed else bool(json.loads(data).get("choices"))
        why = None if ok else "status %d" % answer.status
    except (OSError, ValueError, http.client.HTTPException) as exc:
        ok, why = False, type(exc).__name__
    finally:
        conn.close()
    return {"start": start, "end": time.time(), "ok": ok, "site": site if ok else None, "streamed": streamed}, why


def route_via(netns, address):
    done = subprocess.run(["ip", "-n", netns, "-j", "route", "show", address + "/32"], capture_output=True,
                          text=True, timeout=5, check=False)
    try:
        routes = json.loads(done.stdout or "[]")
    except ValueError:
        return None
    return routes[0].get("gateway") if routes else None


def main():
    parser = argparse.ArgumentParser()
    for name in ("url", "server_name", "ca_file", "key_file", "model", "stop_file", "out"):
        parser.add_argument(name)
    parser.add_argument("--router-netns", required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stream-every", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--max-seconds", type=float, default=180.0)
    parser.add_argument("--max-requests", type=int, default=20000)
    args = parser.parse_args()
    with open(args.key_file) as handle:
        key = handle.read().strip()
    context = ssl.create_default_context(cafile=args.ca_file)
    samples, routes, failures, lock = [], [], [], threading.Lock()
    deadline = time.monotonic() + args.max_seconds

    def done():
        return os.path.exists(args.stop_file) or time.monotonic() > deadline

    def worker(index):
        while not done():
            with lock:
                if len(samples) >= args.max_requests:
                    return
                number = len(samples)
            sample, why = one_request(args, key, context, (number + index) % args.stream_every == 0)
            with lock:
                samples.append(sample)
                if why:
                    failures.append({"start": sample["start"], "why": why})
            if not sample["ok"]:
                time.sleep(0.05)

    def watcher():
        last = object()
        while not done():
            via = route_via(args.router_netns, args.address)
            if via != last:
                routes.append({"time": time.time(), "via": via})
                last = via
            time.sleep(0.05)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.workers)]
    threads.append(threading.Thread(target=watcher))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with open(args.out, "w") as out:
        json.dump({"samples": sorted(samples, key=lambda s: s["start"]), "routes": routes,
                   "failures": sorted(failures, key=lambda f: f["start"])}, out)
    print(json.dumps({"requests": len(samples), "failed": sum(1 for s in samples if not s["ok"]),
                      "route_changes": len(routes)}))


if __name__ == "__main__":
    main()
