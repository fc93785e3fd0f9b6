"""Fixtures every test module shares: real Redis, the offline upstream, the app,
an RQ worker and a live HTTP server. Nothing here touches the Redis on 6379."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import browser
import demo_stack
import pytest
import redis
from hypothesis import HealthCheck, settings
from unprivileged import NOBODY, Runtime, runtime
from upstreams import X86, repack, replace_make_target
from werkzeug.serving import make_server

from asu import create_app
from asu.config import environ_for
from asu.local.services import (
    flask_command,
    start_redis,
    start_worker,
    stop,
)
from offline_upstream import adb_writer
from offline_upstream.server import UpstreamServer
from offline_upstream.tree import generate, signing_key

REPO = Path(__file__).resolve().parent.parent

# Property tests draw the same examples on every run of `make test` (a seed from
# each test's own code, no example database, no time-based health check), so a
# commit gives the same result every time; what they once found is kept as
# @example cases. `make fuzz` selects the "fuzz" profile: new random examples,
# many more of them, and a local database that replays what it found first.
_PROPERTY_TESTS = {
    "deadline": None,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
    ],
}
settings.register_profile(
    "repeatable", derandomize=True, database=None, **_PROPERTY_TESTS
)
settings.register_profile("fuzz", max_examples=2000, **_PROPERTY_TESTS)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> str:
    """A private ``redis-server`` on a free loopback port for the whole session."""
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    assert not url.endswith(":6379/0"), "tests never use the shared Redis"
    yield url
    stop(proc)


@pytest.fixture(scope="session")
def janitor_state(redis_server, upstream, tmp_path_factory) -> dict[bytes, bytes]:
    """What ``janitor init`` of the offline upstream leaves in Redis (each key as
    ``DUMP`` gives it): the server answers requests only for what the janitor
    loaded, so every test starts from it."""
    connection = redis.Redis.from_url(redis_server)
    connection.flushall()
    base = tmp_path_factory.mktemp("janitor-state")
    janitor_init(create_app(offline_config(redis_server, upstream, base)))
    return {key: connection.dump(key) for key in connection.keys("*")}


def offline_config(redis_url: str, upstream: UpstreamServer, base: Path) -> dict:
    """Configuration for the private Redis and the offline upstream, with the
    public tree and the cache below ``base``."""
    return {
        "redis_url": redis_url,
        "upstream_url": upstream.url,
        "upstream_keys": [signing_key().public_key.to_text().splitlines()[-1]],
        "upstream_apk_keys": [adb_writer.signing_key().public_pem()],
        "public_path": str(base / "public"),
        "cache_path": str(base / "cache"),
        # Many tests queue several builds with no worker to finish them; the cap
        # on a client's builds in flight is tested on its own (test_limits).
        "max_client_builds_in_flight": 0,
    }


def janitor_init(app) -> str:
    """Run ``flask janitor init`` for ``app``; its output."""
    result = app.test_cli_runner().invoke(args=["janitor", "init"])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def redis_url(request, redis_server, janitor_state) -> str:
    """The private Redis for this test: emptied, then holding what the janitor
    loaded from the offline upstream (unless the test is marked ``unloaded``)."""
    redis.Redis.from_url(redis_server).flushall()
    if not request.node.get_closest_marker("unloaded"):
        restore(redis_server, janitor_state)
    return redis_server


def restore(url: str, state: dict[bytes, bytes]) -> None:
    """Put ``state`` (keys as ``DUMP`` gave them) into the Redis at ``url``."""
    with redis.Redis.from_url(url).pipeline(transaction=False) as pipe:
        for key, value in state.items():
            pipe.restore(key, 0, value, replace=True)
        pipe.execute()


@pytest.fixture(scope="session")
def upstream_tree(tmp_path_factory) -> Path:
    """The offline upstream's downloads tree, generated once per session."""
    return generate(tmp_path_factory.mktemp("upstream") / "downloads")


@pytest.fixture(scope="session")
def small_tree(tmp_path_factory) -> Path:
    """The offline upstream with 25.12.0 alone, so that each start's janitor pass
    costs little, and an x86/64 ``make image`` that first sleeps for two seconds:
    a build is running long enough to be stopped in the middle."""
    root = tmp_path_factory.mktemp("small") / "downloads"
    generate(root, only=("25.12.0",))
    repack(
        root / X86,
        lambda top: replace_make_target(top, "image", ["@sleep 2", "@$(IB) image"]),
    )
    return root


