"""The web page in headless Chromium, as a person uses it: find a device by its
model name, edit its packages, build, watch the progress, download the image and
check its sha256; then the statistics page. Screenshots go to
``$SCREENSHOT_DIR`` when set (``make screenshots``), else to the test's
temporary directory."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import browser
import pytest
import requests
from browser import saved

from asu.metadata import devices

DEFAULTS = "uci set system.@system[0].hostname='from-the-web'\nuci commit system\n"


@pytest.fixture
def screenshots(tmp_path) -> Path:
    path = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def wait(driver, condition, timeout: float = 30, what: str = "the page"):
    """Poll ``condition(driver)`` until it returns something true; return it."""
    return browser.wait(driver, condition, timeout, what, _failure)


def _failure(driver) -> str:
    return driver.find_element("id", "failure-detail").text


def by_id(driver, element_id: str):
    return driver.find_element("id", element_id)


def choose_version(driver, version: str) -> None:
    from selenium.webdriver.support.ui import Select

    wait(driver, lambda d: by_id(d, "version").find_elements("tag name", "option"))
    Select(by_id(driver, "version")).select_by_value(version)
    search = by_id(driver, "search")
    wait(driver, lambda d: search.get_attribute("data-version") == version)
    wait(driver, lambda d: search.is_enabled(), what="the device list")


def search_and_pick(driver, words: str, profile: str) -> None:
    by_id(driver, "search").send_keys(words)
    selector = f'#matches li[data-profile="{profile}"]'
    match = wait(driver, lambda d: d.find_elements("css selector", selector))
    match[0].click()
    wait(driver, lambda d: by_id(d, "packages").get_attribute("value"))


def screenshot(driver, path: Path) -> None:
    """The whole page, not only the window: grow the window to the page first."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1200, max(height + 150, 800))  # the window has a frame
    driver.save_screenshot(str(path))
    driver.set_window_size(1200, 1000)


def test_search_build_download_and_statistics(
    request, live_server, chromium, screenshots
):
    driver, downloads = chromium
    driver.get(live_server + "/")
    wait(driver, lambda d: "0 of 0" in by_id(d, "status-workers").text, what="status")
    choose_version(driver, "23.05.4")
    search_and_pick(driver, "archer c7 v5", "tplink_archer-c7-v5")

    assert by_id(driver, "device-title").text == "TP-Link Archer C7 v5"
    assert by_id(driver, "device-target").text == "ath79/generic"
    packages = by_id(driver, "packages").get_attribute("value").split()
    assert "dropbear" in packages and "htop" not in packages
    edited = [name for name in packages if name != "ppp-mod-pppoe"] + ["htop"]
    by_id(driver, "packages").clear()
    by_id(driver, "packages").send_keys("\n".join(edited))
    driver.find_element("css selector", "#device summary").click()
    by_id(driver, "defaults").send_keys(DEFAULTS)
    screenshot(driver, screenshots / "build-form.png")

    # No worker yet: the build waits in the queue and the page says so.
    by_id(driver, "build").click()
    wait(driver, lambda d: by_id(d, "progress-hash").text != "…", what="the hash")
    assert by_id(driver, "progress-state").text == "queued"
    assert by_id(driver, "progress-detail").text == "next in the queue"
    wait(driver, lambda d: by_id(d, "status-queue").text == "1 waiting", 5, "queue")
    first = by_id(driver, "progress-elapsed").text
    wait(driver, lambda d: by_id(d, "progress-elapsed").text != first, 5, "a tick")
    screenshot(driver, screenshots / "build-queued.png")

    request.getfixturevalue("worker")
    wait(driver, lambda d: by_id(d, "result").is_displayed(), 120, "the result")
    assert not by_id(driver, "progress").is_displayed()
    driver.find_element("css selector", "#result summary").click()
    driver.save_screenshot(str(screenshots / "build-result.png"))  # the top of it

    manifest = dict(
        row.text.split(" ", 1)
        for row in driver.find_elements("css selector", "#result-manifest tr")
    )
    assert "htop" in manifest and "ppp-mod-pppoe" not in manifest
    assert by_id(driver, "manifest-count").text == str(len(manifest))

    row = next(
        row
        for row in driver.find_elements("css selector", "#result-images tr")
        if "sysupgrade" in row.text
    )
    link = row.find_element("tag name", "a")
    shown_sha256 = row.find_element("css selector", "td.hash").text
    link.click()
    data = saved(downloads, link.text)
    assert hashlib.sha256(data).hexdigest() == shown_sha256
    assert requests.get(link.get_attribute("href"), timeout=30).content == data

    # The same request again is answered from the kept result.
    by_id(driver, "build").click()
    wait(driver, lambda d: by_id(d, "result").is_displayed(), 30, "the cached result")

    driver.get(live_server + "/stats")
    wait(driver, lambda d: by_id(d, "fig-succeeded").text == "1", what="statistics")
    assert by_id(driver, "fig-requests").text == "2"
    assert by_id(driver, "fig-ratio").text == "50%"
    bars = driver.find_elements("css selector", "#chart-packages .bars li")
    assert [bar.text.split("\n")[0] for bar in bars] == ["htop"]
    assert driver.find_elements("css selector", "#chart-days svg rect")
    assert "ath79/generic" in by_id(driver, "chart-targets").text
    screenshot(driver, screenshots / "statistics.png")


