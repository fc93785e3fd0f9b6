"""Branches derived from upstream's .versions.json and the distributions config."""

import pytest

from asu.branches import VersionFacts, latest, plan
from asu.config import ConfigError, load_config
from asu.distributions import distributions

VERSIONS_JSON = {
    "stable_version": "24.10.4",
    "versions_list": ["24.10.4", "23.05.4", "not a version"],
    "upcoming_version": "25.12.0-rc1",
}


def openwrt(**overrides):
    return distributions(load_config(overrides, environ={}))["openwrt"]


def test_plan_from_versions_json_and_settings():
    distribution = openwrt(
        branches={
            "23.05": {"enabled": False},
            "24.10": {"versions": ["24.10.4", "24.10.0", "24.10-SNAPSHOT"]},
        }
    )
    branches = plan(VERSIONS_JSON, distribution)
    assert [b.name for b in branches] == ["25.12", "24.10", "23.05", "SNAPSHOT"]
    by_name = {b.name: b for b in branches}
    assert by_name["24.10"].versions == ["24.10-SNAPSHOT", "24.10.4", "24.10.0"]
    assert by_name["25.12"].versions == ["25.12.0-rc1"]
    assert not by_name["23.05"].enabled
    assert by_name["SNAPSHOT"].version_path("SNAPSHOT") == "snapshots"
    assert by_name["24.10"].version_path("24.10.4") == "releases/24.10.4"


def test_published_branch_types():
    branches = {b.name: b for b in plan(VERSIONS_JSON, openwrt())}
    learned = {
        "24.10.4": VersionFacts({"x86/64": "x86_64"}, 28959, 1760891865),
        "25.12.0-rc1": VersionFacts({"x86/64": "x86_64"}, 32001, 1770000000),
    }
    known = branches["24.10"].publish(learned)
    assert known["branch_off_rev"] == 27990  # OpenWrt's, not derived
    assert known["release_date"] == "2025-02-04"
    assert known["git_branch"] == "openwrt-24.10"
    assert known["targets"] == {"x86/64": "x86_64"}
    derived = branches["25.12"].publish(learned)
    assert derived["branch_off_rev"] == 32001
    assert derived["release_date"] == "2026-02-02"
    assert derived["enabled"] is True and derived["snapshot"] is False
    assert latest([known, derived]) == ["24.10.4"]  # no release candidates


def test_a_second_distribution_beside_openwrt():
    config = load_config(
        {
            "distributions": {
                "lime": {
                    "upstream_url": "http://lime.example",
                    "upstream_keys": ["RWQ..."],
                    "feeds": ["base", "lime"],
                }
            }
        },
        environ={},
    )
    configured = distributions(config)
    assert list(configured) == ["openwrt", "lime"]
    assert configured["lime"].json_prefix == "distros/lime"
    assert configured["openwrt"].json_prefix == ""
    assert (
        configured["lime"].url("/.versions.json")
        == "http://lime.example/.versions.json"
    )


@pytest.mark.parametrize(
    ("settings", "word"),
    [
        ({"lime": {"upstream_url": "ftp://x", "upstream_keys": ["k"]}}, "upstream_url"),
        ({"lime": {"upstream_url": "http://x"}}, "upstream_keys"),
        ({"lime": {"upstream_url": "http://x", "upstream_keys": ["k"], "x": 1}}, "x"),
        ({"Lime!": {"upstream_url": "http://x", "upstream_keys": ["k"]}}, "name"),
    ],
)
def test_bad_distribution_settings(settings, word):
    config = load_config({"distributions": settings}, environ={})
    with pytest.raises(ConfigError, match=word):
        distributions(config)


def test_bad_branch_settings():
    with pytest.raises(ConfigError, match="enabled"):
        openwrt(branches={"24.10": {"enabled": "yes"}})
    with pytest.raises(ConfigError, match="versions"):
        openwrt(branches={"24.10": {"versions": ["../../etc"]}})
