"""``flask --app asu cleanup``: expired builds, unused ImageBuilders, dead jobs, and
the least recently used package files beyond the package cache's size."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
import redis
from clients import C7, X86_APK, wait_for


def age(path: Path, days: float) -> None:
    past = time.time() - days * 86400
    os.utime(path, (past, past))


def test_cleanup_removes_only_what_nobody_can_use(
    live_server, worker, app, app_config, redis_url
):
    result = wait_for(live_server, X86_APK).json()
    kept = wait_for(live_server, X86_APK | {"packages": ["htop"]}).json()
    store = Path(app_config["public_path"]) / "store"
    cache = Path(app_config["cache_path"])
    redis.Redis.from_url(redis_url).delete(f"rq:job:{result['request_hash']}")

    (unpacked,) = (cache / "imagebuilders").glob("*/*/*/*")
    stale = unpacked.parent / "0123456789abcdef"
    stale.mkdir()
    age(stale, 3)
    dead_job = cache / "jobs" / "dead"
    dead_job.mkdir(parents=True)
    age(dead_job, 1)

    outcome = app.test_cli_runner().invoke(args=["cleanup"])
    assert outcome.exit_code == 0, outcome.output
    assert "3 directories and 0 package files removed" in outcome.output
    assert not (store / result["request_hash"]).exists()
    assert (store / kept["request_hash"]).is_dir()
    assert unpacked.is_dir() and not stale.exists()
    assert not dead_job.exists()


class TestPackageCache:
    """Builds of opkg releases leave their packages in ``cache_path/packages``; a
    cache over ``max_package_cache_mb`` loses its least recently used files."""

    @pytest.fixture
    def app_config(self, app_config):
        return app_config | {"max_package_cache_mb": 1}

    def test_least_recently_used_packages_go_first(
        self, live_server, worker, app, app_config
    ):
        assert wait_for(live_server, C7).status_code == 200
        cache = Path(app_config["cache_path"]) / "packages"
        used = list(cache.glob("*/*"))
        assert used, "the build fetched no package"
        older, old = (cached_file(cache, 600_000, days) for days in (3, 2))
        partial = cache / "00" / ".partial-dead"
        partial.parent.mkdir(exist_ok=True)
        partial.write_bytes(b"x")
        age(partial, 2)

        outcome = app.test_cli_runner().invoke(args=["cleanup"])
        assert outcome.exit_code == 0, outcome.output
        assert not older.exists() and not partial.exists()
        assert old.exists() and all(path.exists() for path in used)
        assert "2 package files removed" in outcome.output


def cached_file(cache: Path, size: int, days: float) -> Path:
    """A package file of ``size`` bytes in the cache, last used ``days`` ago."""
    data = os.urandom(size)
    digest = hashlib.sha256(data).hexdigest()
    path = cache / digest[:2] / digest
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    age(path, days)
    return path
