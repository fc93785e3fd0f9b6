"""Start and stop the local processes ``make demo``, ``make run`` and the tests need.

Each process gets its own process group so that stopping it also stops what it
started, and dies with the process that started it (:mod:`asu.local.parent_death`);
nothing here touches a Redis it did not start.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis
from rq import Worker

from asu.local.parent_death import dies_with_this_process

#: Seconds between two looks at something awaited.
POLL_SECONDS = 0.05
#: Seconds a process has to stop after SIGTERM before it is stopped harder.
STOP_GRACE = 10.0
#: Seconds from a second SIGTERM (an RQ worker's cold shutdown) to SIGKILL.
COLD_STOP = 5.0


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


def wait_until(
    check: Callable[[], bool],
    what: str,
    proc=None,
    timeout=30.0,
    between: Callable[[], None] = lambda: None,
) -> None:
    """Poll ``check`` until it is true; fail early when ``proc`` has exited.

    ``between`` is called after each failed check: it may raise to give up.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"{what} exited with status {proc.returncode}")
        between()
        time.sleep(POLL_SECONDS)
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
    """Start ``args`` in a new process group, output to ``log_path`` or inherited.

    The process is SIGKILLed when the thread calling this ends: call it from the
    main thread (or one that outlives the process).
    """
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
        preexec_fn=dies_with_this_process(),
    )


def stop(proc: subprocess.Popen, grace: float = STOP_GRACE) -> None:
    """Stop ``proc`` and its process group (see :func:`stop_together`)."""
    stop_together([proc], grace)


def stop_together(
    procs: Sequence[subprocess.Popen],
    grace: float = STOP_GRACE,
    overtime: Callable[[list[subprocess.Popen]], None] = lambda late: None,
) -> None:
    """Stop ``procs`` at once, each with its process group.

    SIGTERM; those still running after ``grace`` seconds are passed to
    ``overtime`` and get a second SIGTERM (an RQ worker's cold shutdown: it kills
    the build it waited for), then SIGKILL after :data:`COLD_STOP` seconds. Every
    group is SIGKILLed at the end, for anything left in it.
    """
    for proc in procs:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
    late = _still_running(procs, grace)
    if late:
        overtime(late)
        for proc in late:
            _signal_group(proc, signal.SIGTERM)
        _still_running(late, COLD_STOP)
    for proc in procs:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
        _signal_group(proc, signal.SIGKILL)


def _still_running(
    procs: Sequence[subprocess.Popen], seconds: float
) -> list[subprocess.Popen]:
    """Wait up to ``seconds`` for ``procs`` to exit; those that did not."""
    deadline = time.monotonic() + seconds
    while True:
        running = [proc for proc in procs if proc.poll() is None]
        if not running or time.monotonic() >= deadline:
            return running
        time.sleep(POLL_SECONDS)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def start_redis(
    data_dir: Path,
    port: int | None = None,
    persistent: bool = False,
    password: str = "",
) -> tuple[subprocess.Popen, str]:
    """A private ``redis-server`` on loopback keeping its files in ``data_dir``;
    the process and its URL.

    ``persistent``: an append-only file and snapshots in ``data_dir`` keep the data
    across restarts, and the log goes to our stdout (``make run``); otherwise
    nothing is written but ``redis.log`` (tests, ``make demo``). With a
    ``password`` (``make demo``, ``make run``), clients must give it: loopback is
    shared by everything on the machine.
    """
    port = port or free_port()
    proc = spawn(
        redis_command(data_dir, port, persistent, password=password),
        log_path=None if persistent else data_dir / "redis.log",
    )
    try:
        wait_until(lambda: port_open(port), f"redis-server on port {port}", proc)
    except ServiceError:
        stop(proc)
        raise
    secret = f":{password}@" if password else ""
    return proc, f"redis://{secret}127.0.0.1:{port}/0"


