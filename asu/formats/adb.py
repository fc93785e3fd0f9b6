"""apk's binary database format (ADB): ``packages.adb`` indexes and v3 packages.

A file is ``ADB.`` and a four-letter schema (``indx`` for an index, ``pckg`` for a
package), then blocks, each a little-endian ``u32`` holding the type in its top two
bits and the length (header included) below, padded to eight bytes:

- one ``ADB`` block: ``compat_ver``, ``ver``, two reserved bytes, the root value,
  then the values the root points to;
- ``SIG`` blocks: ``sign_ver`` (0), ``hash_alg``, the 16-byte key id, the signature;
- ``DATA`` blocks (packages only): path and file index (``u32`` each), file bytes.

Block type 3 marks an extended header (the real type below, a reserved ``u32`` and
a ``u64`` length) for blocks of a gigabyte and more. The whole file may be
compressed: ``ADBd`` and a raw deflate stream, or ``ADBc`` with an algorithm byte.

A value is a ``u32``: its top four bits are the type (null/true/false, an inline
28-bit integer, an offset to a 32 or 64-bit integer, to a blob with a 1, 2 or 4-byte
length, to an array or to an object), the rest the value or an offset into the
``ADB`` block. Arrays and objects are ``u32`` lists whose first entry is their
length (itself included); an object's entry ``i`` is its schema's field ``i``.

The identity of a v3 package, which an index lists under ``hashes``, is the
SHA-256 of its ``ADB`` block; each file's ``hash`` in that block covers its data.

Python standard library only: the offline ImageBuilder ships this file and runs it
with the system python3 of a build sandbox.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

MAGIC = b"ADB."
SCHEMA_INDEX = b"indx"
SCHEMA_PACKAGE = b"pckg"

BLOCK_ADB, BLOCK_SIG, BLOCK_DATA, BLOCK_EXT = 0, 1, 2, 3
BLOCK_ALIGNMENT = 8

TYPE_SPECIAL, TYPE_INT, TYPE_INT_32, TYPE_INT_64 = 0x0, 0x1, 0x2, 0x3
TYPE_BLOB_8, TYPE_BLOB_16, TYPE_BLOB_32 = 0x8, 0x9, 0xA
TYPE_ARRAY, TYPE_OBJECT = 0xD, 0xE

#: ``hash_alg`` of a signature: the digest of the ADB block it signs
DIGEST_SHA256, DIGEST_SHA512 = 3, 4
DIGESTS = {DIGEST_SHA256: hashlib.sha256, DIGEST_SHA512: hashlib.sha512}

#: dependency ``match`` bits; none stored means ``=``
VERSION_EQUAL, VERSION_LESS, VERSION_GREATER, VERSION_FUZZY = 1, 2, 4, 8
VERSION_CONFLICT = 16

# fields of the schemas (1-based, as apk numbers them)
DEP_NAME, DEP_VERSION, DEP_MATCH = 1, 2, 3
PI = {
    "name": 1,
    "version": 2,
    "hashes": 3,
    "description": 4,
    "arch": 5,
    "license": 6,
    "origin": 7,
    "maintainer": 8,
    "url": 9,
    "repo_commit": 10,
    "build_time": 11,
    "installed_size": 12,
    "file_size": 13,
    "provider_priority": 14,
    "depends": 15,
    "provides": 16,
    "replaces": 17,
    "install_if": 18,
    "recommends": 19,
    "layer": 20,
    "tags": 21,
}
NDX_DESCRIPTION, NDX_PACKAGES, NDX_PKGNAME_SPEC = 1, 2, 3
PKG_INFO, PKG_PATHS, PKG_SCRIPTS = 1, 2, 3
DIR_NAME, DIR_ACL, DIR_FILES = 1, 2, 3
FILE_NAME, FILE_ACL, FILE_SIZE, FILE_MTIME, FILE_HASH, FILE_TARGET = 1, 2, 3, 4, 5, 6
ACL_MODE, ACL_USER, ACL_GROUP = 1, 2, 3
SCRIPTS = (
    "trigger",
    "pre-install",
    "post-install",
    "pre-deinstall",
    "post-deinstall",
    "pre-upgrade",
    "post-upgrade",
)

#: apk's default ``pkgname-spec``: where an index's packages are, by name
DEFAULT_PKGNAME_SPEC = "${name}-${version}.apk"
#: the most a decompressed file may grow to (the largest real indexes are ~10 MB)
MAX_SIZE = 512 * 1024 * 1024


class AdbError(ValueError):
    """Bytes that are not a well-formed ADB file; the message says what is wrong."""


# -- the container ------------------------------------------------------------------


@dataclass
class Signature:
    """One ``SIG`` block: who signed (``key_id``), over which digest, the bytes."""

    hash_alg: int
    key_id: bytes
    signature: bytes
    raw: bytes  # the block's payload


@dataclass
class Container:
    """An ADB file's schema, its ``ADB`` block, signatures and data blocks."""

    schema: bytes
    adb: bytes
    signatures: list[Signature] = field(default_factory=list)
    data: list[bytes] = field(default_factory=list)

    def signed_message(self, signature: Signature) -> bytes:
        """What ``signature`` signs (with SHA-512): the schema, the block's
        version, digest and key id, and the digest of the ``ADB`` block."""
        digest = DIGESTS.get(signature.hash_alg)
        if digest is None:
            raise AdbError(f"signature digest {signature.hash_alg} is not supported")
        return self.schema + signature.raw[:18] + digest(self.adb).digest()

    @property
    def identity(self) -> bytes:
        """SHA-256 of the ``ADB`` block: a v3 package's identity in an index."""
        return hashlib.sha256(self.adb).digest()


