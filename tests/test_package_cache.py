"""The package cache keeps only whole files that match their signed index, and a
file fetched once is never fetched again."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from asu import upstream
from asu.package_cache import FetchError, PackageCache
from offline_upstream.server import UpstreamServer

DATA = b"a package\n" * 10_000
SHA256 = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def served(tmp_path):
    (tmp_path / "feed").mkdir()
    (tmp_path / "feed" / "pkg_1.0_all.ipk").write_bytes(DATA)
    server = UpstreamServer(tmp_path / "feed").start()
    yield server
    server.stop()


def files_in(cache: PackageCache) -> list[str]:
    return sorted(path.name for path in cache.root.rglob("*") if path.is_file())


def test_a_file_is_fetched_once_and_kept_read_only(served, tmp_path):
    cache = PackageCache(tmp_path / "cache")
    url = f"{served.url}/pkg_1.0_all.ipk"
    with ThreadPoolExecutor(4) as pool:
        paths = list(
            pool.map(
                lambda _: cache.fetch(upstream.session(), url, SHA256, 1 << 20),
                range(4),
            )
        )
    assert {path.read_bytes() for path in paths} == {DATA}
    assert files_in(cache) == [SHA256]
    assert not paths[0].stat().st_mode & 0o222
    before = len(served.request_log)
    cache.fetch(upstream.session(), url, SHA256, 1 << 20)
    assert len(served.request_log) == before
    cache.link(SHA256, tmp_path / "job" / "pkg_1.0_all.ipk")
    assert (tmp_path / "job" / "pkg_1.0_all.ipk").read_bytes() == DATA


@pytest.mark.parametrize(
    "sha256, limit, why",
    [
        ("0" * 64, 1 << 20, "does not match its signed index"),
        (SHA256, 1000, "larger than 1000 bytes"),
        (SHA256, 1 << 20, "answered 404"),
    ],
)
def test_what_is_not_the_promised_file_is_not_kept(
    served, tmp_path, sha256, limit, why
):
    cache = PackageCache(tmp_path / "cache")
    name = "missing.ipk" if "404" in why else "pkg_1.0_all.ipk"
    with pytest.raises(FetchError, match=why):
        cache.fetch(upstream.session(), f"{served.url}/{name}", sha256, limit)
    assert files_in(cache) == []
