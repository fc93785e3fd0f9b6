"""OpenWrt's usign key and signature files, with Ed25519 from PyNaCl.

usign is OpenWrt's small signify-like tool: it signs package indexes and, here, the
images this server builds. Every usign file is an ``untrusted comment:`` line followed
by one base64 line. The comment is, as its name says, not covered by anything, so
trust is decided by the key id and the key only.

Decoded, the base64 line holds:

- public key: ``Ed`` + 8-byte key id + 32-byte Ed25519 public key;
- signature: ``Ed`` + 8-byte key id + 64-byte Ed25519 signature of the raw data;
- secret key: ``Ed`` + ``BK`` + 4-byte big-endian kdf rounds + 16-byte salt +
  8-byte checksum (SHA-512 of the 64-byte secret, truncated) + 8-byte key id +
  64-byte Ed25519 secret (seed followed by the public key).

Only unencrypted secret keys (0 kdf rounds) are supported.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import nacl.exceptions
import nacl.signing

PKALG = b"Ed"
KDFALG = b"BK"
COMMENT_PREFIX = "untrusted comment:"

SEED_SIZE = 32

# Decoded sizes of the three files; the module docstring gives their layout.
_PUBLIC_KEY_SIZE = 2 + 8 + 32
_SIGNATURE_SIZE = 2 + 8 + 64
_SECRET_KEY_SIZE = 2 + 2 + 4 + 16 + 8 + 8 + 64


class UsignError(ValueError):
    """A usign key or signature is malformed, not trusted, or does not match."""


def _check_sizes(obj: object, **sizes: int) -> None:
    """Refuse to build a key or signature whose fields have the wrong length."""
    for name, size in sizes.items():
        value = getattr(obj, name)
        if len(value) != size:
            raise ValueError(f"{name} must be {size} bytes, not {len(value)}")


def _decode(text: str, what: str, size: int) -> bytes:
    """Return the binary payload of a usign file given whole or as its base64 line.

    The payload is checked for its length and its ``Ed`` algorithm tag.
    """
    lines = [line.strip() for line in text.strip().splitlines()]
    if lines and lines[0].startswith(COMMENT_PREFIX):
        lines = lines[1:]
    if len(lines) != 1 or not lines[0]:
        raise UsignError(f"malformed {what}: expected one base64 line")
    try:
        raw = base64.b64decode(lines[0], validate=True)
    except binascii.Error:
        raise UsignError(f"malformed {what}: not valid base64") from None
    if len(raw) != size:
        raise UsignError(f"malformed {what}: {len(raw)} bytes, expected {size}")
    if raw[: len(PKALG)] != PKALG:
        raise UsignError(f"malformed {what}: algorithm {raw[:2]!r} is not Ed25519")
    return raw


def _encode(comment: str, raw: bytes) -> str:
    """Return the text of a usign file: the comment line and the base64 line."""
    if "\n" in comment or "\r" in comment:
        raise ValueError("a usign comment must fit on one line")
    return f"{COMMENT_PREFIX} {comment}\n{base64.b64encode(raw).decode()}\n"


@dataclass(frozen=True)
class PublicKey:
    """A usign public key: its key id and its 32-byte Ed25519 key."""

    key_id: bytes
    key: bytes

    def __post_init__(self) -> None:
        _check_sizes(self, key_id=8, key=32)

    @classmethod
    def from_text(cls, text: str) -> PublicKey:
        raw = _decode(text, "public key", _PUBLIC_KEY_SIZE)
        return cls(key_id=raw[2:10], key=raw[10:])

    def to_text(self, comment: str | None = None) -> str:
        if comment is None:
            comment = f"public key {self.key_id_hex}"
        return _encode(comment, PKALG + self.key_id + self.key)

    @property
    def key_id_hex(self) -> str:
        return self.key_id.hex()


@dataclass(frozen=True)
class Signature:
    """A usign signature: the signer's key id and the 64-byte Ed25519 signature."""

    key_id: bytes
    sig: bytes

    def __post_init__(self) -> None:
        _check_sizes(self, key_id=8, sig=64)

    @classmethod
    def from_text(cls, text: str) -> Signature:
        raw = _decode(text, "signature", _SIGNATURE_SIZE)
        return cls(key_id=raw[2:10], sig=raw[10:])

    def to_text(self, comment: str | None = None) -> str:
        if comment is None:
            comment = f"signed by key {self.key_id_hex}"
        return _encode(comment, PKALG + self.key_id + self.sig)

    @property
    def key_id_hex(self) -> str:
        return self.key_id.hex()


def _checksum(secret: bytes) -> bytes:
    return hashlib.sha512(secret).digest()[:8]


