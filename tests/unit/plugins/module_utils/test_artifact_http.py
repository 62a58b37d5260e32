"""HTTP(S) sources against a loopback http.server: verify, truncate, fallback, site CA and mTLS."""
import datetime
import functools
import hashlib
import ipaddress
import json
import gzip
import os
import socket
import ssl
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils._artifact import ArtifactError, run
from ansible_collections.onprem.deepseek.plugins.module_utils._artifact_source import build_source, request_kwargs

MAX_REQUESTS = 50


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.server.requests.append(("HEAD", self.path))
        super().do_HEAD()

    def do_GET(self):
        self.server.requests.append(("GET", self.path))
        if len(self.server.requests) > MAX_REQUESTS:
            self.send_error(429)
            return
        if self.path in self.server.fail:
            self.send_error(self.server.fail[self.path])
            return
        cut = self.server.truncate.get(self.path)
        if cut is None:
            super().do_GET()
            return
        # announce the full length, send less, hang up: what a dropped connection looks like
        with open(self.translate_path(self.path), "rb") as handle:
            data = handle.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[:cut])
        self.wfile.flush()
        self.close_connection = True

    def end_headers(self):
        if self.path in self.server.encodings:
            self.send_header("Content-Encoding", self.server.encodings[self.path])
        super().end_headers()


def _serve(root, tls=None):
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    server.daemon_threads = True
    server.requests = []
    server.truncate = {}
    server.fail = {}
    server.encodings = {}
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


def _stop(server, thread):
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    assert not thread.is_alive()


FILES = {
    "config.json": b'{"model_type": "deepseek_v3"}',
    "model-00001-of-00001.safetensors": bytes(range(256)) * 600,
    "tokenizer/tokenizer.json": b'{"version": "1.0"}',
}


