"""Loading package indexes as the janitor does: apk's ``packages.adb`` beside opkg.

Each row reads every index of one set from disk and turns it into the names a
request may use (:class:`asu.formats.package_index.PackageIndex`), signatures
checked where the set has a key: the real 25.12 ``packages.adb`` (its key is not
published, so it is read unchecked), the stand-in's apk world for x86/64 25.12.0
(target, kmods and every feed, each signature checked) and the real 23.05.2 opkg
``Packages.gz`` of every feed (``Packages.sig`` checked with the build's key).
Time is the median of repeated loads; peak memory is what Python allocated at
most during one load (tracemalloc), input bytes excluded."""

from __future__ import annotations

import gzip
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from asu.formats import apk_index, package_index, usign
from asu.formats.package_index import PackageIndex
from offline_upstream import adb_writer
from offline_upstream.tree import generate

SAMPLES = Path(__file__).resolve().parents[2] / "shared/openwrt-samples/builds"
REAL_APK = SAMPLES / "openwrt-25.12-r32802-x86_64-apk/packages/x86_64"
REAL_OPKG = SAMPLES / "openwrt-23.05.2-x86_64-opkg"
REPEAT_SECONDS = 2.0

Loader = Callable[[], PackageIndex]


def run() -> str:
    rows = []
    if REAL_APK.is_dir():
        rows.append(_row("real 25.12 packages.adb (base)", *_real_apk()))
    with tempfile.TemporaryDirectory(prefix="asu-bench-") as scratch:
        tree = generate(Path(scratch) / "upstream", only=("25.12.0",))
        rows.append(_row("stand-in apk world, x86/64 25.12.0", *_stand_in(tree)))
    if REAL_OPKG.is_dir():
        rows.append(_row("real 23.05.2 opkg Packages.gz", *_real_opkg()))
    if not REAL_APK.is_dir() or not REAL_OPKG.is_dir():
        rows.append(["(the real samples in ../shared are missing)", "", "", "", "", ""])
    return _table(rows)


def _real_apk() -> tuple[list[bytes], Callable[[list[bytes]], PackageIndex]]:
    contents = [(REAL_APK / "base/packages.adb").read_bytes()]

    def load(contents: list[bytes]) -> PackageIndex:
        return _merged(apk_index.read_index(c, None) for c in contents)

    return contents, load


def _stand_in(tree: Path) -> tuple[list[bytes], Callable[[list[bytes]], PackageIndex]]:
    release = tree / "releases/25.12.0"
    target = release / "targets/x86/64"
    files = [target / "packages/packages.adb", *target.glob("kmods/*/packages.adb")]
    files += sorted(release.glob("packages/x86_64/*/packages.adb"))
    keys = [apk_index.ApkKey.from_text(adb_writer.signing_key().public_pem())]
    contents = [path.read_bytes() for path in files]

    def load(contents: list[bytes]) -> PackageIndex:
        return _merged(apk_index.read_index(c, keys) for c in contents)

    return contents, load


def _real_opkg() -> tuple[list[bytes], Callable[[list[bytes]], PackageIndex]]:
    feeds = sorted(REAL_OPKG.glob("packages/x86_64/*/Packages.gz"))
    feeds += sorted(REAL_OPKG.glob("targets/*/*/packages/Packages.gz"))
    key = [(REAL_OPKG / "key-build.pub").read_text().split()[-1]]
    contents = []
    for path in feeds:
        contents += [path.read_bytes(), path.with_name("Packages.sig").read_bytes()]

    def load(contents: list[bytes]) -> PackageIndex:
        index = PackageIndex()
        for packed, signature in zip(contents[::2], contents[1::2], strict=True):
            text = gzip.decompress(packed)
            usign.verify(text, signature.decode(), key)
            index.update(package_index.parse("Packages", text))
        return index

    return contents, load


def _merged(indexes) -> PackageIndex:
    merged = PackageIndex()
    for index in indexes:
        merged.update(apk_index.package_index(index))
    return merged


def _row(label: str, contents: list[bytes], load) -> list[str]:
    tracemalloc.start()
    index = load(contents)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    times = []
    started = time.monotonic()
    while time.monotonic() - started < REPEAT_SECONDS or len(times) < 3:
        begin = time.perf_counter()
        load(contents)
        times.append(time.perf_counter() - begin)
    median = statistics.median(times)
    names = len(index.packages)
    return [
        label,
        str(len(contents)),
        f"{sum(map(len, contents)) / 1024:.0f}",
        str(names),
        f"{median * 1000:.1f}",
        f"{median * 1e6 / max(names, 1):.0f}",
        f"{peak / 1024 / 1024:.1f}",
    ]


def _table(rows: list[list[str]]) -> str:
    header = ["indexes", "files read", "kB", "packages", "ms/load", "us/pkg", "peak MB"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=False))
        )
        for row in [header, *rows]
    ]
    return "\n".join(lines)
