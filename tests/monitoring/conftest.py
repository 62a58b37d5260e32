"""A throwaway test CA on disk for the TLS tests of this directory: a CA, a server certificate for
127.0.0.1, client certificates of the CA and one of another CA with the same subject."""
import subprocess

import pytest

EXT = """\
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
[server]
basicConstraints = critical, CA:FALSE
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
[client]
basicConstraints = critical, CA:FALSE
extendedKeyUsage = clientAuth
"""


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def issue(work, name, subject, ca, section):
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(work / (name + ".key")))
    openssl("req", "-new", "-key", str(work / (name + ".key")), "-subj", subject, "-out", str(work / (name + ".csr")))
    signer = ["-CA", str(work / (ca + ".pem")), "-CAkey", str(work / (ca + ".key"))] if ca else \
        ["-signkey", str(work / (name + ".key"))]
    openssl("x509", "-req", "-in", str(work / (name + ".csr")), *signer, "-set_serial", "1", "-days", "2",
            "-extfile", str(work / "ext.cnf"), "-extensions", section, "-out", str(work / (name + ".pem")))


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """ca, other-ca; server (127.0.0.1); alertmanager, stranger (clients of ca); forged (alertmanager's
    subject, of other-ca). Each NAME.pem with NAME.key."""
    work = tmp_path_factory.mktemp("pki")
    (work / "ext.cnf").write_text(EXT)
    issue(work, "ca", "/O=onprem.deepseek/CN=Test CA", None, "v3_ca")
    issue(work, "other-ca", "/O=onprem.deepseek/CN=Test CA", None, "v3_ca")
    issue(work, "server", "/O=onprem.deepseek/CN=receiver", "ca", "server")
    issue(work, "alertmanager", "/O=onprem.deepseek/CN=alertmanager", "ca", "client")
    issue(work, "stranger", "/O=onprem.deepseek/CN=stranger", "ca", "client")
    issue(work, "forged", "/O=onprem.deepseek/CN=alertmanager", "other-ca", "client")
    return work
