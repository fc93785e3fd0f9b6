"""``janitor init`` of the real 23.05.4 sample, and validation before the queue.

1. The stand-in upstream with only 23.05.4 (75 targets), a private Redis; ``flask
   janitor init`` in a child process: wall time, the child's peak RSS, Redis
   memory used (``INFO memory`` before and after), upstream requests; then
   ``janitor update`` with nothing changed.
2. One real build by a worker process (``worker --burst``), then ``POST
   /api/v1/build`` through the app in this process, one thread: the rate of
   requests refused for an unknown package (422) beside the rate of the same
   request answered from the cached build (200).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from asu import create_app
from asu.config import environ_for
from asu.local.services import start_redis, stop
from offline_upstream import adb_writer
from offline_upstream.server import UpstreamServer
from offline_upstream.tree import generate, signing_key

VERSION = "23.05.4"
CACHED = {
    "version": VERSION,
    "target": "ath79/generic",
    "profile": "tplink,archer-c7-v5",
    "packages": ["luci", "htop"],
}
UNKNOWN = CACHED | {"packages": ["luci", "htop", "no-such-package"]}
#: Seconds each request kind is repeated for.
HAMMER_SECONDS = 3.0


def run() -> str:
    with tempfile.TemporaryDirectory(prefix="asu-bench-") as scratch:
        return _run(Path(scratch))


def _run(scratch: Path) -> str:
    tree = generate(scratch / "upstream", only=(VERSION,))
    server = UpstreamServer(tree).start()
    redis_proc, redis_url = start_redis(scratch / "redis")
    config = {
        "redis_url": redis_url,
        "upstream_url": server.url,
        "upstream_keys": signing_key().public_key.to_text().splitlines()[-1],
        "upstream_apk_keys": [adb_writer.signing_key().public_pem()],
        "public_path": str(scratch / "public"),
        "cache_path": str(scratch / "cache"),
    }
    connection = redis.Redis.from_url(redis_url)
    try:
        # the stand-in logs each 404 (index probes of targets without packages)
        with contextlib.redirect_stderr(io.StringIO()):
            rows = [
                _janitor_row("janitor init", "init", config, connection, server),
                _janitor_row(
                    "janitor update, unchanged", "update", config, connection, server
                ),
            ]
        _build_once(config, scratch)
        rates = _validation_rates(config)
    finally:
        server.stop()
        stop(redis_proc)
    return _table(rows, rates)


def _child(args: list[str], config: dict[str, str], cwd: Path) -> tuple[float, int]:
    """Run ``python -m flask --app asu <args>``: wall seconds and peak RSS in kB."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "asu", *args],
        env=environ_for(config),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed: {stderr.decode()[-2000:]}")
    return time.monotonic() - started, usage.ru_maxrss


def _janitor_row(label, command, config, connection, server) -> list[str]:
    before = connection.info("memory")["used_memory"]
    seen = len(server.request_log)
    wall, peak_kb = _child(
        ["janitor", command], config, Path(config["cache_path"]).parent
    )
    requests = server.request_log[seen:]
    answered_304 = sum(1 for _, _, status in requests if status == 304)
    used = connection.info("memory")["used_memory"] - before
    return [
        label,
        f"{wall:.2f}",
        f"{peak_kb / 1024:.0f}",
        f"{used / 2**20:+.1f}",
        f"{len(requests)} ({answered_304} x 304)",
    ]


def _build_once(config: dict[str, str], cwd: Path) -> None:
    """Queue the cached request and let a burst worker build it."""
    app = create_app(config)
    queued = app.test_client().post("/api/v1/build", json=CACHED)
    if queued.status_code != 202:
        raise RuntimeError(f"the build was not queued: {queued.json}")
    _child(["worker", "--burst"], config, cwd)
    done = app.test_client().post("/api/v1/build", json=CACHED)
    if done.status_code != 200:
        raise RuntimeError(f"the build did not finish: {done.json.get('detail')}")


def _validation_rates(config: dict[str, str]) -> dict[str, float]:
    client = create_app(config).test_client()
    return {
        "unknown package -> 422": _rate(
            lambda: client.post("/api/v1/build", json=UNKNOWN), 422
        ),
        "cached build -> 200": _rate(
            lambda: client.post("/api/v1/build", json=CACHED), 200
        ),
    }


def _rate(request: Callable, status: int) -> float:
    """Requests per second answered with ``status``, over HAMMER_SECONDS."""
    for _ in range(20):  # warm up
        request()
    count = 0
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < HAMMER_SECONDS:
        answer = request()
        if answer.status_code != status:
            raise RuntimeError(f"expected {status}, got {answer.status_code}")
        count += 1
    return count / elapsed


def _table(rows: list[list[str]], rates: dict[str, float]) -> str:
    header = [
        "janitor (23.05.4: 75 targets)",
        "wall s",
        "peak RSS MB",
        "Redis MB",
        "upstream requests",
    ]
    lines = [_format_row(header), *(_format_row(row) for row in rows), ""]
    lines.append(_format_row(["POST /api/v1/build (in-process, 1 thread)", "req/s"]))
    lines += [_format_row([name, f"{rate:.0f}"]) for name, rate in rates.items()]
    reject, cached = rates.values()
    lines.append(_format_row(["ratio 422 / 200", f"{reject / cached:.2f}"]))
    return "\n".join(lines)


def _format_row(cells: list[str]) -> str:
    widths = [42, 8, 12, 10, 20]
    return "".join(
        cell.ljust(width) if i == 0 else cell.rjust(width)
        for i, (cell, width) in enumerate(zip(cells, widths, strict=False))
    )
