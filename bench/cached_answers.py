"""A cached answer beside a static file of the same size, with wrk.

The whole service as ``make demo`` runs it (gunicorn, 2 processes x 4 threads; a
private Redis; the janitor's metadata; one RQ worker), one build made, then wrk
(2 threads, 32 connections, ``SECONDS`` each) against, in one run:

- a static file of the same size as the cached answer, served by the same server
  (``/json/v1/...``);
- ``GET /api/v1/build/<hash>`` of the finished build;
- ``POST /api/v1/build`` of the same request;

each after a few seconds of the same load to warm up and then the median of three
runs, first straight at gunicorn, then behind the project's nginx site. Printed:
requests per second, the ratio to the static file, body size and p99 latency.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from asu.config import environ_for
from asu.local import nginx_site
from asu.local.services import (
    flask_command,
    free_port,
    gunicorn_command,
    http_ok,
    spawn,
    start_redis,
    stop,
    wait_until,
)
from offline_upstream import adb_writer
from offline_upstream.server import UpstreamServer
from offline_upstream.tree import generate, signing_key

VERSION = "25.12.0"
CACHED = {"version": VERSION, "target": "x86/64", "profile": "generic"}
SECONDS = 10
#: Seconds of the same load first, not counted: the first seconds against a fresh
#: gunicorn are slower whatever the route.
WARM_UP = 3
#: Runs of each measure, the median reported: how wrk's connections fall on
#: gunicorn's two processes is a toss at connection time, and one process with
#: most of them halves the rate.
RUNS = 3
THREADS = 2
CONNECTIONS = 32
STATIC = "json/v1/bench-static.json"


def run() -> str:
    with tempfile.TemporaryDirectory(prefix="asu-bench-cached-") as scratch:
        return _run(Path(scratch))


def _run(scratch: Path) -> str:
    upstream = UpstreamServer(generate(scratch / "upstream", only=(VERSION,))).start()
    redis_proc, redis_url = start_redis(scratch / "redis")
    public = scratch / "public"
    env = environ_for(
        {
            "redis_url": redis_url,
            "upstream_url": upstream.url,
            "upstream_keys": [signing_key().public_key.to_text().splitlines()[-1]],
            "upstream_apk_keys": [adb_writer.signing_key().public_pem()],
            "public_path": str(public),
            "cache_path": str(scratch / "cache"),
            "max_builds_per_client": 0,
        }
    )
    processes = []
    try:
        _flask(["janitor", "init"], env, scratch)
        worker = spawn(flask_command("worker"), scratch / "worker.log", env, scratch)
        processes.append(worker)
        bind = f"127.0.0.1:{free_port()}"
        web = spawn(gunicorn_command(bind), scratch / "web.log", env, scratch)
        processes.append(web)
        base = f"http://{bind}"
        wait_until(lambda: http_ok(f"{base}/api/v1/health"), "gunicorn", web)
        answer = _build(base)
        size = len(answer.content)
        (public / STATIC).write_text(_static_body(size))
        direct = _measure(base, answer.json()["request_hash"])
        proxy, nginx = nginx_site.start(bind, public, scratch / "nginx")
        processes.append(proxy)
        behind = _measure(nginx, answer.json()["request_hash"])
    finally:
        for proc in reversed(processes):
            stop(proc)
        stop(redis_proc)
        upstream.stop()
    return _table(size, [("gunicorn", direct), ("behind nginx", behind)])


def _flask(args: list[str], env: dict, cwd: Path) -> None:
    done = subprocess.run(flask_command(*args), env=env, cwd=cwd, capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)}: {done.stderr.decode()[-2000:]}")


def _build(base: str) -> requests.Response:
    answer = requests.post(f"{base}/api/v1/build", json=CACHED, timeout=30)
    deadline = time.monotonic() + 120
    while answer.status_code == 202 and time.monotonic() < deadline:
        time.sleep(0.2)
        request_hash = answer.json()["request_hash"]
        answer = requests.get(f"{base}/api/v1/build/{request_hash}", timeout=30)
    if answer.status_code != 200:
        raise RuntimeError(f"the build failed: {answer.text[:2000]}")
    return answer


def _static_body(size: int) -> str:
    """A JSON document of exactly ``size`` bytes."""
    filler = size - len('{"filler":""}')
    return json.dumps({"filler": "x" * filler}, separators=(",", ":"))


def _measure(base: str, request_hash: str) -> dict[str, tuple[float, float]]:
    """``{kind: (requests per second, p99 ms)}``."""
    return {
        "static file": _wrk(f"{base}/{STATIC}"),
        "cached GET": _wrk(f"{base}/api/v1/build/{request_hash}"),
        "cached POST": _wrk(f"{base}/api/v1/build", body=CACHED),
    }


_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_P99 = re.compile(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk(url: str, body: dict | None = None) -> tuple[float, float]:
    """The median of :data:`RUNS` runs (requests per second, p99 ms)."""
    _load(url, body, WARM_UP)
    runs = sorted(_load(url, body, SECONDS) for _ in range(RUNS))
    return runs[len(runs) // 2]


def _load(url: str, body: dict | None, seconds: int) -> tuple[float, float]:
    command = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if body is not None:
            script.write(
                'wrk.method = "POST"\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = {json.dumps(json.dumps(body))}\n"
            )
            script.flush()
            command += ["-s", script.name]
        output = subprocess.run(
            [*command, url], capture_output=True, text=True, check=True
        ).stdout
    if "Non-2xx" in output:
        raise RuntimeError(f"wrk saw answers other than 2xx from {url}:\n{output}")
    p99 = _P99.search(output)
    return float(_RATE.search(output)[1]), float(p99[1]) * _TO_MS[p99[2]]


def _table(size: int, runs: list[tuple[str, dict]]) -> str:
    lines = [
        f"wrk: {THREADS} threads, {CONNECTIONS} connections, {SECONDS} s each, "
        f"median of {RUNS}; bodies {size} bytes (the static file is made that size)",
        f"{'':14}{'':14}{'req/s':>9}{'x static':>10}{'p99 ms':>9}",
    ]
    for server, results in runs:
        static = results["static file"][0]
        for kind, (rate, p99) in results.items():
            lines.append(
                f"{server:14}{kind:14}{rate:9.0f}{rate / static:10.2f}{p99:9.1f}"
            )
    lines.append("goal: cached GET >= 0.8 x static, cached POST >= 0.5 x static")
    return "\n".join(lines)
