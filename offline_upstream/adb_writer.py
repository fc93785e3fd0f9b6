"""Writing apk's ADB files for the offline upstream: signed indexes, v3 packages.

The inverse of :mod:`asu.formats.adb`, as ``apk mkndx`` and ``apk mkpkg`` write
them: values appended to the ``ADB`` block at their natural alignment, arrays of
packages and dependencies sorted by name, the file compressed as ``ADBd`` (raw
deflate). An index is signed the way apk signs one (:func:`signature_block`)
with the offline upstream's fixed ECDSA P-256 test key; packages are not signed
(OpenWrt's are not either): an index names each package by its identity, the
SHA-256 of its ``ADB`` block. Signatures are deterministic (RFC 6979), so the
same input gives the same bytes."""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from asu.formats import adb
from asu.formats.adb import Dependency, PackageInfo

_SEED = hashlib.sha256(b"asu offline upstream apk test key").digest()
#: the name the offline upstream publishes its apk key under (``keys/<name>``)
KEY_FILE = "offline-upstream.pem"


class Builder:
    """Values appended to one ``ADB`` block; :meth:`finish` sets the root."""

    def __init__(self) -> None:
        self.buffer = bytearray(8)  # compat_ver, ver, reserved, root

    def _append(self, data: bytes, alignment: int) -> int:
        self.buffer.extend(b"\0" * (-len(self.buffer) % alignment))
        offset = len(self.buffer)
        if offset > 0x0FFFFFFF:
            raise ValueError("ADB block too large")
        self.buffer.extend(data)
        return offset

    def blob(self, data: bytes | str) -> int:
        if isinstance(data, str):
            data = data.encode()
        if not data:
            return 0
        for kind, width in ((adb.TYPE_BLOB_8, 1), (adb.TYPE_BLOB_16, 2)):
            if len(data) < 1 << (8 * width):
                header = len(data).to_bytes(width, "little")
                return kind << 28 | self._append(header + data, width)
        header = struct.pack("<I", len(data))
        return adb.TYPE_BLOB_32 << 28 | self._append(header + data, 4)

    def integer(self, number: int) -> int:
        if number < 0x10000000:
            return adb.TYPE_INT << 28 | number
        if number < 1 << 32:
            return adb.TYPE_INT_32 << 28 | self._append(struct.pack("<I", number), 4)
        return adb.TYPE_INT_64 << 28 | self._append(struct.pack("<Q", number), 4)

    def _list(self, kind: int, values: Sequence[int]) -> int:
        values = list(values)
        while values and not values[-1]:
            values.pop()
        if not values:
            return 0
        data = struct.pack(f"<{len(values) + 1}I", len(values) + 1, *values)
        return kind << 28 | self._append(data, 4)

    def obj(self, fields: dict[int, int]) -> int:
        """An object from ``{field number: value}``."""
        width = max(fields, default=0)
        return self._list(
            adb.TYPE_OBJECT, [fields.get(i, 0) for i in range(1, width + 1)]
        )

    def array(self, items: Iterable[int]) -> int:
        return self._list(adb.TYPE_ARRAY, [item for item in items if item])

    def finish(self, root: int) -> bytes:
        struct.pack_into("<I", self.buffer, 4, root)
        return bytes(self.buffer)


# -- keys and signatures -------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    """An apk signing key: an ECDSA P-256 private key and apk's id of it."""

    private: ec.EllipticCurvePrivateKey

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
        secret = int.from_bytes(hashlib.sha512(seed).digest(), "big") % (order - 1)
        return cls(ec.derive_private_key(secret + 1, ec.SECP256R1()))

    @property
    def key_id(self) -> bytes:
        point = self.private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return hashlib.sha512(point).digest()[:16]

    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo,
            )
            .decode()
        )

    def sign(self, message: bytes) -> bytes:
        algorithm = ec.ECDSA(hashes.SHA512(), deterministic_signing=True)
        return self.private.sign(message, algorithm)


def signing_key() -> SigningKey:
    """The offline upstream's apk key: a fixed test key, never a real one."""
    return SigningKey.from_seed(_SEED)


def signature_block(schema: bytes, adb_block: bytes, key: SigningKey) -> bytes:
    """A ``SIG`` block's payload: version 0, SHA-512, key id, the signature over
    the schema, this header and the SHA-512 of the ``ADB`` block."""
    header = bytes([0, adb.DIGEST_SHA512]) + key.key_id
    message = schema + header + hashlib.sha512(adb_block).digest()
    return header + key.sign(message)


# -- files ----------------------------------------------------------------------------


