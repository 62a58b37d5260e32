"""The Grafana dashboards the monitoring role provisions (roles/monitoring/files/grafana/dashboards):
well formed, on the datasource the role provisions, and every panel's query (and every template
variable's) answered by a real Prometheus with at least one series, from a TSDB built from a
stand-in fixture shaped like the exporters' output. Also the role's Grafana tasks, run by
ansible-playbook on this machine into a temporary directory.

prometheus and promtool (Debian's prometheus package) are required: tools/bootstrap installs them.
Prometheus listens on 127.0.0.1 only, on a port the kernel picked, and is stopped after the module.
"""
import csv
import json
import math
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "unit"))
from playbook_runs import needs_playbook, run_playbook  # noqa: E402 pylint: disable=wrong-import-position

ROLE = ROOT / "roles" / "monitoring"
DASHBOARDS = sorted((ROLE / "files" / "grafana" / "dashboards").glob("*.json"))
COUNTERS = ROLE.parent / "dcgm_exporter" / "files" / "onprem-deepseek-counters.csv"
DATASOURCE_UID = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["__monitoring_grafana_datasource_uid"]

# The fixture: one hour of samples every 15 s; every query is asked at its end.
START = 1767225600  # 2026-01-01T00:00:00Z, on a 2 h block boundary
STEP = 15
POINTS = 241
END = START + STEP * (POINTS - 1)
# Grafana's own variables, as Grafana would fill them in for a panel of a few hours.
BUILTINS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
HTTP_TIMEOUT = 10
READY_WITHIN = 30


# ---------------------------------------------------------------------------------------------
# The STAND-IN fixture. Series shaped like what the real exporters serve, with the labels the
# scrape configuration adds (job, instance, host, site); the values are made up. It is not data
# of any real host: it only has to hold every metric name and label the dashboards select on.
# ---------------------------------------------------------------------------------------------
SITES = {"ds-a-gpu1": "site_a", "ds-a-gw1": "site_a", "ds-b-gpu1": "site_b", "ds-b-gw1": "site_b",
         "ds-b-store1": "site_b"}
GPU_HOSTS = ("ds-a-gpu1", "ds-b-gpu1")
GATEWAYS = ("ds-a-gw1", "ds-b-gw1")
MODEL = "deepseek-r1"
# vLLM's own bucket bounds (vllm/v1/metrics/loggers.py) and the gateway's (metrics.lua).
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0)
GATEWAY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# A busy H100's readings; the other gauge fields (XID, remap flags, clock event reasons) read 0.
DCGM_GAUGES = {"DCGM_FI_DEV_GPU_UTIL": 72, "DCGM_FI_DEV_MEM_COPY_UTIL": 35, "DCGM_FI_DEV_GPU_TEMP": 61,
               "DCGM_FI_DEV_MEMORY_TEMP": 58, "DCGM_FI_DEV_POWER_USAGE": 520, "DCGM_FI_DEV_POWER_MGMT_LIMIT": 700,
               "DCGM_FI_DEV_FB_USED": 71000, "DCGM_FI_DEV_FB_FREE": 10500, "DCGM_FI_DEV_SM_CLOCK": 1980,
               "DCGM_FI_DEV_MEM_CLOCK": 2619, "DCGM_FI_PROF_GR_ENGINE_ACTIVE": 0.7,
               "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": 0.45, "DCGM_FI_PROF_DRAM_ACTIVE": 0.55}


def scraped(host, job, instance=None, **labels):
    return dict(labels, instance=instance or host, job=job, host=host, site=SITES[host])


