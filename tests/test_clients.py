"""The clients people run, unmodified, against ``make demo``'s pieces: the
official firmware selector in headless Chromium, and LuCI's attended sysupgrade
view, ``auc`` and ``owut`` replayed request by request as their sources make
them (:mod:`replays`), on every release of the offline upstream. Each ends with
an image whose sha256 is the one the client was shown and whose usign
signature is by the server's key."""

from __future__ import annotations

import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests
from browser import saved
from client_replays import Device, Outcome, auc, luci, owut
from firmware_selector import (
    TAG,
    built_images,
    deploy,
    find_device,
    pick_version,
    request_build,
)

from asu.formats.usign import verify
from asu.metadata import devices
from offline_upstream.server import UpstreamServer

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


# -- LuCI, auc and owut --------------------------------------------------------------


@dataclass(frozen=True)
class Router:
    """A router as it runs before its upgrade (to the release it is listed under)."""

    target: str
    profile: str  # the profile id its image is built from
    board_name: str
    running: str  # release.version
    revision: str  # release.revision
    rootfs_type: str
    efi: bool = False


#: One device per release of the offline upstream, opkg and apk.
ROUTERS = {
    "23.05.4": Router(
        "ath79/generic",
        "tplink_archer-c7-v5",
        "tplink,archer-c7-v5",
        "23.05.3",
        "r23809-234f1a2efa",
        "squashfs",
    ),
    "24.10.4": Router(
        "x86/64",
        "generic",
        "qemu-standard-pc-q35-ich9-2009",
        "24.10.0",
        "r28427-6df0e3d02a",
        "ext4",
        efi=True,
    ),
    "25.12.0": Router(
        "mediatek/filogic",
        "openwrt_one",
        "openwrt,one",
        "25.12.0-rc1",
        "r32598-0f8d9a53bf",
        "squashfs",
    ),
    "SNAPSHOT": Router(
        "ramips/mt7621",
        "xiaomi_mi-router-4a-gigabit",
        "xiaomi,mi-router-4a-gigabit",
        "SNAPSHOT",
        "r32950-1a2b3c4d5e",
        "squashfs",
    ),
}
#: The client each replay is, and the package that is the client on the router.
CLIENTS = {"luci": "luci", "luci-repost": "luci", "auc": "auc", "owut": "owut"}
INIT_SCRIPT = "uci set system.@system[0].hostname='owut-built'\nuci commit system\n"
ROOTFS_SIZE_MB = 256


def router_of(demo, version: str, client: str) -> Device:
    """The router of ``version`` as its client sees it: the image's default
    packages, LuCI, htop and the client itself where the release has it, at the
    versions the new release has but htop (older: something to upgrade)."""
    router = ROUTERS[version]
    path = "snapshots" if version == "SNAPSHOT" else f"releases/{version}"
    base = f"{demo.upstream_url}/{path}/targets/{router.target}/profiles.json"
    profiles = requests.get(base, timeout=30).json()
    profile = profiles["profiles"][router.profile]
    names = devices.default_packages(
        profiles["default_packages"], profile.get("device_packages", [])
    )
    names += ["luci", "luci-app-attendedsysupgrade", "htop", CLIENTS[client]]
    json_v1 = f"{demo.url}/json/v1/{path}"
    arch = profiles["arch_packages"]
    feeds = requests.get(f"{json_v1}/packages/{arch}-index.json", timeout=30)
    index = requests.get(f"{json_v1}/targets/{router.target}/index.json", timeout=30)
    available = feeds.json() | index.json()["packages"]
    installed = {name: available[name] for name in names if name in available}
    installed["htop"] = "0.1-r1"
    return Device(
        board_name=router.board_name,
        target=router.target,
        version=router.running,
        revision=router.revision,
        rootfs_type=router.rootfs_type,
        efi=router.efi,
        installed=installed,
        top_level=installed,
    )


def _replay(client: str, base: str, device: Device) -> Outcome:
    if client == "auc":
        return auc.replay(base, device)
    if client == "owut":
        return owut.replay(base, device, INIT_SCRIPT, ROOTFS_SIZE_MB)
    return luci.replay(base, device, repost=client == "luci-repost")


@pytest.fixture(scope="module")
def replayed(demo) -> dict[tuple[str, str], Outcome | BaseException]:
    """Every client on every release at once, as routers would: the builds wait
    in one queue for the module's worker and the clients poll meanwhile."""
    with ThreadPoolExecutor(len(CLIENTS) * len(ROUTERS)) as pool:
        futures = {
            (client, version): pool.submit(
                _replay, client, demo.url, router_of(demo, version, client)
            )
            for version in ROUTERS
            for client in CLIENTS
        }
        return {key: f.exception() or f.result() for key, f in futures.items()}


