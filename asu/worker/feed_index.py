"""What a feed offers a build: every package's file, checksum, dependencies and the
names it provides, read from the feed's index.

:mod:`asu.formats.package_index` keeps only names and versions, for validating requests;
the worker needs more to serve an ImageBuilder its packages: where each file is,
the SHA-256 the signed index gives for it, and what it depends on, to fetch
everything a build may install before the build starts.

opkg's ``Packages`` gives the SHA-256 of each file; apk's ``packages.adb`` gives each
package's identity, the SHA-256 of the package's own metadata block, which in turn
holds the hash of every file it installs (:func:`asu.formats.apk_index.check_package`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from asu.formats import adb
from asu.formats.apk_index import plain_name
from asu.formats.package_index import paragraphs, strip_abi

#: A package file name: a plain name in the feed's directory, never a path.
FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+~-]*\.(?:ipk|apk)$", re.ASCII)
SHA256 = re.compile(r"^[0-9a-f]{64}$", re.ASCII)
_CONSTRAINT = re.compile(r"\s*(?:\(.*\)|[<>=~].*)$")


@dataclass(frozen=True)
class Entry:
    """One package of a feed, as its index describes it."""

    name: str
    #: the name without its ABI version, as ``index.json`` and clients have it
    plain_name: str
    version: str
    filename: str
    #: what the signed index gives to check the file with, as hex: opkg the file's
    #: SHA-256, apk the package's identity
    sha256: str
    size: int
    #: each dependency as its alternatives (``a | b``), without version constraints
    depends: tuple[tuple[str, ...], ...] = ()
    provides: tuple[str, ...] = ()
    #: apk installs the package by itself once all of these are installed
    install_if: tuple[str, ...] = ()
    #: apk: the index's description of the package, to check the file against
    info: adb.PackageInfo | None = None


def parse_packages(text: str) -> list[Entry]:
    """The packages of an opkg ``Packages`` index that name a plain file and its
    SHA-256; others cannot be fetched and checked, so they are left out."""
    entries = []
    for fields in paragraphs(text):
        filename, sha256 = fields.get("Filename", ""), fields.get("SHA256sum", "")
        if not (FILENAME.fullmatch(filename) and SHA256.fullmatch(sha256)):
            continue
        size = fields.get("Size", "0")
        name = fields.get("Package", "")
        entries.append(
            Entry(
                name=name,
                plain_name=strip_abi(name, fields.get("ABIVersion", "")),
                version=fields.get("Version", ""),
                filename=filename,
                sha256=sha256,
                size=int(size) if size.isdigit() else 0,
                depends=tuple(_alternatives(fields.get("Depends", ""))),
                provides=tuple(_names(fields.get("Provides", "").split(","))),
            )
        )
    return entries


def apk_entries(index: adb.Index) -> list[Entry]:
    """The packages of an apk index; conflicts (``!name``) are no dependency."""
    entries = []
    for info in index.packages:
        filename = info.filename(index.pkgname_spec)
        if not (FILENAME.fullmatch(filename) and info.hashes):
            continue
        entries.append(
            Entry(
                name=info.name,
                plain_name=plain_name(info),
                version=info.version,
                filename=filename,
                sha256=info.hashes.hex(),
                size=info.file_size,
                depends=tuple((d.name,) for d in info.depends if not d.conflict),
                provides=tuple(d.name for d in info.provides),
                install_if=tuple(d.name for d in info.install_if if not d.conflict),
                info=info,
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
    Alternatives (``a | b``) all count, and so does a package apk would install by
    itself (``install_if``) once what it names is needed. Names no feed has are
    left to the ImageBuilder (its own ``libc`` and ``kernel``) or to its error
    message.
    """
    entries = list(entries)
    by_name: dict[str, list[Entry]] = {}
    providers: dict[str, list[Entry]] = {}
    for entry in entries:
        by_name.setdefault(entry.name, []).append(entry)
        for name in entry.provides:
            providers.setdefault(name, []).append(entry)
    needed: dict[int, Entry] = {}
    seen: set[str] = set()
    pending = list(wanted)
    while pending:
        virtual = []
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            if name not in by_name:
                virtual.append(name)
                continue
            for entry in by_name[name]:
                needed[id(entry)] = entry
                pending.extend(alt for group in entry.depends for alt in group)
        for name in virtual:
            offered = [entry.name for entry in providers.get(name, ())]
            if not seen.intersection(offered):
                pending.extend(offered)
        have = seen.union(*(entry.provides for entry in needed.values()))
        pending += [
            entry.name
            for entry in entries
            if entry.install_if
            and entry.name not in seen
            and have.issuperset(entry.install_if)
        ]
    return list(needed.values())
