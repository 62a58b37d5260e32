"""The audit lines also go to the site's syslog when asked (a UDP listener on loopback stands in
for it): one datagram per request, the same JSON as the file, tagged onprem_gateway."""
import http.client
import json
import socket
import time

import pytest

import gateway_harness as harness


@pytest.fixture
def listener():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def call(gw, method, path, key=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    headers = {"Authorization": "Bearer " + key} if key else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_every_audit_line_reaches_syslog(tmp_path, admin_only, answering_engines, listener):
    key, policy = admin_only
    gw = harness.Gateway(tmp_path, policy, [harness.ONE_SPLIT], answering_engines, syslog="127.0.0.1:%d" % listener.getsockname()[1]).start()
    try:
        statuses = [call(gw, "POST", "/v1/chat/completions", key, json.dumps({"model": "deepseek-r1"}).encode()),
                    call(gw, "GET", "/v1/models")]
        datagrams = [listener.recv(65536).decode() for _status in statuses]
        time.sleep(0.2)
        lines = (tmp_path / "audit.log").read_text().splitlines()
    finally:
        gw.stop()
    assert statuses == [200, 401]
    for datagram in datagrams:
        assert datagram.startswith("<190>")  # facility local7 (23) * 8 + severity info (6)
        assert " onprem_gateway: " in datagram
    # Two workers may log in either order: the second request can finish before the first is logged.
    sent = sorted((json.loads(d.split(" onprem_gateway: ", 1)[1]) for d in datagrams), key=lambda r: r["status"])
    assert sent == sorted((json.loads(line) for line in lines[-2:]), key=lambda r: r["status"])
    assert [(r["principal"], r["status"]) for r in sent] == [("admin", 200), ("", 401)]


def test_without_syslog_nothing_is_sent(tmp_path, admin_only, answering_engines, listener):
    key, policy = admin_only
    gw = harness.Gateway(tmp_path, policy, [harness.ONE_SPLIT], answering_engines).start()
    try:
        assert call(gw, "GET", "/v1/models", key) == 200
    finally:
        gw.stop()
    listener.settimeout(0.5)
    with pytest.raises(socket.timeout):
        listener.recv(65536)
