"""Package changes between versions: the data and applying it to a device's list."""

from asu import package_changes
from asu.package_changes import Change, apply, for_branch, revision_number

BRANCH_21_02, BRANCH_22_03, BRANCH_23_05, BRANCH_24_10 = 15812, 19160, 23069, 27990
SNAPSHOT_25_12 = 32802


def test_a_21_02_device_asking_for_a_25_12_snapshot():
    installed = [
        "firewall",
        "auc",
        "opkg",
        "luci-app-opkg",
        "luci-i18n-opkg-de",
        "kmod-nft-nat6",
        "-wpad-basic-wolfssl",
        "htop",
    ]
    assert apply(installed, BRANCH_21_02, SNAPSHOT_25_12) == [
        "firewall4",
        "owut",
        "apk-mbedtls",
        "luci-app-package-manager",
        "luci-i18n-package-manager-de",
        "-wpad-basic-mbedtls",
        "htop",
    ]


def test_only_the_changes_between_the_two_revisions_are_made():
    installed = ["firewall4", "auc", "opkg", "luci-app-opkg"]
    # 23.05 -> 24.10: owut and the package manager page, but opkg stays
    assert apply(installed, BRANCH_23_05, BRANCH_24_10) == [
        "firewall4",
        "owut",
        "opkg",
        "luci-app-package-manager",
    ]
    assert apply(installed, BRANCH_24_10, BRANCH_24_10) == installed


def test_additions_and_removals():
    addition = Change(100, target="kmod-new", mandatory=True)
    assert addition.apply(["htop"]) == ["htop", "kmod-new"]
    assert addition.apply(["-kmod-new"]) == ["-kmod-new"]  # the client removed it
    assert Change(100, target="kmod-new").apply(["htop"]) == ["htop"]
    removal = Change(100, source="gone")
    assert removal.apply(["gone", "-gone", "htop"]) == ["htop"]


def test_device_specific_kmods_a_profile_gains():
    before = ["kmod-ath9k"]
    wndr3700 = apply(
        before, BRANCH_22_03, BRANCH_23_05, "ath79/generic", "netgear_wndr3700"
    )
    assert wndr3700 == ["kmod-ath9k", "kmod-switch-rtl8366s"]
    rb = apply(
        before, BRANCH_22_03, BRANCH_23_05, "ath79/generic", "buffalo_wzr-hp-g300nh-rb"
    )
    assert rb == ["kmod-ath9k", "kmod-switch-rtl8366rb"]
    c7 = apply(
        before, BRANCH_22_03, BRANCH_23_05, "ath79/generic", "tplink_archer-c7-v5"
    )
    assert c7 == before
    mt7622 = apply([], BRANCH_22_03, BRANCH_23_05, "mediatek/mt7622", "any")
    assert mt7622 == ["kmod-mt7622-firmware"]


def test_branches_publish_the_changes_up_to_their_branch_off():
    released = for_branch(BRANCH_24_10, snapshot=False)
    sources = {change.get("source") for change in released}
    assert {"firewall", "auc", "luci-app-opkg"} <= sources
    assert "opkg" not in sources
    assert len(for_branch(0, snapshot=True)) == len(package_changes.CHANGES)
    removal = next(c for c in released if c.get("source") == "kmod-nft-nat6")
    assert removal == {"source": "kmod-nft-nat6", "revision": 20282, "mandatory": True}


def test_revision_number():
    assert revision_number("r24012-d8dd03c46f") == 24012
    assert revision_number("") == 0
    assert revision_number("unknown") == 0
