"""The real OpenWrt 24.10.4 x86/64 ImageBuilder: bare ``make image`` beside the same
build through the server, cold and warm.

1. Bare, as a person does it: download the archive from the real slice served on
   loopback, unpack it, point ``repositories.conf`` at the slice, ``make image``
   (opkg downloads every package itself).
2. Through the server with an empty cache (cold): the worker downloads, checks
   and unpacks the ImageBuilder, serves it its feeds and packages, runs info,
   manifest and image in the sandbox, signs and stores.
3. Through the server again with another package set (warm): the ImageBuilder is
   unpacked and most packages are cached.

Each server build's stage times come from the job (``stage_seconds``); the total is
what a client sees from its POST to the 200.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import redis
import requests
from werkzeug.serving import make_server

from asu import create_app, job_store
from asu.config import environ_for
from asu.local.services import (
    start_redis,
    start_worker,
    stop,
)
from offline_upstream.server import UpstreamServer

REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "real-imagebuilder"
TARGET_DIR = "releases/24.10.4/targets/x86/64"
ARCHIVE = "openwrt-imagebuilder-24.10.4-x86-64.Linux-x86_64.tar.zst"
OPENWRT_24_10_KEY = "RWTTEMbygz6X95lKDAulctZy3aj15823THXfyrfXgwGbxZlXBd2brNcw"
PACKAGES = ["htop", "nano", "-kmod-drm-i915"]
WARM_PACKAGES = ["htop", "nano", "lsblk", "e2fsprogs", "-kmod-drm-i915"]
GENERIC = {"version": "24.10.4", "target": "x86/64", "profile": "generic"}
#: The stages the worker reports, as the table groups them.
STAGES = {
    "download": ("download_imagebuilder",),
    "unpack": ("unpack_imagebuilder",),
    "feeds": ("fetch_packages",),
    "info": ("make_info",),
    "manifest": ("make_manifest",),
    "image": ("make_image",),
    "sign": ("sign_images",),
    "store": ("store_images",),
}


def run() -> str:
    if not (REAL / "downloads").is_dir():
        return f"skipped: the real ImageBuilder slice is not at {REAL}"
    with tempfile.TemporaryDirectory(prefix="asu-bench-real-") as scratch:
        return _run(Path(scratch))


def _run(scratch: Path) -> str:
    feeds = UpstreamServer(REAL / "downloads").start()
    try:
        bare = _bare(scratch / "bare", feeds.url)
        cold, warm = _through_the_server(scratch / "server", feeds.url)
    finally:
        feeds.stop()
    return _table(bare, cold, warm)


def _bare(work: Path, feeds_url: str) -> dict[str, float]:
    work.mkdir()
    times = {}
    started = time.monotonic()
    archive = work / ARCHIVE
    archive.write_bytes(
        requests.get(f"{feeds_url}/{TARGET_DIR}/{ARCHIVE}", timeout=60).content
    )
    times["download"] = time.monotonic() - started
    started = time.monotonic()
    subprocess.run(["tar", "--zstd", "-xf", ARCHIVE], cwd=work, check=True)
    times["unpack"] = time.monotonic() - started
    (builder,) = [p for p in work.iterdir() if p.is_dir()]
    conf = builder / "repositories.conf"
    conf.write_text(
        conf.read_text().replace("https://downloads.openwrt.org", feeds_url)
    )
    started = time.monotonic()
    subprocess.run(
        ["make", "image", "PROFILE=generic", f"PACKAGES={' '.join(PACKAGES)}"],
        cwd=builder,
        check=True,
        capture_output=True,
    )
    times["image"] = time.monotonic() - started
    return times


def _through_the_server(work: Path, feeds_url: str) -> tuple[dict, dict]:
    work.mkdir()
    redis_proc, redis_url = start_redis(work / "redis")
    slice_key = (REAL / "key.pub").read_text().splitlines()[-1]
    config = {
        "redis_url": redis_url,
        "upstream_url": feeds_url,
        "upstream_keys": [slice_key, OPENWRT_24_10_KEY],
        "public_path": str(work / "public"),
        "cache_path": str(work / "cache"),
    }
    app = create_app(config)
    # Requests are checked against what the janitor loaded, as on a real server.
    loaded = app.test_cli_runner().invoke(args=["janitor", "init"])
    if loaded.exit_code != 0:
        raise RuntimeError(f"janitor init failed: {loaded.output}")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per poll
    http = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{http.server_port}"
    worker = _worker(config, work)
    try:
        cold = _timed_build(base, redis_url, GENERIC | {"packages": PACKAGES})
        warm = _timed_build(base, redis_url, GENERIC | {"packages": WARM_PACKAGES})
    finally:
        stop(worker)
        http.shutdown()
        stop(redis_proc)
    return cold, warm


def _worker(config: dict, cwd: Path):
    return start_worker(
        config["redis_url"], environ_for(config), cwd, cwd / "worker.log"
    )


def _timed_build(base: str, redis_url: str, body: dict) -> dict[str, float]:
    started = time.monotonic()
    answer = requests.post(f"{base}/api/v1/build", json=body, timeout=30)
    while answer.status_code == 202:
        time.sleep(0.1)
        request_hash = answer.json()["request_hash"]
        answer = requests.get(f"{base}/api/v1/build/{request_hash}", timeout=30)
    total = time.monotonic() - started
    if answer.status_code != 200:
        raise RuntimeError(f"the build failed: {json.dumps(answer.json())[:2000]}")
    connection = redis.Redis.from_url(redis_url)
    job = job_store.fetch(connection, answer.json()["request_hash"])
    seconds = job.meta.get("stage_seconds", {})
    times = {
        label: sum(seconds.get(stage, 0.0) for stage in stages)
        for label, stages in STAGES.items()
    }
    return times | {"total": total}


def _table(bare: dict, cold: dict, warm: dict) -> str:
    bare_total = sum(bare.values())
    columns = ["download", "unpack", "feeds", "info", "manifest", "image", "sign"]
    columns += ["store", "total"]
    rows = [
        ["bare: download, tar, make image", *_cells(bare | {"total": bare_total})],
        ["server, cold cache", *_cells(cold)],
        ["server, warm (other packages)", *_cells(warm)],
    ]
    lines = [_row(["real 24.10.4 x86/64 generic, s", *columns])]
    lines += [_row(row) for row in rows]
    lines += [
        "",
        f"warm / bare make image          {warm['total'] / bare['image']:.2f}"
        "   (goal <= 1.05)",
        f"cold / bare (download+unpack+image) {cold['total'] / bare_total:.2f}"
        "   (goal <= 1.15)",
    ]
    return "\n".join(lines)


def _cells(times: dict) -> list[str]:
    order = ["download", "unpack", "feeds", "info", "manifest", "image", "sign"]
    return [f"{times.get(key, 0.0):.1f}" for key in [*order, "store", "total"]]


def _row(cells: list[str]) -> str:
    return cells[0].ljust(34) + "".join(cell.rjust(9) for cell in cells[1:])