def decompress(content: bytes) -> bytes:
    """The uncompressed ADB file in ``content`` (which may be compressed)."""
    head = bytes(content[:4])
    if head == MAGIC:
        return bytes(content)
    if head == b"ADBd":
        return _inflate(content[4:])
    if head == b"ADBc" and len(content) >= 6:
        algorithm = content[4]
        if algorithm == 0:
            return bytes(content[6:])
        if algorithm == 1:
            return _inflate(content[6:])
        raise AdbError(f"compression {algorithm} (zstd) is not supported")
    raise AdbError("not an ADB file (no ADB. header)")


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj(-15)
    try:
        result = inflater.decompress(data, MAX_SIZE)
    except zlib.error as error:
        raise AdbError(f"corrupt deflate stream: {error}") from None
    if inflater.unconsumed_tail:
        raise AdbError(f"larger than {MAX_SIZE} bytes uncompressed")
    if not inflater.eof:
        raise AdbError("the deflate stream is cut short")
    return result


def parse(content: bytes, schema: bytes | None = None) -> Container:
    """The container in ``content``, checked block by block as apk reads it:
    one ``ADB`` block first, then signatures and data, data only at the end."""
    raw = decompress(content)
    if len(raw) < 8 or raw[:4] != MAGIC:
        raise AdbError("not an ADB file (no ADB. header)")
    found = raw[4:8]
    if schema is not None and found != schema:
        raise AdbError(f"schema {found!r}, expected {schema!r}")
    container: Container | None = None
    for kind, payload in _blocks(raw, 8):
        if container is None:
            if kind != BLOCK_ADB:
                raise AdbError("the first block is not the ADB block")
            if len(payload) < 8 or payload[0] != 0:
                raise AdbError("unsupported ADB block version")
            container = Container(found, payload)
        elif kind == BLOCK_SIG and not container.data:
            container.signatures.append(_signature(payload))
        elif kind == BLOCK_DATA:
            container.data.append(payload)
        else:
            raise AdbError(f"unexpected block of type {kind}")
    if container is None:
        raise AdbError("no ADB block")
    return container


