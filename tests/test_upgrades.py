"""The upgrade check's decisions, from what a device reports and what the new
version offers (no I/O; the HTTP side is tested with the earlier APIs)."""

import pytest

from asu.build_request import RequestError
from asu.metadata.upgrades import UpgradeCheck, newest_release, parse_check, plan

RELEASES = ["25.12.0", "24.10.4", "23.05.4", "SNAPSHOT"]


def test_newest_release_for_each_kind_of_device():
    assert newest_release("23.05.4", RELEASES) == "25.12.0"
    assert newest_release("25.12.0", RELEASES) == "25.12.0"
    assert newest_release("24.10.0-rc2", RELEASES) == "25.12.0"
    assert newest_release("SNAPSHOT", RELEASES) == "SNAPSHOT"


def test_plan_23_05_to_24_10_renames_auc_to_owut():
    check = UpgradeCheck(
        "openwrt",
        "23.05.4",
        "x86/64",
        {"auc": "0.3.2-1", "htop": "3.2.2-1", "nano": "9.0-r1"},
    )
    available = {"owut": "2024.12.05~c0ee0a0a-r1", "htop": "3.4.1-r1", "nano": "9.0-r1"}
    upgrade = plan(check, "24.10.4", available, (24012, 28959), "opkg")
    assert upgrade.version_changed
    assert "owut" in upgrade.packages and "auc" not in upgrade.packages
    assert upgrade.upgrades["htop"] == ["3.4.1-r1", "3.2.2-1"]
    assert "nano" not in upgrade.upgrades  # same version
    assert upgrade.upgrades["owut"][1] == "0.3.2-1"  # the version auc had


def test_plan_24_10_to_25_12_moves_to_apk():
    check = UpgradeCheck(
        "openwrt",
        "24.10.4",
        "x86/64",
        {"opkg": "2024.10.16~38eccbb1-r1", "luci-app-package-manager": "24.1"},
    )
    available = {"apk-mbedtls": "3.0.5-r2", "luci-app-package-manager": "26.1"}
    upgrade = plan(check, "25.12.0", available, (27990, 32802), "apk")
    assert set(upgrade.packages) == {"apk-mbedtls", "luci-app-package-manager"}
    assert upgrade.upgrades["luci-app-package-manager"] == ["26.1", "24.1"]


def test_nothing_newer():
    check = UpgradeCheck("openwrt", "25.12.0", "x86/64", {"htop": "3.4.1-r1"})
    upgrade = plan(check, "25.12.0", {"htop": "3.4.1-r1"}, (32802, 32802), "apk")
    assert not upgrade.anything_new


def test_parse_check_shapes_and_refusals():
    check = parse_check(
        {
            "version": "23.05.4",
            "target": "ath79/generic",
            "installed": {"luci": "git-23.1"},
        }
    )
    assert check.distro == "openwrt" and check.installed == {"luci": "git-23.1"}
    old = parse_check(
        {"version": "23.05.4", "target": "ath79/generic", "packages": {"luci": "1"}},
        installed_key="packages",
    )
    assert old.installed == {"luci": "1"}
    for bad in (
        {"installed": ["luci"]},
        {"installed": {"lu ci": "1"}},
        {"installed": {"luci": "$(id)"}},
        {"target": "../x"},
        {"distro": "Open Wrt"},
    ):
        body = {"version": "23.05.4", "target": "ath79/generic"} | bad
        with pytest.raises(RequestError):
            parse_check(body)
    assert check.hash != old.hash


def test_across_the_apk_boundary_versions_compare_in_apk_order():
    """``1.2-r1`` is newer than ``1.2_rc1-r1`` for apk (a release candidate comes
    before its release), older for opkg: a 25.12 image compares as apk does."""
    check = UpgradeCheck("openwrt", "24.10.4", "x86/64", {"tool": "1.2_rc1-r1"})
    available = {"tool": "1.2-r1"}
    upgrade = plan(check, "25.12.0", available, (27990, 32802), "apk")
    assert upgrade.upgrades == {"tool": ["1.2-r1", "1.2_rc1-r1"]}
    same_in_opkg = plan(check, "24.10.4", available, (27990, 27990), "opkg")
    assert same_in_opkg.upgrades == {}
