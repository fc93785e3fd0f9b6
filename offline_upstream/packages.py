"""Package files and feed indexes of the offline upstream.

Every package carries one payload file, ``usr/share/pkg/<name>``, of
``payload_size`` incompressible bytes derived from its name and version, so the size
of an image grows with what is installed the way it does upstream (at SIZE_SCALE).

Everything here is deterministic: the same packages and ``mtime`` give the same bytes
(fixed timestamps, owner 0, sorted tar members, gzip headers without a time).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from asu.formats.adb import VERSION_CONFLICT, Dependency, PackageInfo, without_abi
from offline_upstream import adb_writer
from offline_upstream.model import Package

#: ``etc/openwrt_release`` as the base-files sources ship it; the ImageBuilder
#: writes the real values into the image (upstream, the package build does).
OPENWRT_RELEASE_TEMPLATE = """\
DISTRIB_ID='%D'
DISTRIB_RELEASE='%V'
DISTRIB_REVISION='%R'
DISTRIB_TARGET='%S'
DISTRIB_ARCH='%A'
DISTRIB_DESCRIPTION='%D %V %C'
DISTRIB_TAINTS='%t'
"""

OPENWRT_VERSION_TEMPLATE = "%C\n"

PackageEntry = tuple[Package, bytes]


# -- package files ----------------------------------------------------------------


def package_filename(pkg: Package, package_format: str) -> str:
    """``<name>_<version>_<arch>.ipk`` (opkg) or ``<name>-<version>.apk`` (apk)."""
    if package_format == "opkg":
        return f"{pkg.name}_{pkg.version}_{pkg.arch}.ipk"
    if package_format == "apk":
        return f"{pkg.name}-{pkg.version}.apk"
    raise ValueError(f"unknown package format {package_format!r}")


def build_package_file(pkg: Package, package_format: str, mtime: int = 0) -> bytes:
    """The bytes of ``pkg``'s package file (``.ipk`` or ``.apk``).

    An ``.ipk`` is what OpenWrt's opkg builds: a gzip'd tar of ``debian-binary``,
    ``data.tar.gz`` and ``control.tar.gz``. An ``.apk`` is what ``apk mkpkg`` builds
    for OpenWrt 25.12 on: an unsigned v3 (ADB) package (:func:`apk_info`).
    """
    data = data_members(pkg)
    if package_format == "opkg":
        return _ipk(pkg, data, mtime)
    if package_format == "apk":
        scripts = {"post-install": pkg.postinst} if pkg.postinst else None
        return adb_writer.package_file(apk_info(pkg), data, scripts)
    raise ValueError(f"unknown package format {package_format!r}")


def payload(pkg: Package) -> bytes:
    """``payload_size`` bytes that no compressor shrinks, the same for each build."""
    seed = f"{pkg.name}\0{pkg.version}".encode()
    return hashlib.shake_256(seed).digest(pkg.payload_size)


def data_members(pkg: Package) -> dict[str, bytes | None]:
    """The files (bytes) and directories (None) a package installs, by path."""
    members: dict[str, bytes | None] = {f"usr/share/pkg/{pkg.name}": payload(pkg)}
    if pkg.name == "base-files":
        members["etc/openwrt_release"] = OPENWRT_RELEASE_TEMPLATE.encode()
        members["etc/openwrt_version"] = OPENWRT_VERSION_TEMPLATE.encode()
        members["etc/uci-defaults"] = None
    return _with_parents(members)


def _with_parents(members: dict[str, bytes | None]) -> dict[str, bytes | None]:
    """``members`` plus an entry for every directory above its paths."""
    complete = dict(members)
    for path in members:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            complete.setdefault("/".join(parts[:depth]), None)
    return complete


def control_text(pkg: Package) -> str:
    """The ``control`` file of an ``.ipk``, fields in the order opkg-build writes."""
    fields = [
        ("Package", pkg.name),
        ("Version", pkg.version),
        ("Depends", ", ".join(pkg.depends)),
        ("Conflicts", ", ".join(pkg.conflicts)),
        ("Provides", ", ".join(pkg.provides)),
        ("Section", pkg.section),
        ("ABIVersion", pkg.abi_version),
        ("Architecture", pkg.arch),
        ("Installed-Size", str(pkg.installed_size)),
    ]
    lines = [f"{key}: {value}" for key, value in fields if value]
    lines.append(_description_field(pkg))
    return "\n".join(lines) + "\n"


def _description_field(pkg: Package) -> str:
    """``Description:`` with two spaces, continuation lines indented, as opkg has it."""
    text = pkg.description or pkg.name
    return "Description:  " + "\n ".join(text.splitlines())


def apk_info(pkg: Package) -> PackageInfo:
    """The apk package info OpenWrt's build gives ``pkg`` (``package-pack.mk``).

    Conflicts are ``!name`` dependencies. An ABI-versioned library provides its
    plain name without a version, with provider priority 10, so apk installs
    ``libubox`` as ``libubox20260213`` when asked; ``<name>-any`` names are virtual
    (no version); every other provided name carries the package's version, so apk
    picks the package for it (``nftables-json`` for ``nftables``).
    """
    plain = _index_name(pkg, "apk")
    provides = tuple(
        Dependency(name)
        if name == plain or name.endswith("-any")
        else Dependency(name, pkg.version)
        for name in pkg.provides
    )
    # apk has no alternatives: ``a | b`` depends on the first
    depends = tuple(Dependency(dep.split("|")[0].strip()) for dep in pkg.depends)
    depends += tuple(Dependency(n, match=VERSION_CONFLICT) for n in pkg.conflicts)
    return PackageInfo(
        name=pkg.name,
        version=pkg.version,
        description=pkg.description or pkg.name,
        arch=pkg.arch,
        installed_size=pkg.installed_size,
        provider_priority=10 if pkg.abi_version else 0,
        depends=depends,
        provides=provides,
        tags=(f"openwrt:abiversion={pkg.abi_version}",) if pkg.abi_version else (),
    )


def _ipk(pkg: Package, data: dict[str, bytes | None], mtime: int) -> bytes:
    control = {"control": control_text(pkg).encode()}
    if pkg.postinst:
        control["postinst"] = pkg.postinst.encode()
    outer = [
        ("./debian-binary", b"2.0\n"),
        ("./data.tar.gz", _gzip(_tar(_dot_tree(data), mtime))),
        ("./control.tar.gz", _gzip(_tar(_dot_tree(control), mtime))),
    ]
    # the order opkg-build writes, which ipkg-extracting tools expect
    return _gzip(_tar(outer, mtime))


def _dot_tree(members: dict[str, bytes | None]) -> list[tuple[str, bytes | None]]:
    """``members`` as ``tar -C dir .`` lists them: ``./`` first, then sorted."""
    return [("./", None)] + [
        (f"./{path}", data) for path, data in sorted(members.items())
    ]


def _tar(members: list[tuple[str, bytes | None]], mtime: int) -> bytes:
    """A tar of ``members`` in the given order; None content marks a directory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, content in members:
            stream = None if content is None else io.BytesIO(content)
            tar.addfile(_tarinfo(name, content, mtime), stream)
    return buffer.getvalue()


