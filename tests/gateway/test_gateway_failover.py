"""An engine that fails a request before answering it: the gateway resends the request to the
pool's other engine, so the caller gets an answer, not 502 (gateway_upstream_retries)."""
import http.client
import json
import re

import gateway_harness as harness

ROLE_TEMPLATE = harness.HERE.parents[1] / "roles" / "gateway" / "templates" / "nginx.conf.j2"
# Under the default principal limit of 10 requests per second.
REQUESTS = 8


def post(gw, key):
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions",
                     body=json.dumps({"model": "deepseek-r1", "messages": [{"role": "user", "content": "hi"}]}),
                     headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.getheader("X-Engine")
    finally:
        conn.close()


def retry_lines(text):
    return [line.strip() for line in text.splitlines() if line.strip().startswith("proxy_next_upstream")]


def test_the_harness_retries_as_the_roles_default_template_does():
    role = re.sub(r"\{\{ gateway_upstream_retries \| int \+ 1 \}\}", "2",
                  ROLE_TEMPLATE.read_text().split("{% if gateway_upstream_retries | int > 0 %}", 1)[1]
                  .split("{% else %}", 1)[0])
    assert retry_lines(role) == retry_lines((harness.HERE / "nginx.conf.j2").read_text())
    assert retry_lines(role)


def test_a_completion_the_first_engine_drops_is_answered_by_the_other(tmp_path, admin_only):
    key, policy = admin_only
    dropping = harness.Engine("dropping", harness.ONE_MODEL, drop_posts=True)
    good, other_pool = harness.Engine("good", harness.ONE_MODEL), harness.Engine("b", harness.ONE_MODEL)
    gw = harness.Gateway(tmp_path, policy, [harness.ONE_SPLIT], [dropping, other_pool], spare=good).start()
    try:
        answers = [post(gw, key) for _attempt in range(REQUESTS)]
    finally:
        gw.stop()
        for engine in (dropping, good, other_pool):
            engine.stop()
    assert answers == [(200, "good")] * REQUESTS
    # The dropping engine was tried (round robin sends it about half the requests first), and
    # each request it dropped was audited once, with the answer the caller got.
    assert len(dropping.seen) >= 1
    audited = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert [line["status"] for line in audited] == [200] * REQUESTS
