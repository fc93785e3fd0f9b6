"""A worker that is not root, as in the container and the systemd unit: the sandbox
then runs in user namespaces of its own, the ImageBuilder's overlay mounted in one.

Only meaningful when the suite runs as root (otherwise every worker of the suite
is unprivileged already): the worker here runs as ``nobody``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import redis
from clients import download, explain, wait_for
from rq import Worker
from unprivileged import NOBODY, runtime

from asu.config import environ_for
from asu.local_services import spawn, stop, wait_until

X86_OPKG = {"version": "24.10.4", "target": "x86/64", "profile": "generic"}

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="the suite's workers are unprivileged already"
)


@pytest.fixture
def scratch():
    """Directories ``nobody`` owns, outside the suite's private temporary tree."""
    path = Path(tempfile.mkdtemp(prefix="asu-unprivileged-"))
    os.chown(path, NOBODY, NOBODY)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def app_config(app_config, scratch):
    return app_config | {
        "cache_path": str(scratch / "cache"),
        "public_path": str(scratch / "public"),
    }


@pytest.fixture(scope="module")
def nobody():
    python = runtime()
    yield python
    python.remove()


@pytest.fixture
def unprivileged_worker(app_config, scratch, nobody):
    proc = spawn(
        nobody.command("-m", "flask", "--app", "asu", "worker"),
        log_path=scratch / "worker.log",
        env=nobody.environ(environ_for(app_config)),
        cwd=scratch,
    )
    connection = redis.Redis.from_url(app_config["redis_url"])
    wait_until(lambda: Worker.count(connection=connection) > 0, "worker", proc)
    yield proc
    stop(proc)


def test_an_unprivileged_worker_builds(live_server, unprivileged_worker, scratch):
    defaults = "echo built by nobody\n"
    body = X86_OPKG | {"packages": ["htop"], "defaults": defaults}
    response = wait_for(live_server, body)
    log = (scratch / "worker.log").read_text()[-3000:]
    assert response.status_code == 200, f"{explain(response)}\n{log}"
    result = response.json()
    assert result["manifest"]["htop"]
    for image in result["images"]:
        assert download(live_server, result, image)
    cache = scratch / "cache"
    owners = {path.stat().st_uid for path in cache.rglob("*") if not path.is_symlink()}
    assert owners == {NOBODY}, "the worker wrote as another user"
