"""Upgrade checks and catalogue reads of the earlier generations, over a janitor
run of the offline upstream (23.05.4 → 24.10.4 → 25.12.0, SNAPSHOT)."""

from __future__ import annotations

import pytest
import redis
from rq import Queue

from asu import create_app


@pytest.fixture
def loaded(app, client):
    outcome = app.test_cli_runner().invoke(args=["janitor", "init"])
    assert outcome.exit_code == 0, outcome.output
    return client


def installed_23_05():
    return {
        "auc": "0.3.2-1",
        "luci": "git-23.093.57104-ce20b4a",
        "htop": "3.2.1-1",
        "opkg": "2022-02-24-d038e5b6-2",
        "firewall4": "2023-09-01-598d9fbb-1",
    }


def test_23_05_device_goes_to_25_12_with_renames(loaded):
    body = {
        "distro": "OpenWrt",
        "version": "23.05.4",
        "target": "x86/64",
        "installed": installed_23_05(),
    }
    response = loaded.post("/api/upgrade-check", json=body)
    assert response.status_code == 200, response.json
    answer = response.json
    assert answer["version"] == "25.12.0"
    packages = answer["packages"]
    assert "owut" in packages and "auc" not in packages  # 24.10
    assert "apk-mbedtls" in packages and "opkg" not in packages  # 25.12
    new_htop, old_htop = answer["upgrades"]["htop"]
    assert old_htop == "3.2.1-1" and new_htop != old_htop


def test_a_24_10_device_crosses_to_apk(loaded):
    """opkg to apk: the package manager is renamed, ABI-versioned libraries keep
    their plain names (25.12's come from packages.adb), versions compare as apk."""
    installed = {
        "opkg": "2024.10.16~38eccbb1-r1",
        "owut": "2024.07.01~9e2e5ed4-r1",
        "libubox": "2024.03.29~eb9bcb64-r1",
        "nftables-json": "1.1.1-r1",
    }
    body = {"version": "24.10.4", "target": "x86/64", "installed": installed}
    response = loaded.post("/api/upgrade-check", json=body)
    assert response.status_code == 200, response.json
    answer = response.json
    assert answer["version"] == "25.12.0"
    assert "apk-mbedtls" in answer["packages"] and "opkg" not in answer["packages"]
    assert answer["upgrades"]["nftables-json"] == ["1.1.6-r1", "1.1.1-r1"]
    assert answer["upgrades"]["libubox"][0] == "2026.03.13~81563384-r2"
    # it replaces opkg: listed although 3.0.5 sorts before 2024.10.16
    assert answer["upgrades"]["apk-mbedtls"] == ["3.0.5-r2", installed["opkg"]]


def test_with_25_12_disabled_a_23_05_device_goes_to_24_10(app_config):
    app = create_app(app_config | {"branches": {"25.12": {"enabled": False}}})
    assert app.test_cli_runner().invoke(args=["janitor", "init"]).exit_code == 0
    body = {"version": "23.05.4", "target": "x86/64", "installed": installed_23_05()}
    answer = app.test_client().post("/api/upgrade-check", json=body).json
    assert answer["version"] == "24.10.4"
    assert "owut" in answer["packages"] and "opkg" in answer["packages"]


def test_up_to_date_device_gets_204_with_the_hash(loaded):
    index = loaded.get("/json/v1/releases/25.12.0/packages/x86_64-index.json").json
    installed = {"htop": index["htop"]}
    body = {"version": "25.12.0", "target": "x86/64", "installed": installed}
    response = loaded.post("/api/upgrade-check", json=body)
    assert response.status_code == 204
    assert len(response.headers["X-Request-Hash"]) == 64
    assert response.data == b""


def test_2017_update_request(loaded):
    body = {
        "distro": "LEDE",
        "version": "24.10.4",
        "target": "ath79",
        "subtarget": "generic",
        "packages": {"luci-app-opkg": "git-24.1", "auc": "0.3.2-1"},
    }
    response = loaded.post("/update-request", json=body)
    assert response.status_code == 200, response.json
    assert response.json["status"] == 200
    assert response.json["version"] == "25.12.0"


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"version": "99.99.9"}, 400),
        ({"target": "nosuch/target"}, 400),
        ({"installed": {"luci": "1.0; reboot"}}, 400),
        ({"version": ["23.05.4"]}, 400),
    ],
)
def test_bad_checks(loaded, change, status):
    body = {"version": "23.05.4", "target": "x86/64", "installed": {}} | change
    response = loaded.post("/api/upgrade-check", json=body)
    assert response.status_code == status
    assert response.json["error"]


def test_catalogue_reads(loaded):
    distros = loaded.get("/api/distros").json
    assert {"name": "openwrt", "latest": "25.12.0"} in distros
    versions = [v["name"] for v in loaded.get("/api/versions?distro=openwrt").json]
    assert versions[:3] == ["SNAPSHOT", "25.12.0", "24.10.4"]
    models = loaded.get(
        "/api/models?distro=openwrt&version=23.05.4&model_search=archer c7"
    ).json
    assert any(
        m["profile"] == "tplink_archer-c7-v5" and m["target"] == "ath79/generic"
        for m in models
    )
    packages = loaded.get(
        "/api/packages_image?distro=openwrt&version=23.05.4"
        "&target=ath79/generic&profile=tplink,archer-c7-v5"
    ).json
    assert "kmod-ath10k-ct" in packages and "base-files" in packages
    missing = loaded.get("/api/models?version=23.05.4")
    assert missing.status_code == 400 and "model_search" in missing.json["error"]


def test_2019_requests_are_validated_like_v1(loaded, redis_url):
    body = {
        "version": "23.05.4",
        "target": "ath79/generic",
        "board": "tplink,archer-c7-v5",
        "packages": ["luci", "no-such-package"],
    }
    response = loaded.post("/api/upgrade-request", json=body)
    assert response.status_code == 422
    assert "no-such-package" in response.json["error"]
    assert response.headers["X-Unknown-Package"] == "no-such-package"
    queue = Queue("builds", connection=redis.Redis.from_url(redis_url))
    assert queue.count == 0
