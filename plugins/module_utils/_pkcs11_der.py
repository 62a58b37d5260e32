# -*- coding: utf-8 -*-
# Copyright (c) onprem.deepseek contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""DER and PEM encoding of public keys read from a token (SubjectPublicKeyInfo), private to the
collection. Pure; standard library only.
"""

from __future__ import annotations

import base64
import hashlib

from ansible_collections.onprem.deepseek.plugins.module_utils._pkcs11_spec import CURVES, Pkcs11KeyError

_OID_RSA = "1.2.840.113549.1.1.1"
_OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"


def _der_len(length):
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der(tag, body):
    return bytes([tag]) + _der_len(len(body)) + body


def der_oid(dotted):
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return _der(0x06, bytes(body))


def der_uint(value):
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    if raw[0] & 0x80:
        raw = b"\x00" + raw
    return _der(0x02, raw)


def _der_read(data, pos=0):
    """Return (tag, body, end) of the DER element at ``pos``."""
    if len(data) < pos + 2:
        raise ValueError("truncated DER")
    tag = data[pos]
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or len(data) < pos + count:
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if len(data) < pos + length:
        raise ValueError("truncated DER")
    return tag, data[pos:pos + length], pos + length


def rsa_spki_der(modulus, exponent):
    """SubjectPublicKeyInfo (RFC 3279) of an RSA key given as big-endian byte strings or ints."""
    n = modulus if isinstance(modulus, int) else int.from_bytes(modulus, "big")
    e = exponent if isinstance(exponent, int) else int.from_bytes(exponent, "big")
    algorithm = _der(0x30, der_oid(_OID_RSA) + b"\x05\x00")
    key = _der(0x30, der_uint(n) + der_uint(e))
    return _der(0x30, algorithm + _der(0x03, b"\x00" + key))


def curve_from_ec_params(ec_params):
    """Curve name for a DER CKA_EC_PARAMS (namedCurve OID), or None when not one we know."""
    for name, (oid, _size) in CURVES.items():
        if bytes(ec_params) == der_oid(oid):
            return name
    return None


def ec_point_octets(ec_point, curve):
    """The uncompressed point from CKA_EC_POINT, which PKCS#11 v2.40 says is a DER OCTET STRING
    but some tokens give raw."""
    raw = bytes(ec_point)
    size = 2 * CURVES[curve][1] + 1
    if len(raw) == size and raw[0] == 0x04:
        return raw
    try:
        tag, body, end = _der_read(raw)
    except ValueError:
        body, tag, end = b"", None, 0
    if tag == 0x04 and end == len(raw) and len(body) == size and body[0] == 0x04:
        return body
    raise Pkcs11KeyError("CKA_EC_POINT of %d bytes is not an uncompressed %s point" % (len(raw), curve))


def ec_spki_der(curve, ec_point):
    algorithm = _der(0x30, der_oid(_OID_EC_PUBLIC_KEY) + der_oid(CURVES[curve][0]))
    return _der(0x30, algorithm + _der(0x03, b"\x00" + ec_point_octets(ec_point, curve)))


def pem_encode(der, label="PUBLIC KEY"):
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)


def spki_sha256(der):
    return hashlib.sha256(der).hexdigest()
