"""The janitor loads no package index whose usign signature does not check out."""

from __future__ import annotations

import gzip

import pytest
import redis
from upstreams import copy_tree, replace_file

from asu import create_app, redis_keys
from offline_upstream.server import UpstreamServer

FEED = "releases/23.05.4/packages/x86_64/luci"

pytestmark = pytest.mark.unloaded


def test_a_feed_index_changed_after_signing_is_not_loaded(
    upstream_tree, app_config, tmp_path
):
    tree = copy_tree(upstream_tree, tmp_path / "downloads")
    packages = gzip.decompress((tree / FEED / "Packages.gz").read_bytes())
    forged = packages + b"\nPackage: backdoor\nVersion: 1.0-1\nArchitecture: all\n"
    replace_file(tree / FEED / "Packages.gz", gzip.compress(forged))
    server = UpstreamServer(tree).start()
    try:
        app = create_app(app_config | {"upstream_url": server.url})
        outcome = app.test_cli_runner().invoke(args=["janitor", "init"])
    finally:
        server.stop()
    assert outcome.exit_code == 0, outcome.output
    assert "luci" in outcome.output and "does not match" in outcome.output
    connection = redis.Redis.from_url(app_config["redis_url"])
    luci = redis_keys.feed_packages("openwrt", "23.05.4", "x86_64", "luci")
    base = redis_keys.feed_packages("openwrt", "23.05.4", "x86_64", "base")
    assert not connection.hexists(luci, "backdoor")
    assert connection.hlen(luci) == 0
    assert connection.hlen(base) > 0


def test_an_unsigned_index_is_skipped_not_its_target(
    upstream_tree, app_config, tmp_path
):
    """The x86/64 target's own index and the luci feed lose their signatures: the
    target's profiles still load, both indexes are skipped and counted, and no
    package is refused on what is now incomplete knowledge."""
    tree = copy_tree(upstream_tree, tmp_path / "downloads")
    target = "releases/24.10.4/targets/x86/64/packages"
    for directory in (target, "releases/24.10.4/packages/x86_64/luci"):
        (tree / directory / "Packages.sig").unlink()
    server = UpstreamServer(tree).start()
    try:
        app = create_app(app_config | {"upstream_url": server.url})
        outcome = app.test_cli_runner().invoke(args=["janitor", "init"])
    finally:
        server.stop()
    assert outcome.exit_code == 0, outcome.output
    assert f"skipped {target}/Packages.sig is missing" in outcome.output
    assert "2 feed(s) skipped for their signature" in outcome.output
    client = app.test_client()
    x86 = {"version": "24.10.4", "target": "x86/64", "profile": "generic"}
    device = client.get("/api/v1/devices/24.10.4/x86/64/generic")
    assert device.status_code == 200
    body = x86 | {"packages": ["luci-app-only-in-the-skipped-feed"]}
    assert client.post("/api/v1/build", json=body).status_code == 202
