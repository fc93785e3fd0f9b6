"""Reading opkg and apk package indexes."""

import gzip
import json

import pytest

from asu.formats.package_index import BadIndex, parse

PACKAGES = """\
Package: libubox20230523
Version: 2023-05-23-75a3b870-1
Depends: libc
Provides: libubox
ABIVersion: 20230523
Description:  Basic utility library
 continued on a second line: Package: not-a-package

Package: iptables-nft
Version: 1.8.8-2
Provides: iptables (= 1.8.8-2), ip4tables

Package: ca-bundle
Version: 20230311-1
Provides: ca-certs
"""


def test_opkg_packages_with_abi_versions_and_provides():
    for name, content in (
        ("Packages", PACKAGES.encode()),
        ("Packages.gz", gzip.compress(PACKAGES.encode())),
    ):
        index = parse(name, content)
        assert index.packages == {
            "libubox": "2023-05-23-75a3b870-1",
            "iptables-nft": "1.8.8-2",
            "ca-bundle": "20230311-1",
        }
        assert index.provides == {
            "libubox20230523",
            "iptables",
            "ip4tables",
            "ca-certs",
        }


def test_apk_index_json_v2_has_names_only():
    content = json.dumps(
        {"version": 2, "architecture": "x86_64", "packages": {"libubox": "2025-r1"}}
    )
    index = parse("index.json", content.encode())
    assert index.packages == {"libubox": "2025-r1"}
    assert index.provides == set()


def test_index_json_v1_names_as_published_or_with_details():
    content = json.dumps(
        {
            "architecture": "mips_24kc",
            "packages": {
                "libubus20230605": "2023-06-05-f787c97b-1",
                "libustream-mbedtls20201210": {
                    "version": "2023-02-25-498f6e26-1",
                    "abi_version": "20201210",
                    "provides": ["libustream-mbedtls=2023"],
                },
            },
        }
    )
    index = parse("index.json", content.encode())
    assert index.packages == {
        "libubus20230605": "2023-06-05-f787c97b-1",
        "libustream-mbedtls": "2023-02-25-498f6e26-1",
    }
    assert index.provides == {"libustream-mbedtls20201210"}


@pytest.mark.parametrize("content", [b"[]", b"{}", b"not json", b'{"packages": []}'])
def test_not_an_index(content):
    with pytest.raises(BadIndex):
        parse("index.json", content)
