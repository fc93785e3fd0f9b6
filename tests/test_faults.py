"""Faults the server survives without losing or mixing up anything: workers killed
in the middle of ``make image``, Redis going away and coming back, a disk filling
up during a build, two workers racing for the same ImageBuilder."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis
import requests
from clients import X86_APK, explain, post, wait_for
from conftest import restore
from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure
from upstreams import X86, FaultyUpstream, copy_tree, repack, replace_make_target

from asu import distributions, job_store, stats, upstream
from asu.config import environ_for, load_config
from asu.local.services import (
    free_port,
    start_redis,
    start_worker,
    stop,
    wait_until,
)
from asu.worker import imagebuilder
from offline_upstream.server import UpstreamServer

ARCHIVE = "openwrt-imagebuilder-25.12.0-x86-64.Linux-x86_64.tar.zst"
INTERRUPTED = "Error: the build was interrupted before it finished; request it again"


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(child) for child in handle.read().split()]


def second_worker(app_config: dict, directory: Path) -> subprocess.Popen:
    """Another RQ worker, once it listens (its log ``directory/worker2.log``)."""
    env = environ_for(app_config)
    log = directory / "worker2.log"
    return start_worker(app_config["redis_url"], env, directory, log)


def poll(base: str, request_hash: str) -> dict:
    return requests.get(f"{base}/api/v1/build/{request_hash}", timeout=10).json()


def poll_until(base: str, request_hash: str, done, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while not done(answer := poll(base, request_hash)):
        assert time.monotonic() < deadline, answer
        time.sleep(0.1)
    return answer


# -- a worker killed in the middle of make image ---------------------------------------


@pytest.fixture(scope="module")
def slow_upstream(upstream_tree, tmp_path_factory):
    """The offline upstream whose 25.12.0 x86/64 ``make image`` first sleeps."""
    root = copy_tree(upstream_tree, tmp_path_factory.mktemp("slow") / "downloads")
    repack(
        root / X86,
        lambda top: replace_make_target(top, "image", ["@sleep 3", "@$(IB) image"]),
    )
    server = UpstreamServer(root).start()
    yield server
    server.stop()


class TestKilledWorker:
    @pytest.fixture
    def app_config(self, app_config, slow_upstream):
        return app_config | {
            "upstream_url": slow_upstream.url,
            "worker_heartbeat_interval": 1,
        }

    def kill_during_make_image(self, base: str, worker, everything: bool) -> str:
        """Start a build, SIGKILL its work horse (and the worker) in ``make image``."""
        request_hash = post(base, X86_APK).json()["request_hash"]
        poll_until(base, request_hash, lambda a: a.get("stage") == "make_image")
        time.sleep(0.5)
        (horse,) = children(worker.pid)
        if everything:
            os.kill(worker.pid, signal.SIGKILL)
        os.kill(horse, signal.SIGKILL)
        return request_hash

    def assert_interrupted_then_rebuilt(self, base, request_hash, app_config):
        failed = poll_until(base, request_hash, lambda a: a["status"] != 202, 30)
        assert failed["status"] == 500
        assert failed["detail"] == INTERRUPTED
        connection = redis.Redis.from_url(app_config["redis_url"])
        job = Job.fetch(request_hash, connection=connection)
        assert job.get_status() == JobStatus.FAILED
        store = Path(app_config["public_path"]) / "store"
        assert not store.exists() or list(store.iterdir()) == []
        rebuilt = wait_for(base, X86_APK)
        assert rebuilt.status_code == 200
        assert rebuilt.json()["request_hash"] == request_hash
        assert [p.name for p in store.iterdir()] == [request_hash]

    def test_work_horse_killed(self, live_server, worker, app_config):
        request_hash = self.kill_during_make_image(live_server, worker, False)
        self.assert_interrupted_then_rebuilt(live_server, request_hash, app_config)

    def test_worker_killed_with_its_work_horse(
        self, live_server, worker, app_config, tmp_path
    ):
        request_hash = self.kill_during_make_image(live_server, worker, True)
        replacement = second_worker(app_config, tmp_path)
        try:
            self.assert_interrupted_then_rebuilt(live_server, request_hash, app_config)
        finally:
            stop(replacement)


class TestASupersededRun:
    """A worker back from being cut off still runs a build that meanwhile counted
    as interrupted and was asked for again: its run stops at its next step and
    writes nothing, not over the new job, its answer or its images."""

    @pytest.fixture
    def app_config(self, app_config, slow_upstream):
        # Heartbeats every second: the old run's worker beats while it lasts.
        return app_config | {
            "upstream_url": slow_upstream.url,
            "worker_heartbeat_interval": 1,
        }

    def test_the_old_run_leaves_everything_to_the_new_job(
        self, live_server, worker, app_config, tmp_path
    ):
        connection = redis.Redis.from_url(app_config["redis_url"])
        request_hash = post(live_server, X86_APK).json()["request_hash"]
        poll_until(live_server, request_hash, lambda a: a.get("stage") == "make_image")
        # What a client polling the build writes once its worker's heartbeats stop.
        running = job_store.fetch(connection, request_hash)
        executions = {e.composite_key for e in running.get_executions()}
        assert executions
        with connection.pipeline() as pipe:
            record_job_failure(running, "abandoned", pipe)
            pipe.execute()
        assert poll(live_server, request_hash)["detail"] == INTERRUPTED
        assert post(live_server, X86_APK).json()["detail"] == "queued"
        log = tmp_path / "worker.log"
        ends = ("this run stops", f"built {request_hash}")
        wait_until(lambda: any(e in log.read_text() for e in ends), "the old run's end")
        # The old run's record is gone: RQ's clean-up cannot take it for an
        # abandoned run and fail the new job.
        registry = running.started_job_registry.key

        def recorded() -> set[str]:
            return {m.decode() for m in connection.zrange(registry, 0, -1)}

        wait_until(lambda: not executions & recorded(), "the old run's record gone")
        # The worker is free again and the new job untouched: queued, or started
        # by the same worker since.
        job = job_store.fetch(connection, request_hash)
        assert job.get_status() in (JobStatus.QUEUED, JobStatus.STARTED)
        assert "detail" not in job.meta and "stage_seconds" not in job.meta
        store = Path(app_config["public_path"]) / "store"
        assert not (store / request_hash).exists()

        done = wait_for(live_server, X86_APK)
        assert done.status_code == 200, explain(done)
        for image in done.json()["images"]:
            url = f"{live_server}/store/{request_hash}/{image['name']}"
            data = requests.get(url, timeout=10).content
            assert hashlib.sha256(data).hexdigest() == image["sha256"]
        totals = stats.totals(connection)
        assert totals["builds:succeeded"] == 1, "the old run counted"
        assert "builds:failed" not in totals
        assert not list((Path(app_config["cache_path"]) / "jobs").iterdir())


def test_a_build_being_stored_is_never_served_and_left_ones_are_cleaned(
    live_server, app, app_config
):
    store = Path(app_config["public_path"]) / "store"
    left, moving = (store / f".{'a' * 64}.{n}" for n in ("x1y2", "z3w4"))
    for staged in (left, moving):
        staged.mkdir(parents=True)
        (staged / "sha256sums").write_text("half written\n")
    for path in (f"{left.name}/sha256sums", f"/{moving.name}/sha256sums"):
        response = requests.get(f"{live_server}/store/{path}", timeout=10)
        assert response.status_code == 404
    past = time.time() - 86400
    os.utime(left, (past, past))
    outcome = app.test_cli_runner().invoke(args=["cleanup"])
    assert f"removed {left}" in outcome.output
    assert not left.exists() and moving.is_dir()


# -- Redis going away ------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path, janitor_state):
    """A Redis of this test's own, on a port it can stop and start again, keeping
    its data on disk as ``make run``'s does; it holds the janitor's metadata."""
    port = free_port()
    data = tmp_path / "own-redis"
    proc, url = start_redis(data, port, persistent=True)
    restore(url, janitor_state)
    service = {"proc": proc, "url": url}

    def restart() -> None:
        service["proc"] = start_redis(data, port, persistent=True)[0]

    service["restart"] = restart
    yield service
    stop(service["proc"])


class TestRedisRestart:
    @pytest.fixture
    def app_config(self, app_config, own_redis):
        return app_config | {"redis_url": own_redis["url"]}

    def test_polling_clients_get_503_then_everything_works_again(
        self, live_server, worker, own_redis, caplog
    ):
        built = wait_for(live_server, X86_APK).json()
        # (when the request was sent, when its answer came, status, body)
        answers: list[tuple[float, float, int, dict]] = []
        running = threading.Event()
        running.set()

        def ask(http: requests.Session, method: str, url: str, **kwargs) -> None:
            sent = time.monotonic()
            response = http.request(method, url, timeout=10, **kwargs)
            received = time.monotonic()
            answers.append((sent, received, response.status_code, response.json()))

        def client() -> None:
            urls = [
                f"{live_server}/api/v1/build/{built['request_hash']}",
                f"{live_server}/api/v1/health",
            ]
            with requests.Session() as http:
                while running.is_set():
                    for url in urls:
                        ask(http, "GET", url)
                    ask(http, "POST", f"{live_server}/api/v1/build", json=X86_APK)
                    time.sleep(0.02)

        threads = [threading.Thread(target=client) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(0.5)
            stop(own_redis["proc"])
            stopped = time.monotonic()  # requests sent from now on find it down
            time.sleep(2)
            restarting = time.monotonic()
            own_redis["restart"]()
            rebuilt = wait_for(live_server, X86_APK, timeout=90)
        finally:
            running.clear()
            for thread in threads:
                thread.join()

        assert rebuilt.status_code == 200
        assert rebuilt.json()["request_hash"] == built["request_hash"]
        # Asked and answered while Redis was down (an answer may come later: the
        # Redis client retries a lost connection, so it can find Redis back).
        down = [
            status
            for sent, received, status, _ in answers
            if stopped < sent and received < restarting
        ]
        assert down and set(down) <= {503}
        assert all(body["status"] == status for *_, status, body in answers)
        assert all(body.get("detail") for *_, status, body in answers if status == 503)
        assert {status for *_, status, _ in answers} <= {200, 202, 404, 503}
        assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


# -- a full disk -----------------------------------------------------------------------


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file() and not path.is_symlink():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def tree_bytes(root: Path) -> int:
    """What a copy of ``root`` takes on a tmpfs: whole pages per file."""
    files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in files)


@pytest.fixture
def small_disk(tmp_path):
    """Mounts a 64 MiB tmpfs where asked and fills it to leave ``free`` bytes."""
    mounted = []

    def mount(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"a full disk needs a tmpfs, mount failed: {done.stderr}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path, leave: int) -> Path:
    """Write a file into ``path`` that leaves ``leave`` bytes of its disk free."""
    stats = os.statvfs(path)
    filler = path / ".filler"
    with open(filler, "wb") as handle:
        handle.truncate(0)
        remaining = stats.f_bavail * stats.f_frsize - leave
        while remaining > 0:
            chunk = min(remaining, 1 << 20)
            handle.write(b"\0" * chunk)
            remaining -= chunk
    return filler


class TestDiskFull:
    def test_while_the_image_is_made(self, live_server, worker, app_config, small_disk):
        config = load_config(overrides=app_config)
        wanted = imagebuilder.Source(
            distributions.get(config, "openwrt"), "25.12.0", "x86/64"
        )
        source = imagebuilder.prepare(config, upstream.session(), wanted)
        before = tree_digest(source)
        jobs = small_disk(config.cache_path / "jobs")
        filler = fill(jobs, leave=tree_bytes(source) + (256 << 10))

        response = wait_for(live_server, X86_APK)
        assert response.status_code == 500
        body = response.json()
        assert "ran out of disk space" in body["detail"]
        assert tree_digest(source) == before, "the cached ImageBuilder changed"
        assert list(jobs.iterdir()) == [filler], "the job's scratch was left"
        assert not config.store_path.exists() or not list(config.store_path.iterdir())

        filler.unlink()
        assert wait_for(live_server, X86_APK).status_code == 200

    def test_while_the_images_are_stored(
        self, live_server, worker, app_config, small_disk
    ):
        config = load_config(overrides=app_config)
        store = small_disk(config.store_path)
        kept = wait_for(live_server, X86_APK).json()
        kept_dir = store / kept["bin_dir"]
        before = tree_digest(kept_dir)
        fill(store, leave=256 << 10)

        response = wait_for(live_server, X86_APK | {"packages": ["htop"]})
        assert response.status_code == 500
        assert "ran out of disk space" in response.json()["detail"]
        assert sorted(p.name for p in store.iterdir()) == [".filler", kept["bin_dir"]]
        assert tree_digest(kept_dir) == before
        image = kept["images"][0]
        served = requests.get(f"{live_server}/store/{kept['bin_dir']}/{image['name']}")
        assert hashlib.sha256(served.content).hexdigest() == image["sha256"]


# -- two workers, one cold ImageBuilder ------------------------------------------------


class TestRace:
    @pytest.fixture
    def slow_download(self, upstream_tree):
        server = FaultyUpstream(upstream_tree, delay=1.0).start()
        yield server
        server.stop()

    @pytest.fixture
    def app_config(self, app_config, slow_download):
        return app_config | {"upstream_url": slow_download.url}

    def test_one_download_and_both_builds(
        self, live_server, worker, app_config, slow_download, tmp_path
    ):
        second = second_worker(app_config, tmp_path)
        try:
            connection = redis.Redis.from_url(app_config["redis_url"])
            bodies = [X86_APK | {"packages": [name]} for name in ("htop", "nano")]
            hashes = [post(live_server, body).json()["request_hash"] for body in bodies]
            results = [wait_for(live_server, body) for body in bodies]
            jobs = [Job.fetch(h, connection=connection) for h in hashes]
        finally:
            stop(second)
        assert [r.status_code for r in results] == [200, 200], [
            explain(r) for r in results
        ]
        assert jobs[0].worker_name != jobs[1].worker_name, "no race: one worker"
        fetched = [p for _, p, _ in slow_download.request_log if ARCHIVE in p]
        assert len(fetched) == 1
