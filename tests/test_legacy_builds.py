"""The earlier API generations' build endpoints, on the same machinery as /api/v1."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
import redis
import requests
from clients import C7, UPGRADE_2019, post, wait_for
from rq import Queue

from asu.formats.usign import PublicKey, verify


def poll_2019(base: str, path: str, body: dict, timeout: float = 120):
    response = requests.post(f"{base}/api/{path}", json=body)
    deadline = time.monotonic() + timeout
    while response.status_code == 202:
        assert time.monotonic() < deadline
        assert response.headers["X-Imagebuilder-Status"] in (
            "queue",
            "initialize",
            "building",
        )
        time.sleep(0.3)
        request_hash = response.json()["request_hash"]
        response = requests.get(f"{base}/api/{path}/{request_hash}")
    return response


@pytest.fixture
def base(live_server, worker):
    return live_server


def test_2019_upgrade_request_and_v1_share_one_build(
    live_server, redis_url, app_config, tmp_path
):
    # No worker yet: both land on the same queued job.
    queued = requests.post(f"{live_server}/api/upgrade-request", json=UPGRADE_2019)
    assert queued.status_code == 202
    assert queued.headers["X-Imagebuilder-Status"] == "queue"
    assert queued.headers["X-Build-Queue-Position"] == "0"
    v1 = post(live_server, C7)
    assert v1.json()["request_hash"] == queued.json()["request_hash"]
    assert Queue("builds", connection=redis.Redis.from_url(redis_url)).count == 1


def test_2019_upgrade_request_end_to_end(base):
    response = poll_2019(base, "upgrade-request", UPGRADE_2019)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sysupgrade"].endswith("-squashfs-sysupgrade.bin")
    image = requests.get(f"{base}{body['files']}{body['sysupgrade']}").content
    assert hashlib.sha256(image).hexdigest() == body["image_hash"]
    log = requests.get(f"{base}{body['log']}")
    assert log.status_code == 200 and "make" in log.text

    described = requests.get(f"{base}/api/image/{body['image_hash']}").json()
    assert described["request_hash"] == body["request_hash"]
    assert described["profile"] == "tplink_archer-c7-v5"
    manifest = requests.get(f"{base}/api/manifest/{described['manifest_hash']}")
    assert manifest.json()["luci"] and manifest.json()["htop"]


@pytest.mark.parametrize(
    ("packages", "status", "word"),
    [
        (["dnsmasq-full"], 409, "conflict"),
        (["no-such-package"], 422, "no-such-package"),
    ],
)
def test_2019_build_failures_have_their_own_codes(base, packages, status, word):
    body = UPGRADE_2019 | {"packages": packages}
    response = poll_2019(base, "upgrade-request", body)
    assert response.status_code == status
    assert word in response.json()["error"]


def test_2019_image_too_big_is_413(base):
    # An 8 MB flash device cannot take LuCI, Python and tcpdump on top.
    body = UPGRADE_2019 | {
        "board": "tplink,tl-wdr4300-v1",
        "packages": ["luci", "python3-light", "tcpdump", "curl"],
    }
    response = poll_2019(base, "upgrade-request", body)
    assert response.status_code == 413
    assert "too big" in response.json()["error"]


def test_2019_no_sysupgrade_image_is_501(base):
    body = UPGRADE_2019 | {"board": "tplink,re355-v1", "packages": []}
    response = poll_2019(base, "upgrade-request", body)
    assert response.status_code == 501
    assert "no image" in response.json()["error"]


def test_2019_unknown_image_and_manifest_are_404(live_server):
    for path in (f"image/{'0' * 64}", f"manifest/{'0' * 64}"):
        response = requests.get(f"{live_server}/api/{path}")
        assert response.status_code == 404 and response.json()["error"]


def test_2019_build_request_defaults_limit_is_420(live_server):
    body = UPGRADE_2019 | {"defaults": "#" * (10 * 1024 + 1)}
    response = requests.post(f"{live_server}/api/build-request", json=body)
    assert response.status_code == 420
    assert "defaults" in response.json()["error"]


def test_2019_bad_request_is_400_with_error(live_server):
    response = requests.post(
        f"{live_server}/api/upgrade-request", json=UPGRADE_2019 | {"target": "x y"}
    )
    assert response.status_code == 400
    assert "target" in response.json()["error"]


def test_2019_defaults_with_a_lone_surrogate_is_refused(live_server):
    # JSON allows "\ud800"; it is no UTF-8 text, and no script.
    body = UPGRADE_2019 | {"defaults": "\ud800"}
    response = requests.post(f"{live_server}/api/build-request", json=body)
    assert response.status_code == 400
    assert "defaults" in response.json()["error"]


@pytest.mark.parametrize(
    "path", ["/api/upgrade-request", "/image-request", "/api/build"]
)
def test_a_profile_of_the_wrong_type_is_refused_not_replaced_by_board(
    live_server, path
):
    for profile in (False, 0, [], {}):
        body = UPGRADE_2019 | {"profile": profile}
        response = requests.post(f"{live_server}{path}", json=body)
        assert response.status_code == 400, profile
        assert "profile must be a string" in response.text


def test_2020_build_finds_the_target_of_a_board_name(live_server):
    body = {k: v for k, v in C7.items() if k != "target"}
    response = requests.post(f"{live_server}/api/build", json=body)
    assert response.status_code == 202, response.text
    v1 = post(live_server, C7)
    assert response.json()["request_hash"] == v1.json()["request_hash"]
    unknown = requests.post(
        f"{live_server}/api/build", json=body | {"profile": "acme,no-such-router"}
    )
    assert unknown.status_code == 400
    assert unknown.json()["detail"].startswith("target is required")


def test_2020_build_with_buildlog(base):
    body = {
        "version": "23.05.4",
        "target": "ath79/generic",
        "profile": "tplink_archer-c7-v5",
        "packages": ["luci", "htop"],
    }
    response = requests.post(f"{base}/api/build", json=body)
    assert response.status_code in (200, 202)
    assert response.json()["status"] in ("queued", "started", "finished")
    final = wait_for(base, C7)  # the same image through /api/v1
    assert final.json()["request_hash"] == response.json()["request_hash"]
    done = requests.get(f"{base}/api/build/{final.json()['request_hash']}")
    assert done.status_code == 200
    assert done.json()["buildlog"] is True
    assert done.json()["titles"]


def test_2017_image_request_reposted_until_ready(base, app_config):
    body = {
        "distro": "LEDE",
        "version": "23.05.4",
        "target": "ath79",
        "subtarget": "generic",
        "board": "tplink,archer-c7-v5",
        "packages": {"luci": "git-23.1", "htop": "3.2.2-1"},
    }
    statuses = []
    deadline = time.monotonic() + 120
    while True:
        response = requests.post(f"{base}/image-request", json=body)
        statuses.append(response.status_code)
        assert response.json()["status"] == response.status_code
        if response.status_code != 201 and response.status_code != 206:
            break
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert statuses[0] == 201 and statuses[-1] == 200
    ready = response.json()
    image = requests.get(ready["url"]).content
    assert len(image) == ready["size"]
    assert hashlib.sha256(image).hexdigest() == ready["sha256"]
    public_key = Path(app_config["cache_path"]) / "keys/server.key.pub"
    public = PublicKey.from_text(public_key.read_text())
    assert verify(image, requests.get(ready["url"] + ".sig").text, [public])


class TestOverload:
    @pytest.fixture
    def app_config(self, app_config):
        return app_config | {"max_pending_jobs": 0}

    def test_every_generation_says_503_with_retry_after(self, live_server):
        answers = [
            requests.post(f"{live_server}/api/upgrade-request", json=UPGRADE_2019),
            requests.post(f"{live_server}/image-request", json=UPGRADE_2019),
            requests.post(f"{live_server}/api/build", json=UPGRADE_2019),
        ]
        for response in answers:
            assert response.status_code == 503, response.text
            assert int(response.headers["Retry-After"]) > 0


def test_a_build_with_defaults_is_not_found_by_its_images(base):
    """Image checksums get posted publicly; the first-boot script (Wi-Fi keys,
    passwords) is only for whoever holds the request hash."""
    secret = "uci set wireless.default_radio0.key='hunter2-secret'\n"
    result = wait_for(base, C7 | {"defaults": secret}).json()
    assert result["status"] == 200
    assert result["request"]["defaults"] == secret  # the poster's own lookup
    for image in result["images"]:
        found = requests.get(f"{base}/api/image/{image['sha256']}")
        assert found.status_code == 404
        assert "hunter2" not in found.text
