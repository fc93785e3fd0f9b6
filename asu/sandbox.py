"""Run one ImageBuilder command inside a bubblewrap sandbox.

The sandbox sees the system read-only (``/usr``, the links to it and the few files
of ``/etc`` programs need), a private ``/tmp``, its own ``/proc`` and ``/dev``, and
nothing of the server: not the configuration, the keys, Redis, the store nor other
jobs. Only the job's scratch directory is writable. It has its own user, PID, IPC
and network namespaces (the network only when asked for), no capabilities, and
limits on time, memory, file size, the size of ``/tmp`` and captured output.
A worker running as root sets the sandbox up as root and runs the command as
``nobody`` with every capability dropped (``setpriv``); any other user runs all
of it unprivileged.
"""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: System paths bound read-only into every sandbox, when they exist.
SYSTEM_PATHS = (
    "/usr", "/bin", "/sbin", "/lib", "/lib64",
    "/etc/alternatives", "/etc/ld.so.cache", "/etc/passwd", "/etc/group",
    "/etc/nsswitch.conf", "/etc/hosts", "/etc/resolv.conf", "/etc/ssl",
    "/etc/ca-certificates", "/etc/localtime",
)  # fmt: skip
#: Where the job's directory appears inside the sandbox.
JOB_DIR = "/job"
#: The user a root worker runs sandboxes as (``nobody``).
UNPRIVILEGED = 65534
#: Environment the command gets; nothing else leaks in from the worker.
BASE_ENV = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8", "HOME": "/tmp"}
#: Bytes read from the command's pipes at a time.
READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """What one sandboxed command may use."""

    timeout: float = 600.0
    memory_bytes: int = 4 << 30
    file_bytes: int = 2 << 30
    output_bytes: int = 1 << 20
    tmp_bytes: int = 256 << 20


@dataclass(frozen=True)
class Result:
    """How a sandboxed command ended and what it printed (cut to the limit)."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False


def bwrap_command(
    command: Sequence[str],
    job_dir: Path,
    cwd: str = "",
    network: bool = False,
    tmp_bytes: int = Limits.tmp_bytes,
) -> list[str]:
    """The ``bwrap`` argument list running ``command`` in ``JOB_DIR/cwd``.

    The job's directory is mounted at :data:`JOB_DIR`, so paths passed to the
    command must be below that.
    """
    binary = shutil.which("bwrap")
    if not binary:
        raise RuntimeError("bubblewrap (bwrap) is not installed")
    args = [binary, "--die-with-parent", "--new-session"]
    args += ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
    if not network:
        args.append("--unshare-net")
    if os.geteuid() != 0:
        args += ["--unshare-user", "--cap-drop", "ALL"]
    args += ["--perms", "0755", "--dir", "/etc"]
    for path in SYSTEM_PATHS:
        if os.path.lexists(path):
            kind = "--symlink" if os.path.islink(path) else "--ro-bind"
            source = os.readlink(path) if kind == "--symlink" else path
            args += [kind, source, path]
    args += [
        "--proc", "/proc",
        "--dev", "/dev",
        "--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/tmp",
        "--bind", str(job_dir.resolve()), JOB_DIR,
        "--chdir", f"{JOB_DIR}/{cwd}".rstrip("/"),
        "--clearenv",
    ]  # fmt: skip
    for key, value in BASE_ENV.items():
        args += ["--setenv", key, value]
    return [*args, "--", *_drop_root(), *command]


def _drop_root() -> list[str]:
    """``setpriv`` to ``nobody`` without capabilities, when the worker is root."""
    if os.geteuid() != 0:
        return []
    user = str(UNPRIVILEGED)
    return [
        "setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups",
        "--inh-caps=-all", "--bounding-set=-all", "--",
    ]  # fmt: skip


def prepare_workdir(workdir: Path) -> None:
    """Give the sandbox user the job's scratch directory (a no-op unless root)."""
    if os.geteuid() != 0:
        return
    for root, dirs, files in os.walk(workdir):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(root, name), UNPRIVILEGED, UNPRIVILEGED)
    os.lchown(workdir, UNPRIVILEGED, UNPRIVILEGED)


def _limit(limits: Limits):
    """Set the limits in the child just before ``bwrap`` starts."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes,) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


class _Tail:
    """The last ``limit`` bytes a stream wrote, however much it wrote."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.data += chunk
        del self.data[: -self.limit]

    def text(self) -> str:
        text = self.data.decode("utf-8", "replace")
        cut = self.total - len(self.data)
        return f"[... {cut} bytes of output cut ...]\n{text}" if cut else text


def run(
    command: Sequence[str],
    job_dir: Path,
    cwd: str = "",
    limits: Limits = Limits(),
    network: bool = False,
) -> Result:
    """Run ``command`` sandboxed in ``JOB_DIR/cwd``; never raises for its failures.

    Output is read as it comes and only the last ``output_bytes`` of each stream
    are kept, so a command that prints without end costs no memory.
    """
    stdout, stderr = _Tail(limits.output_bytes), _Tail(limits.output_bytes)
    deadline = time.monotonic() + limits.timeout
    with subprocess.Popen(
        bwrap_command(command, job_dir, cwd, network, limits.tmp_bytes),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=BASE_ENV,  # bwrap's own, readable in /proc/1/environ by the sandbox
        preexec_fn=_limit(limits),
        start_new_session=True,
    ) as proc:
        streams = {proc.stdout: stdout, proc.stderr: stderr}
        finished = _read_until(deadline, streams) and _wait_until(proc, deadline)
        if not finished:
            _kill(proc)
    if not finished:
        stopped = f"\nstopped after {limits.timeout:.0f} s"
        return Result(-1, stdout.text(), stderr.text() + stopped, timed_out=True)
    return Result(proc.returncode, stdout.text(), stderr.text())


def _read_until(deadline: float, streams: dict) -> bool:
    """Read every stream into its tail until all are closed (True) or time is up."""
    with selectors.DefaultSelector() as selector:
        for stream in streams:
            selector.register(stream, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, READ_CHUNK)
                if chunk:
                    streams[key.fileobj].add(chunk)
                else:
                    selector.unregister(key.fileobj)
    return True


def _wait_until(proc: subprocess.Popen, deadline: float) -> bool:
    try:
        proc.wait(max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
        return False
    return True


def _kill(proc: subprocess.Popen) -> None:
    """Kill ``bwrap``; its sandbox, a PID namespace, dies with it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