def dcgm_fields():
    """(field, kind) of every field the counters file enables, as dcgm-exporter would export them."""
    lines = [line for line in COUNTERS.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return [(row[0].strip(), row[1].strip()) for row in csv.reader(lines) if row[1].strip() != "label"]


def fixture_families():
    """{family: (type, [(sample name, labels, value of step i)])}; histograms are expanded by openmetrics()."""
    fam = {}

    def add(family, kind, name, labels, value):
        fam.setdefault(family, (kind, []))[1].append((name, labels, value))

    def gauge(name, labels, base, swing=0.05):
        add(name, "gauge", name, labels, lambda i, b=base, s=swing: b * (1 + s * math.sin(i / 7.0)))

    def counter(name, labels, per_second):
        # OpenMetrics wants counters named *_total; dcgm-exporter's counter fields are not, so those
        # are written as "unknown" (PromQL does not look at the type).
        family, kind = (name[:-len("_total")], "counter") if name.endswith("_total") else (name, "unknown")
        add(family, kind, name, labels, lambda i, r=per_second: r * STEP * i)

    def histogram(name, labels, per_second, bounds, median):
        add(name, "histogram", name, labels, (per_second, bounds, median))

    # dcgm-exporter 4.x: gpu, UUID, pci_bus_id, device, modelName, Hostname and the driver version
    # label field; job dcgm.
    for host in GPU_HOSTS:
        for gpu in (0, 1):
            labels = scraped(host, "dcgm", gpu=str(gpu), UUID="GPU-%08x-0000-4000-8000-%012x" % (zlib.crc32(host.encode()), gpu),
                             pci_bus_id="00000000:%02X:00.0" % (0x18 + 0x12 * gpu), device="nvidia%d" % gpu,
                             modelName="NVIDIA H100 80GB HBM3", Hostname=host, DCGM_FI_DRIVER_VERSION="550.54.15")
            for field, kind in dcgm_fields():
                if kind == "counter":
                    counter(field, labels, 0.01)
                else:
                    gauge(field, labels, DCGM_GAUGES.get(field, 0))
    # node_exporter (job node) on every host: meminfo, filesystems, disks, systemd, textfiles.
    for host in SITES:
        node = scraped(host, "node")
        add("up", "gauge", "up", node, lambda i: 1.0)
        gauge("node_memory_MemTotal_bytes", node, 1081172127744, 0)
        gauge("node_memory_MemAvailable_bytes", node, 540586063872)
        mounts = [("/dev/nvme0n1p2", "ext4", "/"), ("tmpfs", "tmpfs", "/run")]
        disks = ["nvme0n1"]
        if host in GPU_HOSTS or host == "ds-b-store1":
            mounts += [("/dev/md0", "xfs", "/srv/deepseek/hot"), ("/dev/sdb1", "xfs", "/srv/deepseek/warm"),
                       ("/dev/sdc1", "xfs", "/srv/deepseek/cold")]
            disks += ["nvme1n1", "nvme2n1", "sdb", "sdc"]
        for device, fstype, mountpoint in mounts:
            fs = dict(node, device=device, fstype=fstype, mountpoint=mountpoint)
            gauge("node_filesystem_size_bytes", fs, 7681501126656, 0)
            gauge("node_filesystem_avail_bytes", fs, 3840750563328)
            gauge("node_filesystem_files", fs, 750000000, 0)
            gauge("node_filesystem_files_free", fs, 740000000)
            gauge("node_filesystem_readonly", fs, 0, 0)
        for device in disks:
            disk = dict(node, device=device)
            for name, per_second in (("node_disk_read_bytes_total", 2e8), ("node_disk_written_bytes_total", 5e7),
                                     ("node_disk_reads_completed_total", 900), ("node_disk_writes_completed_total", 300),
                                     ("node_disk_read_time_seconds_total", 0.2), ("node_disk_write_time_seconds_total", 0.3),
                                     ("node_disk_io_time_seconds_total", 0.4)):
                counter(name, disk, per_second)
        units = ["deepseek-inference-main.service", "nvidia-fabricmanager.service"] if host in GPU_HOSTS else []
        for unit in units:
            for state in ("activating", "active", "deactivating", "failed", "inactive"):
                gauge("node_systemd_unit_state", dict(node, name=unit, state=state, type="simple"),
                      1.0 if state == "active" else 0.0, 0)
        # The pki role's textfile (roles/pki/files/pki-cert-expiry).
        cert = "gateway" if host in GATEWAYS else "inference-main"
        pki = dict(node, name=cert, path="/etc/deepseek/pki/%s.crt" % cert)
        gauge("onprem_deepseek_pki_certificate_expiry_timestamp_seconds", pki, END + 60 * 86400, 0)
        gauge("onprem_deepseek_pki_certificate_renewal_due", pki, 0, 0)
        gauge("onprem_deepseek_pki_certificate_read_ok", pki, 1, 0)
        gauge("onprem_deepseek_pki_certificate_renew_before_seconds", node, 30 * 86400, 0)
        gauge("onprem_deepseek_pki_certificate_check_timestamp_seconds", node, END - 3600, 0)
    # The DR gauge the dr role exports through node_exporter's textfile collector.
    gauge("onprem_deepseek_dr_replication_lag_seconds", scraped("ds-b-store1", "node"), 0.012)
    # vLLM (V1: model_name and engine, the data-parallel rank) on site A, SGLang (scheduler:
    # model_name, engine_type, tp_rank, pp_rank; tokenizer: model_name, engine_type) on site B; job
    # inference with the runtime label, instance host/instance.
    vllm = scraped("ds-a-gpu1", "inference", "ds-a-gpu1/main", runtime="vllm")
    add("up", "gauge", "up", vllm, lambda i: 1.0)
    engine = dict(vllm, model_name=MODEL, engine="0")
    gauge("vllm:num_requests_running", engine, 24)
    gauge("vllm:num_requests_waiting", engine, 3)
    gauge("vllm:kv_cache_usage_perc", engine, 0.62)
    for name, per_second in (("vllm:prompt_tokens_total", 4000), ("vllm:generation_tokens_total", 900),
                             ("vllm:num_preemptions_total", 0.01), ("vllm:prefix_cache_queries_total", 4000),
                             ("vllm:prefix_cache_hits_total", 1500)):
        counter(name, engine, per_second)
    for reason in ("stop", "length", "abort"):
        counter("vllm:request_success_total", dict(engine, finished_reason=reason), 1.0)
    histogram("vllm:time_to_first_token_seconds", engine, 3.0, TTFT_BUCKETS, 0.12)
    histogram("vllm:e2e_request_latency_seconds", engine, 3.0, E2E_BUCKETS, 6.0)
    histogram("vllm:request_queue_time_seconds", engine, 3.0, E2E_BUCKETS, 0.4)
    sglang = scraped("ds-b-gpu1", "inference", "ds-b-gpu1/main", runtime="sglang")
    add("up", "gauge", "up", sglang, lambda i: 1.0)
    scheduler = dict(sglang, model_name=MODEL, engine_type="unified", tp_rank="0", pp_rank="0")
    tokenizer = dict(sglang, model_name=MODEL, engine_type="unified")
    gauge("sglang:num_running_reqs", scheduler, 20)
    gauge("sglang:num_queue_reqs", scheduler, 2)
    gauge("sglang:token_usage", scheduler, 0.55)
    gauge("sglang:cache_hit_rate", scheduler, 0.3)
    counter("sglang:prompt_tokens_total", tokenizer, 3500)
    counter("sglang:generation_tokens_total", tokenizer, 800)
    histogram("sglang:time_to_first_token_seconds", tokenizer, 2.5, TTFT_BUCKETS, 0.15)
    histogram("sglang:e2e_request_latency_seconds", tokenizer, 2.5, E2E_BUCKETS, 7.0)
    # The gateway's /metrics (roles/gateway/files/lua/onprem_gateway/metrics.lua), job gateway.
    for host in GATEWAYS:
        gw = scraped(host, "gateway")
        add("up", "gauge", "up", gw, lambda i: 1.0)
        for route, status, klass, per_second in (("/v1/chat/completions", "200", "analyst", 5.0),
                                                 ("/v1/chat/completions", "502", "analyst", 0.05),
                                                 ("/v1/completions", "429", "ops", 0.1),
                                                 ("/v1/models", "200", "ops", 0.2),
                                                 ("/health", "200", "anonymous", 1.0),
                                                 ("other", "404", "anonymous", 0.01)):
            model = MODEL if route.startswith("/v1/c") else "none"
            counter("onprem_gateway_requests_total",
                    dict(gw, route=route, model=model, status=status, principal_class=klass), per_second)
        for route, model in (("/v1/chat/completions", MODEL), ("/v1/completions", MODEL), ("/health", "none")):
            histogram("onprem_gateway_request_duration_seconds", dict(gw, route=route, model=model), 2.0,
                      GATEWAY_BUCKETS, 4.0 if model != "none" else 0.002)
        counter("onprem_gateway_limit_rejections_total", dict(gw, limit="requests_per_second", principal_class="ops"), 0.1)
        counter("onprem_gateway_upstream_failures_total", dict(gw, upstream="main"), 0.05)
        for kind, per_second in (("prompt", 3000), ("completion", 700)):
            counter("onprem_gateway_tokens_total", dict(gw, model=MODEL, kind=kind), per_second)
    # blackbox_exporter's probes of each site's gateway, labelled as the monitoring role's scrape
    # plan labels them (job deepseek_gateway_probe; instance and host the gateway host, its site).
    for site, host in (("site_a", "gw-a1"), ("site_b", "gw-b1")):
        probe = {"instance": host, "host": host, "job": "deepseek_gateway_probe", "site": site}
        gauge("probe_success", probe, 1, 0)
        gauge("probe_duration_seconds", probe, 0.08)
        gauge("probe_ssl_earliest_cert_expiry", probe, END + 45 * 86400, 0)
    return fam


def _labels(labels):
    return "{" + ",".join('%s="%s"' % (k, str(v).replace("\\", "\\\\").replace('"', '\\"'))
                          for k, v in sorted(labels.items())) + "}"


def _number(value):
    return repr(float(value))


def openmetrics(families):
    """The fixture as OpenMetrics text with a timestamp on every sample, as promtool imports it."""
    out = []
    for family, (kind, samples) in sorted(families.items()):
        out.append("# TYPE %s %s" % (family, kind))
        if kind != "histogram":
            for name, labels, value in samples:
                text = name + _labels(labels)
                out += ["%s %s %d" % (text, _number(value(i)), START + STEP * i) for i in range(POINTS)]
            continue
        for name, labels, (per_second, bounds, median) in samples:
            for i in range(POINTS):
                count = per_second * STEP * i
                stamp = START + STEP * i
                for bound in bounds:
                    share = bound / (bound + median)  # a made-up distribution with this median
                    out.append("%s_bucket%s %s %d" % (name, _labels(dict(labels, le=repr(float(bound)))),
                                                      _number(math.floor(count * share)), stamp))
                out.append("%s_bucket%s %s %d" % (name, _labels(dict(labels, le="+Inf")), _number(count), stamp))
                out.append("%s_sum%s %s %d" % (name, _labels(labels), _number(count * median), stamp))
                out.append("%s_count%s %s %d" % (name, _labels(labels), _number(count), stamp))
    out.append("# EOF")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Prometheus on loopback
# ---------------------------------------------------------------------------------------------
class Prometheus:
    """Queries to one Prometheus on 127.0.0.1, each with a timeout, never through a proxy."""

    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _call(self, path, data=None):
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        try:
            with self.opener.open(self.base + path, data=body, timeout=HTTP_TIMEOUT) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as exc:  # 400 and 422 carry Prometheus' error
            try:
                return json.load(exc)
            finally:
                exc.close()

    def ready(self):
        try:
            with self.opener.open(self.base + "/-/ready", timeout=2) as answer:
                return answer.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def query(self, expr):
        """(error or None, number of series) of an instant query at the fixture's end."""
        answer = self._call("/api/v1/query", {"query": expr, "time": str(END)})
        if answer.get("status") != "success":
            return "%s: %s" % (answer.get("errorType"), answer.get("error")), 0
        result = answer["data"]["result"]
        return None, (len(result) if answer["data"]["resultType"] in ("vector", "matrix") else 1)

    def metric_names(self):
        answer = self._call("/api/v1/label/__name__/values?" + urllib.parse.urlencode({"start": START, "end": END}))
        assert answer.get("status") == "success", answer
        return set(answer["data"])


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def tool(name):
    path = shutil.which(name)
    if not path:
        pytest.fail("%s is not installed: run tools/bootstrap (it installs Debian's prometheus package)" % name)
    return path


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    promtool, binary = tool("promtool"), tool("prometheus")
    base = tmp_path_factory.mktemp("prometheus")
    (base / "stand-in-exporters.om").write_text(openmetrics(fixture_families()))
    made = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "stand-in-exporters.om", "data"], cwd=base,
                          capture_output=True, text=True, timeout=120, check=False)
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    (base / "prometheus.yml").write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
    port = free_port()
    log_path = base / "prometheus.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([binary, "--config.file=prometheus.yml", "--storage.tsdb.path=data",
                                 "--storage.tsdb.retention.time=100y", "--web.listen-address=127.0.0.1:%d" % port],
                                cwd=base, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        prom = Prometheus(port)
        deadline = time.monotonic() + READY_WITHIN
        while not prom.ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("Prometheus did not become ready within %d s:\n%s"
                            % (READY_WITHIN, log_path.read_text(errors="replace")[-3000:]))
            time.sleep(0.25)
        yield prom
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def known_names(prometheus):
    return prometheus.metric_names()


