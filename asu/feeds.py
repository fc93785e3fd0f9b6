"""An ImageBuilder's package feeds, served by the worker so that its sandbox stays
without a network.

A release ImageBuilder names its feeds by URL: ``src/gz <name> <url>`` lines in
``repositories.conf`` (opkg). Its ``make manifest`` and ``make image`` would
download each feed's index and signature and then every package the image needs.
Instead the worker:

1. reads those lines (:func:`imagebuilder_feeds`), maps URLs on the distribution's
   public address (``https://downloads.openwrt.org``) to its ``upstream_url``, and
   adds a request's extra feeds (or puts them in the upstream feeds' place);
2. fetches each feed's index and signature verbatim into the job's feed directory
   and reads the index, its signature checked with the keys the ImageBuilder and
   the distribution trust (:func:`mirror`): a feed whose signature fails is left out
   (an extra feed fails the build), and said so should the build miss a package;
3. fetches every package the build may install into the machine's shared
   :class:`~asu.package_cache.PackageCache`, checked against the signed index's
   SHA-256, and links it into the feed directory (:func:`provide`);
4. writes the repositories file naming the local copies (:func:`repositories_file`),
   which the sandbox sees read-only; the ImageBuilder's own opkg then reads them
   as any feed, checking every signature as it would online.
"""

from __future__ import annotations

import gzip
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from asu import feed_index, upstream, usign
from asu.distributions import Distribution
from asu.feed_index import Entry
from asu.package_cache import FetchError, PackageCache

#: ``src/gz <name> <url>`` (or ``src``) in repositories.conf.
_SOURCE = re.compile(r"^src(/gz)?\s+(\S+)\s+(\S+)\s*$")
FEED_NAME = re.compile(r"^[\w.-]{1,64}$", re.ASCII)
#: The largest index and the largest package file the worker fetches.
MAX_INDEX_BYTES = 64 << 20
MAX_PACKAGE_BYTES = 512 << 20


class FeedError(RuntimeError):
    """A feed the build cannot do without is unusable; the message says why."""


@dataclass(frozen=True)
class Feed:
    """One feed to mirror: its name, where it is fetched from, whom to trust."""

    name: str
    url: str
    keys: tuple[str, ...]
    #: a request's extra feed: a bad signature fails the build instead of
    #: leaving the feed out
    extra: bool = False


@dataclass
class Mirrored:
    """A feed copied into the job: its directory and index, or why it is left out."""

    feed: Feed
    directory: Path
    entries: list[Entry] = field(default_factory=list)
    problem: str = ""


@dataclass(frozen=True)
class Repositories:
    """What an ImageBuilder's repositories file says: remote feeds to mirror, and
    every other line (local feeds, options), kept as they are."""

    feeds: tuple[Feed, ...]
    other_lines: tuple[str, ...]


def imagebuilder_feeds(
    text: str, distribution: Distribution, keys: tuple[str, ...]
) -> Repositories:
    """The feeds of ``repositories.conf`` (``text``), their URLs mapped upstream."""
    feeds, others = [], []
    for line in text.splitlines():
        match = _SOURCE.match(line.strip())
        if match and match[3].startswith(("http://", "https://")):
            if FEED_NAME.fullmatch(match[2]):
                feeds.append(Feed(match[2], map_url(match[3], distribution), keys))
        else:
            others.append(line)
    return Repositories(tuple(feeds), tuple(others))


def map_url(url: str, distribution: Distribution) -> str:
    """``url`` below the distribution's public address, moved to its upstream."""
    base = distribution.upstream_url.rstrip("/")
    for prefix in distribution.public_urls():
        prefix = prefix.rstrip("/")
        if url == prefix or url.startswith(prefix + "/"):
            return base + url[len(prefix) :]
    return url


def trusted_keys(keys_dir: Path, distribution_keys: Iterable[str]) -> tuple[str, ...]:
    """The usign keys an ImageBuilder trusts (its ``keys/``) and the distribution's."""
    found = list(distribution_keys)
    if keys_dir.is_dir() and not keys_dir.is_symlink():
        for path in sorted(keys_dir.iterdir()):
            text = read_regular(path)
            try:
                found.append(usign.PublicKey.from_text(text).to_text())
            except (usign.UsignError, ValueError):
                continue
    return tuple(dict.fromkeys(found))


