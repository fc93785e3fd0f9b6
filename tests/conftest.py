"""Fixtures every test module shares: real Redis, the offline upstream, the app,
an RQ worker and a live HTTP server. Nothing here touches the Redis on 6379."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest
import redis
from werkzeug.serving import make_server

from asu import create_app
from asu.local_services import spawn, start_redis, stop, wait_until
from asu.offline import adb_writer
from asu.offline.server import UpstreamServer
from asu.offline.tree import generate, signing_key

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> str:
    """A private ``redis-server`` on a free loopback port for the whole session."""
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    assert not url.endswith(":6379/0"), "tests never use the shared Redis"
    yield url
    stop(proc)


@pytest.fixture
def redis_url(redis_server) -> str:
    """The private Redis, emptied for this test."""
    redis.Redis.from_url(redis_server).flushall()
    return redis_server


@pytest.fixture(scope="session")
def upstream_tree(tmp_path_factory) -> Path:
    """The offline upstream's downloads tree, generated once per session."""
    return generate(tmp_path_factory.mktemp("upstream") / "downloads")


@pytest.fixture(scope="session")
def upstream(upstream_tree) -> UpstreamServer:
    """The offline upstream served over HTTP on loopback."""
    server = UpstreamServer(upstream_tree).start()
    yield server
    server.stop()


@pytest.fixture
def app_config(redis_url, upstream, tmp_path) -> dict:
    """Configuration overrides pointing the app at the private Redis and upstream."""
    public_key = signing_key().public_key.to_text().splitlines()[-1]
    return {
        "redis_url": redis_url,
        "upstream_url": upstream.url,
        "upstream_keys": [public_key],
        "upstream_apk_keys": [adb_writer.signing_key().public_pem()],
        "public_path": str(tmp_path / "public"),
        "cache_path": str(tmp_path / "cache"),
    }


@pytest.fixture(scope="module")
def loaded(upstream, tmp_path_factory):
    """An app whose own Redis holds a full ``janitor init`` of the stand-in."""
    base = tmp_path_factory.mktemp("janitor")
    proc, url = start_redis(base / "redis")
    app = create_app(
        {
            "redis_url": url,
            "upstream_url": upstream.url,
            "upstream_keys": [signing_key().public_key.to_text().splitlines()[-1]],
            "upstream_apk_keys": [adb_writer.signing_key().public_pem()],
            "public_path": str(base / "public"),
            "cache_path": str(base / "cache"),
        }
    )
    app.config["TESTING"] = True
    result = app.test_cli_runner().invoke(args=["janitor", "init"])
    assert result.exit_code == 0, result.output
    app.init_output = result.output
    yield app
    stop(proc)


@pytest.fixture
def app(app_config):
    """The app under test, configured for the private services."""
    app = create_app(app_config)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    """Flask's test client for ``app``."""
    return app.test_client()


def config_environ(config: dict) -> dict[str, str]:
    """The environment that gives a process started here the same configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASU_")}
    for key, value in config.items():
        if isinstance(value, (list, tuple)):
            value = ",".join(value)
        env[f"ASU_{key.upper()}"] = str(value)
    return env


@pytest.fixture
def worker(app_config, tmp_path):
    """One real RQ worker process (``flask --app asu worker``) for this test."""
    log = tmp_path / "worker.log"
    proc = spawn(
        [sys.executable, "-m", "flask", "--app", "asu", "worker"],
        log_path=log,
        env=config_environ(app_config),
        cwd=tmp_path,
    )
    connection = redis.Redis.from_url(app_config["redis_url"])
    from rq import Worker

    wait_until(lambda: Worker.count(connection=connection) > 0, "RQ worker", proc)
    yield proc
    stop(proc)


@pytest.fixture
def live_server(app):
    """The app under a real WSGI server on loopback; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
