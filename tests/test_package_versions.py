"""Version order as opkg and apk see it, and release order."""

import pytest

from asu.branches import version_key
from asu.formats.package_versions import compare

OPKG_ASCENDING = [
    "1.0~rc1-1",
    "1.0-1",
    "1.0-2",
    "1.0-10",
    "1.0a-1",
    "1.0.1-1",
    "1.1-1",
    "2023-09-01-598d9fbb-1",
    "2023-09-02-00000000-1",
    "1:0.1-1",  # an epoch beats any version without one
]

APK_ASCENDING = [
    "1.36.1_alpha1-r0",
    "1.36.1_beta2-r0",
    "1.36.1_rc1-r0",
    "1.36.1-r0",
    "1.36.1-r2",
    "1.36.1_p1-r0",
    "1.36.1a-r0",
    "1.36.2-r0",
    "1.37.0-r6",
    "2025.03.17~b6e51575-r2",
]


@pytest.mark.parametrize(
    ("versions", "package_format"),
    [(OPKG_ASCENDING, "opkg"), (APK_ASCENDING, "apk")],
)
def test_versions_sort_as_the_package_manager_does(versions, package_format):
    for older, newer in zip(versions, versions[1:], strict=False):
        assert compare(older, newer, package_format) == -1, (older, newer)
        assert compare(newer, older, package_format) == 1, (newer, older)
        assert compare(older, older, package_format) == 0


def test_real_openwrt_version_strings():
    assert compare("2024.12.18~18fc0ead-r1", "2023-09-01-598d9fbb-1") == 1
    assert compare("5.15.162-1", "5.15.137-1") == 1
    assert compare("2.90-2", "2.90-r5") == -1  # "r5" > "2" in dpkg order
    assert compare("3.0.5-r2", "3.0.5-r10", "apk") == -1


def test_release_order():
    names = [
        "23.05.4",
        "24.10.0-rc2",
        "24.10.0",
        "24.10.4",
        "24.10-SNAPSHOT",
        "SNAPSHOT",
    ]
    assert sorted(reversed(names), key=version_key) == names
