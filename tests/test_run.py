"""``make run`` (``python -m asu.run``) as an operator runs it: it comes up healthy
with its workers and janitor, keeps Redis's data across a restart, and a SIGTERM
stops every process it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests

from asu.config import environ_for
from asu.local_services import free_port, port_open, wait_until
from asu.run import has_janitor

#: What ``make run`` prints once the web server answers.
SERVING = re.compile(r"asu is serving on (http://\S+)")


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Run:
    """One ``python -m asu.run`` in ``cwd``, its output in a file."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.log = cwd / f"run-{time.monotonic_ns()}.log"
        with open(self.log, "wb") as output:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "asu.run"],
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
        return re.search(r"redis: (redis://\S+)", self.output())[1]

    def terminate(self) -> set[int]:
        """SIGTERM; wait for the exit; return the processes it had started."""
        started = descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0, self.output()
        return started


@pytest.fixture
def run_env(app_config, tmp_path) -> dict[str, str]:
    config = {k: v for k, v in app_config.items() if k != "redis_url"}
    env = environ_for(config)
    env |= {"ASU_PORT": str(free_port()), "ASU_WORKERS": "2"}
    env |= {"ASU_JANITOR_INTERVAL": "3600", "WEB_CONCURRENCY": "1"}
    return env


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
    # The private Redis is persistent: its append-only data lives under var/.
    redis_url = run.redis_url()
    redis.Redis.from_url(redis_url).set("asu:test:kept", "yes")
    assert (tmp_path / "var/run/redis").is_dir()
    if has_janitor():
        assert "janitor update --interval 3600" in _commands(run.proc.pid)
    else:
        assert "no janitor command" in run.output()

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
        pid
        for pid in descendants(run.proc.pid)
        if "asu worker" in Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    ]
    processes = descendants(run.proc.pid)
    os.kill(workers[0], signal.SIGKILL)
    assert run.proc.wait(timeout=60) == 1
    assert "exited on its own" in run.output()
    time.sleep(0.2)
    assert not [pid for pid in processes if alive(pid)]


def _commands(pid: int) -> str:
    lines = []
    for child in descendants(pid):
        try:
            lines.append(Path(f"/proc/{child}/cmdline").read_text().replace("\0", " "))
        except OSError:
            continue
    return "\n".join(lines)
