"""``flask --app asu cleanup``: expired builds, unused ImageBuilders, dead jobs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import redis
from clients import X86_APK, wait_for


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
    assert "3 directories removed" in outcome.output
    assert not (store / result["request_hash"]).exists()
    assert (store / kept["request_hash"]).is_dir()
    assert unpacked.is_dir() and not stale.exists()
    assert not dead_job.exists()
