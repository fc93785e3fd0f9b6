"""Parsing, checking, normalising and hashing build requests (no I/O)."""

import json
from pathlib import Path

import pytest

from asu.api.errors import status_of
from asu.build_request import BuildRequest, RequestError, parse_build_request
from asu.config import Config
from offline_upstream import adb_writer

REQUESTS = Path(__file__).parent / "data" / "requests"
CONFIG = Config(repository_allow_list=("https://feeds.example.org/",))


def parse(body, config=CONFIG, user_agent=""):
    return parse_build_request(body, config, user_agent)


def minimal(**fields):
    return {"version": "23.05.4", "target": "ath79/generic", "profile": "x"} | fields


@pytest.mark.parametrize("path", sorted(REQUESTS.glob("*.json")), ids=lambda p: p.stem)
def test_real_client_requests_parse(path):
    body = json.loads(path.read_text())
    request = parse(body)
    assert request.version == body["version"]
    assert request.target == body["target"]
    assert len(request.hash) == 64
    assert set(request.packages) == {p.lstrip("+") for p in body["packages"]}


def test_luci_request_shape():
    body = json.loads((REQUESTS / "luci-archer-c7-v5-23.05.4.json").read_text())
    request = parse(body)
    assert request.profile == "tplink,archer-c7-v5"  # resolved against metadata later
    assert request.rootfs_size_mb is None
    assert request.diff_packages is True
    assert request.client.startswith("luci/")


def test_hash_ignores_order_duplicates_and_plus_prefix():
    a = parse(minimal(packages=["luci", "htop", "luci"]))
    b = parse(minimal(packages=["+htop", "luci"]))
    assert a.hash == b.hash
    assert a.packages == ("luci", "htop")  # order kept for the build


def test_hash_changes_with_everything_that_changes_the_image():
    base = parse(minimal(packages=["luci"]))
    variants = [
        minimal(packages=["luci", "htop"]),
        minimal(packages=["luci"], diff_packages=True),
        minimal(packages=["luci"], defaults="echo hi"),
        minimal(packages=["luci"], rootfs_size_mb=256),
        minimal(packages=["luci"], filesystem="ext4"),
        minimal(packages=["luci"], version_code="r24012-d8dd03c46f"),
        minimal(packages=["luci"], target="ramips/mt7621"),
        minimal(packages=["luci"], version="24.10.4"),
        minimal(packages_versions={"luci": "git-24.1"}),
        minimal(
            packages=["luci"],
            repositories={"extra": "https://feeds.example.org/extra"},
        ),
    ]
    hashes = {parse(v).hash for v in variants}
    assert base.hash not in hashes
    assert len(hashes) == len(variants)


def test_client_does_not_change_the_hash():
    a = parse(minimal(client="luci/1"))
    b = parse(minimal(), user_agent="auc/0.3.2 (x86)")
    assert a.hash == b.hash
    assert b.client == "auc/0.3.2"


@pytest.mark.parametrize(
    ("agent", "client"),
    [
        ("auc (0.3.2)", "auc/0.3.2"),  # as auc sends it: "<argv[0]> (<version>)"
        ("owut/2024.07.01-r1", "owut/2024.07.01-r1"),
        ("python-requests/2.32.3", "python-requests/2.32.3"),
        ("Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0"),
        ("(nothing)", ""),
        ("", ""),
    ],
)
def test_client_from_user_agent(agent, client):
    assert parse(minimal(), user_agent=agent).client == client


def test_echo_has_null_for_what_the_client_left_out():
    echoed = parse(minimal(packages=["htop"])).echo()
    assert echoed["defaults"] is None and echoed["version_code"] is None
    assert echoed["filesystem"] is None and echoed["rootfs_size_mb"] is None
    assert echoed["packages"] == ["htop"] and echoed["diff_packages"] is False
    sent = parse(minimal(defaults="echo hi", rootfs_size_mb="64", filesystem="ext4"))
    assert sent.echo()["defaults"] == "echo hi"
    assert sent.echo()["rootfs_size_mb"] == 64
    assert sent.echo()["filesystem"] == "ext4"


def test_packages_versions_keys_replace_packages():
    request = parse(minimal(packages=["htop"], packages_versions={"luci": "1.0-r1"}))
    assert request.packages == ("luci",)
    assert request.packages_versions == {"luci": "1.0-r1"}


def test_rootfs_size_as_luci_sends_it():
    assert parse(minimal(rootfs_size_mb="256")).rootfs_size_mb == 256
    assert parse(minimal(rootfs_size_mb=None)).rootfs_size_mb is None


def test_unknown_fields_are_ignored():
    assert parse(minimal(url="https://sysupgrade.openwrt.org", shiny=[1])).version


def test_round_trip_through_the_job():
    request = parse(minimal(packages=["luci", "-ppp"], defaults="x"))
    assert BuildRequest.from_dict(request.as_dict()) == request


