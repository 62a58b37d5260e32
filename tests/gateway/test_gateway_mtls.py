"""Client certificates as a second kind of principal, on a TLS listener that asks for them
(ssl_verify_client optional, as the production template with gateway_mtls): every case gets the
status decide gives for the certificate as nginx reports it, and the answers the roles imply.
A throwaway root and intermediate CA made with openssl in a temporary directory stand in for the
pki role's (the CA file is its ca-chain.pem: intermediate, then root); a second root is a CA the
gateway does not trust. Everything runs on 127.0.0.1 with bounded requests."""
import collections
import http.client
import json
import re
import ssl
import subprocess
import time
from pathlib import Path

import jinja2
import pytest

import gateway_harness as harness
from ansible_collections.onprem.deepseek.plugins.module_utils import _gateway_policy as gp
from ansible_collections.onprem.deepseek.plugins.module_utils import _pki_secrets as secrets

if not harness.nginx_binary() or not harness.module_dir():
    pytest.fail("nginx and its Lua module are not installed (run tools/bootstrap)", pytrace=False)

ROLE = Path(__file__).resolve().parents[2] / "roles" / "gateway"
ORG = "onprem.deepseek"
MODELS = ["deepseek-r1", "deepseek-coder-v2"]
CHAT = "/v1/chat/completions"
ROLES = {
    "operator": {"resources": ["model/*"], "actions": ["read", "execute"]},
    "r1": {"resources": ["model/deepseek-r1"], "actions": ["read", "execute"]},
}
BIG = {"requests_per_second": 100000, "tokens_per_minute": 10 ** 9, "concurrency": 100}
# name: (common name, issuing CA, serial, extended key usage, validity in days)
CERTS = {
    "admin": ("admin-app", "intermediate", 0x1001, "clientAuth", 2),
    "analyst": ("analyst-app", "intermediate", 0x1002, "clientAuth", 2),
    # The analyst's earlier certificate: same subject, a revoked serial ($ssl_client_serial "0A").
    "analyst-old": ("analyst-app", "intermediate", 0x0A, "clientAuth", 2),
    "nobody": ("nobody-app", "intermediate", 0x1003, "clientAuth", 2),
    "stranger": ("stranger-app", "intermediate", 0x1004, "clientAuth", 2),
    # nginx prints bytes outside ASCII as \XX: the policy lists the subject that way.
    "utf8": ("caf\u00e9-app", "intermediate", 0x1009, "clientAuth", 2),
    # ssl_verify_depth 2: two CAs between certificate and root pass, three do not.
    "two-below": ("deep-app", "deep1", 0x1007, "clientAuth", 2),
    # Refused by nginx's verification: another root of the same name, a server-only certificate, an
    # expired one, one too deep.
    "foreign": ("analyst-app", "other-root", 0x1002, "clientAuth", 2),
    "server-usage": ("analyst-app", "intermediate", 0x1005, "serverAuth", 2),
    "expired": ("analyst-app", "intermediate", 0x1006, "clientAuth", -1),
    "three-below": ("deep-app", "deep2", 0x1008, "clientAuth", 2),
}


def subject(common_name):
    return "CN=%s,O=%s" % (common_name, ORG)


PRINCIPALS = [
    {"name": "admin", "roles": ["operator"], "client_certificates": [subject("admin-app"), subject("deep-app")]},
    {"name": "analyst", "roles": ["r1"], "client_certificates": [subject("analyst-app")],
     "revoked_certificates": ["00:0a"]},
    {"name": "nobody", "roles": [], "client_certificates": [subject("nobody-app")]},
    {"name": "utf8", "roles": ["r1"], "client_certificates": [subject("caf\\C3\\A9-app")]},
]