def _block(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    padding = b"\0" * (-size % adb.BLOCK_ALIGNMENT)
    return struct.pack("<I", kind << 30 | size) + payload + padding


def container(
    schema: bytes,
    adb_block: bytes,
    key: SigningKey | None = None,
    data: Iterable[bytes] = (),
) -> bytes:
    """An uncompressed ADB file: header, ``ADB`` block, signature, data blocks."""
    blocks = [_block(adb.BLOCK_ADB, adb_block)]
    if key is not None:
        blocks.append(_block(adb.BLOCK_SIG, signature_block(schema, adb_block, key)))
    blocks += [_block(adb.BLOCK_DATA, payload) for payload in data]
    return adb.MAGIC + schema + b"".join(blocks)


def compress(raw: bytes) -> bytes:
    """``raw`` as ``ADBd``: the magic, then a raw deflate stream of the file."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    return b"ADBd" + deflater.compress(raw) + deflater.flush()


def _dependencies(builder: Builder, entries: Iterable[Dependency]) -> int:
    unique = {str(entry): entry for entry in entries}
    items = []
    for entry in sorted(unique.values(), key=lambda d: (d.name, d.version)):
        fields = {adb.DEP_NAME: builder.blob(entry.name)}
        if entry.version:
            fields[adb.DEP_VERSION] = builder.blob(entry.version)
        if entry.match not in (0, adb.VERSION_EQUAL):
            fields[adb.DEP_MATCH] = builder.integer(entry.match)
        items.append(builder.obj(fields))
    return builder.array(items)


def package_info(builder: Builder, info: PackageInfo) -> int:
    """The ``pkginfo`` object of ``info``."""
    pi = adb.PI
    fields = {
        pi["name"]: builder.blob(info.name),
        pi["version"]: builder.blob(info.version),
        pi["hashes"]: builder.blob(info.hashes),
        pi["build_time"]: builder.integer(info.build_time),
        pi["installed_size"]: builder.integer(info.installed_size),
        pi["file_size"]: builder.integer(info.file_size),
        pi["provider_priority"]: builder.integer(info.provider_priority),
        pi["tags"]: builder.array(builder.blob(tag) for tag in info.tags),
    }
    for name in ("description", "arch", "license", "origin", "maintainer", "url"):
        fields[pi[name]] = builder.blob(getattr(info, name))
    for name in ("depends", "provides", "replaces", "install_if", "recommends"):
        fields[pi[name]] = _dependencies(builder, getattr(info, name))
    return builder.obj(fields)


def index_file(
    packages: Iterable[PackageInfo], key: SigningKey, description: str = ""
) -> bytes:
    """A signed, compressed ``packages.adb`` listing ``packages``."""
    builder = Builder()
    ordered = sorted(packages, key=lambda p: (p.name, p.version, p.hashes))
    root = builder.obj(
        {
            adb.NDX_DESCRIPTION: builder.blob(description),
            adb.NDX_PACKAGES: builder.array(package_info(builder, p) for p in ordered),
        }
    )
    adb_block = builder.finish(root)
    return compress(container(adb.SCHEMA_INDEX, adb_block, key))


def package_file(
    info: PackageInfo,
    files: dict[str, bytes | None],
    scripts: dict[str, str] | None = None,
) -> bytes:
    """A compressed v3 ``.apk``: ``info``, the directories (None) and files (bytes)
    of ``files`` by path, ``scripts`` by name (``post-install``, ...)."""
    builder = Builder()
    directories: dict[str, list[tuple[str, bytes]]] = {}
    for path, content in sorted(files.items()):
        if content is None:
            directories.setdefault(path, [])
        else:
            parent, _, name = path.rpartition("/")
            directories.setdefault(parent, []).append((name, content))
    data, paths = [], []
    for dir_number, (name, entries) in enumerate(sorted(directories.items()), start=1):
        file_values = []
        for file_number, (file_name, content) in enumerate(sorted(entries), start=1):
            file_values.append(
                builder.obj(
                    {
                        adb.FILE_NAME: builder.blob(file_name),
                        adb.FILE_ACL: _acl(builder, 0o644),
                        adb.FILE_SIZE: builder.integer(len(content)),
                        adb.FILE_HASH: builder.blob(hashlib.sha256(content).digest()),
                    }
                )
            )
            data.append(struct.pack("<II", dir_number, file_number) + content)
        paths.append(
            builder.obj(
                {
                    adb.DIR_NAME: builder.blob(name),
                    adb.DIR_ACL: _acl(builder, 0o755),
                    adb.DIR_FILES: builder.array(file_values),
                }
            )
        )
    script_fields = {
        number: builder.blob(text)
        for number, script in enumerate(adb.SCRIPTS, start=1)
        if (text := (scripts or {}).get(script))
    }
    root = builder.obj(
        {
            adb.PKG_INFO: package_info(builder, info),
            adb.PKG_PATHS: builder.array(paths),
            adb.PKG_SCRIPTS: builder.obj(script_fields),
        }
    )
    return compress(container(adb.SCHEMA_PACKAGE, builder.finish(root), data=data))


def _acl(builder: Builder, mode: int) -> int:
    return builder.obj(
        {
            adb.ACL_MODE: builder.integer(mode),
            adb.ACL_USER: builder.blob("root"),
            adb.ACL_GROUP: builder.blob("root"),
        }
    )


def identity(package: bytes) -> bytes:
    """The identity of a written package, as its index lists it."""
    return adb.parse(package, adb.SCHEMA_PACKAGE).identity