def _blocks(raw: bytes, offset: int) -> Iterator[tuple[int, bytes]]:
    """``(type, payload)`` of each block from ``offset`` on."""
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise AdbError("truncated block header")
        (type_size,) = struct.unpack_from("<I", raw, offset)
        kind, size, header = type_size >> 30, type_size & 0x3FFFFFFF, 4
        if kind == BLOCK_EXT:
            if offset + 16 > len(raw):
                raise AdbError("truncated block header")
            kind, header = size, 16
            (size,) = struct.unpack_from("<Q", raw, offset + 8)
        if size < header or offset + size > len(raw):
            raise AdbError("a block runs past the end of the file")
        yield kind, raw[offset + header : offset + size]
        offset += -(-size // BLOCK_ALIGNMENT) * BLOCK_ALIGNMENT


def _signature(payload: bytes) -> Signature:
    if len(payload) < 18 or payload[0] != 0:
        raise AdbError("unsupported signature block")
    return Signature(payload[1], payload[2:18], payload[18:], payload)


# -- values -------------------------------------------------------------------------


class Values:
    """Reads typed values out of an ``ADB`` block, every offset bounds-checked."""

    def __init__(self, adb: bytes) -> None:
        self.adb = adb

    @property
    def root(self) -> int:
        return struct.unpack_from("<I", self.adb, 4)[0]

    def _at(self, offset: int, size: int) -> bytes:
        if offset + size > len(self.adb):
            raise AdbError("a value points past the end of the ADB block")
        return self.adb[offset : offset + size]

    def integer(self, value: int) -> int:
        kind, offset = value >> 28, value & 0x0FFFFFFF
        if kind == TYPE_INT:
            return offset
        if kind == TYPE_INT_32:
            return struct.unpack("<I", self._at(offset, 4))[0]
        if kind == TYPE_INT_64:
            return struct.unpack("<Q", self._at(offset, 8))[0]
        return 0

    def blob(self, value: int) -> bytes:
        kind, offset = value >> 28, value & 0x0FFFFFFF
        width = {TYPE_BLOB_8: 1, TYPE_BLOB_16: 2, TYPE_BLOB_32: 4}.get(kind)
        if width is None:
            return b""
        length = int.from_bytes(self._at(offset, width), "little")
        return self._at(offset + width, length)

    def text(self, value: int) -> str:
        return self.blob(value).decode("utf-8", "replace")

    def entries(self, value: int) -> list[int]:
        """An object's fields or an array's items: entry 0 is unused, so that
        ``entries(v)[i]`` is field ``i``; missing fields read as null (0)."""
        kind, offset = value >> 28, value & 0x0FFFFFFF
        if kind not in (TYPE_ARRAY, TYPE_OBJECT):
            return [0]
        (count,) = struct.unpack("<I", self._at(offset, 4))
        if count == 0:
            return [0]
        return list(struct.unpack(f"<{count}I", self._at(offset, 4 * count)))

    def field(self, entries: list[int], index: int) -> int:
        return entries[index] if index < len(entries) else 0

    def items(self, value: int) -> list[int]:
        return self.entries(value)[1:]


# -- the schemas ----------------------------------------------------------------------


@dataclass(frozen=True)
class Dependency:
    """A ``depends``, ``provides``, ``install_if`` ... entry: ``name``, optional
    ``version`` and the ``match`` bits (``=`` when a version has none)."""

    name: str
    version: str = ""
    match: int = 0

    @property
    def conflict(self) -> bool:
        return bool(self.match & VERSION_CONFLICT)

    @property
    def operator(self) -> str:
        if not self.version:
            return ""
        bits = (self.match or VERSION_EQUAL) & ~VERSION_CONFLICT
        if bits & VERSION_FUZZY:
            return {VERSION_LESS: "<~", VERSION_GREATER: ">~"}.get(
                bits & (VERSION_LESS | VERSION_GREATER), "~"
            )
        return {
            VERSION_EQUAL: "=",
            VERSION_LESS: "<",
            VERSION_GREATER: ">",
            VERSION_EQUAL | VERSION_LESS: "<=",
            VERSION_EQUAL | VERSION_GREATER: ">=",
            VERSION_LESS | VERSION_GREATER: "><",
        }.get(bits, "=")

    def __str__(self) -> str:
        return f"{'!' if self.conflict else ''}{self.name}{self.operator}{self.version}"


@dataclass(frozen=True)
class PackageInfo:
    """A package as an index (or the package itself) describes it."""

    name: str
    version: str
    hashes: bytes = b""
    description: str = ""
    arch: str = ""
    license: str = ""
    origin: str = ""
    maintainer: str = ""
    url: str = ""
    build_time: int = 0
    installed_size: int = 0
    file_size: int = 0
    provider_priority: int = 0
    depends: tuple[Dependency, ...] = ()
    provides: tuple[Dependency, ...] = ()
    replaces: tuple[Dependency, ...] = ()
    install_if: tuple[Dependency, ...] = ()
    recommends: tuple[Dependency, ...] = ()
    tags: tuple[str, ...] = ()

    def filename(self, pkgname_spec: str = DEFAULT_PKGNAME_SPEC) -> str:
        """Where the package file is, relative to its index: the ``pkgname-spec``
        with ``${name}``, ``${version}`` and ``${arch}`` filled in."""
        return (
            pkgname_spec.replace("${name}", self.name)
            .replace("${version}", self.version)
            .replace("${arch}", self.arch)
        )


def without_abi(name: str, abi_version: str) -> str:
    """``name`` without its ABI version: OpenWrt appends it to the name, after a
    ``-`` when the name ends in a digit (``libubox20260213``, ``libbz2-1.0``)."""
    if not abi_version or not name.endswith(abi_version) or name == abi_version:
        return name
    base = name[: -len(abi_version)]
    return base[:-1] if base.endswith("-") and base[-2:-1].isdigit() else base


@dataclass(frozen=True)
class Index:
    """An ``indx`` file: its description, package name spec and packages."""

    description: str
    pkgname_spec: str
    packages: tuple[PackageInfo, ...]


_INTEGER_FIELDS = (
    "build_time",
    "installed_size",
    "file_size",
    "provider_priority",
)
_TEXT_FIELDS = ("description", "arch", "license", "origin", "maintainer", "url")
_DEPENDENCY_FIELDS = ("depends", "provides", "replaces", "install_if", "recommends")


def _dependencies(values: Values, value: int) -> tuple[Dependency, ...]:
    result = []
    for item in values.items(value):
        entries = values.entries(item)
        name = values.text(values.field(entries, DEP_NAME))
        if name:
            result.append(
                Dependency(
                    name,
                    values.text(values.field(entries, DEP_VERSION)),
                    values.integer(values.field(entries, DEP_MATCH)),
                )
            )
    return tuple(result)


def package_info(values: Values, value: int) -> PackageInfo:
    """The ``pkginfo`` object at ``value``."""
    entries = values.entries(value)

    def at(name: str) -> int:
        return values.field(entries, PI[name])

    fields: dict = {
        "name": values.text(at("name")),
        "version": values.text(at("version")),
        "hashes": values.blob(at("hashes")),
        "tags": tuple(values.text(item) for item in values.items(at("tags"))),
    }
    fields |= {name: values.text(at(name)) for name in _TEXT_FIELDS}
    fields |= {name: values.integer(at(name)) for name in _INTEGER_FIELDS}
    fields |= {name: _dependencies(values, at(name)) for name in _DEPENDENCY_FIELDS}
    return PackageInfo(**fields)


def read_index(container: Container) -> Index:
    """The packages of an ``indx`` container."""
    if container.schema != SCHEMA_INDEX:
        raise AdbError(f"schema {container.schema!r} is not an index")
    values = Values(container.adb)
    root = values.entries(values.root)
    packages = tuple(
        package_info(values, item)
        for item in values.items(values.field(root, NDX_PACKAGES))
    )
    spec = values.text(values.field(root, NDX_PKGNAME_SPEC))
    return Index(
        description=values.text(values.field(root, NDX_DESCRIPTION)),
        pkgname_spec=spec or DEFAULT_PKGNAME_SPEC,
        packages=packages,
    )


@dataclass(frozen=True)
class PackageFile:
    """One file a package installs: its path, mode, size and SHA-256."""

    path: str
    mode: int
    size: int
    sha256: bytes
    target: bytes = b""  # a symlink's target


@dataclass(frozen=True)
class Package:
    """A v3 package: its info, directories (path, mode), files and scripts."""

    info: PackageInfo
    directories: tuple[tuple[str, int], ...]
    files: tuple[PackageFile, ...]
    scripts: dict[str, str]
    #: (directory number, file number) -> the file's position in ``files``
    positions: dict[tuple[int, int], int]


def read_package(container: Container) -> Package:
    """The metadata of a ``pckg`` container (file contents are its data blocks)."""
    if container.schema != SCHEMA_PACKAGE:
        raise AdbError(f"schema {container.schema!r} is not a package")
    values = Values(container.adb)
    root = values.entries(values.root)
    directories, files, positions = [], [], {}
    for dir_number, directory in enumerate(
        values.items(values.field(root, PKG_PATHS)), start=1
    ):
        entries = values.entries(directory)
        name = values.text(values.field(entries, DIR_NAME))
        directories.append((name, _mode(values, values.field(entries, DIR_ACL))))
        for file_number, item in enumerate(
            values.items(values.field(entries, DIR_FILES)), start=1
        ):
            fields = values.entries(item)
            file_name = values.text(values.field(fields, FILE_NAME))
            positions[(dir_number, file_number)] = len(files)
            files.append(
                PackageFile(
                    path=f"{name}/{file_name}" if name else file_name,
                    mode=_mode(values, values.field(fields, FILE_ACL)),
                    size=values.integer(values.field(fields, FILE_SIZE)),
                    sha256=values.blob(values.field(fields, FILE_HASH)),
                    target=values.blob(values.field(fields, FILE_TARGET)),
                )
            )
    scripts_entries = values.entries(values.field(root, PKG_SCRIPTS))
    scripts = {
        name: values.text(values.field(scripts_entries, number))
        for number, name in enumerate(SCRIPTS, start=1)
        if values.field(scripts_entries, number)
    }
    return Package(
        info=package_info(values, values.field(root, PKG_INFO)),
        directories=tuple(directories),
        files=tuple(files),
        scripts=scripts,
        positions=positions,
    )


def _mode(values: Values, acl: int) -> int:
    return values.integer(values.field(values.entries(acl), ACL_MODE))


def package_contents(
    container: Container, package: Package
) -> Iterator[tuple[PackageFile, bytes]]:
    """Each file of ``package`` with its bytes from the data blocks, every one
    checked against the SHA-256 the package's ``ADB`` block gives for it."""
    for block in container.data:
        if len(block) < 8:
            raise AdbError("a data block is too short")
        where = struct.unpack_from("<II", block, 0)
        position = package.positions.get(where)
        if position is None:
            raise AdbError(f"a data block names no file of the package: {where}")
        entry, content = package.files[position], block[8:]
        if len(content) != entry.size or (
            entry.sha256 and hashlib.sha256(content).digest() != entry.sha256
        ):
            raise AdbError(f"{entry.path}: does not match its hash in the package")
        yield entry, content
