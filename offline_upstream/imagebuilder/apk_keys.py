"""apk's signatures checked in pure Python: ECDSA (NIST P-256) and RSA keys in PEM.

The offline ImageBuilder runs with the system python3 of a build sandbox, without
the project's dependencies, and checks each ``packages.adb`` the way apk does:
a signature block (see adb.py) is trusted when the key named by its id, one of
the PEM files in ``keys/``, verifies it. apk names a key by the first 16 bytes of
the SHA-512 of its raw public key: the uncompressed EC point, or the PKCS#1 RSA
key. ECDSA signatures are DER ``SEQUENCE {r, s}``; RSA ones PKCS#1 v1.5; both
over SHA-512.

Python standard library only; not constant-time (it only verifies public data).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

# NIST P-256
_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_A = _P - 3
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)
_EC_PUBLIC_KEY = bytes.fromhex("2a8648ce3d0201")  # 1.2.840.10045.2.1
_P256 = bytes.fromhex("2a8648ce3d030107")  # 1.2.840.10045.3.1.7
_RSA = bytes.fromhex("2a864886f70d010101")  # 1.2.840.113549.1.1.1
#: DER of the SHA-512 DigestInfo prefix in a PKCS#1 v1.5 signature
_SHA512_INFO = bytes.fromhex("3051300d060960864801650304020305000440")


class KeyFormatError(ValueError):
    """A file in keys/ that is no PEM public key this module knows."""


def _der(data: bytes, offset: int = 0) -> tuple[int, bytes, int]:
    """The DER element at ``offset``: its tag, contents and the offset after it."""
    if offset + 2 > len(data):
        raise KeyFormatError("truncated DER")
    tag, length = data[offset], data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    if offset + length > len(data):
        raise KeyFormatError("truncated DER")
    return tag, data[offset : offset + length], offset + length


def _children(data: bytes) -> list[tuple[int, bytes]]:
    children, offset = [], 0
    while offset < len(data):
        tag, contents, offset = _der(data, offset)
        children.append((tag, contents))
    return children


@dataclass(frozen=True)
class PublicKey:
    """An apk key: its id, and either an EC point or an RSA modulus and exponent."""

    key_id: bytes
    point: tuple[int, int] | None = None
    rsa: tuple[int, int] | None = None

    @classmethod
    def from_pem(cls, text: str) -> PublicKey:
        body = "".join(
            line.strip() for line in text.splitlines() if line and "-----" not in line
        )
        try:
            der = base64.b64decode(body, validate=True)
        except ValueError:
            raise KeyFormatError("not base64") from None
        _, spki, _ = _der(der)
        (_, algorithm), (_, bits) = _children(spki)[:2]
        oids = [contents for tag, contents in _children(algorithm) if tag == 0x06]
        raw = bits[1:]  # the BIT STRING's unused-bits byte
        key_id = hashlib.sha512(raw).digest()[:16]
        if oids[:2] == [_EC_PUBLIC_KEY, _P256] and len(raw) == 65 and raw[0] == 4:
            point = (int.from_bytes(raw[1:33], "big"), int.from_bytes(raw[33:], "big"))
            return cls(key_id, point=point)
        if oids[:1] == [_RSA]:
            _, rsa_key, _ = _der(raw)
            (_, modulus), (_, exponent) = _children(rsa_key)[:2]
            numbers = (int.from_bytes(modulus, "big"), int.from_bytes(exponent, "big"))
            return cls(key_id, rsa=numbers)
        raise KeyFormatError("neither an ECDSA P-256 nor an RSA key")

    def verifies(self, message: bytes, signature: bytes) -> bool:
        digest = hashlib.sha512(message).digest()
        try:
            if self.point is not None:
                return _ecdsa_verifies(self.point, digest, signature)
            return _rsa_verifies(self.rsa, digest, signature)
        except KeyFormatError:
            return False


def _rsa_verifies(key: tuple[int, int], digest: bytes, signature: bytes) -> bool:
    modulus, exponent = key
    size = (modulus.bit_length() + 7) // 8
    value = pow(int.from_bytes(signature, "big"), exponent, modulus)
    encoded = value.to_bytes(size, "big")
    info = _SHA512_INFO + digest
    expected = b"\x00\x01" + b"\xff" * (size - len(info) - 3) + b"\x00" + info
    return encoded == expected


def _ecdsa_verifies(point: tuple[int, int], digest: bytes, signature: bytes) -> bool:
    _, sequence, _ = _der(signature)
    (_, r_bytes), (_, s_bytes) = _children(sequence)[:2]
    r, s = int.from_bytes(r_bytes, "big"), int.from_bytes(s_bytes, "big")
    if not (0 < r < _N and 0 < s < _N):
        return False
    e = int.from_bytes(digest, "big") >> max(0, len(digest) * 8 - 256)
    w = pow(s, -1, _N)
    total = _add(_multiply(_G, e * w % _N), _multiply(point, r * w % _N))
    return total is not None and total[0] % _N == r


# Points in Jacobian coordinates (X, Y, Z) stand for (X/Z², Y/Z³); None is infinity.


def _to_affine(point):
    if point is None:
        return None
    x, y, z = point
    inverse = pow(z, -1, _P)
    return x * inverse * inverse % _P, y * inverse**3 % _P


def _double(point):
    if point is None or point[1] == 0:
        return None
    x, y, z = point
    ysq = y * y % _P
    s = 4 * x * ysq % _P
    m = (3 * x * x + _A * pow(z, 4, _P)) % _P
    nx = (m * m - 2 * s) % _P
    return nx, (m * (s - nx) - 8 * ysq * ysq) % _P, 2 * y * z % _P


def _sum(p, q):
    if p is None:
        return q
    if q is None:
        return p
    (x1, y1, z1), (x2, y2, z2) = p, q
    z1sq, z2sq = z1 * z1 % _P, z2 * z2 % _P
    u1, u2 = x1 * z2sq % _P, x2 * z1sq % _P
    s1, s2 = y1 * z2sq * z2 % _P, y2 * z1sq * z1 % _P
    if u1 == u2:
        return _double(p) if s1 == s2 else None
    h, r = (u2 - u1) % _P, (s2 - s1) % _P
    hsq = h * h % _P
    hcu = hsq * h % _P
    nx = (r * r - hcu - 2 * u1 * hsq) % _P
    return nx, (r * (u1 * hsq - nx) - s1 * hcu) % _P, h * z1 * z2 % _P


def _multiply(point: tuple[int, int], scalar: int):
    result, addend = None, (point[0], point[1], 1)
    while scalar:
        if scalar & 1:
            result = _sum(result, addend)
        addend = _double(addend)
        scalar >>= 1
    return result


def _add(p, q):
    return _to_affine(_sum(p, q))
