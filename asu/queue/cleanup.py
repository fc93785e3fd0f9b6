"""``flask --app asu cleanup``: remove what no client can ask for any more.

- ``store/<hash>/`` directories whose build result has expired from Redis;
- unpacked ImageBuilders not used for ``imagebuilder_ttl`` (every build touches
  the one it uses);
- scratch directories of jobs that died (older than twice the job timeout);
- builds a dead worker was moving into the store (as old);
- package files fetched for builds, least recently used first, beyond
  ``max_package_cache_mb``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from redis import Redis

from asu.config import Config
from asu.package_cache import PackageCache
from asu.queue.build_queue import fetch


def expired_builds(config: Config, connection: Redis) -> list[Path]:
    """Store directories no RQ job refers to any more."""
    if not config.store_path.is_dir():
        return []
    return [
        path
        for path in sorted(config.store_path.iterdir())
        if path.is_dir()
        and not path.name.startswith(".")
        and fetch(connection, path.name) is None
    ]


def _older_than(paths, seconds: float) -> list[Path]:
    cutoff = time.time() - seconds
    return [path for path in paths if path.stat().st_mtime < cutoff]


def unused_imagebuilders(config: Config) -> list[Path]:
    """Unpacked ImageBuilders (``imagebuilders/<distro>/<version>/<target>/<sha>``)
    unused for ``imagebuilder_ttl``."""
    base = config.cache_path / "imagebuilders"
    unpacked = [path for path in base.glob("*/*/*/*") if path.is_dir()]
    return _older_than(unpacked, config.imagebuilder_ttl)


def abandoned_scratch(config: Config) -> list[Path]:
    """Scratch directories of jobs that cannot still be running."""
    jobs = config.cache_path / "jobs"
    scratch = [path for path in jobs.iterdir()] if jobs.is_dir() else []
    return _older_than(scratch, 2 * config.job_timeout)


def abandoned_staging(config: Config) -> list[Path]:
    """Builds that a dead worker was moving into the store (``.<hash>.*``)."""
    store = config.store_path
    staged = list(store.glob(".*")) if store.is_dir() else []
    return _older_than(staged, 2 * config.job_timeout)


def cleanup(config: Config, connection: Redis) -> tuple[list[Path], list[Path]]:
    """Remove everything above; returns the directories and the package files
    removed."""
    removed = [
        *expired_builds(config, connection),
        *unused_imagebuilders(config),
        *abandoned_scratch(config),
        *abandoned_staging(config),
    ]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    packages = PackageCache(config.package_cache_path)
    return removed, packages.trim(config.max_package_cache_mb << 20)


@click.command("cleanup")
@with_appcontext
def cleanup_command() -> None:
    """Remove expired builds, unused ImageBuilders, dead jobs' scratch space and
    the least recently used package files beyond the cache's size."""
    directories, packages = cleanup(
        current_app.config["ASU"], current_app.extensions["redis"]
    )
    for path in [*directories, *packages]:
        click.echo(f"removed {path}")
    click.echo(
        f"{len(directories)} directories and {len(packages)} package files removed"
    )