def publish(root, version, sums=False):
    vdir = root / "m" / version
    entries = []
    for rel, data in FILES.items():
        (vdir / rel).parent.mkdir(parents=True, exist_ok=True)
        (vdir / rel).write_bytes(data)
        entries.append({"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    if sums:
        (vdir / "SHA256SUMS").write_text("".join("%s *%s\n" % (e["sha256"], e["path"]) for e in entries))
    else:
        (vdir / "manifest.json").write_text(json.dumps({"model": "m", "version": version, "files": entries}))
    return vdir


@pytest.fixture
def http_store(tmp_path):
    (tmp_path / "srv").mkdir()
    (tmp_path / "hot").mkdir()
    server, thread = _serve(tmp_path / "srv")
    try:
        yield tmp_path, server
    finally:
        _stop(server, thread)


def _params(tmp_path, server, version, scheme="http", **kw):
    p = dict(name="m", version=version, dest=str(tmp_path / "hot"), keep=2, reserve_bytes=0,
             source="%s://127.0.0.1:%d/" % (scheme, server.server_address[1]),
             state="present", timeout=5, use_proxy=False, validate_certs=True, chunk_size=8192)
    p.update(kw)
    return p


def test_http_stage_and_idempotence(http_store):
    tmp_path, server = http_store
    publish(tmp_path / "srv", "v1")
    res = run(_params(tmp_path, server, "v1"))
    assert res["changed"] is True
    assert res["fetched"] == list(FILES)
    assert res["bytes"] == sum(len(d) for d in FILES.values())
    live = tmp_path / "hot" / "m" / "current"
    assert (live / "model-00001-of-00001.safetensors").read_bytes() == FILES["model-00001-of-00001.safetensors"]
    # the manifest first, then one GET per file (files are fetched side by side, in any order)
    assert server.requests[0] == ("GET", "/m/v1/manifest.json")
    assert sorted(server.requests[1:]) == [("GET", "/m/v1/config.json"),
                                           ("GET", "/m/v1/model-00001-of-00001.safetensors"),
                                           ("GET", "/m/v1/tokenizer/tokenizer.json")]
    server.requests.clear()
    assert run(_params(tmp_path, server, "v1"))["changed"] is False
    assert server.requests == [("GET", "/m/v1/manifest.json")]


def test_http_truncated_response_fails_and_keeps_current(http_store):
    tmp_path, server = http_store
    publish(tmp_path / "srv", "v1")
    run(_params(tmp_path, server, "v1"))
    publish(tmp_path / "srv", "v2")
    server.truncate["/m/v2/model-00001-of-00001.safetensors"] = 100000
    with pytest.raises(ArtifactError) as err:
        run(_params(tmp_path, server, "v2"))
    assert str(err.value) == "file model-00001-of-00001.safetensors: truncated (expected 153600 bytes, got 100000)"
    assert os.readlink(tmp_path / "hot" / "m" / "current") == "versions/v1"
    assert sorted(os.listdir(tmp_path / "hot" / "m" / "versions")) == ["v1"]
    assert not [n for n in os.listdir(tmp_path / "hot" / "m") if n.startswith(".staging-")]


def test_http_corrupted_file(http_store):
    tmp_path, server = http_store
    vdir = publish(tmp_path / "srv", "v1")
    (vdir / "tokenizer" / "tokenizer.json").write_bytes(b'{"version": "1.1"}')
    with pytest.raises(ArtifactError) as err:
        run(_params(tmp_path, server, "v1"))
    assert str(err.value) == "file tokenizer/tokenizer.json: sha256 mismatch (expected %s, got %s)" % (
        hashlib.sha256(b'{"version": "1.0"}').hexdigest(), hashlib.sha256(b'{"version": "1.1"}').hexdigest())
    assert not (tmp_path / "hot" / "m" / "current").exists()


def test_http_missing_file_and_missing_version(http_store):
    tmp_path, server = http_store
    vdir = publish(tmp_path / "srv", "v1")
    (vdir / "config.json").unlink()
    with pytest.raises(ArtifactError) as err:
        run(_params(tmp_path, server, "v1"))
    assert str(err.value) == "file config.json: cannot fetch http://127.0.0.1:%d/m/v1/config.json: HTTP 404 File not found" % (
        server.server_address[1])
    with pytest.raises(ArtifactError) as err:
        run(_params(tmp_path, server, "v9"))
    assert str(err.value) == "no manifest.json or SHA256SUMS at http://127.0.0.1:%d/m/v9/" % server.server_address[1]


def test_http_sha256sums_fallback_uses_head_for_sizes(http_store):
    tmp_path, server = http_store
    publish(tmp_path / "srv", "v1", sums=True)
    res = run(_params(tmp_path, server, "v1"), check_mode=True)
    assert res["would_fetch"] == list(FILES)
    assert res["bytes"] == sum(len(d) for d in FILES.values())
    assert server.requests[:2] == [("GET", "/m/v1/manifest.json"), ("GET", "/m/v1/SHA256SUMS")]
    assert [r for r in server.requests if r[0] == "HEAD"] == [("HEAD", "/m/v1/" + p) for p in FILES]
    assert run(_params(tmp_path, server, "v1"))["changed"] is True
    assert os.readlink(tmp_path / "hot" / "m" / "current") == "versions/v1"


def _source(server, **kw):
    url = "http://127.0.0.1:%d/" % server.server_address[1]
    return build_source(url, "m", "v1", request_kwargs(dict(timeout=5, use_proxy=False, **kw)))


def test_http_source_hands_over_the_stored_bytes_of_a_gzip_labelled_file(http_store):
    tmp_path, server = http_store
    vdir = publish(tmp_path / "srv", "v1")
    packed = gzip.compress(b'{"vocab": 1}' * 100)
    (vdir / "vocab.json.gz").write_bytes(packed)
    # what Apache's "AddEncoding gzip .gz" does: the file as stored, labelled Content-Encoding: gzip
    server.encodings["/m/v1/vocab.json.gz"] = "gzip"
    src = _source(server)
    resp, length = src.open("vocab.json.gz")
    try:
        data = resp.read()
    finally:
        resp.close()
    assert (data, length) == (packed, len(packed))
    assert src.size("vocab.json.gz") == len(packed)
    assert src.size("tokenizer/tokenizer.json") == len(FILES["tokenizer/tokenizer.json"])
    assert src.size("missing.bin") is None
    assert server.requests == [("GET", "/m/v1/vocab.json.gz"), ("HEAD", "/m/v1/vocab.json.gz"),
                               ("HEAD", "/m/v1/tokenizer/tokenizer.json"), ("HEAD", "/m/v1/missing.bin")]


def test_http_server_error_on_the_manifest_is_no_reason_to_fall_back(http_store):
    tmp_path, server = http_store
    publish(tmp_path / "srv", "v1", sums=True)
    server.fail["/m/v1/manifest.json"] = 500
    with pytest.raises(ArtifactError) as err:
        _source(server).read_manifest()
    assert str(err.value) == "cannot fetch http://127.0.0.1:%d/m/v1/manifest.json: HTTP 500 Internal Server Error" % (
        server.server_address[1])
    assert server.requests == [("GET", "/m/v1/manifest.json")]
    del server.fail["/m/v1/manifest.json"]
    fmt, raw = _source(server).read_manifest()
    assert fmt == "sha256sums" and raw == (tmp_path / "srv" / "m" / "v1" / "SHA256SUMS").read_bytes()


def test_http_source_connection_refused():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # nothing listens on the port now
    src = build_source("http://127.0.0.1:%d" % port, "m", "v1", request_kwargs({"timeout": 5, "use_proxy": False}))
    with pytest.raises(ArtifactError) as err:
        src.read_manifest()
    assert str(err.value) == "cannot fetch http://127.0.0.1:%d/m/v1/manifest.json: [Errno 111] Connection refused" % port
    with pytest.raises(ArtifactError) as err:
        src.open("config.json")
    assert str(err.value) == (
        "file config.json: cannot fetch http://127.0.0.1:%d/m/v1/config.json: [Errno 111] Connection refused" % port)
    assert src.size("config.json") is None


# -- TLS with the site CA and mutual TLS ---------------------------------------


def _pki(tmp_path):
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject, key, issuer, issuer_key, ca=False, server=False):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(hours=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            builder = builder.add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        else:
            builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer_key.public_key()), critical=False)
            usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def write(name, obj, key=None):
        (tmp_path / name).write_bytes(obj.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            (tmp_path / (name + ".key")).write_bytes(key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return str(tmp_path / name)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("site-ca", ca_key, "site-ca", ca_key, ca=True)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    cli_key = ec.generate_private_key(ec.SECP256R1())
    return {
        "ca": write("ca.pem", ca),
        "server": write("server.pem", cert("artifacts", srv_key, "site-ca", ca_key, server=True), srv_key),
        "client": write("client.pem", cert("node01", cli_key, "site-ca", ca_key), cli_key),
    }


@pytest.fixture
def https_store(tmp_path):
    pki = _pki(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["server"], pki["server"] + ".key")
    ctx.load_verify_locations(pki["ca"])
    ctx.verify_mode = ssl.CERT_REQUIRED
    (tmp_path / "srv").mkdir()
    (tmp_path / "hot").mkdir()
    server, thread = _serve(tmp_path / "srv", tls=ctx)
    try:
        yield tmp_path, server, pki
    finally:
        _stop(server, thread)


def test_https_with_site_ca_and_client_cert(https_store):
    tmp_path, server, pki = https_store
    publish(tmp_path / "srv", "v1")
    with pytest.raises(ArtifactError) as err:
        run(_params(tmp_path, server, "v1", scheme="https"))
    assert str(err.value).startswith("cannot fetch https://127.0.0.1:%d/m/v1/manifest.json:" % server.server_address[1])
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value) or "certificate verify failed" in str(err.value)
    # server trusted, but no client certificate: the server refuses the handshake
    with pytest.raises(ArtifactError) as err:
        run(_params(tmp_path, server, "v1", scheme="https", ca_path=pki["ca"]))
    assert str(err.value).startswith("cannot fetch https://127.0.0.1:%d/m/v1/manifest.json: " % server.server_address[1])
    # the server's alert or its hang-up may reach the client first
    assert any(s in str(err.value) for s in ("CERTIFICATE_REQUIRED", "EOF occurred", "reset by peer")), str(err.value)
    assert not (tmp_path / "hot" / "m" / "current").exists()

    res = run(_params(tmp_path, server, "v1", scheme="https", ca_path=pki["ca"],
                      client_cert=pki["client"], client_key=pki["client"] + ".key"))
    assert res["changed"] is True and res["fetched"] == list(FILES)
    assert os.readlink(tmp_path / "hot" / "m" / "current") == "versions/v1"
