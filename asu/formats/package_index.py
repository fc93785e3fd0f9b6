"""Reading package indexes: opkg ``Packages`` (plain or gzip'd) and ``index.json``.

What the server needs from an index is the package names a request may name, with
their versions, and the names those packages also answer to:

- opkg ``Packages``: a package built with an ABI version is published as
  ``libubox20230523`` (``ABIVersion: 20230523``); clients name it ``libubox``. The
  plain name is kept, the full one is a provided name, like each ``Provides:``.
- ``index.json`` v2 (apk era): names are already plain, and there is nothing else:
  no ``Provides``, no dependencies.
- ``index.json`` without ``version`` (opkg era) or ``version: 1``: names as published;
  an entry may be an object with ``version``, ``provides`` and ``abi_version``.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

#: The index files of a package directory, in the order they are looked for
#: (``packages.adb`` is read by :mod:`asu.formats.apk_index`, with its signature).
INDEX_FILES = ("Packages.gz", "Packages", "packages.adb", "index.json")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$", re.ASCII)
_CONSTRAINT = re.compile(r"\s*(?:\(.*\)|[<>=~].*)$")


class BadIndex(ValueError):
    """An index that cannot be read; the message says which and why."""


@dataclass
class PackageIndex:
    """Package names with their versions, and the extra names they answer to.

    apk indexes (:mod:`asu.formats.apk_index`) say more: ``versions``, the versions each
    name answers ``name=version`` with (packages and versioned provides), and
    ``virtual``, names only provided without version by packages that apk does not
    pick by themselves, with those packages.
    """

    packages: dict[str, str] = field(default_factory=dict)
    provides: set[str] = field(default_factory=set)
    versions: dict[str, set[str]] = field(default_factory=dict)
    virtual: dict[str, set[str]] = field(default_factory=dict)

    def update(self, other: PackageIndex) -> None:
        """Add ``other``'s packages and provided names to this index."""
        self.packages.update(other.packages)
        self.provides.update(other.provides)
        for mine, theirs in (
            (self.versions, other.versions),
            (self.virtual, other.virtual),
        ):
            for name, values in theirs.items():
                mine.setdefault(name, set()).update(values)
        self.settle()

    def settle(self) -> None:
        """Drop provided and virtual names that are selectable anyway."""
        self.provides -= self.packages.keys()
        for name in [
            n for n in self.virtual if n in self.packages or n in self.provides
        ]:
            del self.virtual[name]


def parse(name: str, content: bytes) -> PackageIndex:
    """The index in ``content``, read by its file ``name``."""
    if name == "index.json":
        return parse_index_json(content)
    if content[:2] == b"\x1f\x8b":
        try:
            content = gzip.decompress(content)
        except (OSError, EOFError) as error:
            raise BadIndex(f"{name}: not a valid gzip file: {error}") from None
    return parse_packages(content.decode("utf-8", "replace"))


def parse_packages(text: str) -> PackageIndex:
    """An opkg ``Packages`` index."""
    index = PackageIndex()
    for fields in paragraphs(text):
        name = fields.get("Package", "")
        version = fields.get("Version", "")
        if not _NAME.fullmatch(name) or not version:
            continue
        plain = strip_abi(name, fields.get("ABIVersion", ""))
        index.packages[plain] = version
        if plain != name:
            index.provides.add(name)
        index.provides.update(_provided(fields.get("Provides", "").split(",")))
    index.provides -= index.packages.keys()
    return index


def parse_index_json(content: bytes) -> PackageIndex:
    """An ``index.json``: ``{"version"?, "architecture", "packages": {...}}``."""
    try:
        data = json.loads(content)
        packages = data["packages"]
    except (ValueError, KeyError, TypeError):
        raise BadIndex("index.json: not an index (no packages object)") from None
    if not isinstance(packages, dict):
        raise BadIndex("index.json: packages must be an object")
    index = PackageIndex()
    for name, entry in packages.items():
        if not _NAME.fullmatch(name):
            continue
        if isinstance(entry, str):
            index.packages[name] = entry
        elif isinstance(entry, dict) and isinstance(entry.get("version"), str):
            plain = strip_abi(name, str(entry.get("abi_version", "")))
            index.packages[plain] = entry["version"]
            if plain != name:
                index.provides.add(name)
            index.provides.update(_provided(entry.get("provides") or ()))
    index.provides -= index.packages.keys()
    return index


def paragraphs(text: str) -> Iterator[dict[str, str]]:
    """The fields of each paragraph; continuation lines are dropped."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields = {}
        elif not line[0].isspace() and ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    if fields:
        yield fields


def strip_abi(name: str, abi_version: str) -> str:
    """``name`` without its ABI version, as ``opkg --strip-abi`` removes it."""
    if abi_version and name.endswith(abi_version) and len(name) > len(abi_version):
        return name[: -len(abi_version)]
    return name


def _provided(entries: Iterable) -> set[str]:
    """Names from ``Provides`` entries, without version constraints."""
    names = set()
    for entry in entries:
        name = _CONSTRAINT.sub("", str(entry).strip())
        if _NAME.fullmatch(name):
            names.add(name)
    return names
