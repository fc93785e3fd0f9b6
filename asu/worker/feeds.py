"""An ImageBuilder's package feeds, served by the worker so that its sandbox stays
without a network.

A release ImageBuilder names its feeds by URL: ``src/gz <name> <url>`` lines in
``repositories.conf`` (opkg), ``<url>/packages.adb`` lines in ``repositories``
(apk). Its ``make manifest`` and ``make image`` would download each feed's index
and then every package the image needs. Instead the worker:

1. reads those lines (:func:`imagebuilder_feeds`), maps URLs on the distribution's
   public address (``https://downloads.openwrt.org``) to its ``upstream_url``, and
   adds a request's extra feeds (or puts them in the upstream feeds' place);
2. fetches each feed's index verbatim into the job's feed directory (opkg:
   ``Packages.gz`` and ``Packages.sig``; apk: ``packages.adb``, signed inside) and
   reads it, its signature checked with the keys the ImageBuilder and the
   distribution trust (:func:`mirror`): a feed whose signature fails is left out
   (an extra feed fails the build), and said so should the build miss a package;
3. fetches every package the build may install into the machine's shared
   :class:`~asu.package_cache.PackageCache`, checked against the signed index, and
   links it into the feed directory (:func:`provide`);
4. writes the repositories file naming the local copies (:func:`repositories_file`),
   which the sandbox sees read-only; the ImageBuilder's own opkg or apk then reads
   them as any feed, checking every signature as it would online.
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

from asu import upstream
from asu.distributions import Distribution
from asu.formats import apk_index, usign
from asu.formats.adb import AdbError
from asu.package_cache import Check, FetchError, PackageCache, same_sha256
from asu.worker import feed_index
from asu.worker.feed_index import Entry

#: ``src/gz <name> <url>`` (or ``src``) in repositories.conf.
_SOURCE = re.compile(r"^src(/gz)?\s+(\S+)\s+(\S+)\s*$")
#: A feed's name: a plain directory name, never ``.`` or ``..``.
FEED_NAME = re.compile(r"^(?!\.{1,2}$)[\w.-]{1,64}$", re.ASCII)
APK_INDEX = "packages.adb"
#: The file naming an ImageBuilder's feeds, by package format.
REPOSITORIES = {"opkg": "repositories.conf", "apk": "repositories"}
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
    """What an ImageBuilder's repositories file says: its package format, remote
    feeds to mirror, and every other line (local feeds, options), kept as they are."""

    package_format: str
    feeds: tuple[Feed, ...]
    other_lines: tuple[str, ...]


def package_format(builder: Path) -> str:
    """``opkg`` or ``apk``: which of the two the ImageBuilder uses."""
    return "opkg" if (builder / REPOSITORIES["opkg"]).is_file() else "apk"


def imagebuilder_feeds(builder: Path, distribution: Distribution) -> Repositories:
    """The feeds the ImageBuilder names, their URLs mapped upstream, each trusting
    the keys the ImageBuilder (``keys/``) and the distribution trust."""
    kind = package_format(builder)
    text = read_regular(builder / REPOSITORIES[kind])
    keys = trusted_keys(builder / "keys", distribution, kind)
    feeds, others = [], []
    for line in text.splitlines():
        found = _remote_feed(line.strip(), kind, {feed.name for feed in feeds})
        if found:
            name, url = found
            feeds.append(Feed(name, map_url(url, distribution), keys))
        else:
            others.append(line)
    return Repositories(kind, tuple(feeds), tuple(others))


def _remote_feed(line: str, kind: str, taken: set[str]) -> tuple[str, str] | None:
    """The name and URL of a remote feed line, None for any other line.

    apk names a feed by its index's URL; its directory's name is the feed's name
    here, with the one above before it where two would clash (``64_packages``)."""
    if kind == "opkg":
        match = _SOURCE.match(line)
        remote = match and match[3].startswith(("http://", "https://"))
        return (
            (match[2], match[3]) if remote and FEED_NAME.fullmatch(match[2]) else None
        )
    if not (line.startswith(("http://", "https://")) and line.endswith(APK_INDEX)):
        return None
    directory = line.removesuffix(APK_INDEX).rstrip("/")
    parent, _, name = directory.rpartition("/")
    if name in taken:
        name = f"{parent.rpartition('/')[2]}_{name}"
    return (name, directory) if FEED_NAME.fullmatch(name) else None


def map_url(url: str, distribution: Distribution) -> str:
    """``url`` below the distribution's public address, moved to its upstream."""
    base = distribution.upstream_url.rstrip("/")
    for prefix in distribution.public_urls():
        prefix = prefix.rstrip("/")
        if url == prefix or url.startswith(prefix + "/"):
            return base + url[len(prefix) :]
    return url