def _tarinfo(name: str, content: bytes | None, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if content is None:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = len(content)
        info.mode = 0o644
    return info


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


# -- indexes ----------------------------------------------------------------------


def packages_index(entries: Iterable[PackageEntry], package_format: str) -> str:
    """The opkg ``Packages`` text: one paragraph per package, sorted by name."""
    return "".join(
        _packages_paragraph(pkg, package_file, package_format)
        for pkg, package_file in _sorted(entries)
    )


def _packages_paragraph(pkg: Package, package_file: bytes, package_format: str) -> str:
    control = control_text(pkg).splitlines()
    description_at = next(
        i for i, line in enumerate(control) if line.startswith("Description:")
    )
    file_fields = [
        f"Filename: {package_filename(pkg, package_format)}",
        f"Size: {len(package_file)}",
        f"SHA256sum: {hashlib.sha256(package_file).hexdigest()}",
    ]
    lines = control[:description_at] + file_fields + control[description_at:]
    return "\n".join(lines) + "\n\n"


def index_json(packages: Iterable[Package], package_format: str, arch: str) -> dict:
    """``index.json``: opkg era ``{architecture, packages}``; apk era adds
    ``"version": 2`` and names its packages without their ABI version suffix."""
    versions = {_index_name(pkg, package_format): pkg.version for pkg in packages}
    index = {"architecture": arch, "packages": dict(sorted(versions.items()))}
    if package_format == "apk":
        return {"version": 2, **index}
    return index


def _index_name(pkg: Package, package_format: str) -> str:
    if package_format == "apk":
        return without_abi(pkg.name, pkg.abi_version)
    return pkg.name


def apk_index(entries: Iterable[PackageEntry]) -> bytes:
    """The signed ``packages.adb`` of a feed: each package's info with the size
    and identity of its file, as ``apk mkndx`` writes it."""
    infos = [
        replace(
            apk_info(pkg),
            file_size=len(package_file),
            hashes=adb_writer.identity(package_file),
        )
        for pkg, package_file in entries
    ]
    return adb_writer.index_file(infos, adb_writer.signing_key())


def _sorted(entries: Iterable[PackageEntry]) -> list[PackageEntry]:
    return sorted(entries, key=lambda entry: (entry[0].name, entry[0].version))


# -- a whole feed -----------------------------------------------------------------


def feed_files(
    packages: Iterable[Package], package_format: str, arch: str, mtime: int
) -> dict[str, bytes]:
    """Every file of a feed directory by name: the package files and the indexes."""
    by_file = {package_filename(pkg, package_format): pkg for pkg in packages}
    files = {
        name: build_package_file(pkg, package_format, mtime)
        for name, pkg in by_file.items()
    }
    entries = [(pkg, files[name]) for name, pkg in by_file.items()]
    index = index_json([pkg for pkg, _ in entries], package_format, arch)
    if package_format == "opkg":
        text = packages_index(entries, package_format).encode()
        files["Packages"] = text
        files["Packages.gz"] = _gzip(text)
        files["index.json"] = json.dumps(index).encode()
    else:
        files["packages.adb"] = apk_index(entries)
        files["index.json"] = json.dumps(index, indent=2).encode()
    return files


def write_feed(
    directory: Path,
    packages: Iterable[Package],
    package_format: str,
    arch: str,
    mtime: int,
) -> None:
    """Write a feed (package files, then indexes) into ``directory``.

    Each file is written under a temporary name and renamed, so a reader never sees
    a half-written file; the indexes come last, after the files they point to.
    """
    directory.mkdir(parents=True, exist_ok=True)
    files = feed_files(packages, package_format, arch, mtime)
    index_names = {"Packages", "Packages.gz", "index.json", "packages.adb"}
    ordered = sorted(files, key=lambda name: (name in index_names, name))
    for name in ordered:
        _write_atomically(directory / name, files[name])


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    partial.replace(path)
