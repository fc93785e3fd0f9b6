"""The package files builds install, fetched once per machine and shared by every
build on it.

A file is kept under the SHA-256 its signed feed index gives for it
(``cache_path/packages/<aa>/<sha256>``: opkg's of the file, apk's of the package's
identity), so a file is only ever what some signed index promised, and one package
published in several feeds or versions is kept once. It is downloaded under a
temporary name, its size capped and checked against the index, then linked into
place read-only: concurrent workers fetching the same package each write their own
temporary file and the first to finish gives the file its name, which never
changes after, so no reader ever sees half a file. Builds get hard links (a copy on
another file system); every use marks the file used, and ``flask cleanup`` removes
the least recently used files beyond ``max_package_cache_mb``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from asu import upstream

CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A package file could not be had; the message says which and why."""


#: Checks a downloaded file (its path and SHA-256) against its index; raises
#: :class:`FetchError` when it is not what the index promised.
Check = Callable[[Path, str], None]


def same_sha256(sha256: str) -> Check:
    """The check of a file whose index gives its SHA-256 (opkg)."""

    def check(path: Path, digest: str) -> None:
        if digest != sha256:
            raise FetchError(
                f"{path.name} does not match its signed index (sha256 {digest}, "
                f"expected {sha256})"
            )

    return check


@dataclass(frozen=True)
class PackageCache:
    """The cache below ``root``."""

    root: Path

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def fetch(
        self,
        http: requests.Session,
        url: str,
        sha256: str,
        max_bytes: int,
        check: Check | None = None,
    ) -> Path:
        """The cached file kept under ``sha256``, downloaded from ``url`` when
        missing and passed by ``check`` (by default: its SHA-256 is ``sha256``)."""
        path = self.path(sha256)
        if _mark_used(path):
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
        try:
            with os.fdopen(handle, "wb") as out:
                digest = _download(http, url, out, max_bytes)
            (check or same_sha256(sha256))(Path(partial), digest)
            os.chmod(partial, 0o444)
            _keep_first(partial, path)
        finally:
            if os.path.lexists(partial):
                os.unlink(partial)
        return path

    def link(self, sha256: str, dest: Path) -> None:
        """Put the cached file at ``dest``: a hard link, or a copy across devices."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(self.path(sha256), dest)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            shutil.copyfile(self.path(sha256), dest)

    def trim(self, max_bytes: int) -> list[Path]:
        """Remove the least recently used files until the rest fit ``max_bytes``;
        returns what was removed. Partial downloads older than a day go too."""
        files = []
        stale = time.time() - 86400
        removed = []
        for path in self.root.glob("*/*"):
            try:
                stat = path.stat()
            except FileNotFoundError:  # another cleanup or download got there first
                continue
            if path.name.startswith(".partial-"):
                if stat.st_mtime < stale:
                    path.unlink(missing_ok=True)
                    removed.append(path)
                continue
            files.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= max_bytes:
                break
            path.unlink(missing_ok=True)
            removed.append(path)
            total -= size
        return removed


def _keep_first(partial: str, path: Path) -> None:
    """Give ``partial`` the name ``path`` unless another download already did.

    A file once in place is never replaced: replacing it (``rename``) while another
    worker hard-links it would make that link fail, as the old file is gone."""
    with contextlib.suppress(FileExistsError):
        os.link(partial, path)


def _mark_used(path: Path) -> bool:
    """Touch ``path`` for the least-recently-used order; whether it exists."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


def _download(http: requests.Session, url: str, out, max_bytes: int) -> str:
    """Stream ``url`` into ``out``, at most ``max_bytes``; the SHA-256 of the bytes."""
    digest = hashlib.sha256()
    written = 0
    try:
        with upstream.get(http, url, stream=True) as response:
            for chunk in response.iter_content(CHUNK):
                written += len(chunk)
                if written > max_bytes:
                    raise FetchError(f"{url} is larger than {max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
    except upstream.UpstreamError as error:
        raise FetchError(str(error)) from None
    except requests.RequestException as error:
        raise FetchError(f"{url}: download failed: {error}") from None
    return digest.hexdigest()
