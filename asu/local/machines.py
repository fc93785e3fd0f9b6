"""The README's one server with workers on several machines, each machine a
network namespace (:mod:`asu.local.netns`): what the tests and ``make bench`` run.

- The server host runs Redis (a password required, bound to the server's address,
  not loopback, persistent), the janitor (``janitor init``, then ``janitor update
  --interval``) and gunicorn, with its own ``cache_path``, where the server's
  signing key is made by the first janitor pass.
- Each worker host runs RQ workers (``flask --app asu worker --name
  <host>-<n>``), with a ``cache_path`` of its own into which that key
  (``keys/server.key`` and ``keys/server.key.pub``) is copied before they start.
- Every host has the same ``redis_url``, ``upstream_url``, ``upstream_keys`` and
  ``public_path``: the store, a directory all hosts see at the same path.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis
from rq import Worker

from asu.config import Config
from asu.local.netns import SERVER_ADDRESS, Host, Network
from asu.local.services import (
    ServiceError,
    flask_command,
    gunicorn_command,
    http_ok,
    port_open,
    redis_command,
    wait_until,
)
from asu.signing import server_key_path

REDIS_PORT = 6390
WEB_PORT = 8000


class Site:
    """The server host and its worker hosts on ``network``, files under ``root``.

    ``settings`` are the configuration every host shares (``upstream_url``,
    ``upstream_keys``, ``worker_heartbeat_interval``, ...).
    """

    def __init__(
        self, network: Network, root: Path, settings: Mapping[str, Any]
    ) -> None:
        self.network = network
        self.root = root
        self.settings = dict(settings)
        self.password = secrets.token_hex(16)
        self.public_path = root / "public"

    @property
    def redis_url(self) -> str:
        return f"redis://:{self.password}@{SERVER_ADDRESS}:{REDIS_PORT}/0"

    @property
    def url(self) -> str:
        """The web server, as clients on the server's network reach it."""
        return f"http://{SERVER_ADDRESS}:{WEB_PORT}"

    def directory(self, host: Host) -> Path:
        """Where ``host`` keeps its local files and logs."""
        path = self.root / host.role
        path.mkdir(parents=True, exist_ok=True)
        return path

    def config(self, host: Host) -> dict[str, Any]:
        """``host``'s configuration: the shared one, its own ``cache_path``."""
        return self.settings | {
            "redis_url": self.redis_url,
            "public_path": self.public_path,
            "cache_path": self.directory(host) / "cache",
        }

    def environ(self, host: Host) -> dict[str, str]:
        """The environment a process on ``host`` runs with: its ``ASU_*``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASU_")}
        for key, value in self.config(host).items():
            if isinstance(value, (list, tuple)):
                value = ",".join(value)
            env[f"ASU_{key.upper()}"] = str(value)
        return env

    def redis(self) -> redis.Redis:
        """A client of the site's Redis; use it on a host (:meth:`Host.entered`)."""
        return redis.Redis.from_url(self.redis_url)

    # -- the server host --------------------------------------------------------------

    def start_server(self, janitor_interval: int = 3600, web_workers: int = 1) -> None:
        """Redis, the janitor's first pass and then its loop, and gunicorn."""
        server = self.network.server
        home = self.directory(server)
        env = self.environ(server)
        command = redis_command(
            home / "redis",
            REDIS_PORT,
            persistent=True,
            bind=SERVER_ADDRESS,
            password=self.password,
        )
        redis_proc = server.spawn(command, home / "redis.log")
        with server.entered():
            wait_until(
                lambda: port_open(REDIS_PORT, SERVER_ADDRESS), "redis", redis_proc
            )
        self.run(server, flask_command("janitor", "init"))
        interval = str(janitor_interval)
        janitor = flask_command("janitor", "update", "--interval", interval)
        server.spawn(janitor, home / "janitor.log", env, home)
        bind = f"{SERVER_ADDRESS}:{WEB_PORT}"
        web_command = gunicorn_command(bind, workers=web_workers)
        web = server.spawn(web_command, home / "web.log", env, home)
        with server.entered():
            health = f"{self.url}/api/v1/health"
            wait_until(lambda: http_ok(health), "gunicorn", web, timeout=60)

    def run(self, host: Host, args: list[str]) -> subprocess.CompletedProcess:
        """Run ``args`` on ``host`` to its end; ServiceError when it fails."""
        done = host.run(args, self.environ(host), self.directory(host))
        if done.returncode != 0:
            raise ServiceError(
                f"{' '.join(args)} on {host.role} failed:\n{done.stdout}{done.stderr}"
            )
        return done

    # -- worker hosts -----------------------------------------------------------------

    def add_worker_host(self, role: str, workers: int = 1) -> Host:
        """A new host on the network running ``workers`` RQ workers."""
        host = self.network.add_host(role)
        self.start_workers(host, workers)
        return host

    def start_workers(self, host: Host, count: int) -> list[str]:
        """Copy the server's key to ``host`` and start ``count`` workers there;
        their names, once all of them listen on the queue."""
        self.copy_key(host)
        home = self.directory(host)
        env = self.environ(host)
        taken = set(self.worker_names())
        numbers = (n for n in itertools.count(1) if f"{host.role}-{n}" not in taken)
        names = [f"{host.role}-{number}" for number in itertools.islice(numbers, count)]
        for name in names:
            command = flask_command("worker", "--name", name)
            host.spawn(command, home / f"{name}.log", env, home)
        try:
            wait_until(
                lambda: set(names) <= set(self.worker_names()),
                f"workers on {host.role}",
                timeout=60,
            )
        except ServiceError as error:
            logs = [(home / f"{name}.log").read_text()[-2000:] for name in names]
            raise ServiceError("\n".join([str(error), *logs])) from None
        return names

    def copy_key(self, host: Host) -> None:
        """The server's signing key into ``host``'s ``cache_path/keys/``."""
        source = server_key_path(self._config(self.network.server))
        dest = server_key_path(self._config(host))
        dest.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", ".pub"):
            shutil.copy2(f"{source}{suffix}", f"{dest}{suffix}")

    def worker_names(self) -> list[str]:
        """The workers registered in Redis."""
        with self.network.server.entered():
            return [worker.name for worker in Worker.all(connection=self.redis())]

    def _config(self, host: Host) -> Config:
        return Config(cache_path=self.directory(host) / "cache")
