"""gateway_audit_payloads: request and answer bodies in the audit line, cut at payload_max bytes;
without it no body field at all."""
import http.client
import json

import gateway_harness as harness

MAX = 400


def post(gw, key, request):
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions", body=json.dumps(request).encode(),
                     headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def audit_lines(gw_prefix, count):
    return [json.loads(line) for line in (gw_prefix / "audit.log").read_text().splitlines()[-count:]]


def test_bodies_are_recorded_and_cut_at_the_limit(tmp_path, admin_only, answering_engines):
    key, policy = admin_only
    gw = harness.Gateway(tmp_path, policy, [harness.ONE_SPLIT], answering_engines, payload_max=MAX).start()
    small = {"model": "deepseek-r1", "messages": [{"role": "user", "content": 'a "quoted"\nprompt'}], "say": "fine"}
    large = {"model": "deepseek-r1", "messages": [{"role": "user", "content": "p" * 600}], "pad": 1000}
    stream = {"model": "deepseek-r1", "stream": True, "messages": [{"role": "user", "content": "s"}]}
    try:
        answers = [post(gw, key, small), post(gw, key, large), post(gw, key, stream)]
    finally:
        gw.stop()
    assert [status for status, _raw in answers] == [200, 200, 200]
    first, second, third = audit_lines(tmp_path, 3)
    # Exactly what the caller sent and what the engine answered, escaped into one JSON line.
    assert json.loads(first["request_body"]) == small
    assert first["response_body"].encode() == answers[0][1]
    assert first["payload_truncated"] is False
    assert json.loads(first["response_body"])["choices"][0]["message"]["content"] == "fine"
    # Past the limit: the first MAX bytes of each, and the flag.
    assert second["request_body"] == json.dumps(large)[:MAX]
    assert second["response_body"].encode() == answers[1][1][:MAX]
    assert second["payload_truncated"] is True
    # A stream: the event text as it passed (the usage chunk the gateway asked for included).
    assert third["response_body"].encode() == answers[2][1][:MAX]
    assert '"content": "hel"' in third["response_body"]
    assert third["payload_truncated"] is (len(answers[2][1]) > MAX)


def test_exactly_the_limit_is_not_truncated(tmp_path, admin_only, answering_engines):
    key, policy = admin_only
    request = {"model": "deepseek-r1", "messages": [], "say": ""}
    pad = MAX - len(json.dumps(request))
    request["say"] = "x" * pad
    assert len(json.dumps(request)) == MAX
    gw = harness.Gateway(tmp_path, policy, [harness.ONE_SPLIT], answering_engines, payload_max=MAX).start()
    try:
        status, _raw = post(gw, key, request)
    finally:
        gw.stop()
    line = audit_lines(tmp_path, 1)[0]
    assert status == 200
    assert line["request_body"] == json.dumps(request)
    # The answer is longer than MAX (it repeats the text): cut, and said so.
    assert line["payload_truncated"] is True


def test_without_payloads_no_body_field(tmp_path, admin_only, answering_engines):
    key, policy = admin_only
    gw = harness.Gateway(tmp_path, policy, [harness.ONE_SPLIT], answering_engines).start()
    try:
        status, _raw = post(gw, key, {"model": "deepseek-r1", "messages": [{"role": "user", "content": "secret"}]})
    finally:
        gw.stop()
    line = audit_lines(tmp_path, 1)[0]
    assert status == 200
    assert not {"request_body", "response_body", "payload_truncated"} & set(line)
    assert "secret" not in (tmp_path / "audit.log").read_text()