def read_regular(path: Path) -> str:
    """The text of ``path`` if it is a regular file reached without a link, else "".

    An ImageBuilder's files come from upstream: a link there must never make the
    worker read a file of its own machine.
    """
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    with os.fdopen(handle, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return ""
        return stream.read(MAX_INDEX_BYTES).decode("utf-8", "replace")


def mirror(http: requests.Session, feeds: Iterable[Feed], base: Path) -> list[Mirrored]:
    """Each feed's ``Packages.gz`` and ``Packages.sig`` into ``base/<name>/``."""
    return [_mirror_one(http, feed, base / feed.name) for feed in feeds]


def _mirror_one(http: requests.Session, feed: Feed, directory: Path) -> Mirrored:
    mirrored = Mirrored(feed, directory)
    try:
        packed = _get(http, f"{feed.url}/Packages.gz")
        index = gzip.decompress(packed)
        signature = _get(http, f"{feed.url}/Packages.sig")
    except (FetchError, OSError, EOFError) as error:
        return _left_out(mirrored, f"its index cannot be read: {error}")
    try:
        usign.verify(index, signature.decode(errors="replace"), feed.keys)
    except usign.UsignError as error:
        return _left_out(mirrored, f"its index failed the signature check: {error}")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Packages.gz").write_bytes(packed)
    (directory / "Packages.sig").write_bytes(signature)
    mirrored.entries = feed_index.parse_packages(index.decode("utf-8", "replace"))
    return mirrored


def _left_out(mirrored: Mirrored, problem: str) -> Mirrored:
    """A feed without a usable index: the build fails for an extra feed, an
    upstream feed is left out (and named should the build miss a package)."""
    if mirrored.feed.extra:
        raise FeedError(f"feed {mirrored.feed.name}: {problem}")
    mirrored.problem = problem
    return mirrored


def _get(http: requests.Session, url: str) -> bytes:
    """The body at ``url``, refused beyond :data:`MAX_INDEX_BYTES`."""
    data = bytearray()
    try:
        with upstream.get(http, url, stream=True) as response:
            for chunk in response.iter_content(1 << 20):
                data += chunk
                if len(data) > MAX_INDEX_BYTES:
                    raise FetchError(f"{url} is larger than {MAX_INDEX_BYTES} bytes")
    except upstream.UpstreamError as error:
        raise FetchError(str(error)) from None
    except requests.RequestException as error:
        raise FetchError(f"{url}: {error}") from None
    return bytes(data)


@dataclass(frozen=True)
class Missing:
    """A package the build may need that could not be fetched."""

    feed: str
    entry: Entry
    reason: str


def provide(
    http: requests.Session,
    cache: PackageCache,
    mirrored: list[Mirrored],
    wanted: Iterable[str],
) -> list[Missing]:
    """Fetch what installing ``wanted`` may need into the cache and link it into
    the feed directories; returns what could not be had (the package manager
    decides whether the build needed it)."""
    usable = [m for m in mirrored if not m.problem]
    where = {id(e): m for m in usable for e in m.entries}
    entries = [e for m in usable for e in m.entries]
    missing = []
    for entry in feed_index.closure(entries, wanted):
        feed = where[id(entry)]
        local = feed.directory / entry.filename
        if local.exists():
            continue
        url = f"{feed.feed.url}/{entry.filename}"
        try:
            cache.fetch(http, url, entry.sha256, MAX_PACKAGE_BYTES)
            cache.link(entry.sha256, local)
        except FetchError as error:
            missing.append(Missing(feed.feed.name, entry, str(error)))
    return missing


def repositories_file(
    repositories: Repositories, mirrored: list[Mirrored], inside: str
) -> str:
    """``repositories.conf`` naming the usable local copies (seen by the sandbox
    below ``inside``), then the ImageBuilder's other lines."""
    lines = [
        f"src/gz {m.feed.name} file:{inside}/{m.feed.name}"
        for m in mirrored
        if not m.problem
    ]
    return "\n".join([*lines, *repositories.other_lines]) + "\n"
