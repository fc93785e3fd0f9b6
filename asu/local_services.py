"""Start and stop the local processes ``make demo``, ``make run`` and the tests need.

Each process gets its own process group so that stopping it also stops what it
started; nothing here touches a Redis it did not start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path


class ServiceError(RuntimeError):
    """A local service did not come up; the message says which and why."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], bool], what: str, proc=None, timeout=30.0) -> None:
    """Poll ``check`` until it is true; fail early when ``proc`` has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"{what} exited with status {proc.returncode}")
        time.sleep(0.05)
    raise ServiceError(f"{what} did not come up within {timeout:.0f} s")


def http_ok(url: str) -> bool:
    """Whether ``url`` answers with a 2xx status."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


def spawn(
    args: list[str],
    log_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen:
    """Start ``args`` in a new process group, output to ``log_path`` or inherited."""
    if log_path is None:
        return _popen(args, None, env, cwd)
    with open(log_path, "ab") as output:
        return _popen(args, output, env, cwd)


def _popen(args, output, env, cwd) -> subprocess.Popen:
    return subprocess.Popen(
        args,
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
        stdin=subprocess.DEVNULL,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process group of ``proc``, then SIGKILL what is left."""
    if proc.poll() is not None:
        _signal_group(proc, signal.SIGKILL)
        return
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
    _signal_group(proc, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def start_redis(
    data_dir: Path, port: int | None = None, persistent: bool = False
) -> tuple[subprocess.Popen, str]:
    """A private ``redis-server`` on loopback keeping its files in ``data_dir``.

    ``persistent``: an append-only file and snapshots in ``data_dir`` keep the data
    across restarts, and the log goes to our stdout (``make run``); otherwise
    nothing is written but ``redis.log`` (tests, ``make demo``).
    """
    binary = shutil.which("redis-server")
    if not binary:
        raise ServiceError("redis-server is not installed (Debian: redis-server)")
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    if persistent:
        keeping = ["--appendonly", "yes", "--save", "3600 1 300 100 60 10000"]
    else:
        keeping = ["--save", "", "--appendonly", "no"]
    proc = spawn(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(data_dir.resolve()),
            *keeping,
            "--daemonize",
            "no",
            "--logfile",
            "",
        ],
        log_path=None if persistent else data_dir / "redis.log",
    )
    wait_until(lambda: port_open(port), f"redis-server on port {port}", proc)
    return proc, f"redis://127.0.0.1:{port}/0"


def flask_command(*args: str) -> list[str]:
    """``flask --app asu <args>`` with this interpreter."""
    return [sys.executable, "-m", "flask", "--app", "asu", *args]


def gunicorn_command(bind: str, workers: int = 2, threads: int = 4) -> list[str]:
    """gunicorn serving the app on ``bind`` (``host:port``)."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        bind,
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "asu:create_app()",
    ]


class ProcessGroup:
    """The processes of one run (``make demo``, ``make run``), stopped together
    in reverse order of start; output to ``log_dir/<name>.log`` or our stdout."""

    def __init__(self, log_dir: Path | None = None) -> None:
        self.log_dir = log_dir
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.stopping = threading.Event()

    def start(
        self, name: str, args: list[str], env: Mapping[str, str] | None = None
    ) -> subprocess.Popen:
        log_path = self.log_dir / f"{name}.log" if self.log_dir else None
        return self.adopt(name, spawn(args, log_path=log_path, env=env))

    def adopt(self, name: str, proc: subprocess.Popen) -> subprocess.Popen:
        """Stop ``proc`` with the others (it was started elsewhere)."""
        self.processes.append((name, proc))
        return proc

    def exited(self) -> str | None:
        """The name of a process that has ended, if one has."""
        return next((name for name, p in self.processes if p.poll() is not None), None)

    def stop_all(self) -> None:
        for name, proc in reversed(self.processes):
            print(f"stopping {name} (pid {proc.pid})", flush=True)
            stop(proc)
        self.processes.clear()

    def run(self, bring_up: Callable[[], None], watch: bool = False) -> int:
        """Bring everything up, wait for SIGINT or SIGTERM, stop everything.

        ``watch``: also stop, with status 1, when one of the processes ends on
        its own, so that a supervisor (systemd, a container engine) restarts us.
        """
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        status = 0
        try:
            bring_up()
            while not self.stopping.wait(0.5):
                dead = self.exited() if watch else None
                if dead:
                    print(f"{dead} exited on its own; stopping", flush=True)
                    status = 1
                    break
        finally:
            self.stop_all()
        return status
