"""The official OpenWrt 24.10.4 x86/64 ImageBuilder with its real feeds builds
through the server: real archive (absolute symlinks and all), real ``make``, real
opkg checking OpenWrt's real signatures, in the real sandbox, through a real worker.

The feeds are served on loopback like downloads.openwrt.org; the ImageBuilder names
them by ``https://downloads.openwrt.org``, which the worker maps to the configured
upstream. Real builds take half a minute on two cores, so the module shares one
server, one unpacked ImageBuilder and as few builds as cover the cases.
"""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from clients import download, explain, post, wait_for
from real_upstream import (
    DOWNLOADS,
    GENERIC,
    OPENWRT_24_10_KEY,
    UNAVAILABLE,
    require,
    slice_key,
)
from werkzeug.serving import make_server

from asu import create_app
from asu.config import environ_for
from asu.formats import usign
from asu.local.services import start_redis, start_worker, stop
from offline_upstream.server import UpstreamServer

DEFAULTS = "uci set system.@system[0].hostname='real'\nuci commit system\n"
BASIC = GENERIC | {
    "packages": ["htop", "nano", *(f"-{name}" for name in UNAVAILABLE)],
    "defaults": DEFAULTS,
}
FEED = "releases/24.10.4/packages/x86_64/packages"
BUILD_TIMEOUT = 600


@pytest.fixture(scope="module", autouse=True)
def _real_slice():
    require()


@pytest.fixture(scope="module")
def feed_server():
    """The real slice of downloads.openwrt.org on loopback."""
    server = UpstreamServer(DOWNLOADS).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def broken_feed_server(tmp_path_factory):
    """The same slice with the ``packages`` feed's signature corrupted."""
    root = tmp_path_factory.mktemp("broken") / "downloads"
    subprocess.run(["cp", "-al", str(DOWNLOADS), str(root)], check=True)
    path = root / FEED / "Packages.sig"
    signature = usign.Signature.from_text(path.read_text())
    damaged = bytes([signature.sig[0] ^ 0xFF]) + signature.sig[1:]
    path.unlink()  # a hard link: leave the real file untouched
    path.write_text(usign.Signature(signature.key_id, damaged).to_text())
    server = UpstreamServer(root).start()
    yield server
    server.stop()


class Server:
    """The whole service against the real slice: Redis, app, two workers."""

    def __init__(self, base: Path, feeds: UpstreamServer, broken: UpstreamServer):
        self.redis_proc, redis_url = start_redis(base / "redis")
        keys = [slice_key(), OPENWRT_24_10_KEY]
        self.config = {
            "redis_url": redis_url,
            "upstream_url": feeds.url,
            "upstream_keys": keys,
            "public_path": str(base / "public"),
            "cache_path": str(base / "cache"),
            "distributions": {
                "broken": {
                    "upstream_url": broken.url,
                    "upstream_keys": keys,
                    "public_url": "https://downloads.openwrt.org",
                }
            },
        }
        self.app = create_app(self.config)
        result = self.app.test_cli_runner().invoke(args=["janitor", "init"])
        assert result.exit_code == 0, result.output
        self.janitor_output = result.output
        self.http = make_server("127.0.0.1", 0, self.app, threaded=True)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_port}"
        self.workers = [self._worker(base, n) for n in range(2)]

    def _worker(self, base: Path, number: int):
        env = environ_for(self.config)
        log = base / f"worker{number}.log"
        return start_worker(self.config["redis_url"], env, base, log)

    @property
    def cache(self) -> Path:
        return Path(self.config["cache_path"])

    def stop(self) -> None:
        for proc in self.workers:
            stop(proc)
        self.http.shutdown()
        stop(self.redis_proc)


@pytest.fixture(scope="module")
def server(tmp_path_factory, feed_server, broken_feed_server):
    service = Server(tmp_path_factory.mktemp("real"), feed_server, broken_feed_server)
    yield service
    service.stop()


def build(server: Server, body: dict) -> dict:
    response = wait_for(server.url, body, timeout=BUILD_TIMEOUT)
    assert response.status_code == 200, explain(response)
    return response.json()


def fetched_packages(feeds: UpstreamServer) -> list[str]:
    return [path for _, path, status in feeds.request_log if path.endswith(".ipk")]


def server_public_key(server: Server) -> str:
    overview = requests.get(f"{server.url}/json/v1/overview.json", timeout=10).json()
    return overview["server"]["public_key"]


def rootfs_files(server: Server, result: dict, tmp_path: Path) -> Path:
    """The squashfs root filesystem of ``result``, unpacked."""
    (image,) = [
        i
        for i in result["images"]
        if i["type"] == "rootfs" and i["filesystem"] == "squashfs"
    ]
    squashfs = tmp_path / "rootfs.squashfs"
    squashfs.write_bytes(gzip.decompress(download(server.url, result, image)))
    root = tmp_path / "root"
    subprocess.run(
        ["unsquashfs", "-q", "-n", "-d", str(root), str(squashfs)],
        check=True,
        capture_output=True,
    )
    return root


def make_targets(result: dict) -> list[str]:
    """The targets of the ``make`` commands the build ran, in order."""
    return [command.split()[2] for command in result["build_cmd"]]


