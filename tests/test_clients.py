"""The clients people run, unmodified, against ``make demo``'s pieces: the
official firmware selector in headless Chromium, and LuCI's attended sysupgrade
view, ``auc`` and ``owut`` replayed request by request as their sources make
them (:mod:`replays`), on every release of the offline upstream. Each ends with
an image whose sha256 is the one the client was shown and whose usign
signature is by the server's key."""

from __future__ import annotations

import hashlib

import pytest
import requests
from browser import saved
from firmware_selector import (
    TAG,
    built_images,
    deploy,
    find_device,
    pick_version,
    request_build,
)

from asu.offline.server import UpstreamServer
from asu.usign import verify

FIRST_BOOT = "uci set system.@system[0].hostname='selected'\nuci commit system\n"


def assert_signed(demo, bin_dir: str, name: str, data: bytes) -> None:
    """``<image>.sig`` beside the image is a usign signature by the server's key."""
    signature = requests.get(f"{demo.url}/store/{bin_dir}/{name}.sig", timeout=30)
    assert signature.status_code == 200
    assert verify(data, signature.text, [demo.public_key]), f"{name}.sig"


# -- the firmware selector ---------------------------------------------------------


@pytest.fixture(scope="module")
def selector(demo, tmp_path_factory):
    """The selector's static files on an origin of their own, configured with the
    two values an operator sets: the downloads server and the build server."""
    www = deploy(tmp_path_factory.mktemp("selector"), demo.upstream_url, demo.url)
    server = UpstreamServer(www).start()
    yield server.url
    server.stop()


@pytest.mark.parametrize(
    ("version", "words", "title"),
    [
        ("23.05.4", "archer c7 v5", "TP-Link Archer C7 v5"),  # opkg
        ("25.12.0", "openwrt one", "OpenWrt One"),  # apk
    ],
)
def test_the_firmware_selector_builds_and_downloads(
    demo,
    selector,
    chromium,
    version,
    words,
    title,
):
    driver, downloads = chromium
    driver.get(f"{selector}/index.html")
    pick_version(driver, version)
    find_device(driver, words, title, version)
    sent = request_build(driver, "htop", FIRST_BOOT)
    assert "luci-app-attendedsysupgrade" in sent and sent[-1] == "htop"

    images = built_images(driver, demo.url)
    for link, shown_sha256 in images:
        bin_dir, name = link.split("/store/", 1)[1].split("/")
        row = f'#download-table1 a[href="{link}"]'
        driver.find_element("css selector", row).click()
        data = saved(downloads, name)
        assert hashlib.sha256(data).hexdigest() == shown_sha256, name
        assert_signed(demo, bin_dir, name, data)

    # What was built is what the page asked for.
    result = requests.get(f"{demo.url}/api/v1/build/{bin_dir}", timeout=30).json()
    assert result["version_number"] == version
    assert result["manifest"]["htop"]
    assert result["request"]["defaults"] == FIRST_BOOT
    assert result["request"]["client"] == f"ofs/{TAG}"
    assert driver.find_element("id", "image-folder").get_attribute("href") == (
        f"{demo.url}/store/{bin_dir}"
    )
