"""Fetch, verify, unpack and cache the ImageBuilder of one version and target.

1. ``sha256sums`` and ``sha256sums.sig`` of the target are fetched and the
   signature is checked against the configured upstream keys.
2. The ImageBuilder archive named in ``sha256sums`` is downloaded through SHA-256
   and compared with it.
3. It is unpacked with a safe extract (nothing written outside the target
   directory or through a link, no device files) into a temporary directory that
   is renamed into the cache at once.

One file lock per version and target makes concurrent jobs on one machine wait for
a single download; the unpacked tree is reused until upstream's ``sha256sums``
names another archive.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import lzma
import os
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import requests

from asu import upstream
from asu.config import Config
from asu.distributions import Distribution
from asu.formats import usign
from asu.worker import sandbox

ARCHIVE = re.compile(
    r"^(?P<sha256>[0-9a-f]{64}) \*(?P<name>openwrt-imagebuilder-[\w.-]+"
    r"\.Linux-x86_64\.tar\.(?P<kind>xz|zst))$",
    re.ASCII,
)
CHUNK = 1 << 20


class ImageBuilderError(RuntimeError):
    """The ImageBuilder could not be had; the message says what to check."""


@dataclass(frozen=True)
class Archive:
    """The ImageBuilder archive ``sha256sums`` names for one target."""

    name: str
    sha256: str
    kind: str  # "xz" or "zst"


Progress = Callable[[str], None]


def find_archive(sha256sums: str) -> Archive:
    """The ImageBuilder line of a target's ``sha256sums``."""
    for line in sha256sums.splitlines():
        match = ARCHIVE.match(line.strip())
        if match:
            return Archive(match["name"], match["sha256"], match["kind"])
    raise ImageBuilderError("upstream's sha256sums lists no ImageBuilder")


@dataclass(frozen=True)
class Source:
    """Which ImageBuilder: a distribution's version and target."""

    distribution: Distribution
    version: str
    target: str

    def url(self, name: str) -> str:
        """The address of a file in the target's upstream directory."""
        path = upstream.target_path(self.version, self.target)
        return self.distribution.url(f"{path}/{name}")


def fetch_sha256sums(http: requests.Session, source: Source) -> str:
    """The target's ``sha256sums``, its usign signature checked."""
    try:
        sums = upstream.get(http, source.url("sha256sums")).content
        signature = upstream.get(http, source.url("sha256sums.sig")).text
    except upstream.UpstreamError as error:
        raise ImageBuilderError(f"cannot fetch the checksums: {error}") from None
    try:
        usign.verify(sums, signature, source.distribution.upstream_keys)
    except usign.UsignError as error:
        raise ImageBuilderError(
            f"sha256sums of {source.version} {source.target} failed the signature "
            f"check: {error}"
        ) from None
    return sums.decode("utf-8", "replace")


def cache_dir(config: Config, source: Source) -> Path:
    """Where the ImageBuilders of one distribution, version and target are unpacked."""
    name = source.distribution.name
    target = source.target.replace("/", "-")
    return config.cache_path / "imagebuilders" / name / source.version / target


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare(
    config: Config,
    http: requests.Session,
    source: Source,
    progress: Progress = lambda stage: None,
) -> Path:
    """The unpacked ImageBuilder of ``source``, fetched when needed."""
    archive = find_archive(fetch_sha256sums(http, source))
    unpacked = cache_dir(config, source) / archive.sha256[:16]
    if not (unpacked / "Makefile").is_file():
        _fetch_and_unpack(http, source, archive, unpacked, progress)
    unpacked.touch()  # marks it used, for the cleanup of unused ones
    return unpacked


def _fetch_and_unpack(
    http: requests.Session,
    source: Source,
    archive: Archive,
    unpacked: Path,
    progress: Progress,
) -> None:
    """Download and unpack ``archive`` to ``unpacked``, once per machine."""
    base = unpacked.parent
    with _locked(base.with_name(base.name + ".lock")):
        if (unpacked / "Makefile").is_file():
            return
        progress("download_imagebuilder")
        with tempfile.TemporaryDirectory(dir=base.parent, prefix=".ib-") as scratch:
            download = Path(scratch) / archive.name
            _download(http, source.url(archive.name), download, archive.sha256)
            progress("unpack_imagebuilder")
            top = unpack(download, archive.kind, Path(scratch) / "tree")
            # Builds see it through an overlay: the sandbox user must own it to
            # change their copy-on-write view of it.
            sandbox.hand_over(top)
            base.mkdir(parents=True, exist_ok=True)
            top.rename(unpacked)


