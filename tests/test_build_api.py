"""The build API end to end, as clients use it: HTTP to the app, a real RQ worker,
real ``make`` in the offline upstream's ImageBuilders inside the sandbox."""

from __future__ import annotations

import hashlib
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
import requests
from clients import C7, X86_APK, download, explain, post, wait_for
from rq import Queue

from asu import redis_keys
from asu.formats.usign import PublicKey, verify


def squashfs_listing(tmp_path, image: bytes, name: str) -> str:
    """``unsquashfs -l`` of the squashfs inside an image (found by its magic)."""
    offset = image.find(b"hsqs")
    assert offset >= 0, "no squashfs in the image"
    path = tmp_path / f"{name}.squashfs"
    path.write_bytes(image[offset:])
    return subprocess.run(
        ["unsquashfs", "-l", str(path)], capture_output=True, text=True, check=True
    ).stdout


def squashfs_file(tmp_path, image: bytes, inside: str) -> str:
    offset = image.find(b"hsqs")
    path = tmp_path / "image.squashfs"
    path.write_bytes(image[offset:])
    return subprocess.run(
        ["unsquashfs", "-cat", str(path), inside],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture
def base(live_server, worker):
    return live_server


def test_opkg_build_end_to_end(base, app_config, tmp_path):
    defaults = "uci set system.@system[0].hostname='c7'\nuci commit system\n"
    response = wait_for(base, C7 | {"defaults": defaults, "client": "luci/git-1"})
    assert response.status_code == 200, explain(response)
    result = response.json()
    assert result["status"] == 200 and result["detail"] == "done"
    assert result["id"] == "tplink_archer-c7-v5"
    assert result["version_number"] == "23.05.4"
    assert result["version_code"] == "r24012-d8dd03c46f"
    assert result["target"] == "ath79/generic"
    assert {"vendor": "TP-Link", "model": "Archer C7", "variant": "v5"} in result[
        "titles"
    ]
    assert "tplink,archer-c7-v5" in result["supported_devices"]
    assert response.headers["X-Imagebuilder-Status"] == "done"
    assert result["request"]["defaults"] == defaults
    assert result["request"]["profile"] == "tplink_archer-c7-v5"
    assert result["request"]["version_code"] is None  # not sent: null, not ""
    assert result["request"]["filesystem"] is None
    for method in (requests.get, requests.head):
        polled = method(f"{base}/api/v1/build/{result['request_hash']}?1700000")
        assert polled.status_code == 200
        assert polled.headers["X-Imagebuilder-Status"] == "done"
    assert result["manifest"]["luci"] and result["manifest"]["htop"]
    assert len(result["request_hash"]) == 64

    public = (Path(app_config["cache_path"]) / "keys/server.key.pub").read_text()
    sysupgrade = next(i for i in result["images"] if i["type"] == "sysupgrade")
    data = download(base, result, sysupgrade)
    assert hashlib.sha256(data).hexdigest() == sysupgrade["sha256"]
    assert len(data) == sysupgrade["size"]
    signature = requests.get(
        f"{base}/store/{result['bin_dir']}/{sysupgrade['name']}.sig"
    ).text
    assert verify(data, signature, [PublicKey.from_text(public)])

    listing = squashfs_listing(tmp_path, data, "sysupgrade")
    assert "usr/share/pkg/luci" in listing and "usr/share/pkg/htop" in listing
    inside = squashfs_file(tmp_path, data, "etc/uci-defaults/99-asu-defaults")
    assert inside == defaults


def test_cached_answer_needs_no_queue(base, redis_url):
    first = wait_for(base, C7)
    assert first.status_code == 200
    queue = Queue("builds", connection=redis.Redis.from_url(redis_url))
    again = post(base, C7 | {"packages": ["htop", "+luci", "htop"]})
    assert again.status_code == 200
    assert again.headers["X-Imagebuilder-Status"] == "done"
    assert again.json()["request_hash"] == first.json()["request_hash"]
    assert queue.count == 0


def test_apk_world_builds(base, upstream, tmp_path):
    response = wait_for(base, X86_APK | {"packages": ["htop"]})
    assert response.status_code == 200, explain(response)
    result = response.json()
    assert result["manifest"]["apk-mbedtls"]
    assert result["manifest"]["htop"]
    # Names as index.json and clients have them: apk prints libubox20260213.
    assert result["manifest"]["libubox"] and result["manifest"]["libgcc"]
    assert not [name for name in result["manifest"] if name.startswith("libubox2")]
    # The worker fetched the feeds' packages.adb and the packages for the sandbox.
    fetched = {path for _, path, _ in upstream.request_log}
    feed = "/releases/25.12.0/packages/x86_64/packages"
    assert f"{feed}/packages.adb" in fetched
    assert f"{feed}/htop-{result['manifest']['htop']}.apk" in fetched
    assert result["linux_kernel"]["version"] == "6.12.74"
    kinds = {(i["filesystem"], i["type"]) for i in result["images"]}
    assert ("squashfs", "combined") in kinds


def test_snapshot_builds_too(base):
    response = wait_for(base, X86_APK | {"version": "SNAPSHOT"})
    assert response.status_code == 200, explain(response)
    assert response.json()["version_number"] == "SNAPSHOT"


def test_diff_packages_removes_what_is_not_listed(base):
    plain = wait_for(base, C7).json()
    assert "ppp" in plain["manifest"]
    wanted = [p for p in plain["manifest"] if p not in ("ppp", "ppp-mod-pppoe")]
    response = wait_for(base, C7 | {"packages": wanted, "diff_packages": True})
    assert response.status_code == 200, explain(response)
    assert "ppp" not in response.json()["manifest"]
    assert "luci" in response.json()["manifest"]


def test_packages_versions_match_and_mismatch(base):
    built = wait_for(base, C7).json()
    htop = built["manifest"]["htop"]
    versions = {"htop": htop, "luci": built["manifest"]["luci"]}
    ok = wait_for(base, C7 | {"packages_versions": versions})
    assert ok.status_code == 200, explain(ok)
    wrong = wait_for(base, C7 | {"packages_versions": {"htop": "0.1-r1"}})
    assert wrong.status_code == 500
    assert "htop" in wrong.json()["detail"] and htop in wrong.json()["detail"]


def test_unknown_package_fails_naming_it(base, redis_url):
    """Refused before the queue where the janitor knows every feed (422); where it
    does not (a feed skipped), the build itself says so."""
    refused = post(base, C7 | {"packages": ["no-such-package"]})
    assert refused.status_code == 422
    connection = redis.Redis.from_url(redis_url)
    connection.srem(redis_keys.feed_arches("openwrt", C7["version"]), "mips_24kc")
    response = wait_for(base, C7 | {"packages": ["no-such-package"]})
    assert response.status_code == 500
    body = response.json()
    assert body["detail"].startswith("Error:")
    assert "no-such-package" in body["detail"]
    assert "Cannot install package no-such-package" in body["stderr"]


def test_conflicting_packages_fail_with_advice(base):
    response = wait_for(base, C7 | {"packages": ["dnsmasq-full"]})
    assert response.status_code == 500
    assert "conflict" in response.json()["detail"]


def test_too_big_for_the_device(base):
    response = wait_for(base, X86_APK | {"rootfs_size_mb": 1})
    assert response.status_code == 500
    assert "too big" in response.json()["detail"]


def test_fifty_identical_requests_share_one_build(base, tmp_path):
    body = C7 | {"packages": ["luci", "tcpdump"]}
    with ThreadPoolExecutor(50) as pool:
        first = list(pool.map(lambda _: post(base, body), range(50)))
    assert {r.status_code for r in first} <= {200, 202}
    hashes = {r.json()["request_hash"] for r in first}
    assert len(hashes) == 1
    (request_hash,) = hashes
    final = wait_for(base, body)
    with ThreadPoolExecutor(50) as pool:
        again = list(pool.map(lambda _: post(base, body), range(50)))
    assert {r.status_code for r in again} == {200}
    assert {r.json()["images"][0]["sha256"] for r in again} == {
        final.json()["images"][0]["sha256"]
    }
    log = (tmp_path / "worker.log").read_text().splitlines()
    starts = [line for line in log if f"({request_hash})" in line and "OK" not in line]
    assert len(starts) == 1, "the job ran more than once"


def test_queued_answer_and_headers(live_server):
    # No worker: the job waits in the queue.
    response = post(live_server, C7)
    assert response.status_code == 202
    body = response.json()
    assert body["detail"] == "queued"
    assert body["queue_position"] == 0
    assert response.headers["X-Queue-Position"] == "0"
    head = requests.head(f"{live_server}/api/v1/build/{body['request_hash']}?1700000")
    assert head.status_code == 202 and head.headers["X-Queue-Position"] == "0"
    assert head.headers["Access-Control-Allow-Origin"] == "*"


def test_queue_full_is_503_but_cached_answers_still_flow(live_server, app):
    app.config["ASU"] = type(app.config["ASU"])(
        **{**app.config["ASU"].__dict__, "max_pending_jobs": 1}
    )
    assert post(live_server, C7).status_code == 202
    full = post(live_server, X86_APK)
    assert full.status_code == 503
    assert full.headers["Retry-After"]
    assert full.json()["status"] == 503
    assert post(live_server, C7).status_code == 202  # in flight: still answered


@pytest.mark.parametrize(
    ("change", "status", "word"),
    [
        ({"version": "99.99.0"}, 400, "version"),
        ({"target": "ath79/nosuch"}, 400, "target"),
        ({"target": "ath79/genric"}, 400, "ath79/generic"),  # suggested
        ({"profile": "tplink_archer-c7-v9"}, 400, "tplink_archer-c7-v"),
        ({"packages": ["$(id)"]}, 400, "packages"),
        ({"rootfs_size_mb": -1}, 400, "rootfs_size_mb"),
    ],
)
def test_refused_requests(live_server, change, status, word):
    response = post(live_server, C7 | change)
    assert response.status_code == status
    assert response.json()["status"] == status
    assert word in response.json()["detail"]


def test_not_json_is_400(live_server):
    response = requests.post(
        f"{live_server}/api/v1/build",
        data="version=23.05.4",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


def test_unknown_hash_is_404(live_server):
    response = requests.get(f"{live_server}/api/v1/build/{'0' * 64}")
    assert response.status_code == 404
    assert response.json()["detail"]


def test_x86_accepts_any_profile_as_generic(live_server):
    response = post(live_server, X86_APK | {"profile": "qemu-standard-pc-q35"})
    assert response.status_code == 202


@pytest.mark.parametrize(
    "path", ["/api/v1/build", "/api/build", "/api/upgrade-request", "/image-request"]
)
def test_a_dropped_profile_is_400_in_every_generation(live_server, path):
    """LuCI and the firmware selector stop polling on a 400 and show its detail;
    the earlier generations list 400 for a bad request too."""
    response = requests.post(
        f"{live_server}{path}", json=C7 | {"profile": "tplink_archer-c7-v9"}
    )
    assert response.status_code == 400
    body = response.json()
    assert "profile" in (body.get("detail") or body.get("error"))