# ---------------------------------------------------------------------------------------------
# The checker
# ---------------------------------------------------------------------------------------------
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
                "unless", "atan2", "inf", "nan"}


def metric_names(expr):
    """The metric names a PromQL expression selects (not functions, keywords, labels or strings)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", "{}", text)
    text = re.sub(r"\[[^\]]*\]", "[]", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = re.findall(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:]|\s*\()", text)
    return {name for name in names if name.lower() not in PROMQL_WORDS}


def panels_of(doc):
    """Every panel, those inside collapsed rows too."""
    for panel in doc.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def variable_values(doc):
    """A value for each template variable: the match-all of a query variable, else its default."""
    values = {}
    for var in doc.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            values[var["name"]] = var.get("allValue") or ".*"
        else:
            current = var.get("current", {}).get("value")
            values[var["name"]] = current if isinstance(current, str) else str(var.get("query", ""))
    return values


def substitute(expr, values):
    """expr with Grafana's $var, ${var}, ${var:fmt} and [[var]] filled in; raises KeyError on an unknown one."""
    def fill(match):
        name = match.group(1) or match.group(2) or match.group(3)
        if name in BUILTINS:
            return BUILTINS[name]
        return values[name]
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", fill, expr)


def variable_queries(doc):
    """(variable name, PromQL) for each query variable: label_values(selector, label) as a count by label."""
    out = []
    for var in doc.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var.get("query")
        query = query.get("query", "") if isinstance(query, dict) else query
        found = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query or "")
        out.append((var["name"], "count by (%s) (%s)" % (found.group(2), found.group(1)) if found else query))
    return out