@dataclass(frozen=True)
class SecretKey:
    """An unencrypted usign secret key: its key id and its 32-byte Ed25519 seed."""

    key_id: bytes
    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_sizes(self, key_id=8, seed=SEED_SIZE)

    @classmethod
    def generate(cls) -> SecretKey:
        return cls.from_seed(os.urandom(SEED_SIZE))

    @classmethod
    def from_seed(cls, seed: bytes) -> SecretKey:
        """Return the key a seed determines; the key id is derived from the seed too.

        usign picks key ids at random; deriving it keeps test keys reproducible.
        """
        key_id = hashlib.sha512(b"usign key id\0" + seed).digest()[:8]
        return cls(key_id=key_id, seed=seed)

    @classmethod
    def from_text(cls, text: str) -> SecretKey:
        raw = _decode(text, "secret key", _SECRET_KEY_SIZE)
        if raw[2:4] != KDFALG:
            raise UsignError(f"malformed secret key: kdf algorithm {raw[2:4]!r}")
        rounds = int.from_bytes(raw[4:8], "big")
        if rounds:
            raise UsignError(
                f"secret key is encrypted ({rounds} kdf rounds); "
                "only unencrypted keys are supported"
            )
        secret = raw[40:]
        if raw[24:32] != _checksum(secret):
            raise UsignError("malformed secret key: checksum does not match the key")
        key = cls(key_id=raw[32:40], seed=raw[40:72])
        if secret != key._secret:
            raise UsignError(
                "malformed secret key: public half does not match the seed"
            )
        return key

    def to_text(self, comment: str | None = None) -> str:
        """Return the secret key file; the salt, unused without kdf rounds, is zeros."""
        if comment is None:
            comment = f"secret key {self.key_id.hex()}"
        header = PKALG + KDFALG + (0).to_bytes(4, "big") + bytes(16)
        secret = self._secret
        return _encode(comment, header + _checksum(secret) + self.key_id + secret)

    @property
    def public_key(self) -> PublicKey:
        return PublicKey(key_id=self.key_id, key=bytes(self._signing_key.verify_key))

    def sign(self, data: bytes, comment: str | None = None) -> str:
        """Return the text of a signature file for ``data``."""
        sig = self._signing_key.sign(data).signature
        return Signature(key_id=self.key_id, sig=sig).to_text(comment)

    @property
    def _signing_key(self) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(self.seed)

    @property
    def _secret(self) -> bytes:
        """The 64-byte Ed25519 secret usign stores: seed then public key."""
        return self.seed + bytes(self._signing_key.verify_key)


def verify(
    data: bytes, signature_text: str, trusted_keys: Iterable[PublicKey | str]
) -> PublicKey:
    """Return the trusted key whose signature ``signature_text`` is over ``data``.

    Trusted keys may be given as ``PublicKey`` or as public key file text.
    """
    signature = Signature.from_text(signature_text)
    keys = [
        k if isinstance(k, PublicKey) else PublicKey.from_text(k) for k in trusted_keys
    ]
    candidates = [k for k in keys if k.key_id == signature.key_id]
    if not candidates:
        trusted = ", ".join(k.key_id_hex for k in keys) or "none"
        raise UsignError(
            f"signature is by key {signature.key_id_hex}, which is not trusted "
            f"(trusted keys: {trusted})"
        )
    for key in candidates:
        try:
            nacl.signing.VerifyKey(key.key).verify(data, signature.sig)
        except nacl.exceptions.BadSignatureError:
            continue
        return key
    raise UsignError(f"signature does not match the data (key {signature.key_id_hex})")


def load_or_create_secret_key(path: Path) -> SecretKey:
    """Return the secret key at ``path``, creating it (and ``<path>.pub``) if missing.

    Processes racing on first start each write a whole key to a temporary file and
    hard-link it to ``path``; linking fails once ``path`` exists, so the first one
    wins and everybody then reads that key.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _create_exclusively(path, SecretKey.generate().to_text())
    key = SecretKey.from_text(path.read_text())
    _ensure_public_key(path.with_name(path.name + ".pub"), key.public_key)
    return key


def _write_temp(directory: Path, text: str, mode: int) -> Path:
    """Write ``text`` durably to a new temporary file in ``directory``."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=".tmp-usign-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _create_exclusively(path: Path, text: str) -> None:
    """Make ``path`` hold ``text`` (mode 0600) unless another file got there first."""
    temp = _write_temp(path.parent, text, 0o600)
    try:
        os.link(temp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(temp)


def _ensure_public_key(path: Path, key: PublicKey) -> None:
    """Make ``path`` hold ``key``, replacing a missing, malformed or other key."""
    try:
        if PublicKey.from_text(path.read_text()) == key:
            return
    except (FileNotFoundError, UsignError):
        pass
    temp = _write_temp(path.parent, key.to_text(), 0o644)
    os.replace(temp, path)
