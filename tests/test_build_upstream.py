"""What the worker does with what upstream serves: signatures checked, archives
checked and unpacked once, results kept for the configured time, the store safe."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import redis
import requests
from clients import X86_APK, poll_all, wait_for

from asu.formats.usign import SecretKey
from offline_upstream.server import UpstreamServer

LUCI_STATUSES = {
    "init",
    "download_imagebuilder",
    "unpack_imagebuilder",
    "calculate_packages_hash",
    "building_image",
}
TARGET = "releases/25.12.0/targets/x86/64"
ARCHIVE = "openwrt-imagebuilder-25.12.0-x86-64.Linux-x86_64.tar.zst"


@pytest.fixture(scope="module")
def tampered_upstream(upstream_tree, tmp_path_factory):
    """A copy of the offline upstream whose x86 25.12.0 ImageBuilder is corrupted
    while its signed sha256sums still names the original."""
    root = tmp_path_factory.mktemp("tampered") / "downloads"
    subprocess.run(["cp", "-al", str(upstream_tree), str(root)], check=True)
    archive = root / TARGET / ARCHIVE
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.unlink()  # a hard link: leave the original untouched
    archive.write_bytes(bytes(data))
    server = UpstreamServer(root).start()
    yield server
    server.stop()


@pytest.fixture
def base(live_server, worker):
    return live_server


class TestCorruptedArchive:
    @pytest.fixture
    def app_config(self, app_config, tampered_upstream):
        return app_config | {"upstream_url": tampered_upstream.url}

    def test_refused_with_a_clear_detail(self, base, app_config):
        response = wait_for(base, X86_APK)
        assert response.status_code == 500
        detail = response.json()["detail"]
        assert detail.startswith("Error:")
        assert "does not match upstream's sha256sums" in detail
        leftovers = list(shutil.os.walk(app_config["cache_path"]))
        unpacked = [d for d, _, files in leftovers if "Makefile" in files]
        assert unpacked == [], "a corrupted ImageBuilder was unpacked"


class TestUntrustedSignature:
    @pytest.fixture
    def app_config(self, app_config):
        stranger = SecretKey.from_seed(b"\x01" * 32).public_key.to_text()
        return app_config | {"upstream_keys": [stranger.splitlines()[-1]]}

    def test_refused_naming_the_key(self, base):
        response = wait_for(base, X86_APK)
        assert response.status_code == 500
        detail = response.json()["detail"]
        assert "signature check" in detail and "not trusted" in detail


def test_imagebuilder_is_downloaded_once(base, upstream):
    before = len(upstream.request_log)
    assert wait_for(base, X86_APK | {"packages": ["htop"]}).status_code == 200
    assert wait_for(base, X86_APK | {"packages": ["nano"]}).status_code == 200
    fetched = [path for _, path, _ in upstream.request_log[before:] if ARCHIVE in path]
    assert len(fetched) == 1


def test_results_are_kept_for_the_configured_time(base, redis_url, app_config):
    connection = redis.Redis.from_url(redis_url)
    plain = wait_for(base, X86_APK).json()
    scripted = wait_for(base, X86_APK | {"defaults": "echo hi"}).json()
    failed = wait_for(base, X86_APK | {"packages": ["dnsmasq-full"]}).json()
    week, hour = 7 * 86400, 3600
    assert week - 60 < connection.ttl(f"rq:job:{plain['request_hash']}") <= week
    assert 0 < connection.ttl(f"rq:job:{scripted['request_hash']}") <= hour
    assert 0 < connection.ttl(f"rq:job:{failed['request_hash']}") <= hour


def test_store_serves_only_files_inside_it(base, app_config):
    result = wait_for(base, X86_APK).json()
    image = result["images"][0]
    url = f"{base}/store/{result['bin_dir']}/{image['name']}"
    head = requests.head(url)
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) == image["size"]
    assert head.headers["Content-Type"] == "application/gzip"
    manifest = requests.get(f"{base}/store/{result['bin_dir']}/sha256sums?1700000")
    assert manifest.status_code == 200
    assert manifest.headers["Content-Type"].startswith("text/plain")
    store = Path(app_config["public_path"]) / "store" / result["bin_dir"]
    for name in ("page.html", "drawing.svg"):  # what a hostile build might write
        (store / name).write_text("<script>alert(1)</script>")
        active = requests.get(f"{base}/store/{result['bin_dir']}/{name}")
        assert active.headers["Content-Type"] == "application/octet-stream"
        assert active.headers["X-Content-Type-Options"] == "nosniff"
    for hostile in (
        "../config.yml",
        "%2e%2e/%2e%2e/etc/passwd",
        f"{result['bin_dir']}/../../../cache/keys/server.key",
        "/etc/passwd",
        result["bin_dir"],
    ):
        response = requests.get(f"{base}/store/{hostile}")
        assert response.status_code == 404, hostile


def test_progress_uses_only_the_statuses_luci_knows(base):
    answers = poll_all(base, X86_APK | {"packages": ["iperf3"]})
    assert answers[-1]["status"] == 200
    waiting = [a for a in answers if a["status"] == 202]
    assert waiting, "the build was never seen in progress"
    for answer in waiting:
        if answer["detail"] == "queued":
            assert isinstance(answer["queue_position"], int)
        else:
            assert answer["detail"] == "started"
            assert answer["imagebuilder_status"] in LUCI_STATUSES
            assert answer["stage"]
    assert any(a["detail"] == "started" for a in waiting)
