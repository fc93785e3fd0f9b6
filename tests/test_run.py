"""``make run`` (``python -m asu.local.run``) as an operator runs it: it comes up
healthy with its workers and janitor, keeps Redis's data across a restart, and a SIGTERM
stops every process it started."""

from __future__ import annotations

import multiprocessing
import os
import random
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import redis
import requests
from clients import X86_APK, post, until_stage
from processes import Orphanage, alive, catches, command_line, descendants
from rq.job import JobStatus
from upstreams import offline_keys

from asu.config import environ_for
from asu.local.services import free_port, port_open, wait_until
from asu.queue.build_queue import fetch
from offline_upstream.server import UpstreamServer

#: What ``make run`` prints once the web server answers.
SERVING = re.compile(r"asu is serving on (http://\S+)")


class Run:
    """One ``python -m asu.local.run`` in ``cwd``, its output in a file."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.log = cwd / f"run-{time.monotonic_ns()}.log"
        with open(self.log, "wb") as output:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "asu.local.run"],
                cwd=cwd,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def url(self) -> str:
        wait_until(lambda: SERVING.search(self.output()), "make run", self.proc, 60)
        return SERVING.search(self.output())[1]

    def redis_url(self) -> str:
        """The private Redis's URL: printed without its password, which is kept
        beside its data."""
        printed = re.search(r"redis: (redis://\S+)", self.output())[1]
        password = (self.cwd / "var/run/redis/password").read_text().strip()
        return printed.replace(":***@", f":{password}@")

    def terminate(self) -> set[int]:
        """SIGTERM; wait for the exit; return the processes it had started."""
        started = descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0, self.output()
        return started


@pytest.fixture(scope="module")
def small_upstream(small_tree):
    server = UpstreamServer(small_tree).start()
    yield server
    server.stop()


@pytest.fixture
def run_env(small_upstream, tmp_path) -> dict[str, str]:
    config = offline_keys() | {
        "upstream_url": small_upstream.url,
        "public_path": tmp_path / "public",
        "cache_path": tmp_path / "cache",
        "port": free_port(),
        "workers": 2,
        "janitor_interval": 3600,
    }
    return environ_for(config) | {"WEB_CONCURRENCY": "1"}


@pytest.fixture
def started(tmp_path, run_env):
    runs: list[Run] = []

    def start() -> Run:
        runs.append(Run(tmp_path, run_env))
        return runs[-1]

    yield start
    for run in runs:
        if run.proc.poll() is None:
            for pid in descendants(run.proc.pid):
                os.kill(pid, signal.SIGKILL)
            run.proc.kill()


def test_run_serves_stops_cleanly_and_keeps_redis_data(started, tmp_path, run_env):
    run = started()
    url = run.url()
    assert url == f"http://127.0.0.1:{run_env['ASU_PORT']}"
    wait_until(
        lambda: requests.get(f"{url}/api/v1/health", timeout=5).json()["workers"] == 2,
        "two RQ workers",
        run.proc,
    )
    # The private Redis is persistent: its append-only data lives under var/;
    # it asks for a password, which is never printed.
    redis_url = run.redis_url()
    assert redis_url not in run.output()
    anonymous = "redis://" + redis_url.split("@", 1)[1]
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(anonymous).set("asu:test:kept", "no")
    redis.Redis.from_url(redis_url).set("asu:test:kept", "yes")
    assert (tmp_path / "var/run/redis").is_dir()
    assert "janitor update --interval 3600" in _commands(run.proc.pid)

    processes = run.terminate()
    assert len(processes) >= 4, "redis, two workers, gunicorn (and the janitor)"
    time.sleep(0.2)
    assert not [pid for pid in processes if alive(pid)]
    assert not port_open(int(run_env["ASU_PORT"]))

    again = started()
    again.url()
    assert redis.Redis.from_url(again.redis_url()).get("asu:test:kept") == b"yes"
    again.terminate()


def test_run_stops_everything_when_a_process_dies(started):
    run = started()
    run.url()
    workers = [
        pid for pid in descendants(run.proc.pid) if "asu worker" in command_line(pid)
    ]
    processes = descendants(run.proc.pid)
    os.kill(workers[0], signal.SIGKILL)
    assert run.proc.wait(timeout=60) == 1
    assert "exited on its own" in run.output()
    time.sleep(0.2)
    assert not [pid for pid in processes if alive(pid)]


def _commands(pid: int) -> str:
    return "\n".join(command_line(child) for child in descendants(pid))


# -- stopping at any moment ------------------------------------------------------------

#: The stop rounds are drawn from this seed: the same rounds on every run.
SEED = 17
ROUNDS = 50
#: Rounds by the moment the signal comes; most are cheap, a few during a build.
PHASES = {"start-up": 34, "idle": 12, "build": 4}
#: Seconds into start-up, idle time and a build at which the signal may come.
LIMITS = {"start-up": 2.0, "idle": 1.0, "build": 4.5}
#: What ``worker_stop_grace`` is in the rounds: some builds finish within it.
ROUND_GRACE = 2
#: Rounds run at once.
PARALLEL = 2


def stop_rounds() -> list[tuple[str, signal.Signals, float]]:
    """The seeded rounds: the phase, SIGTERM or SIGINT, and the delay."""
    rng = random.Random(SEED)
    phases = [phase for phase, count in PHASES.items() for _ in range(count)]
    rng.shuffle(phases)
    return [
        (phase, rng.choice((signal.SIGTERM, signal.SIGINT)), rng.uniform(0, limit))
        for phase in phases
        for limit in (LIMITS[phase],)
    ]


def reach(run: Run, phase: str, delay: float) -> None:
    """Bring ``run`` to ``phase`` and let ``delay`` seconds pass.

    Start-up counts from the moment the supervisor handles SIGTERM: before, in
    Python's own start-up, a signal ends it the default way, having started
    nothing (and SIGINT's KeyboardInterrupt may be swallowed by the interpreter).
    """
    wait_until(lambda: catches(run.proc.pid, signal.SIGTERM), "a handler", run.proc)
    if phase == "idle":
        run.url()
    if phase == "build":
        start_build(run)
    time.sleep(delay)


def start_build(run: Run) -> str:
    """Ask ``run`` for the x86/64 build once its janitor's first pass has loaded
    the version (a 404 before); the URL it serves on."""
    url = run.url()
    wait_until(
        lambda: post(url, X86_APK).status_code in (200, 202),
        "the build accepted",
        run.proc,
    )
    return url


def assert_stopped(run: Run, orphanage: Orphanage, sig: signal.Signals) -> None:
    """``run`` exits after ``sig`` has been sent, and leaves no process."""
    run.proc.send_signal(sig)
    try:
        status = run.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running 60 s after {sig.name}:\n{run.output()}")
    assert status == 0, run.output()
    assert not orphanage.all_gone(within=2), run.output()


@pytest.fixture
def round_env(run_env) -> dict[str, str]:
    return run_env | {"ASU_WORKERS": "1", "ASU_WORKER_STOP_GRACE": str(ROUND_GRACE)}


def test_a_signal_at_any_moment_stops_every_process(tmp_path, round_env):
    """SIGTERM or SIGINT in start-up, idle or during a build: every process ends.

    Rounds run ``PARALLEL`` at a time, each in a process of its own: every such
    process is the subreaper of its own rounds, so what a round leaves behind is
    found by that round alone."""
    rounds = [
        (tmp_path / f"round-{number}", round_env, *drawn)
        for number, drawn in enumerate(stop_rounds())
    ]
    fork = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(PARALLEL, mp_context=fork) as pool:
        failures = [f for f in pool.map(stop_round, *zip(*rounds, strict=True)) if f]
    assert not failures, "\n\n".join(failures)


def stop_round(
    cwd: Path, env: dict[str, str], phase: str, sig: signal.Signals, delay: float
) -> str:
    """One round in ``cwd``, with its own port, store and cache: what went wrong,
    or nothing."""
    cwd.mkdir()
    env = env | environ_for(
        {
            "port": free_port(),
            "public_path": cwd / "public",
            "cache_path": cwd / "cache",
        }
    )
    try:
        with Orphanage() as orphanage:
            run = Run(cwd, env)
            reach(run, phase, delay)
            assert_stopped(run, orphanage, sig)
    except BaseException as failure:  # pytest.fail's exception is no Exception
        return f"{cwd.name} ({phase}, {sig.name} after {delay:.2f} s): {failure}"
    return ""


@pytest.mark.parametrize("phase, delay", [("start-up", 0.8), ("idle", 0.2)])
def test_sigkilled_run_leaves_no_process(tmp_path, round_env, phase, delay):
    """Killed itself, ``make run`` takes every process it started with it."""
    with Orphanage() as orphanage:
        run = Run(tmp_path, round_env)
        reach(run, phase, delay)
        run.proc.kill()
        run.proc.wait()
        assert not orphanage.all_gone(within=5), run.output()


def test_sigkilled_run_leaves_no_build_running(tmp_path, round_env, redis_url):
    """Killed in the middle of a build, ``make run`` takes the build with it, also
    when Redis (which the build reports to) lives on elsewhere."""
    with Orphanage() as orphanage:
        run = Run(tmp_path, round_env | {"ASU_REDIS_URL": redis_url})
        request_hash = until_stage(start_build(run), X86_APK, "make_image")
        run.proc.kill()
        run.proc.wait()
        assert not orphanage.all_gone(within=5), run.output()
    assert not (tmp_path / "public/store" / request_hash).exists()


def test_stop_waits_for_the_running_build(tmp_path, round_env, redis_url):
    """A stop in the middle of a build lets it finish within the grace time."""
    env = round_env | {"ASU_REDIS_URL": redis_url, "ASU_WORKER_STOP_GRACE": "60"}
    run = Run(tmp_path, env)
    request_hash = until_stage(start_build(run), X86_APK, "make_image")
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(timeout=60) == 0
    assert "interrupting" not in run.output()
    job = fetch(redis.Redis.from_url(redis_url), request_hash)
    assert job.get_status() == JobStatus.FINISHED
    images = job.return_value()["images"]
    store = tmp_path / "public/store" / request_hash
    assert images and all((store / image["name"]).is_file() for image in images)


def test_stop_interrupts_a_build_past_its_grace(tmp_path, round_env, redis_url):
    """A build that outlasts the grace time is stopped, and a client asking for
    it is told it was interrupted."""
    env = round_env | {"ASU_REDIS_URL": redis_url, "ASU_WORKER_STOP_GRACE": "1"}
    run = Run(tmp_path, env | {"ASU_WORKER_HEARTBEAT_INTERVAL": "1"})
    request_hash = until_stage(start_build(run), X86_APK, "make_image")
    with Orphanage() as orphanage:
        run.proc.send_signal(signal.SIGTERM)
        assert run.proc.wait(timeout=60) == 0
        assert not orphanage.all_gone(within=2)
    assert "worker-1 still running after 1 s: interrupting it" in run.output()
    assert not (tmp_path / "public/store" / request_hash).exists()
    connection = redis.Redis.from_url(redis_url)
    wait_until(
        lambda: fetch(connection, request_hash).get_status() == JobStatus.FAILED,
        "the interrupted build failed",
    )


@pytest.mark.parametrize(
    "sig, delay", [(signal.SIGINT, 1.3), (signal.SIGTERM, 2.6), (signal.SIGKILL, 3.4)]
)
def test_demo_stops_every_process(tmp_path, small_tree, sig, delay):
    """``make demo`` shares the supervisor: a signal (or its own death) at a moment
    of its start-up stops everything it started."""
    (tmp_path / "var").mkdir()
    (tmp_path / "var/offline-upstream").symlink_to(small_tree)
    env = environ_for({"port": free_port()})
    with Orphanage() as orphanage, open(tmp_path / "demo.log", "wb") as log:
        demo = subprocess.Popen(
            [sys.executable, "-m", "offline_upstream.demo"],
            cwd=tmp_path,
            env=env,
            stdout=log,
        )
        time.sleep(delay)
        demo.send_signal(sig)
        demo.wait(timeout=60)
        output = (tmp_path / "demo.log").read_text()
        assert not orphanage.all_gone(within=5), output
