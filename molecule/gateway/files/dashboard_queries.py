"""Runs every panel query of a deployed dashboard against the scenario's live Prometheus.

dashboard_queries.py DASHBOARD.json PROMETHEUS_URL
Prints one JSON document: the queries that failed (with Prometheus' error) and the metric names
the dashboard uses that Prometheus has no series of. Bounded: one request per query, 5 s timeouts.
"""
import json
import re
import sys
import urllib.parse
import urllib.request

BUILTINS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
# Words in PromQL that are not metric names.
KEYWORDS = {"sum", "rate", "irate", "increase", "avg", "max", "min", "count", "by", "without", "on", "ignoring",
            "group_left", "group_right", "histogram_quantile", "le", "and", "or", "unless", "offset", "bool",
            "topk", "bottomk", "time", "clamp_min", "clamp_max", "abs", "vector", "scalar", "avg_over_time",
            "max_over_time", "min_over_time", "delta", "deriv", "label_replace", "absent", "changes",
            "resets", "count_over_time", "sum_over_time", "quantile", "round", "sort", "sort_desc", "inf", "nan"}


def panels(items):
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def get(url, params):
    with urllib.request.urlopen(url + "?" + urllib.parse.urlencode(params), timeout=5) as answer:
        return json.load(answer)


def main(path, prometheus):
    with open(path) as f:
        doc = json.load(f)
    values = {var["name"]: ".*" for var in doc.get("templating", {}).get("list", [])}
    known = set(get(prometheus + "/api/v1/label/__name__/values", {})["data"])
    failed, names = [], set()
    for panel in panels(doc["panels"]):
        for target in panel.get("targets", []):
            expr = re.sub(r"\$\{?(\w+)\}?", lambda m: BUILTINS.get(m.group(1), values.get(m.group(1), m.group(0))),
                          target["expr"])
            try:
                get(prometheus + "/api/v1/query", {"query": expr})
            except urllib.error.HTTPError as exc:
                failed.append({"panel": panel.get("title"), "expr": expr, "error": exc.read().decode()[:300]})
            stripped = re.sub(r'\{[^}]*\}|"[^"]*"|\[[^\]]*\]', " ", expr)
            names.update(n for n in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", stripped)
                         if n not in KEYWORDS and not re.fullmatch(r"\d.*|[a-z]+_[a-z]+\(", n))
    by_clause = set(re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", json.dumps(doc)))
    labels = {label.strip() for group in by_clause for label in group.split(",")}
    missing = sorted(n for n in names - labels if n not in known and (":" in n or "_" in n))
    print(json.dumps({"queries": sum(len(p.get("targets", [])) for p in panels(doc["panels"])),
                      "failed": failed, "missing": missing}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
