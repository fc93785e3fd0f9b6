"""apk releases as the server loads them: every feed from its signed ``packages.adb``
(a tampered one skipped), and the check before queueing accepting exactly the
names apk would: packages, provides with and without version, virtual names."""

from __future__ import annotations

import json

import pytest
import redis
from clients import explain, post, wait_for
from upstreams import copy_tree, replace_file

from asu import create_app, redis_keys
from asu.build_request import RequestError, parse_build_request
from asu.formats import adb
from asu.metadata.package_validation import check_packages
from offline_upstream import adb_writer
from offline_upstream.server import UpstreamServer

APK_VERSIONS = ("25.12.0", "SNAPSHOT")
X86 = {"version": "25.12.0", "target": "x86/64", "profile": "generic"}
LUCI = "releases/25.12.0/packages/x86_64/luci/packages.adb"


def selector_request(version: str, target: str, profile: str, profiles: dict):
    """What the firmware selector sends: every default and device package, and
    ``diff_packages`` so that the list is the image's whole package set."""
    device = profiles["profiles"][profile]["device_packages"]
    return {
        "version": version,
        "target": target,
        "profile": profile,
        "packages": [*profiles["default_packages"], *device],
        "diff_packages": True,
    }


def test_every_apk_profile_is_accepted_as_the_firmware_selector_asks(loaded):
    connection = loaded.extensions["redis"]
    config = loaded.config["ASU"]
    checked = 0
    for version in APK_VERSIONS:
        targets = json.loads(connection.get(redis_keys.targets("openwrt", version)))
        for target, arch in targets.items():
            info = connection.hgetall(
                redis_keys.target_info("openwrt", version, target)
            )
            assert info[b"indexed"] == b"1", (version, target)
            feeds = redis_keys.feed_arches("openwrt", version)
            assert connection.sismember(feeds, arch), (version, arch)
            profiles = json.loads(
                connection.get(redis_keys.profiles("openwrt", version, target))
            )
            for profile in profiles["profiles"]:
                body = selector_request(version, target, profile, profiles)
                check_packages(connection, config, parse_build_request(body, config))
                checked += 1
    assert checked > 100
    assert "nftables" in profiles["default_packages"]  # provided by nftables-json


@pytest.mark.parametrize(
    "packages",
    [
        ["nftables"],  # provided, with a version, by nftables-json
        ["nftables-json"],
        ["nftables=1.1.6-r1"],
        ["nftables-json=1.1.6-r1"],
        ["libubox"],  # libubox20260213 by its plain name (provider priority)
        ["libubox20260213"],
        ["wget-any", "uclient-fetch"],  # a virtual name with its provider named
        ["-nftables", "nftables-json"],
    ],
)
def test_names_apk_accepts_pass(loaded, packages):
    response = loaded.test_client().post(
        "/api/v1/build", json=X86 | {"packages": packages}
    )
    assert response.status_code == 202, response.json


@pytest.mark.parametrize(
    "packages, unknown",
    [
        (["nonexistent"], "nonexistent"),
        (["nftables=1.1.1-r1"], "nftables=1.1.1-r1"),  # no such version
        (["libubox=2026.03.13~81563384-r2"], "libubox=2026.03.13~81563384-r2"),
        (["wget-any"], "wget-any"),  # virtual: apk asks to pick a provider
        (["htop", "nonexistent"], "nonexistent"),
    ],
)
def test_names_apk_refuses_are_422(loaded, packages, unknown):
    response = loaded.test_client().post(
        "/api/v1/build", json=X86 | {"packages": packages}
    )
    assert response.status_code == 422, response.json
    assert response.headers["X-Unknown-Package"] == unknown
    assert unknown in response.json["detail"]


def test_the_same_names_pass_on_the_snapshot(loaded):
    config = loaded.config["ASU"]
    connection = loaded.extensions["redis"]
    body = X86 | {"version": "SNAPSHOT", "packages": ["nftables", "nftables=1.1.6-r1"]}
    check_packages(connection, config, parse_build_request(body, config))
    with pytest.raises(RequestError, match="wget-any"):
        body["packages"] = ["wget-any"]
        check_packages(connection, config, parse_build_request(body, config))


def test_a_selector_request_builds_end_to_end(app, live_server, worker):
    """ath79 under 25.12.0, checked against the loaded feeds, built by the worker
    from the binary indexes and v3 packages: ``nftables`` is ``nftables-json``."""
    outcome = app.test_cli_runner().invoke(args=["janitor", "init"])
    assert outcome.exit_code == 0, outcome.output
    profiles = json.loads(
        app.extensions["redis"].get(
            redis_keys.profiles("openwrt", "25.12.0", "ath79/generic")
        )
    )
    body = selector_request("25.12.0", "ath79/generic", "tplink_archer-c7-v5", profiles)
    response = wait_for(live_server, body | {"packages": [*body["packages"], "htop"]})
    assert response.status_code == 200, explain(response)
    manifest = response.json()["manifest"]
    assert manifest["nftables-json"] == "1.1.6-r1"
    assert "nftables" not in manifest  # a provided name, not a package
    assert manifest["htop"]
    refused = post(live_server, body | {"packages": ["wget-any"]})
    assert refused.status_code == 422


# -- tampered indexes ----------------------------------------------------------------


def _forged(content: bytes) -> bytes:
    """The index with one byte of its ADB block changed, signature kept."""
    raw = bytearray(adb.decompress(content))
    at = raw.find(b"luci-base")
    raw[at] = ord("L")
    return adb_writer.compress(bytes(raw))


def _signed_by_another_key(content: bytes) -> bytes:
    index = adb.read_index(adb.parse(content))
    other = adb_writer.SigningKey.from_seed(b"not the offline upstream")
    return adb_writer.index_file(index.packages, other)


@pytest.mark.parametrize(
    "tamper, reason",
    [(_forged, "does not match"), (_signed_by_another_key, "no trusted key")],
)
@pytest.mark.unloaded
def test_a_tampered_feed_is_skipped_and_the_rest_loads(
    upstream_tree, app_config, tmp_path, tamper, reason
):
    tree = copy_tree(upstream_tree, tmp_path / "downloads")
    replace_file(tree / LUCI, tamper((tree / LUCI).read_bytes()))
    server = UpstreamServer(tree).start()
    only = {name: {"enabled": False} for name in ("23.05", "24.10", "SNAPSHOT")}
    try:
        app = create_app(app_config | {"upstream_url": server.url, "branches": only})
        outcome = app.test_cli_runner().invoke(args=["janitor", "init"])
    finally:
        server.stop()
    assert outcome.exit_code == 0, outcome.output
    [warning] = [line for line in outcome.output.splitlines() if "warning:" in line]
    assert "packages/x86_64/luci/packages.adb" in warning and reason in warning
    assert "1 feed(s) skipped for their signature" in outcome.output
    assert "1 warning(s)" in outcome.output
    connection = redis.Redis.from_url(app_config["redis_url"])
    luci = redis_keys.feed_packages("openwrt", "25.12.0", "x86_64", "luci")
    base = redis_keys.feed_packages("openwrt", "25.12.0", "x86_64", "base")
    assert connection.hlen(luci) == 0
    assert connection.hlen(base) > 0
    target = redis_keys.target_info("openwrt", "25.12.0", "x86/64")
    assert connection.hget(target, "indexed") == b"1"
    # the feed is missing, so nothing is refused for x86_64: it might be there
    assert not connection.sismember(
        redis_keys.feed_arches("openwrt", "25.12.0"), "x86_64"
    )
