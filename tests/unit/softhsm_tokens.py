# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SoftHSM2 tokens in a test's own directory, for the tests that run against a real token.

The throwaway test PINs reach softhsm2-util as process arguments in this setup only.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils._pkcs11_token import HAS_PKCS11

LIB_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/lib64/softhsm/libsofthsm2.so",
)
SOFTHSM_LIB = next((p for p in LIB_CANDIDATES if os.path.exists(p)), None)
AVAILABLE = shutil.which("softhsm2-util") is not None and SOFTHSM_LIB is not None
MISSING = "SoftHSM2 is not installed (tools/bootstrap installs softhsm2)"
# For tests that go through the collection's python-pkcs11 code as well.
needs_softhsm_and_pkcs11 = pytest.mark.skipif(
    not AVAILABLE or not HAS_PKCS11,
    reason="SoftHSM2 or python-pkcs11 is not installed (tools/bootstrap installs both)")


def init_tokens(root, monkeypatch, labels, so_pin, user_pin):
    """Initialise one token per label in root/tokens and point SOFTHSM2_CONF at them."""
    tokens = root / "tokens"
    tokens.mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n" % tokens)
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    for label in labels:
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label,
                        "--so-pin", so_pin, "--pin", user_pin], check=True, capture_output=True, timeout=60)
    return conf
