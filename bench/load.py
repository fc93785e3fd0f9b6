"""200 clients against gunicorn: cached builds and polls, then the same while
workers are killed.

gunicorn (2 processes x 8 threads) serves the app on a free port, with a private
Redis, one RQ worker and the stand-in upstream (25.12.0 only). One build is made
first; then ``CLIENTS`` clients (threads in ``CLIENT_PROCESSES`` processes, so
that the client side is not one GIL) each loop over ``POST /api/v1/build`` of
that request and ``GET /api/v1/build/<hash>``, in three phases:

1. steady, for ``seconds``: nothing else happens;
2. for half as long: a third of the way in, the RQ worker is SIGKILLed and a new
   one started (cached answers need no worker; a new build is asked for at the
   end, to show the new worker works);
3. for half as long: a third of the way in, one gunicorn process is SIGKILLed
   and its master starts another; the requests it was serving fail.

Every answer but a 200 is an error, as is a connection that fails. Run alone
with ``python -m bench.load --seconds 10``.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import requests

from asu.config import environ_for
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
CLIENTS = 200
CLIENT_PROCESSES = 4
WEB_PROCESSES = 2
WEB_THREADS = 8
DEFAULT_SECONDS = 60.0


def run(seconds: float = DEFAULT_SECONDS) -> str:
    with tempfile.TemporaryDirectory(prefix="asu-bench-load-") as scratch:
        return _run(Path(scratch), seconds)


def _run(scratch: Path, seconds: float) -> str:
    upstream = UpstreamServer(generate(scratch / "upstream", only=(VERSION,))).start()
    redis_proc, redis_url = start_redis(scratch / "redis")
    env = environ_for(
        {
            "redis_url": redis_url,
            "upstream_url": upstream.url,
            "upstream_keys": signing_key().public_key.to_text().splitlines()[-1],
            "upstream_apk_keys": [adb_writer.signing_key().public_pem()],
            "public_path": str(scratch / "public"),
            "cache_path": str(scratch / "cache"),
        }
    )
    services = _Services(scratch, env)
    try:
        services.load_metadata()
        base = services.start()
        request_hash = _build(base, CACHED)
        steady = _phase(base, request_hash, seconds)
        rq_killed = _phase(base, request_hash, seconds / 2, services.kill_rq_worker)
        started = time.monotonic()
        _build(base, CACHED | {"packages": ["htop"]})
        rebuilt = time.monotonic() - started
        web_killed = _phase(base, request_hash, seconds / 2, services.kill_web)
    finally:
        services.stop()
        stop(redis_proc)
        upstream.stop()
    phases = [
        ("steady", steady),
        ("RQ worker SIGKILLed", rq_killed),
        ("a gunicorn process SIGKILLed", web_killed),
    ]
    return _table(phases, f"a new build by the new RQ worker took {rebuilt:.1f} s")


class _Services:
    """gunicorn and the RQ worker, and killing them."""

    def __init__(self, scratch: Path, env: dict[str, str]) -> None:
        self.logs = scratch / "logs"
        self.logs.mkdir()
        self.env = env
        self.cwd = scratch
        self.web = None
        self.worker = None

    def start(self) -> str:
        self.worker = self._start_worker()
        bind = f"127.0.0.1:{free_port()}"
        command = gunicorn_command(bind, WEB_PROCESSES, WEB_THREADS)
        self.web = spawn(command, self.logs / "gunicorn.log", self.env, self.cwd)
        base = f"http://{bind}"
        wait_until(lambda: http_ok(f"{base}/api/v1/health"), "gunicorn", self.web)
        return base

    def load_metadata(self) -> None:
        """``janitor init``: the server answers only for what it loaded."""
        log = self.logs / "janitor.log"
        janitor = spawn(flask_command("janitor", "init"), log, self.env, self.cwd)
        if janitor.wait() != 0:
            raise RuntimeError(f"janitor init failed, see {log}")

    def _start_worker(self):
        log = self.logs / "worker.log"
        return spawn(flask_command("worker"), log, self.env, self.cwd)

    def kill_rq_worker(self) -> None:
        """SIGKILL the RQ worker and start a new one."""
        os.kill(self.worker.pid, signal.SIGKILL)
        self.worker.wait()
        self.worker = self._start_worker()

    def kill_web(self) -> None:
        """SIGKILL one gunicorn process; gunicorn's master starts another."""
        os.kill(_children(self.web.pid)[0], signal.SIGKILL)

    def stop(self) -> None:
        for proc in (self.web, self.worker):
            if proc is not None:
                stop(proc)


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(child) for child in handle.read().split()]


