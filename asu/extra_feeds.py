"""Extra package feeds (a request's ``repositories``) fetched by the worker, so that
the sandboxed ImageBuilder stays without a network.

For opkg feeds the worker downloads each feed's ``Packages.gz`` (checking
``Packages.sig`` when the request names ``repository_keys``) into the job's
directory and points ``repositories.conf`` there; after ``make manifest`` it
downloads the package files the image needs, each checked against the index's
SHA256sum. apk feeds (a signed binary ``packages.adb``) are left to the
ImageBuilder, which then needs the network.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import requests

from asu import upstream, usign

_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+~-]*\.ipk$", re.ASCII)
_SHA256 = re.compile(r"^[0-9a-f]{64}$", re.ASCII)


class FeedError(RuntimeError):
    """An extra feed that cannot be used; the message says which and why."""


@dataclass
class LocalFeed:
    """An extra feed copied into the job: its index and the files fetched so far."""

    name: str
    url: str
    directory: Path
    #: {(package, version): (file name, sha256)} from the feed's index
    files: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)


def fetch_index(
    http: requests.Session, name: str, url: str, directory: Path, keys: tuple[str, ...]
) -> LocalFeed:
    """Download one opkg feed's index into ``directory``."""
    try:
        packages = gzip.decompress(upstream.get(http, f"{url}/Packages.gz").content)
        if keys:
            signature = upstream.get(http, f"{url}/Packages.sig").text
            usign.verify(packages, signature, keys)
    except (upstream.UpstreamError, OSError, EOFError) as error:
        raise FeedError(f"feed {name}: cannot read its index: {error}") from None
    except usign.UsignError as error:
        raise FeedError(f"feed {name}: index signature refused: {error}") from None
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Packages").write_bytes(packages)
    feed = LocalFeed(name, url, directory)
    for stanza in packages.decode("utf-8", "replace").split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line
        )
        filename, digest = fields.get("Filename", ""), fields.get("SHA256sum", "")
        if _FILENAME.fullmatch(filename) and _SHA256.fullmatch(digest):
            key = (fields.get("Package", ""), fields.get("Version", ""))
            feed.files[key] = (filename, digest)
    return feed


def fetch_packages(
    http: requests.Session, feeds: list[LocalFeed], manifest: dict[str, str]
) -> None:
    """Download the files of the manifest's packages that the extra feeds have."""
    for feed in feeds:
        for package, version in manifest.items():
            found = feed.files.get((package, version))
            if found:
                _fetch_file(http, feed, *found)


def _fetch_file(http: requests.Session, feed: LocalFeed, name: str, sha256: str):
    try:
        data = upstream.get(http, f"{feed.url}/{name}").content
    except upstream.UpstreamError as error:
        raise FeedError(f"feed {feed.name}: {error}") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise FeedError(f"feed {feed.name}: {name} does not match its index")
    (feed.directory / name).write_bytes(data)