def outcome_of(replayed, client: str, version: str) -> Outcome:
    found = replayed[(client, version)]
    if isinstance(found, BaseException):
        raise found
    return found


def asked(outcome: Outcome) -> list[str]:
    """What the client asked, ``METHOD path`` with the hash and query made
    generic, repeated polls folded into one."""
    shown = []
    for method, where, status in outcome.asked:
        where = re.sub(r"[0-9a-f]{64}", "<hash>", where)
        where = re.sub(r"\?\d{13}$", "?<ms>", where)
        line = f"{method} {where} {status}"
        if not shown or shown[-1] != line:
            shown.append(line)
    return shown


def assert_image(demo, outcome: Outcome) -> None:
    """The image the client downloaded is the one the answer names, signed by
    the key ``overview.json`` publishes."""
    result, image = outcome.result, outcome.image
    assert hashlib.sha256(outcome.data).hexdigest() == image["sha256"]
    assert len(outcome.data) == image["size"]
    assert_signed(demo, result["bin_dir"], image["name"], outcome.data)


@pytest.mark.parametrize("version", ROUTERS)
def test_luci(demo, replayed, version):
    main = outcome_of(replayed, "luci", version)
    check = (
        f"GET /api/v1/revision/SNAPSHOT/{ROUTERS[version].target}?<ms> 200"
        if version == "SNAPSHOT"
        else "GET /api/overview?<ms> 301"
    )
    assert asked(main)[0] == check
    polls = asked(main)[asked(main).index("POST /api/v1/build?<ms> 202") + 1 :]
    assert polls[:-1] == [
        "GET /api/v1/build/<hash>?<ms> 202",
        "GET /api/v1/build/<hash>?<ms> 200",
    ] or polls[:-1] == ["GET /api/v1/build/<hash>?<ms> 200"]
    assert re.fullmatch(r"GET /store/<hash>/\S+\?<ms> 200", polls[-1])
    assert main.result["version_number"] == version
    assert main.result["request"]["filesystem"] == ROUTERS[version].rootfs_type
    assert_image(demo, main)

    # A second router (or the view's rebuilder check) re-posts the same request
    # every 5 s: it shares the build and gets the same image.
    again = outcome_of(replayed, "luci-repost", version)
    shown = asked(again)
    posts = shown[shown.index("POST /api/v1/build?<ms> 202") : -1]
    assert posts == ["POST /api/v1/build?<ms> 202", "POST /api/v1/build?<ms> 200"]
    assert again.result["request_hash"] == main.result["request_hash"]
    assert again.image["sha256_unsigned"] == main.image["sha256_unsigned"]


@pytest.mark.parametrize("version", ROUTERS)
def test_auc(demo, replayed, version):
    outcome = outcome_of(replayed, "auc", version)
    shown = asked(outcome)
    assert shown[0] == "GET /json/v1/branches.json 200"
    board = "generic" if version == "24.10.4" else ROUTERS[version].profile
    assert any(line.endswith(f"/{board}.json 200") for line in shown)
    post = shown.index("POST /api/v1/build 202")
    assert shown[post - 2].endswith("/index.json 200")
    assert shown[post - 1].endswith("-index.json 200")
    assert re.fullmatch(r"GET /store/<hash>/\S+ 200", shown[-1])
    # packages_versions: the image carries exactly those versions.
    wanted = outcome.request["packages_versions"]
    assert wanted and "htop" in wanted
    assert {name: outcome.result["manifest"][name] for name in wanted} == wanted
    assert_image(demo, outcome)


@pytest.mark.parametrize("version", ROUTERS)
def test_owut(demo, replayed, version):
    outcome = outcome_of(replayed, "owut", version)
    shown = asked(outcome)
    assert shown[0] == "GET /json/v1/overview.json 200"
    assert shown[1].endswith(f"/targets/{ROUTERS[version].target}/profiles.json 200")
    assert shown[2].endswith("/ 404")  # the list of failed package builds
    assert "HEAD /api/v1/build/<hash> 202" in shown
    assert shown[-2] == "GET /api/v1/build/<hash> 200"  # after a HEAD 200
    echoed = outcome.result["request"]
    assert echoed["rootfs_size_mb"] == ROOTFS_SIZE_MB
    assert echoed["defaults"] == INIT_SCRIPT
    assert echoed["version_code"] == outcome.result["version_code"]
    assert_image(demo, outcome)


def test_each_client_is_counted_by_name(demo, replayed):
    clients = {
        entry["name"]
        for entry in requests.get(f"{demo.url}/api/v1/stats", timeout=30).json()[
            "clients"
        ]
    }
    assert {"auc/0.3.2", owut.AGENT} <= clients
    assert any(name.startswith("luci/") for name in clients)