def check_dashboard(doc, prom, known):
    """The problems of one dashboard's queries against the fixture's Prometheus, each naming the
    dashboard, the panel (or variable) and the metric or error."""
    problems = []
    title = doc.get("title", "?")
    values = variable_values(doc)
    queries = [("variable $%s" % name, expr) for name, expr in variable_queries(doc)]
    queries += [("panel %r" % panel.get("title"), target.get("expr", ""))
                for panel in panels_of(doc) if panel.get("type") != "row" for target in panel.get("targets", [])]
    for where, raw in queries:
        try:
            expr = substitute(raw, values)
        except KeyError as exc:
            problems.append("%s: %s: unknown variable $%s" % (title, where, exc.args[0]))
            continue
        for name in sorted(metric_names(expr) - known):
            problems.append("%s: %s: metric %s has no series in the fixture" % (title, where, name))
        error, series = prom.query(expr)
        if error:
            problems.append("%s: %s: Prometheus refused the query: %s" % (title, where, error))
        elif not series:
            problems.append("%s: %s: the query returned no series: %s" % (title, where, expr))
    return problems


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------
def load(path):
    return json.loads(path.read_text())


def test_the_dashboards_are_there():
    names = {path.name for path in DASHBOARDS}
    assert names == {"onprem-deepseek-%s.json" % name for name in ("gpu", "engines", "gateway", "storage", "dr")}


