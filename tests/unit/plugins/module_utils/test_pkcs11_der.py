"""_pkcs11_der: DER lengths and integers at their boundaries, and the reader's refusals.

The SubjectPublicKeyInfo encoders are also checked against the cryptography package in
test_pkcs11.py; these tests pin the byte-level rules (X.690) those round trips only pass through.
"""
import pytest

from ansible_collections.onprem.deepseek.plugins.module_utils import _pkcs11_der as der


@pytest.mark.parametrize("length, encoded", [
    (0, "00"), (0x7F, "7f"),            # short form up to 127
    (0x80, "8180"), (0xFF, "81ff"),     # long form, one length byte
    (0x100, "820100"), (0xFFFF, "82ffff"), (0x10000, "83010000"),
])
def test_length_forms(length, encoded):
    assert der._der_len(length).hex() == encoded


@pytest.mark.parametrize("value, encoded", [
    (0, "020100"), (0x7F, "02017f"),
    (0x80, "02020080"),                 # a set top bit gets a leading zero: the integer stays positive
    (0xFF, "020200ff"), (0x100, "02020100"), (65537, "0203010001"),
])
def test_unsigned_integers(value, encoded):
    assert der.der_uint(value).hex() == encoded


@pytest.mark.parametrize("body_size", [0, 1, 0x7F, 0x80, 0xFF, 0x100, 70000])
def test_read_gives_back_what_was_written(body_size):
    body = bytes(i % 251 for i in range(body_size))
    element = der._der(0x04, body) + b"\x05\x00"     # another element after it
    assert der._der_read(element) == (0x04, body, len(element) - 2)
    assert der._der_read(element, len(element) - 2) == (0x05, b"", len(element))


@pytest.mark.parametrize("data, message", [
    (b"", "truncated DER"),
    (b"\x04", "truncated DER"),                       # a tag without a length
    (b"\x04\x02\x01", "truncated DER"),               # short form, one byte of two
    (b"\x04\x81\x80" + b"x" * 0x7F, "truncated DER"),  # long form, one byte short
    (b"\x04\x80", "bad DER length"),                  # indefinite length: not DER
    (b"\x04\x85\x00\x00\x00\x00\x01x", "bad DER length"),  # five length bytes
    (b"\x04\x82\x01", "bad DER length"),              # the length bytes themselves cut off
])
def test_read_refuses_what_is_not_one_whole_element(data, message):
    with pytest.raises(ValueError) as caught:
        der._der_read(data)
    assert str(caught.value) == message


def test_read_at_an_offset_counts_from_there():
    data = b"\xff\xff" + der._der(0x02, b"\x01\x02")
    assert der._der_read(data, 2) == (0x02, b"\x01\x02", 6)
    with pytest.raises(ValueError, match="^truncated DER$"):
        der._der_read(data, 5)


def test_a_long_form_length_that_ends_the_data_is_read():
    assert der._der_read(b"\x04\x81\x00") == (0x04, b"", 3)


def test_four_length_bytes_are_read():
    data = b"\x04\x84\x00\x00\x00\x03abc"
    assert der._der_read(data) == (0x04, b"abc", 9)


def test_large_oid_arcs_take_several_bytes():
    assert der.der_oid("2.5.4.3").hex() == "0603550403"
    assert der.der_oid("1.2.840.113549").hex() == "06062a864886f70d"   # 113549 in three bytes


def test_pem_lines_are_64_characters():
    pem = der.pem_encode(bytes(100))
    lines = pem.splitlines()
    assert lines[0] == "-----BEGIN PUBLIC KEY-----" and lines[-1] == "-----END PUBLIC KEY-----"
    assert [len(line) for line in lines[1:-1]] == [64, 64, 8]   # 136 base64 characters
    assert der.pem_encode(b"x", "EC PARAMETERS") == "-----BEGIN EC PARAMETERS-----\neA==\n-----END EC PARAMETERS-----\n"


POINT = b"\x04" + bytes(range(1, 65))     # an uncompressed P-256 point: 0x04, X, Y


@pytest.mark.parametrize("attribute", [POINT, b"\x04\x41" + POINT])
def test_ec_point_raw_or_wrapped_in_an_octet_string(attribute):
    assert der.ec_point_octets(attribute, "secp256r1") == POINT


@pytest.mark.parametrize("attribute", [
    b"\x04\x41\x02" + POINT[1:],          # wrapped, right size, but a compressed-point prefix
    b"\x04\x40" + POINT[:-1],             # wrapped, one byte short
    b"\x04\x41" + POINT + b"\x00",        # wrapped, trailing byte
    b"\x03\x41" + POINT,                  # a BIT STRING, not an OCTET STRING
    b"\x04\x85",                          # not DER at all
    b"",
])
def test_ec_point_refusals(attribute):
    with pytest.raises(der.Pkcs11KeyError) as caught:
        der.ec_point_octets(attribute, "secp256r1")
    assert str(caught.value) == "CKA_EC_POINT of %d bytes is not an uncompressed secp256r1 point" % len(attribute)