def redis_password(data_dir: Path) -> str:
    """The password of the private Redis keeping its data in ``data_dir``: made
    on its first start and kept there (readable by us alone) for the next."""
    path = data_dir / "password"
    if not path.is_file():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24))
    return path.read_text().strip()


def without_password(url: str) -> str:
    """``url`` fit to print: its password, if any, replaced by ``***``."""
    return re.sub(r"^(rediss?://[^:/@]*):[^@/]*@", r"\1:***@", url)


def redis_command(
    data_dir: Path,
    port: int,
    persistent: bool = False,
    bind: str = "127.0.0.1",
    password: str = "",
) -> list[str]:
    """``redis-server`` in the foreground on ``bind:port``, files in ``data_dir``
    (created). With a ``password``, clients must give it; it is written to
    ``data_dir/redis.conf`` (readable by us alone), not on the command line."""
    binary = shutil.which("redis-server")
    if not binary:
        raise ServiceError("redis-server is not installed (Debian: redis-server)")
    data_dir.mkdir(parents=True, exist_ok=True)
    if persistent:
        keeping = ["--appendonly", "yes", "--save", "3600 1 300 100 60 10000"]
    else:
        keeping = ["--save", "", "--appendonly", "no"]
    return [
        binary,
        *([_password_file(data_dir, password)] if password else []),
        "--bind",
        bind,
        "--port",
        str(port),
        "--dir",
        str(data_dir.resolve()),
        *keeping,
        "--daemonize",
        "no",
        "--logfile",
        "",
    ]


def _password_file(data_dir: Path, password: str) -> str:
    """A redis.conf in ``data_dir`` that sets ``requirepass``; its path."""
    path = data_dir.resolve() / "redis.conf"
    path.touch(mode=0o600)
    path.write_text(f"requirepass {password}\n")
    return str(path)


def flask_command(*args: str) -> list[str]:
    """``flask --app asu <args>`` with this interpreter."""
    return [sys.executable, "-m", "flask", "--app", "asu", *args]


def start_worker(
    redis_url: str,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path | None = None,
    command: list[str] | None = None,
) -> subprocess.Popen:
    """An RQ worker (``command``, by default ``flask --app asu worker``), returned
    once it listens on the queue: Redis knows one worker more than before."""
    connection = redis.Redis.from_url(redis_url)
    before = Worker.count(connection=connection)
    proc = spawn(command or flask_command("worker"), log_path, env, cwd)
    try:
        wait_until(
            lambda: Worker.count(connection=connection) > before, "RQ worker", proc
        )
    except BaseException:
        stop(proc)
        raise
    return proc


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


class Stopping(Exception):
    """SIGINT or SIGTERM came while starting up: stop instead."""


@dataclass
class _Stage:
    """Processes started together and stopped together, with one grace time."""

    children: list[tuple[str, subprocess.Popen]]
    grace: float