def test_each_dashboard_has_a_unique_uid_and_title():
    docs = [load(path) for path in DASHBOARDS]
    uids = [doc.get("uid") for doc in docs]
    titles = [doc.get("title") for doc in docs]
    assert len(set(uids)) == len(uids), uids
    assert len(set(titles)) == len(titles), titles
    for path, doc in zip(DASHBOARDS, docs):
        # Grafana's limit on a uid; the file name is what the role's stale-file removal matches.
        assert re.fullmatch(r"[a-z0-9-]{1,40}", doc["uid"]), path.name
        assert path.name == doc["uid"] + ".json"
        assert doc["title"].strip(), path.name
        assert isinstance(doc.get("schemaVersion"), int), path.name
        assert "id" not in doc or doc["id"] is None, "%s: a provisioned dashboard carries no database id" % path.name


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_each_panel_queries_the_provisioned_datasource(path):
    doc = load(path)
    panels = [p for p in panels_of(doc) if p.get("type") != "row"]
    assert panels, path.name
    ids = [p.get("id") for p in panels_of(doc)]
    assert len(set(ids)) == len(ids), "%s: panel ids repeat" % path.name
    for panel in panels:
        where = "%s: panel %r" % (path.name, panel.get("title"))
        assert panel.get("title"), where
        assert set(panel.get("gridPos", {})) >= {"x", "y", "w", "h"}, where
        assert panel.get("datasource", {}).get("uid") == DATASOURCE_UID, where
        targets = panel.get("targets") or []
        assert targets, where + ": no target"
        for target in targets:
            assert target.get("expr", "").strip(), where + ": a target without expr"
            assert target.get("datasource", {}).get("uid") == DATASOURCE_UID, where
    for var in doc.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            assert var.get("datasource", {}).get("uid") == DATASOURCE_UID, "%s: variable %s" % (path.name, var["name"])
    for panel in panels_of(doc):
        if panel.get("type") == "row":
            assert not panel.get("targets"), "%s: row %r has targets" % (path.name, panel.get("title"))