def test_search_matches_titles_and_board_names(live_server, chromium):
    driver, _ = chromium
    driver.get(live_server + "/")
    choose_version(driver, "23.05.4")

    def titles(words: str) -> list[str]:
        by_id(driver, "search").clear()
        by_id(driver, "search").send_keys(words)
        items = wait(driver, lambda d: d.find_elements("css selector", "#matches li"))
        return [item.text.split("\n")[0] for item in items]

    # The TL-WDR7500 v3 is found by its board name "archer-c7".
    assert titles("archer c7") == [
        "TP-Link Archer C7 v1",
        "TP-Link Archer C7 v2",
        "TP-Link Archer C7 v4",
        "TP-Link Archer C7 v5",
        "TP-Link TL-WDR7500 v3",
    ]
    assert titles("ARCHER c7 V5") == ["TP-Link Archer C7 v5"]


def test_the_json_the_page_reads(client, app_config):
    assert client.get("/api/v1/versions").json == [
        "25.12.0",
        "24.10.4",
        "23.05.4",
        "SNAPSHOT",
    ]
    found = client.get("/api/v1/devices/23.05.4").json
    c7 = next(entry for entry in found if entry["id"] == "tplink_archer-c7-v5")
    assert c7 == {
        "target": "ath79/generic",
        "id": "tplink_archer-c7-v5",
        "titles": ["TP-Link Archer C7 v5"],
        "names": ["tplink,archer-c7-v5", "archer-c7-v5"],
    }
    device = client.get("/api/v1/devices/23.05.4/ath79/generic/tplink_archer-c7-v5")
    assert device.json["version_code"] == "r24012-d8dd03c46f"
    assert {"dropbear", "kmod-ath10k-ct"} <= set(device.json["packages"])
    assert {"factory", "sysupgrade"} <= set(device.json["images"])

    for missing in (
        "/api/v1/devices/99.99.9",
        "/api/v1/devices/not..a..version",
        "/api/v1/devices/23.05.4/ath79/generic/no-such-device",
        "/api/v1/devices/23.05.4/no/such/tplink_archer-c7-v5",
    ):
        answer = client.get(missing)
        assert answer.status_code == 400 and answer.json["status"] == 400, missing

    # Once the janitor has written overview.json, its branches name the versions.
    overview = Path(app_config["public_path"]) / "json/v1/overview.json"
    overview.parent.mkdir(parents=True)
    branches = {
        "24.10": {"versions": ["24.10.4"]},
        "SNAPSHOT": {"versions": ["SNAPSHOT"]},
    }
    overview.write_text(json.dumps({"branches": branches}))
    assert client.get("/api/v1/versions").json == ["24.10.4", "SNAPSHOT"]


def test_default_packages_apply_the_devices_removals():
    defaults = ["base-files", "ppp", "ppp-mod-pppoe"]
    device_packages = ["-ppp-mod-pppoe", "kmod-ath9k"]
    assert devices.default_packages(defaults, device_packages) == [
        "base-files",
        "kmod-ath9k",
        "ppp",
    ]


def test_pages_are_served_with_their_assets(client):
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    for asset in ("style.css", "common.js", "build.js"):
        assert f"/assets/{asset}" in page.text
        assert client.get(f"/assets/{asset}").status_code == 200
    assert "/assets/stats.js" in client.get("/stats").text