def trusted_keys(
    keys_dir: Path, distribution: Distribution, kind: str
) -> tuple[str, ...]:
    """The keys an ImageBuilder trusts (its ``keys/``) and the distribution's:
    usign keys for opkg, PEM keys for apk."""
    found = list(
        distribution.upstream_keys if kind == "opkg" else distribution.apk_keys
    )
    if keys_dir.is_dir() and not keys_dir.is_symlink():
        found += [read_regular(path) for path in sorted(keys_dir.iterdir())]
    usable = usign_keys if kind == "opkg" else apk_keys
    return tuple(dict.fromkeys(usable(found)))


def usign_keys(texts: Iterable[str]) -> list[str]:
    """The usign public keys among ``texts``."""
    keys = []
    for text in texts:
        try:
            keys.append(usign.PublicKey.from_text(text).to_text())
        except (usign.UsignError, ValueError):
            continue
    return keys


def apk_keys(texts: Iterable[str]) -> list[str]:
    """The apk (PEM) public keys among ``texts``."""
    return [text for text in texts if apk_index.is_apk_key(text)]


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


def mirror(
    http: requests.Session, kind: str, feeds: Iterable[Feed], base: Path
) -> list[Mirrored]:
    """Each feed's index into ``base/<name>/``, verbatim: opkg's ``Packages.gz`` and
    ``Packages.sig``, apk's ``packages.adb``."""
    copy = _mirror_opkg if kind == "opkg" else _mirror_apk
    return [copy(http, Mirrored(feed, base / feed.name)) for feed in feeds]


def _mirror_opkg(http: requests.Session, mirrored: Mirrored) -> Mirrored:
    url = mirrored.feed.url
    try:
        packed = _get(http, f"{url}/Packages.gz")
        index = gzip.decompress(packed)
        signature = _get(http, f"{url}/Packages.sig")
    except (FetchError, OSError, EOFError) as error:
        return _left_out(mirrored, f"its index cannot be read: {error}")
    try:
        usign.verify(index, signature.decode(errors="replace"), mirrored.feed.keys)
    except usign.UsignError as error:
        return _left_out(mirrored, f"its index failed the signature check: {error}")
    _keep(mirrored.directory, {"Packages.gz": packed, "Packages.sig": signature})
    mirrored.entries = feed_index.parse_packages(index.decode("utf-8", "replace"))
    return mirrored


def _mirror_apk(http: requests.Session, mirrored: Mirrored) -> Mirrored:
    try:
        packed = _get(http, f"{mirrored.feed.url}/{APK_INDEX}")
        index = apk_index.read_index(packed, apk_index.load_keys(mirrored.feed.keys))
    except (FetchError, AdbError) as error:
        return _left_out(mirrored, f"its index cannot be read: {error}")
    except apk_index.SignatureError as error:
        return _left_out(mirrored, f"its index failed the signature check: {error}")
    _keep(mirrored.directory, {APK_INDEX: packed})
    mirrored.entries = feed_index.apk_entries(index)
    return mirrored


def _keep(directory: Path, files: dict[str, bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)


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
            cache.fetch(http, url, entry.sha256, MAX_PACKAGE_BYTES, _check(entry))
            cache.link(entry.sha256, local)
        except FetchError as error:
            missing.append(Missing(feed.feed.name, entry, str(error)))
    return missing


def _check(entry: Entry) -> Check:
    """How a downloaded file is checked against its index: opkg's SHA-256 of the
    file, apk's identity and the hash of every file the package holds."""
    if entry.info is None:
        return same_sha256(entry.sha256)
    info = entry.info

    def check(path: Path, digest: str) -> None:
        try:
            apk_index.check_package(path.read_bytes(), info)
        except apk_index.SignatureError as error:
            raise FetchError(str(error)) from None

    return check


def repositories_file(
    repositories: Repositories, mirrored: list[Mirrored], inside: str
) -> str:
    """The repositories file naming the usable local copies (seen by the sandbox
    below ``inside``), then the ImageBuilder's other lines."""
    usable = [m.feed.name for m in mirrored if not m.problem]
    if repositories.package_format == "opkg":
        lines = [f"src/gz {name} file:{inside}/{name}" for name in usable]
    else:
        lines = [f"{inside}/{name}/{APK_INDEX}" for name in usable]
    return "\n".join([*lines, *repositories.other_lines]) + "\n"