def test_metric_names_reads_names_not_functions_labels_or_strings():
    expr = ('sum by (site, instance) (rate(vllm:prompt_tokens_total{model_name=~"a.*", le="0.1"}[5m] offset 1h)) '
            '/ on (instance) group_left (host) node_memory_MemTotal_bytes and up == bool 1e6 '
            'or label_replace(increase(DCGM_FI_DEV_XID_ERRORS[10m]), "counter", "crc_flit", "", "") '
            'or histogram_quantile(0.95, x_bucket) - time() or vector(0)')
    assert metric_names(expr) == {"vllm:prompt_tokens_total", "node_memory_MemTotal_bytes", "up",
                                  "DCGM_FI_DEV_XID_ERRORS", "x_bucket"}


def test_substitute_fills_in_grafanas_variables():
    assert substitute('rate(x{site=~"$site", h=~"${host:regex}", r="[[r]]"}[$__rate_interval])',
                      {"site": ".*", "host": "a", "r": "b"}) == 'rate(x{site=~".*", h=~"a", r="b"}[5m])'
    with pytest.raises(KeyError):
        substitute("x{a=\"$nope\"}", {})


def test_the_fixture_has_every_dcgm_field_the_counters_file_enables(known_names):
    assert {field for field, _kind in dcgm_fields()} <= known_names


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_every_query_runs_and_returns_series(path, prometheus, known_names):
    assert check_dashboard(load(path), prometheus, known_names) == []