@pytest.fixture(scope="session")
def upstream(upstream_tree) -> UpstreamServer:
    """The offline upstream served over HTTP on loopback."""
    server = UpstreamServer(upstream_tree).start()
    yield server
    server.stop()


@pytest.fixture
def app_config(redis_url, upstream, tmp_path) -> dict:
    """Configuration overrides pointing the app at the private Redis and upstream."""
    return offline_config(redis_url, upstream, tmp_path)


@pytest.fixture(scope="module")
def loaded_settings() -> dict:
    """Configuration the module's ``loaded`` app adds; a module may override it."""
    return {}


@pytest.fixture(scope="module")
def loaded(upstream, tmp_path_factory, loaded_settings):
    """An app whose own Redis holds a full ``janitor init`` of the stand-in."""
    base = tmp_path_factory.mktemp("janitor")
    proc, url = start_redis(base / "redis")
    app = create_app(offline_config(url, upstream, base) | loaded_settings)
    app.config["TESTING"] = True
    app.init_output = janitor_init(app)
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


@contextmanager
def running_worker(
    command: list[str], env: dict[str, str], cwd: Path, redis_url: str
) -> Iterator:
    """An RQ worker process (its log ``cwd/worker.log``) for the ``with`` block,
    once it listens on the queue."""
    proc = start_worker(redis_url, env, cwd, cwd / "worker.log", command)
    try:
        yield proc
    finally:
        stop(proc)


@pytest.fixture
def worker(app_config, tmp_path):
    """One real RQ worker process (``flask --app asu worker``) for this test."""
    command = flask_command("worker")
    env = environ_for(app_config)
    with running_worker(command, env, tmp_path, app_config["redis_url"]) as proc:
        yield proc


@pytest.fixture(scope="session")
def nobody() -> Iterator[Runtime]:
    """What lets ``nobody`` run the project; only a suite run as root has another
    user to run a worker as (otherwise every worker is unprivileged already)."""
    if os.geteuid() != 0:
        pytest.skip("the suite runs unprivileged: its own workers are not root")
    python = runtime()
    yield python
    python.remove()


@pytest.fixture
def nobody_scratch(nobody) -> Iterator[Path]:
    """A directory ``nobody`` owns, outside the suite's private temporary tree."""
    path = Path(tempfile.mkdtemp(prefix="asu-unprivileged-"))
    os.chown(path, NOBODY, NOBODY)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def unprivileged_worker(app_config, nobody_scratch, nobody):
    """One real RQ worker running as ``nobody``, its log in ``nobody_scratch``."""
    command = nobody.command("-m", "flask", "--app", "asu", "worker")
    env = nobody.environ(environ_for(app_config))
    with running_worker(command, env, nobody_scratch, app_config["redis_url"]) as proc:
        yield proc


@contextmanager
def serving(app) -> Iterator[str]:
    """``app`` under a real WSGI server on loopback, for the ``with`` block; its URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@pytest.fixture
def live_server(app):
    """The app under a real WSGI server on loopback; yields its base URL."""
    with serving(app) as url:
        yield url


@pytest.fixture(scope="module")
def demo(loaded, upstream, loaded_settings, tmp_path_factory) -> demo_stack.Demo:
    """``make demo``'s pieces for a module: the janitor-loaded app served over
    HTTP and one worker, shared by the module's tests and their builds."""
    config = loaded.config["ASU"]
    environ = environ_for(demo_stack.overrides(config) | loaded_settings)
    logs = tmp_path_factory.mktemp("demo")
    with serving(loaded) as url, demo_stack.worker(config, logs, environ):
        yield demo_stack.Demo(url, upstream.url, config)


@pytest.fixture
def chromium(tmp_path):
    """A headless Chromium with a fresh profile; yields (driver, download dir)."""
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = browser.start(tmp_path / "profile", downloads)
    driver.set_page_load_timeout(30)
    yield driver, downloads
    driver.quit()
