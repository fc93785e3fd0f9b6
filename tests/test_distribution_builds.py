"""A second distribution builds from its own upstream, checked with its own key."""

from __future__ import annotations

import pytest
from clients import wait_for
from upstreams import snapshot_only

from asu.formats.usign import SecretKey
from offline_upstream import adb_writer

LIME_KEY = SecretKey.from_seed(b"\x0b" * 32)
LIME_CODE = "r34001-1ec0ffee00"


@pytest.fixture(scope="module")
def lime_upstream(tmp_path_factory):
    server = snapshot_only(tmp_path_factory.mktemp("lime"), LIME_CODE, LIME_KEY)
    yield server
    server.stop()


@pytest.fixture
def app_config(app_config, lime_upstream):
    lime = {
        "upstream_url": lime_upstream.url,
        "upstream_keys": [LIME_KEY.public_key.to_text().splitlines()[-1]],
        "upstream_apk_keys": [adb_writer.signing_key().public_pem()],
        # a copy of OpenWrt's tree: its ImageBuilders name OpenWrt's address
        "public_url": "https://downloads.openwrt.org",
    }
    return app_config | {"distributions": {"lime": lime}}


def test_second_distribution_builds_from_its_own_upstream(
    app, live_server, worker, lime_upstream
):
    assert app.test_cli_runner().invoke(args=["janitor", "init"]).exit_code == 0
    before = len(lime_upstream.request_log)
    body = {"version": "SNAPSHOT", "target": "x86/64", "profile": "generic"}
    lime = wait_for(live_server, body | {"distro": "lime"})
    assert lime.status_code == 200, lime.json()
    assert lime.json()["version_code"] == LIME_CODE
    fetched = [path for _, path, _ in lime_upstream.request_log[before:]]
    assert any("openwrt-imagebuilder" in path for path in fetched)
    assert any(path.endswith(".apk") for path in fetched), "its feeds were not its own"
    openwrt = wait_for(live_server, body)
    assert openwrt.status_code == 200
    assert openwrt.json()["version_code"] != LIME_CODE