def test_the_checker_catches_an_unknown_metric_a_syntax_error_and_a_label_typo(prometheus, known_names):
    def target(expr):
        return {"refId": "A", "expr": expr, "datasource": {"type": "prometheus", "uid": DATASOURCE_UID}}
    doc = {"title": "Synthetic", "uid": "synthetic",
           "templating": {"list": [{"name": "site", "type": "query", "allValue": ".*",
                                    "query": "label_values(up, site)"},
                                   {"name": "nowhere", "type": "query",
                                    "query": {"query": "label_values(onprem_no_such_family, site)"}}]},
           "panels": [{"id": 1, "type": "timeseries", "title": "Fine", "targets": [target('up{site=~"$site"}')]},
                      {"id": 2, "type": "timeseries", "title": "Unknown metric",
                       "targets": [target("rate(onprem_no_such_metric_total[$__rate_interval])")]},
                      {"id": 3, "type": "timeseries", "title": "Syntax", "targets": [target("sum(rate(up[5m])")]},
                      {"id": 4, "type": "timeseries", "title": "Label typo", "targets": [target('up{jbo="node"}')]},
                      {"id": 5, "type": "stat", "title": "Unknown variable", "targets": [target('up{x="$nope"}')]}]}
    problems = check_dashboard(doc, prometheus, known_names)
    assert problems == [
        "Synthetic: variable $nowhere: metric onprem_no_such_family has no series in the fixture",
        "Synthetic: variable $nowhere: the query returned no series: count by (site) (onprem_no_such_family)",
        "Synthetic: panel 'Unknown metric': metric onprem_no_such_metric_total has no series in the fixture",
        "Synthetic: panel 'Unknown metric': the query returned no series: rate(onprem_no_such_metric_total[5m])",
        "Synthetic: panel 'Syntax': Prometheus refused the query: bad_data: "
        'invalid parameter "query": 1:17: parse error: unclosed left parenthesis',
        "Synthetic: panel 'Label typo': the query returned no series: up{jbo=\"node\"}",
        "Synthetic: panel 'Unknown variable': unknown variable $nope",
    ]


# ---------------------------------------------------------------------------------------------
# The role's Grafana tasks (roles/monitoring/tasks/grafana.yml), run on this machine with every
# path under tmp_path.
# ---------------------------------------------------------------------------------------------
PLAY = """---
- name: The monitoring role's Grafana tasks alone
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run them
      ansible.builtin.include_role:
        name: onprem.deepseek.monitoring
        tasks_from: grafana.yml
"""
PROMETHEUS_URL = "http://10.0.2.11:9090"


