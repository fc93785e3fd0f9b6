"""``make demo``'s pieces for one test module (conftest's ``demo``): the offline
upstream over HTTP, a private Redis loaded by ``janitor init`` (``loaded``), the
app under a real WSGI server and one RQ worker process, all kept for the module
so that its tests share the unpacked ImageBuilders and every build they make.
This module holds what is not a fixture: where they are, and the worker."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from asu.config import Config
from asu.formats.usign import PublicKey
from asu.local.services import start_worker, stop


@dataclass(frozen=True)
class Demo:
    """Where the pieces are."""

    url: str  # the build server
    upstream_url: str  # the offline upstream
    config: Config

    @property
    def public_key(self) -> PublicKey:
        """The server's usign key, as ``overview.json`` publishes it."""
        path = self.config.cache_path / "keys" / "server.key.pub"
        return PublicKey.from_text(path.read_text())


def overrides(config: Config) -> dict:
    """The configuration keys that point a process at the module's services."""
    return {
        "redis_url": config.redis_url,
        "upstream_url": config.upstream_url,
        "upstream_keys": list(config.upstream_keys),
        "upstream_apk_keys": list(config.upstream_apk_keys),
        "public_path": str(config.public_path),
        "cache_path": str(config.cache_path),
    }


@contextlib.contextmanager
def worker(config: Config, logs: Path, environ: dict[str, str]) -> Iterator[None]:
    """One RQ worker process with the environment ``environ``, for the block."""
    proc = start_worker(config.redis_url, environ, logs, logs / "worker.log")
    try:
        yield
    finally:
        stop(proc)