@pytest.mark.parametrize(
    ("fields", "field_named"),
    [
        ({"version": "23.05.4; rm -rf /"}, "version"),
        ({"version": None}, "version"),
        ({"target": "../../etc"}, "target"),
        ({"target": "ath79"}, "target"),
        ({"profile": "$(reboot)"}, "profile"),
        ({"profile": ""}, "profile"),
        ({"profile": 7}, "profile"),
        ({"packages": ["luci", "`id`"]}, "packages"),
        ({"packages": ["PACKAGES=evil"]}, "packages"),
        ({"packages": ["a b"]}, "packages"),
        ({"packages": "luci"}, "packages"),
        ({"packages": [["luci"]]}, "packages"),
        ({"packages": ["x"] * 501}, "packages"),
        ({"packages_versions": {"luci": "1.0; id"}}, "packages_versions"),
        ({"packages_versions": ["luci"]}, "packages_versions"),
        ({"diff_packages": "yes"}, "diff_packages"),
        ({"defaults": 12}, "defaults"),
        ({"defaults": "x" * 20481}, "defaults"),
        ({"rootfs_size_mb": 0}, "rootfs_size_mb"),
        ({"rootfs_size_mb": 4096}, "rootfs_size_mb"),
        ({"rootfs_size_mb": "12a"}, "rootfs_size_mb"),
        ({"rootfs_size_mb": True}, "rootfs_size_mb"),
        ({"filesystem": "ntfs"}, "filesystem"),
        ({"version_code": "r1 r2"}, "version_code"),
        ({"rootfs_size_mb": "9" * 5000}, "rootfs_size_mb"),
        ({"repositories": {"x": "https://elsewhere.example/feed"}}, "repositories"),
        ({"repositories": {"a b": "https://feeds.example.org/"}}, "repositories"),
        ({"repositories": {"..": "https://feeds.example.org/x"}}, "repositories"),
        ({"repositories": {".": "https://feeds.example.org/x"}}, "repositories"),
        ({"repositories": {"x": "file:///etc"}}, "repositories"),
        ({"repository_keys": ["not a key"]}, "repository_keys"),
        ({"repositories_mode": "merge"}, "repositories_mode"),
        ({"distro": "Open Wrt"}, "distro"),
        ({"client": "\n"}, "client"),
        ({"version": "２３.０５.４"}, "version"),
    ],
)
def test_bad_fields_are_400_naming_the_field(fields, field_named):
    with pytest.raises(RequestError) as refused:
        parse(minimal(**fields))
    assert status_of(refused.value) == 400
    assert field_named in refused.value.detail


def test_body_must_be_an_object():
    with pytest.raises(RequestError, match="JSON object"):
        parse(["version", "23.05.4"])


def test_defaults_refused_when_the_server_disallows_them():
    with pytest.raises(RequestError, match="defaults"):
        parse(minimal(defaults="echo"), Config(allow_defaults=False))


APK_KEY = adb_writer.signing_key().public_pem()
USIGN_KEY = "RWS1BD5w+adc3j2Hqg9+b66CvLR7NlHbsj7wjNVj0XGt/othDgIAOJS+"


def test_apk_feeds_as_clients_send_them():
    feed = "https://feeds.example.org/apk/x86_64/extra"
    by_index = parse(
        minimal(
            repositories={"extra": f"{feed}/packages.adb"},
            repository_keys=[APK_KEY, USIGN_KEY],
        )
    )
    by_directory = parse(
        minimal(repositories={"extra": feed}, repository_keys=[USIGN_KEY, APK_KEY])
    )
    assert by_index.repositories == {"extra": feed}  # not .../packages.adb twice
    assert by_index.repository_keys == (APK_KEY, USIGN_KEY)
    assert by_index.hash == by_directory.hash
    assert by_index.repositories_mode == "replace"  # as the reference server
    assert parse(minimal(repositories_mode="append")).repositories_mode == "append"


@pytest.mark.parametrize(
    "key",
    [
        APK_KEY.replace("PUBLIC KEY", "PRIVATE KEY"),
        APK_KEY.replace("M", "#", 1),
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0000000000000000000000000000000000000",
    ],
)
def test_a_key_that_is_neither_usign_nor_pem_is_400_naming_it(key):
    with pytest.raises(RequestError) as refused:
        parse(minimal(repository_keys=[USIGN_KEY, key]))
    assert status_of(refused.value) == 400
    assert "repository_keys" in refused.value.detail
    assert repr(key)[:20] in refused.value.detail


def test_apk_version_constraints_in_packages():
    request = parse(minimal(packages=["nftables=1.1.6-r1", "-ppp", "+htop"]))
    assert request.packages == ("nftables=1.1.6-r1", "-ppp", "htop")
    for bad in ["-nftables=1.1.6-r1", "nftables=", "nftables=1 2", "a=b=c;"]:
        with pytest.raises(RequestError, match="packages"):
            parse(minimal(packages=[bad]))
    with pytest.raises(RequestError, match="plain name"):
        parse(minimal(packages_versions={"nftables=1": "1.1.6-r1"}))