def run_grafana_tasks(tmp_path, base, check=False):
    (tmp_path / "grafana.yml").write_text(PLAY)
    extra = {"monitoring_grafana_provisioning_dir": str(base / "provisioning"),
             "monitoring_grafana_dashboards_dir": str(base / "dashboards"),
             "monitoring_endpoint": {"prometheus_url": PROMETHEUS_URL, "alertmanager_url": "http://127.0.0.1:9093",
                                     "data_dir": "/var/lib/prometheus/metrics2"},
             "ansible_python_interpreter": sys.executable}
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    proc = run_playbook(["-i", "localhost,", "-c", "local", "-e", "@vars.json", "grafana.yml"]
                        + (["--check"] if check else []), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    recap = [line for line in proc.stdout.splitlines() if line.startswith("localhost")][-1]
    return int(recap.split("changed=")[1].split()[0])


@needs_playbook
def test_the_grafana_tasks_write_the_files_once_and_remove_stale_dashboards(tmp_path):
    base = tmp_path / "host"
    assert run_grafana_tasks(tmp_path, base) > 0
    datasource = yaml.safe_load((base / "provisioning" / "datasources" / "onprem-deepseek.yml").read_text())
    assert datasource["apiVersion"] == 1
    [source] = datasource["datasources"]
    assert (source["uid"], source["type"], source["url"]) == (DATASOURCE_UID, "prometheus", PROMETHEUS_URL)
    provider = yaml.safe_load((base / "provisioning" / "dashboards" / "onprem-deepseek.yml").read_text())
    [entry] = provider["providers"]
    assert entry["type"] == "file" and entry["options"]["path"] == str(base / "dashboards")
    written = sorted((base / "dashboards").iterdir())
    assert [p.name for p in written] == [p.name for p in DASHBOARDS]
    for path in written:
        assert path.read_bytes() == (ROLE / "files" / "grafana" / "dashboards" / path.name).read_bytes()
    for path in written + [base / "provisioning" / "datasources" / "onprem-deepseek.yml"]:
        assert path.stat().st_mode & 0o7777 == 0o644 and path.stat().st_uid == 0, path
    for path in (base / "dashboards", base / "provisioning" / "datasources", base / "provisioning" / "dashboards"):
        assert path.stat().st_mode & 0o7777 == 0o755, path

    assert run_grafana_tasks(tmp_path, base) == 0

    # A dashboard an older release shipped goes; the site's own files stay.
    (base / "dashboards" / "onprem-deepseek-retired.json").write_text("{}")
    (base / "dashboards" / "site-own.json").write_text("{}")
    assert run_grafana_tasks(tmp_path, base) == 1
    assert not (base / "dashboards" / "onprem-deepseek-retired.json").exists()
    assert (base / "dashboards" / "site-own.json").exists()


@needs_playbook
def test_the_grafana_tasks_in_check_mode_predict_changes_and_write_nothing(tmp_path):
    base = tmp_path / "host"
    base.mkdir()
    assert run_grafana_tasks(tmp_path, base, check=True) > 0
    assert list(base.iterdir()) == []


@needs_playbook
def test_the_preflight_refuses_bad_grafana_paths_and_urls_naming_the_variable(tmp_path):
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
             "monitoring_prometheus_listen": "10.0.2.11:9090"}
    hosts = {"bad": dict(local, monitoring_grafana_provisioning_dir="etc/grafana/provisioning",
                         monitoring_grafana_dashboards_dir="/var/lib/grafana/my dashboards",
                         monitoring_grafana_datasource_url="ftp://10.0.2.11:9090"),
             "good": dict(local, monitoring_grafana_datasource_url="https://prometheus.site-b.bank.internal/")}
    (tmp_path / "hosts.json").write_text(json.dumps({"all": {"hosts": hosts}}))
    (tmp_path / "preflight.yml").write_text(
        "---\n- name: The monitoring role's read-only preflight\n  hosts: all\n  gather_facts: true\n"
        "  gather_subset: [min]\n  tasks:\n    - name: Run it\n      ansible.builtin.include_role:\n"
        "        name: onprem.deepseek.monitoring\n        tasks_from: preflight.yml\n")
    proc = run_playbook(["-i", "hosts.json", "--check", "preflight.yml"], cwd=tmp_path,
                        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    report = json.loads(proc.stdout)
    failed = {host: [r.get("msg", "") for r in res.get("results", []) if r.get("failed")]
              for task in report["plays"][0]["tasks"] for host, res in task["hosts"].items() if res.get("failed")}
    assert set(failed) == {"bad"}, failed
    assert failed["bad"] == [
        "monitoring_grafana_provisioning_dir: 'etc/grafana/provisioning' must be an absolute path of letters, digits and ._/-",
        "monitoring_grafana_dashboards_dir: '/var/lib/grafana/my dashboards' must be an absolute path of letters, digits and ._/-",
        "monitoring_grafana_datasource_url: 'ftp://10.0.2.11:9090' must be empty or an http:// or https:// URL",
    ]
