"""A worker that is not root, as in the container and the systemd unit: the sandbox
then runs in user namespaces of its own, the ImageBuilder's overlay mounted in one.

Only meaningful when the suite runs as root (otherwise every worker of the suite
is unprivileged already): the worker here runs as ``nobody``.
"""

from __future__ import annotations

import pytest
from clients import download, explain, wait_for
from unprivileged import NOBODY

X86_OPKG = {"version": "24.10.4", "target": "x86/64", "profile": "generic"}


@pytest.fixture
def app_config(app_config, nobody_scratch):
    return app_config | {
        "cache_path": str(nobody_scratch / "cache"),
        "public_path": str(nobody_scratch / "public"),
    }


def test_an_unprivileged_worker_builds(
    live_server, unprivileged_worker, nobody_scratch
):
    defaults = "echo built by nobody\n"
    body = X86_OPKG | {"packages": ["htop"], "defaults": defaults}
    response = wait_for(live_server, body)
    log = (nobody_scratch / "worker.log").read_text()[-3000:]
    assert response.status_code == 200, f"{explain(response)}\n{log}"
    result = response.json()
    assert result["manifest"]["htop"]
    for image in result["images"]:
        assert download(live_server, result, image)
    cache = nobody_scratch / "cache"
    owners = {path.stat().st_uid for path in cache.rglob("*") if not path.is_symlink()}
    assert owners == {NOBODY}, "the worker wrote as another user"