class ProcessGroup:
    """The processes of one run (``make demo``, ``make run``), stopped on SIGINT
    or SIGTERM in reverse order of start; output to ``log_dir/<name>.log`` or
    our stdout.

    The signal handler only notes the signal. Start-up looks at that note between
    its steps (:meth:`checkpoint`, :meth:`wait_until`, :meth:`sleep`) and gives
    up with :class:`Stopping`; then everything started so far is stopped.
    """

    def __init__(self, log_dir: Path | None = None) -> None:
        self.log_dir = log_dir
        self.stages: list[_Stage] = []
        #: The last SIGINT or SIGTERM received, 0 before; set by the handler only.
        self.signalled = 0

    def _note_signal(self, signum: int, frame) -> None:
        self.signalled = signum

    @property
    def stopping(self) -> bool:
        """Whether a stop was asked for."""
        return self.signalled != 0

    def checkpoint(self) -> None:
        """Raise :class:`Stopping` when a stop was asked for."""
        if self.signalled:
            raise Stopping(signal.Signals(self.signalled).name)

    def sleep(self, seconds: float) -> None:
        """Sleep, or raise :class:`Stopping` as soon as a stop is asked for."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.checkpoint()
            time.sleep(min(left, POLL_SECONDS))
        self.checkpoint()

    def wait_until(
        self,
        check: Callable[[], bool],
        what: str,
        proc: subprocess.Popen | None = None,
        timeout: float = 30.0,
    ) -> None:
        """:func:`wait_until`, giving up with :class:`Stopping`."""
        wait_until(check, what, proc, timeout, between=self.checkpoint)

    def start(
        self,
        name: str,
        args: list[str],
        env: Mapping[str, str] | None = None,
        grace: float = STOP_GRACE,
    ) -> subprocess.Popen:
        """Start one process, given ``grace`` seconds to stop."""
        (proc,) = self.start_together({name: args}, env, grace)
        return proc

    def start_together(
        self,
        commands: Mapping[str, list[str]],
        env: Mapping[str, str] | None = None,
        grace: float = STOP_GRACE,
    ) -> list[subprocess.Popen]:
        """Start processes that are stopped together (and wait together for
        their ``grace``), such as a machine's workers."""
        self.checkpoint()
        stage = _Stage([], grace)
        self.stages.append(stage)
        for name, args in commands.items():
            log_path = self.log_dir / f"{name}.log" if self.log_dir else None
            stage.children.append((name, spawn(args, log_path=log_path, env=env)))
        return [proc for _, proc in stage.children]

    def adopt(
        self, name: str, proc: subprocess.Popen, grace: float = STOP_GRACE
    ) -> subprocess.Popen:
        """Stop ``proc`` with the others (it was started elsewhere)."""
        self.stages.append(_Stage([(name, proc)], grace))
        return proc

    def run_to_end(
        self, name: str, args: list[str], env: Mapping[str, str] | None = None
    ) -> str:
        """Run one command to its end, stoppable like the rest; its output (kept
        in ``log_dir``). Raises :class:`ServiceError` with the output when it fails.
        """
        if self.log_dir is None:
            raise ValueError("run_to_end keeps the output in log_dir: set one")
        log = self.log_dir / f"{name}.log"
        log.unlink(missing_ok=True)
        proc = self.start(name, args, env)
        self.wait_until(lambda: proc.poll() is not None, name, timeout=24 * 3600)
        self.stages.pop()
        output = log.read_text(errors="replace")
        if proc.returncode != 0:
            status = proc.returncode
            raise ServiceError(f"{name} failed with status {status}:\n{output}")
        return output

    def exited(self) -> str | None:
        """The name of a process that has ended, if one has."""
        children = (child for stage in self.stages for child in stage.children)
        return next((name for name, proc in children if proc.poll() is not None), None)

    def stop_all(self) -> None:
        """Stop every stage, the last started first."""
        while self.stages:
            self._stop(self.stages.pop())

    def _stop(self, stage: _Stage) -> None:
        names = {proc.pid: name for name, proc in stage.children}
        for pid, name in names.items():
            print(f"stopping {name} (pid {pid})", flush=True)

        def overtime(late: list[subprocess.Popen]) -> None:
            for proc in late:
                print(
                    f"{names[proc.pid]} still running after {stage.grace:.0f} s: "
                    "interrupting it",
                    flush=True,
                )

        stop_together([proc for _, proc in stage.children], stage.grace, overtime)

    def run(self, bring_up: Callable[[], None], watch: bool = False) -> int:
        """Bring everything up, wait for SIGINT or SIGTERM, stop everything.

        ``watch``: also stop, with status 1, when one of the processes ends on
        its own, so that a supervisor (systemd, a container engine) restarts us.
        """
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._note_signal)
        status = 0
        try:
            bring_up()
            while not self.stopping:
                dead = self.exited() if watch else None
                if dead:
                    print(f"{dead} exited on its own; stopping", flush=True)
                    status = 1
                    break
                time.sleep(POLL_SECONDS * 4)
        except Stopping:
            pass
        finally:
            self.stop_all()
        return status