def _download(http: requests.Session, address: str, dest: Path, sha256: str) -> None:
    digest = hashlib.sha256()
    try:
        with (
            upstream.get(http, address, stream=True) as response,
            open(dest, "wb") as out,
        ):
            for chunk in response.iter_content(CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except (upstream.UpstreamError, requests.RequestException) as error:
        raise ImageBuilderError(f"ImageBuilder download failed: {error}") from None
    if digest.hexdigest() != sha256:
        raise ImageBuilderError(
            f"the ImageBuilder {dest.name} does not match upstream's sha256sums "
            f"(got {digest.hexdigest()}, expected {sha256}): download corrupted"
        )


def unpack(archive: Path, kind: str, dest: Path) -> Path:
    """Extract ``archive`` (``xz`` or ``zst``) safely into ``dest``, which must not
    exist yet; return the archive's single top directory.

    A full disk is not the archive's fault: that error is raised as it is.
    """
    dest.mkdir()
    try:
        if kind == "xz":
            with tarfile.open(archive, "r:xz") as tar:
                _extract(tar, dest)
        else:
            _extract_zst(archive, dest)
    except (tarfile.TarError, lzma.LZMAError, EOFError, OSError) as error:
        if getattr(error, "errno", None) == errno.ENOSPC:
            raise
        raise ImageBuilderError(f"unusable ImageBuilder archive: {error}") from None
    tops = list(dest.iterdir())
    if len(tops) != 1 or tops[0].is_symlink() or not (tops[0] / "Makefile").is_file():
        raise ImageBuilderError("the ImageBuilder archive has no single top directory")
    return tops[0]


def _extract_zst(archive: Path, dest: Path) -> None:
    with subprocess.Popen(
        ["zstd", "-d", "-c", "-q", str(archive)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            _extract(tar, dest)
        stderr = proc.stderr.read().decode(errors="replace").strip()
    if proc.returncode != 0:
        raise ImageBuilderError(f"zstd could not decompress the archive: {stderr}")


def _extract(tar: tarfile.TarFile, dest: Path) -> None:
    """Unpack ``tar`` into ``dest`` member by member, refusing what could escape.

    The rules are lexical, so no chain of links can fool them: every name is a
    plain relative path, written once and never through a link; hard links point
    at a regular file unpacked before. Symbolic links are kept as they are,
    absolute ones included (a real ImageBuilder has ``staging_dir/host/bin/gzip ->
    /usr/bin/gzip``): nothing is ever written through them, and the sandbox that
    runs the ImageBuilder sees only its own system. Owners are dropped and
    setuid, setgid, sticky and group or other write bits cleared.
    """
    for member in tar:
        _check_member(member, dest)
        tar.extract(_sanitized(member), dest, filter="fully_trusted")


def _sanitized(member: tarfile.TarInfo) -> tarfile.TarInfo:
    if member.issym():
        mode = None
    else:
        mode = member.mode & 0o755 | (0o700 if member.isdir() else 0o600)
    return member.replace(
        uid=None, gid=None, uname=None, gname=None, mode=mode, deep=False
    )


def _unsafe(member: tarfile.TarInfo, why: str) -> ImageBuilderError:
    return ImageBuilderError(f"unsafe ImageBuilder archive: {member.name!r} {why}")


def _check_member(member: tarfile.TarInfo, dest: Path) -> None:
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        raise _unsafe(member, "is a device, FIFO or other special file")
    path = _path_below(dest, member.name, member)
    a_directory_again = member.isdir() and path.is_dir() and not path.is_symlink()
    if os.path.lexists(path) and not a_directory_again:
        raise _unsafe(member, "appears twice")
    if member.islnk():
        target = _path_below(dest, member.linkname, member)
        if target.is_symlink() or not target.is_file():
            raise _unsafe(member, f"is a hard link to {member.linkname!r}, no file")


def _path_below(dest: Path, name: str, member: tarfile.TarInfo) -> Path:
    """``dest/name`` for a plain relative ``name`` not reached through a link."""
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts:
        raise _unsafe(member, "is not a plain relative path")
    path = dest
    for part in parts[:-1]:
        path = path / part
        if path.is_symlink():
            raise _unsafe(member, f"would be written through the link {part!r}")
    return dest.joinpath(*parts)