def test_a_real_build_has_what_was_asked(server, feed_server, tmp_path):
    result = build(server, BASIC)
    key = server_public_key(server)
    for image in result["images"]:
        data = download(server.url, result, image)
        assert hashlib.sha256(data).hexdigest() == image["sha256"]
        signature = requests.get(
            f"{server.url}/store/{result['bin_dir']}/{image['name']}.sig", timeout=10
        ).text
        usign.verify(data, signature, [key])
    root = rootfs_files(server, result, tmp_path)
    assert (root / "usr/bin/htop").is_file()
    assert (root / "usr/bin/nano").is_file()
    defaults = root / "etc/uci-defaults/99-asu-defaults"
    assert defaults.read_bytes() == DEFAULTS.encode()
    assert result["manifest"]["htop"].startswith("3.")
    # Names as the feeds' index.json has them: the ABI suffix stripped.
    assert "libgcc" in result["manifest"] and "libgcc1" not in result["manifest"]
    assert "kmod-drm-i915" not in result["manifest"]
    # Without packages_versions nothing is checked before building: the manifest
    # is the one make image wrote beside the images.
    assert make_targets(result) == ["info", "image"]
    # The sandbox read the feeds from the worker's copies, never from a network.
    output = result["stdout"] + result["stderr"]
    assert "Downloading file:/feeds/openwrt_packages/Packages.gz" in output
    assert "Downloading http" not in output
    assert "Signature check passed." in output
    fetched = fetched_packages(feed_server)
    assert any(
        path.endswith(f"/htop_{result['manifest']['htop']}_x86_64.ipk")
        for path in fetched
    )
    assert len(fetched) == len(set(fetched)), "a package was fetched twice"


def test_the_same_request_is_answered_from_the_cache(server, feed_server):
    before = len(feed_server.request_log)
    response = post(server.url, BASIC)
    assert response.status_code == 200
    assert response.json()["request_hash"] == build(server, BASIC)["request_hash"]
    assert len(feed_server.request_log) == before


def auc_request(server: Server) -> dict:
    """What auc posts: the wanted packages with the versions of the server's own
    ``index.json``, the complete set (``diff_packages``), and the filesystem the
    device runs (its board's ``rootfs_type``)."""
    base = f"{server.url}/json/v1/releases/24.10.4"
    target = requests.get(f"{base}/targets/x86/64/index.json", timeout=10).json()
    feeds = requests.get(f"{base}/packages/x86_64-index.json", timeout=10).json()
    versions = feeds | target["packages"]
    profile = requests.get(f"{base}/targets/x86/64/generic.json", timeout=10).json()
    wanted = [
        *profile["default_packages"],
        *profile["device_packages"],
        "e2fsprogs",
        "jsonfilter",
    ]
    chosen = {n: versions[n] for n in wanted if n in versions and n not in UNAVAILABLE}
    return GENERIC | {
        "packages_versions": chosen,
        "diff_packages": True,
        "filesystem": "squashfs",
    }


def test_two_workers_build_at_once_sharing_the_package_cache(server, feed_server):
    """One request with one more package, and an auc request, at the same time:
    both build, only new packages are fetched, the cache holds whole files."""
    before = set(fetched_packages(feed_server))
    # Removing what no index has is no error: opkg ignores it.
    more = BASIC | {
        "packages": [*BASIC["packages"], "lsblk", "-gone-upstream"],
        "filesystem": "ext4",
    }
    auc = auc_request(server)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda body: build(server, body), [more, auc]))
    fetched = fetched_packages(feed_server)
    assert len(fetched) == len(set(fetched)), "a package was fetched twice"
    new = set(fetched) - before
    assert any(path.endswith("/lsblk_2.40.2-r1_x86_64.ipk") for path in new)
    assert not any("/htop_" in path or "/nano_" in path for path in new)
    manifest = results[1]["manifest"]
    mismatched = {
        name: (version, manifest.get(name))
        for name, version in auc["packages_versions"].items()
        if manifest.get(name) != version
    }
    assert mismatched == {}
    # The versions were checked before building, by make manifest.
    assert make_targets(results[1]) == ["info", "manifest", "image"]
    for result, filesystem in zip(results, ("ext4", "squashfs"), strict=True):
        assert {image["filesystem"] for image in result["images"]} <= {filesystem, ""}
    cached = [p for p in (server.cache / "packages").rglob("*") if p.is_file()]
    assert cached and all(
        hashlib.sha256(p.read_bytes()).hexdigest() == p.name for p in cached
    ), "a cached package is not what its name says"


def test_an_unknown_package_is_refused_before_the_queue(server):
    response = post(server.url, GENERIC | {"packages": ["no-such-package"]})
    assert response.status_code == 422
    assert response.headers["X-Unknown-Package"] == "no-such-package"


def test_a_package_the_mirror_lacks_fails_naming_it(server):
    body = GENERIC | {"packages": ["curl", *(f"-{n}" for n in UNAVAILABLE)]}
    response = wait_for(server.url, body, timeout=BUILD_TIMEOUT)
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert detail.startswith("Error:") and "curl" in detail
    assert "404" in detail
    store = Path(server.config["public_path"]) / "store"
    assert not (store / response.json()["request_hash"]).exists()


def test_a_feed_with_a_bad_signature_is_skipped_not_the_target(server):
    body = BASIC | {"distro": "broken"}
    response = wait_for(server.url, body, timeout=BUILD_TIMEOUT)
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert "openwrt_packages" in detail and "signature" in detail
    store = Path(server.config["public_path"]) / "store"
    assert not (store / response.json()["request_hash"]).exists()