EXTENSIONS = """\
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = {usage}
subjectAltName = {san}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


def openssl(*args):
    run = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30, check=False)
    assert run.returncode == 0, (args, run.stderr)
    return run.stdout


def new_key(path):
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))


def sign(work, name, common_name, ca, serial, section, days=2, usage="clientAuth", san="DNS:client.invalid"):
    """``name``.pem signed by ``ca`` (a name in ``work``, or None: self-signed), with its key ``name``.key."""
    new_key(work / (name + ".key"))
    ext = work / (name + ".cnf")
    ext.write_text(EXTENSIONS.format(usage=usage, san=san))
    openssl("req", "-new", "-utf8", "-key", str(work / (name + ".key")), "-subj", "/O=%s/CN=%s" % (ORG, common_name),
            "-out", str(work / (name + ".csr")))
    signer = (["-CA", str(work / (ca + ".pem")), "-CAkey", str(work / (ca + ".key"))] if ca
              else ["-signkey", str(work / (name + ".key"))])
    openssl("x509", "-req", "-in", str(work / (name + ".csr")), *signer, "-set_serial", str(serial),
            "-days", str(days), "-sha256", "-extfile", str(ext), "-extensions", section,
            "-out", str(work / (name + ".pem")))
    return work / (name + ".pem")


def reported(work, name):
    """What nginx reports of certificate ``name``: $ssl_client_verify, _s_dn and _serial, from openssl."""
    check = subprocess.run(["openssl", "verify", "-CAfile", str(work / "client-ca.pem"), "-purpose", "sslclient",
                            "-verify_depth", "2", str(work / (name + ".pem"))],
                           capture_output=True, text=True, timeout=30, check=False)
    found = re.search(r"error \d+ at \d+ depth lookup: (.*)", check.stderr + check.stdout)
    verify = "SUCCESS" if check.returncode == 0 else "FAILED:" + (found.group(1) if found else "?")
    dn = openssl("x509", "-in", str(work / (name + ".pem")), "-noout", "-subject", "-nameopt", "RFC2253")
    serial = openssl("x509", "-in", str(work / (name + ".pem")), "-noout", "-serial")
    return {"verify": verify, "subject": dn.strip().split("=", 1)[1], "serial": serial.strip().split("=", 1)[1]}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    work = tmp_path_factory.mktemp("pki")
    sign(work, "root", "Test Root CA", None, 1, "v3_ca", days=3)
    sign(work, "intermediate", "Test Intermediate CA", "root", 2, "v3_ca", days=3)
    sign(work, "other-root", "Test Root CA", None, 1, "v3_ca", days=3)
    sign(work, "deep1", "Test Deep CA 1", "intermediate", 3, "v3_ca", days=3)
    sign(work, "deep2", "Test Deep CA 2", "deep1", 4, "v3_ca", days=3)
    # The pki role's ca-chain.pem is intermediate then root; the deeper CAs only test the depth.
    (work / "client-ca.pem").write_text("".join((work / (ca + ".pem")).read_text()
                                                for ca in ("deep2", "deep1", "intermediate", "root")))
    sign(work, "server", "gateway", "intermediate", 0x100, "v3_leaf", usage="serverAuth", san="IP:127.0.0.1")
    (work / "server.chain.pem").write_text((work / "server.pem").read_text() + (work / "intermediate.pem").read_text())
    for name, (common_name, issuer, serial, usage, days) in CERTS.items():
        sign(work, name, common_name, issuer, serial, "v3_leaf", days=days, usage=usage)
    return work


@pytest.fixture(scope="module")
def keys():
    made = {}
    for name in ("admin", "analyst", "unknown"):
        key, key_id = secrets.new_key("dsk")
        made[name] = {"key": key, "id": key_id, "stored": secrets.hash_key(key)}
    return made


@pytest.fixture(scope="module")
def policy(keys):
    principals = [dict(p, limits=BIG, keys=[keys[p["name"]]["stored"]] if p["name"] in keys else []) for p in PRINCIPALS]
    return gp.compile_policy(ROLES, principals, {}, MODELS)


@pytest.fixture(scope="module")
def engines():
    pair = [harness.Engine("a", MODELS), harness.Engine("b", MODELS)]
    for engine in pair:
        engine.release.set()
    yield pair
    for engine in pair:
        engine.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, pki, policy, engines):
    tls = {"certificate": str(pki / "server.chain.pem"), "key": str(pki / "server.key"),
           "client_ca": str(pki / "client-ca.pem")}
    gw = harness.Gateway(tmp_path_factory.mktemp("nginx"), policy, [], engines, tls=tls).start()
    yield gw
    gw.stop()


def call(gw, pki, method, path, cert=None, auth=None, body=None):
    """One request over TLS 1.3 to the listener that asks for a client certificate."""
    context = ssl.create_default_context(cafile=str(pki / "root.pem"))
    if cert:
        context.load_cert_chain(str(pki / (cert + ".pem")), str(pki / (cert + ".key")))
    conn = http.client.HTTPSConnection("127.0.0.1", gw.tls_port, timeout=10, context=context)
    headers = {"Connection": "close"}
    if auth is not None:
        headers["Authorization"] = auth
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def body(model):
    return json.dumps({"model": model, "messages": []}).encode()


REQUESTS = [("GET", "/v1/models", None), ("POST", CHAT, body("deepseek-r1")), ("POST", CHAT, body("deepseek-coder-v2")),
            ("GET", "/health", None), ("GET", "/nope", None), ("GET", "/v1/models?api_key=x", None)]


def test_what_openssl_says_nginx_will_report(pki):
    """The inputs decide gets below: the refused certificates fail for the reason meant."""
    seen = {name: reported(pki, name) for name in CERTS}
    assert {n: r["verify"] for n, r in seen.items() if r["verify"] != "SUCCESS"} == {
        "foreign": "FAILED:unable to get local issuer certificate",
        "server-usage": "FAILED:unsuitable certificate purpose",
        "expired": "FAILED:certificate has expired",
        "three-below": "FAILED:certificate chain too long"}
    assert seen["analyst"]["subject"] == "CN=analyst-app,O=onprem.deepseek"
    assert (seen["analyst"]["serial"], seen["analyst-old"]["serial"]) == ("1002", "0A")
    assert seen["utf8"]["subject"] == "CN=caf\\C3\\A9-app,O=onprem.deepseek"


def test_every_certificate_and_key_combination_gets_decides_status(gateway, pki, keys, policy):
    auths = {None: None, "admin-key": "Bearer " + keys["admin"]["key"], "unknown-key": "Bearer " + keys["unknown"]["key"],
             "not-bearer": "Basic YWRtaW46eA=="}
    mismatches, seen = [], collections.Counter()
    for cert in [None] + list(CERTS):
        certificate = reported(pki, cert) if cert else {"verify": "NONE", "subject": None, "serial": None}
        for auth_name, auth in auths.items():
            for method, path, raw in REQUESTS:
                expected = gp.decide(policy, auth, method, path, raw, certificate=certificate)[0]
                status = call(gateway, pki, method, path, cert, auth, raw)[0]
                seen[expected] += 1
                if status != expected:
                    mismatches.append((cert, auth_name, method, path, status, expected))
    assert mismatches == []
    assert set(seen) == {200, 400, 401, 403, 404}


@pytest.mark.parametrize("cert,expected", [
    ("admin", [200, 200, 200]),
    ("two-below", [200, 200, 200]),
    ("analyst", [200, 200, 403]),
    ("utf8", [200, 200, 403]),
    ("nobody", [403, 403, 403]),
    ("stranger", [401, 401, 401]),
    ("analyst-old", [401, 401, 401]),
    (None, [401, 401, 401]),
])
def test_a_certificate_is_its_principal_with_its_roles(gateway, pki, cert, expected):
    got = [call(gateway, pki, method, path, cert, None, raw)[0] for method, path, raw in REQUESTS[:3]]
    assert got == expected
    assert call(gateway, pki, "GET", "/health", cert)[0] == 200


@pytest.mark.parametrize("cert", ["foreign", "server-usage", "expired", "three-below"])
def test_a_certificate_that_fails_verification_gets_400_on_every_path(gateway, pki, keys, cert):
    """nginx answers before any Lua runs: the handshake succeeds, every request on it gets 400."""
    for method, path, raw in REQUESTS:
        status, _headers, answer = call(gateway, pki, method, path, cert, None, raw)
        assert (path, status) == (path, 400)
        assert b"The SSL certificate error" in answer
    assert call(gateway, pki, "GET", "/v1/models", cert, "Bearer " + keys["admin"]["key"])[0] == 400
    assert call(gateway, pki, "GET", "/v1/models", None, "Bearer " + keys["admin"]["key"])[0] == 200


def audit_entry(gw, request_id, wait=3):
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        for line in gw.log_lines():
            entry = json.loads(line)
            if entry["request_id"] == request_id:
                return entry
        time.sleep(0.05)
    raise AssertionError("no audit line for request %s" % request_id)


def test_a_key_takes_precedence_over_a_certificate(gateway, pki, keys):
    """The analyst's certificate with the admin's key is the admin; with a bad key, nobody."""
    status, headers, _raw = call(gateway, pki, "POST", CHAT, "analyst", "Bearer " + keys["admin"]["key"],
                                 body("deepseek-coder-v2"))
    entry = audit_entry(gateway, headers["x-request-id"])
    assert (status, entry["principal"], entry["credential"]) == (200, "admin", "key")
    status, headers, _raw = call(gateway, pki, "POST", CHAT, "analyst", None, body("deepseek-r1"))
    entry = audit_entry(gateway, headers["x-request-id"])
    assert (status, entry["principal"], entry["credential"], entry["roles"]) == (200, "analyst", "certificate", "r1")
    for auth in ("Bearer " + keys["unknown"]["key"], "", "Basic YWRtaW46eA=="):
        assert call(gateway, pki, "GET", "/v1/models", "admin", auth)[0] == 401
    status, headers, _raw = call(gateway, pki, "GET", "/v1/models", "stranger")
    entry = audit_entry(gateway, headers["x-request-id"])
    assert (status, entry["principal"], entry["credential"]) == (401, "", "")


def test_the_plain_listener_ignores_certificates(gateway, keys):
    """The same server without TLS: no certificate variables, keys as before."""
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        conn.request("GET", "/v1/models", headers={"Connection": "close"})
        assert conn.getresponse().status == 401
    finally:
        conn.close()


REQUESTS_TOTAL = re.compile(r'^onprem_gateway_requests_total\{route="([^"]*)",model="([^"]*)",status="(\d+)",'
                            r'principal_class="([^"]*)"\} (\d+)$', re.M)


def request_counts(gw):
    conn = http.client.HTTPConnection("127.0.0.1", gw.metrics_port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return collections.Counter({m[:4]: int(m[4]) for m in REQUESTS_TOTAL.findall(text)})


def test_metrics_count_certificate_principals_by_class(gateway, pki):
    before = request_counts(gateway)
    sent = [("admin", "operator", 200), ("analyst", "r1", 200), ("analyst-old", "revoked", 401),
            ("stranger", "anonymous", 401), (None, "anonymous", 401), ("nobody", "none", 403)]
    for cert, _klass, status in sent:
        assert call(gateway, pki, "GET", "/v1/models", cert)[0] == status
    expected = collections.Counter(("/v1/models", "none", str(status), klass) for _c, klass, status in sent)
    # nginx refuses it before the route is set.
    assert call(gateway, pki, "GET", "/v1/models", "foreign")[0] == 400
    expected[("other", "none", "400", "anonymous")] += 1
    sent.append(None)
    deadline, got = time.monotonic() + 5, None
    while time.monotonic() < deadline:
        got = request_counts(gateway) - before
        if sum(got.values()) >= len(sent):
            break
        time.sleep(0.1)
    assert got == expected


def client_certificate_lines(path, **variables):
    env = jinja2.Environment(undefined=jinja2.ChainableUndefined, trim_blocks=True)
    text = env.from_string(path.read_text()).render(**dict({"gateway_upstream_retries": 1}, **variables))
    return [line.strip() for line in text.splitlines()
            if line.strip().startswith(("ssl_client_certificate", "ssl_verify_client", "ssl_verify_depth"))]


def test_the_listener_here_asks_as_the_production_template_does():
    production = client_certificate_lines(ROLE / "templates" / "nginx.conf.j2", gateway_mtls=True,
                                          gateway_client_ca_file="/ca.pem",
                                          gateway_upstreams=[{"name": "main", "servers": ["10.0.1.21:8000"]}])
    here = client_certificate_lines(harness.HERE / "nginx.conf.j2",
                                    tls={"port": 1, "certificate": "/c.pem", "key": "/k.pem", "client_ca": "/ca.pem"})
    assert production == here == ["ssl_client_certificate /ca.pem;", "ssl_verify_client optional;", "ssl_verify_depth 2;"]