def _build(base: str, body: dict, timeout: float = 120) -> str:
    """POST ``body`` and poll until it is built; its request hash."""
    answer = requests.post(f"{base}/api/v1/build", json=body, timeout=30).json()
    deadline = time.monotonic() + timeout
    while answer["status"] == 202 and time.monotonic() < deadline:
        time.sleep(0.2)
        url = f"{base}/api/v1/build/{answer['request_hash']}"
        answer = requests.get(url, timeout=30).json()
    if answer["status"] != 200:
        raise RuntimeError(f"the build failed: {answer.get('detail')}")
    return answer["request_hash"]


def _phase(base: str, request_hash: str, seconds: float, fault=None) -> dict:
    """Every client process's latencies and errors, merged; ``fault`` is called a
    third of the way in."""
    threads = CLIENTS // CLIENT_PROCESSES
    jobs = [(base, request_hash, threads, seconds)] * CLIENT_PROCESSES
    with ProcessPoolExecutor(CLIENT_PROCESSES) as pool:
        running = pool.map(_client_process, *zip(*jobs, strict=True))
        if fault is not None:
            time.sleep(seconds / 3)
            fault()
        parts = list(running)
    latencies = sorted(x for part in parts for x in part["latencies"])
    errors = sum((part["errors"] for part in parts), Counter())
    return {"latencies": latencies, "errors": errors, "seconds": seconds}


def _client_process(base: str, request_hash: str, threads: int, seconds: float):
    latencies: list[float] = []
    errors: Counter = Counter()
    deadline = time.monotonic() + seconds
    workers = [
        threading.Thread(
            target=_client, args=(base, request_hash, deadline, latencies, errors)
        )
        for _ in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return {"latencies": latencies, "errors": errors}


def _client(base, request_hash, deadline, latencies, errors) -> None:
    """One client: post the cached request, poll its hash, again and again."""
    poll = f"{base}/api/v1/build/{request_hash}"
    with requests.Session() as http:
        while time.monotonic() < deadline:
            for method, url, body in (
                ("POST", f"{base}/api/v1/build", CACHED),
                ("GET", poll, None),
            ):
                started = time.monotonic()
                try:
                    response = http.request(method, url, json=body, timeout=30)
                    status = response.status_code
                except requests.RequestException as error:
                    errors[type(error).__name__] += 1
                    continue
                latencies.append(time.monotonic() - started)
                if status != 200:
                    errors[f"HTTP {status}"] += 1


def _table(phases: list[tuple[str, dict]], note: str) -> str:
    header = ["phase", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "errors"]
    lines = [_row(header)]
    for name, phase in phases:
        latencies = phase["latencies"]
        errors = phase["errors"]
        p50, p99 = (statistics.quantiles(latencies, n=100)[i] for i in (49, 98))
        lines.append(
            _row(
                [
                    name,
                    str(len(latencies)),
                    f"{len(latencies) / phase['seconds']:.0f}",
                    f"{p50 * 1000:.1f}",
                    f"{p99 * 1000:.1f}",
                    f"{latencies[-1] * 1000:.0f}",
                    str(sum(errors.values())),
                ]
            )
        )
        if errors:
            lines.append("    " + ", ".join(f"{k}: {v}" for k, v in errors.items()))
    clients = f"{CLIENTS} clients in {CLIENT_PROCESSES} processes"
    web = f"gunicorn {WEB_PROCESSES} processes x {WEB_THREADS} threads"
    lines += ["", f"{clients}; {web}; cached POST + GET poll", note]
    return "\n".join(lines)


def _row(cells: list[str]) -> str:
    widths = [32, 10, 8, 9, 9, 9, 8]
    return "".join(
        cell.ljust(width) if i == 0 else cell.rjust(width)
        for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    print(run(parser.parse_args().seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
