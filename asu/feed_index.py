"""What a feed offers a build: every package's file, checksum, dependencies and the
names it provides, read from the feed's index.

:mod:`asu.package_index` keeps only names and versions, for validating requests;
the worker needs more to serve an ImageBuilder its packages: where each file is,
the SHA-256 the signed index gives for it, and what it depends on, to fetch
everything a build may install before the build starts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from asu.package_index import paragraphs

#: A package file name: a plain name in the feed's directory, never a path.
FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+~-]*\.(?:ipk|apk)$", re.ASCII)
SHA256 = re.compile(r"^[0-9a-f]{64}$", re.ASCII)
_CONSTRAINT = re.compile(r"\s*(?:\(.*\)|[<>=~].*)$")


@dataclass(frozen=True)
class Entry:
    """One package of a feed, as its index describes it."""

    name: str
    version: str
    filename: str
    sha256: str
    size: int
    #: each dependency as its alternatives (``a | b``), without version constraints
    depends: tuple[tuple[str, ...], ...] = ()
    provides: tuple[str, ...] = ()


def parse_packages(text: str) -> list[Entry]:
    """The packages of an opkg ``Packages`` index that name a plain file and its
    SHA-256; others cannot be fetched and checked, so they are left out."""
    entries = []
    for fields in paragraphs(text):
        filename, sha256 = fields.get("Filename", ""), fields.get("SHA256sum", "")
        if not (FILENAME.fullmatch(filename) and SHA256.fullmatch(sha256)):
            continue
        size = fields.get("Size", "0")
        entries.append(
            Entry(
                name=fields.get("Package", ""),
                version=fields.get("Version", ""),
                filename=filename,
                sha256=sha256,
                size=int(size) if size.isdigit() else 0,
                depends=tuple(_alternatives(fields.get("Depends", ""))),
                provides=tuple(_names(fields.get("Provides", "").split(","))),
            )
        )
    return entries


def _alternatives(depends: str) -> Iterator[tuple[str, ...]]:
    for entry in depends.split(","):
        names = tuple(_names(entry.split("|")))
        if names:
            yield names


def _names(items: Iterable[str]) -> Iterator[str]:
    for item in items:
        name = _CONSTRAINT.sub("", item.strip())
        if name:
            yield name


def closure(entries: Iterable[Entry], wanted: Iterable[str]) -> list[Entry]:
    """Every package an install of ``wanted`` may need, over depends and provides.

    A name a package has is that package (every feed's, should several offer it);
    a name only provided is satisfied by a provider already needed, else by all
    of its providers, since which one the package manager picks is its choice.
    Alternatives (``a | b``) all count. Names no feed has are left to the
    ImageBuilder (its own ``libc`` and ``kernel``) or to its error message.
    """
    by_name: dict[str, list[Entry]] = {}
    providers: dict[str, list[Entry]] = {}
    for entry in entries:
        by_name.setdefault(entry.name, []).append(entry)
        for name in entry.provides:
            providers.setdefault(name, []).append(entry)
    needed: dict[tuple[str, str, str], Entry] = {}
    names: set[str] = set()
    virtual: list[str] = []
    pending = list(wanted)
    while pending or virtual:
        if not pending:
            offered = [entry.name for entry in providers.get(virtual.pop(), ())]
            if not names.intersection(offered):
                pending.extend(offered)
            continue
        name = pending.pop()
        if name in names:
            continue
        names.add(name)
        if name not in by_name:
            virtual.append(name)
            continue
        for entry in by_name[name]:
            needed[(entry.name, entry.version, entry.filename)] = entry
            pending.extend(alt for group in entry.depends for alt in group)
    return list(needed.values())
