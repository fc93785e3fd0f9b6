"""apk feeds as the server reads them: ``packages.adb`` checked against apk keys.

An index is trusted when one of its signature blocks verifies with one of the
distribution's apk public keys (PEM, ECDSA or RSA, as in ``/etc/apk/keys``). apk
names a key by the first 16 bytes of the SHA-512 of its raw public key (the EC point,
or the PKCS#1 RSA key) and signs, with SHA-512, the file's schema, the signature
block's header and the digest of the ``ADB`` block (:mod:`asu.formats.adb`).

Each package of an index gives the file to fetch (:meth:`PackageInfo.filename`,
``<name>-<version>.apk`` by default) and its identity (``hashes``): the SHA-256 of
the package's own ``ADB`` block, which in turn holds the SHA-256 of every file it
installs. :func:`check_package` checks a downloaded package against both.

:func:`package_index` turns an index into the names a request may use, the way apk
selects packages: a package's own name; a name it provides with a version; a name
it provides without one only when it has a ``provider_priority`` (otherwise the name
is *virtual*: apk asks to pick one of its providers explicitly).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from asu.formats import adb
from asu.formats.adb import AdbError, Index, PackageInfo
from asu.formats.package_index import PackageIndex
from asu.formats.package_versions import compare_apk

_PEM = re.compile(
    r"^\s*-----BEGIN PUBLIC KEY-----\s*([A-Za-z0-9+/=\s]{40,2000})"
    r"-----END PUBLIC KEY-----\s*$",
    re.ASCII,
)
_ABI_TAG = "openwrt:abiversion="


class SignatureError(ValueError):
    """An index whose signature does not check out; the message says why."""


class NotAnApkKey(ValueError):
    """Text that is not an apk public key."""


@dataclass(frozen=True)
class ApkKey:
    """An apk public key and the id apk gives it."""

    key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey
    key_id: bytes

    @classmethod
    def from_text(cls, text: str) -> ApkKey:
        """A key from its PEM text (``-----BEGIN PUBLIC KEY-----`` ...); its line
        breaks may be written ``\\n``, as in one line of an environment variable."""
        match = _PEM.match((text or "").replace("\\n", "\n"))
        if not match:
            raise NotAnApkKey("not a PEM public key")
        try:
            der = base64.b64decode("".join(match[1].split()), validate=True)
            key = serialization.load_der_public_key(der)
        except (binascii.Error, ValueError, UnsupportedAlgorithm):
            raise NotAnApkKey("not a readable PEM public key") from None
        if isinstance(key, ec.EllipticCurvePublicKey):
            raw = key.public_bytes(
                serialization.Encoding.X962,
                serialization.PublicFormat.UncompressedPoint,
            )
        elif isinstance(key, rsa.RSAPublicKey):
            raw = key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.PKCS1
            )
        else:
            raise NotAnApkKey("apk keys are ECDSA or RSA keys")
        return cls(key, hashlib.sha512(raw).digest()[:16])

    def verifies(self, message: bytes, signature: bytes) -> bool:
        try:
            if isinstance(self.key, ec.EllipticCurvePublicKey):
                self.key.verify(signature, message, ec.ECDSA(hashes.SHA512()))
            else:
                self.key.verify(signature, message, padding.PKCS1v15(), hashes.SHA512())
        except InvalidSignature:
            return False
        return True


def is_apk_key(text: str) -> bool:
    """Whether ``text`` is a PEM public key apk could use."""
    try:
        ApkKey.from_text(text)
    except NotAnApkKey:
        return False
    return True


def load_keys(texts: Iterable[str]) -> list[ApkKey]:
    """The apk keys among ``texts`` (others, such as usign keys, are skipped)."""
    keys = []
    for text in texts:
        try:
            keys.append(ApkKey.from_text(text))
        except NotAnApkKey:
            continue
    return keys


def verify(container: adb.Container, keys: Iterable[ApkKey]) -> None:
    """Raise :class:`SignatureError` unless a signature block of ``container``
    verifies with one of ``keys``."""
    if not container.signatures:
        raise SignatureError("not signed")
    by_id = {key.key_id: key for key in keys}
    for signature in container.signatures:
        key = by_id.get(signature.key_id)
        if key is None:
            continue
        try:
            message = container.signed_message(signature)
        except AdbError as error:
            raise SignatureError(str(error)) from None
        if key.verifies(message, signature.signature):
            return
        raise SignatureError(
            f"the signature by key {signature.key_id.hex()} does not match"
        )
    ids = ", ".join(s.key_id.hex() for s in container.signatures)
    raise SignatureError(f"signed by no trusted key (key id {ids})")


def read_index(content: bytes, keys: Iterable[ApkKey] | None) -> Index:
    """The index in ``content``; its signature checked unless ``keys`` is None.

    Raises :class:`asu.formats.adb.AdbError` for a malformed file and
    :class:`SignatureError` for one no trusted key signed.
    """
    container = adb.parse(content, adb.SCHEMA_INDEX)
    if keys is not None:
        verify(container, keys)
    return adb.read_index(container)


def check_package(content: bytes, info: PackageInfo) -> None:
    """Raise :class:`SignatureError` unless ``content`` is the package ``info``
    (from a trusted index) describes: its identity and every file's hash."""
    if not info.hashes:
        raise SignatureError(f"{info.name}: the index gives no hash for it")
    try:
        container = adb.parse(content, adb.SCHEMA_PACKAGE)
        if container.identity[: len(info.hashes)] != info.hashes:
            raise SignatureError(f"{info.filename()}: does not match the index")
        package = adb.read_package(container)
        for _ in adb.package_contents(container, package):
            pass
    except AdbError as error:
        raise SignatureError(f"{info.filename()}: {error}") from None


def plain_name(info: PackageInfo) -> str:
    """The name without its ABI version (``libubox`` for ``libubox20260213``),
    as ``index.json`` and clients name it; OpenWrt tags the ABI version."""
    for tag in info.tags:
        if tag.startswith(_ABI_TAG):
            return adb.without_abi(info.name, tag.removeprefix(_ABI_TAG))
    return info.name


def package_index(index: Index) -> PackageIndex:
    """The names a request may use with ``index``, as apk would select them."""
    result = PackageIndex()
    for info in index.packages:
        plain = plain_name(info)
        known = result.packages.get(plain)
        if known is None or compare_apk(info.version, known) > 0:
            result.packages[plain] = info.version
        if plain != info.name:
            result.provides.add(info.name)
        result.versions.setdefault(info.name, set()).add(info.version)
        for provided in info.provides:
            if provided.version:
                result.provides.add(provided.name)
                result.versions.setdefault(provided.name, set()).add(provided.version)
            elif info.provider_priority:
                result.provides.add(provided.name)
            else:
                result.virtual.setdefault(provided.name, set()).add(info.name)
    result.settle()
    return result
