"""Run one ImageBuilder command inside a bubblewrap sandbox.

The sandbox sees the system read-only (``/usr``, the links to it and the few files
of ``/etc`` programs need), a private ``/tmp``, its own ``/proc`` and ``/dev``, and
nothing of the server: not the configuration, the keys, Redis, the store nor other
jobs. What it sees of the worker's files is a :class:`Layout`: the job's directory,
writable; the unpacked ImageBuilder shown copy-on-write inside it (an overlay whose
changes land in the job's scratch space, so no build copies or alters the shared
tree); directories shown read-only (the feeds the worker fetched). It has its own
user, PID, IPC and network namespaces, no
capabilities, no network at all (the worker fetches what a build needs), and limits
on time, memory, file size, the size of ``/tmp`` and captured output.

A worker running as root sets the sandbox up as root and runs the command as
``nobody`` with every capability dropped (``setpriv``); any other user runs all of
it unprivileged, the overlay mounted in a user namespace of its own. The overlay
exists only in the sandbox's mount namespace: nothing is left mounted on the host.
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

from asu.worker import cgroups

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
#: Seconds between two checks of what a command wrote and of its control group.
DISK_CHECK_SECONDS = 1.0
#: Mounts the overlay given as "$1" (options) on "$2", then runs the rest: the
#: paths arrive as arguments, never as shell text.
MOUNT_OVERLAY = 'mount -t overlay overlay -o "$1" "$2" && shift 2 && exec "$@"'
#: Characters that would end or escape an overlay mount option.
_OPTION_BREAKERS = set(",:\\\n")


@dataclass(frozen=True)
class Overlay:
    """A tree shown copy-on-write at ``JOB_DIR/name``: ``lower`` is never written,
    what the command changes lands in ``changes`` (``upper/`` and ``work/``)."""

    name: str
    lower: Path
    changes: Path

    @property
    def upper(self) -> Path:
        return self.changes / "upper"

    @property
    def work(self) -> Path:
        return self.changes / "work"

    def create(self) -> None:
        """Make the empty directories the overlay needs."""
        self.upper.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(exist_ok=True)

    def options(self) -> str:
        """The overlay's mount options."""
        paths = [p.resolve() for p in (self.lower, self.upper, self.work)]
        for path in paths:
            if _OPTION_BREAKERS & set(str(path)):
                raise RuntimeError(f"cannot overlay {path}: its name has , : or \\")
        lower, upper, work = paths
        return f"lowerdir={lower},upperdir={upper},workdir={work}"


@dataclass(frozen=True)
class Layout:
    """What the sandbox sees of the worker's files: ``job_dir`` writable at
    :data:`JOB_DIR`, an optional :class:`Overlay` inside it and ``read_only``
    directories (``{path in the sandbox: path on the host}``)."""

    job_dir: Path
    overlay: Overlay | None = None
    read_only: tuple[tuple[str, Path], ...] = ()

    def mount_point(self) -> Path:
        """Where the overlay is mounted below the job's directory."""
        assert self.overlay is not None
        return self.job_dir / self.overlay.name

    def prepare(self) -> None:
        """Create the directories the sandbox sees and give the writable ones to
        the sandbox user (a no-op for ownership unless root)."""
        for _, outside in self.read_only:
            outside.mkdir(parents=True, exist_ok=True)
        self.job_dir.mkdir(parents=True, exist_ok=True)
        writable = [self.job_dir]
        if self.overlay is not None:
            self.overlay.create()
            self.mount_point().mkdir(exist_ok=True)
            writable.append(self.overlay.changes)
        for path in writable:
            hand_over(path)


@dataclass(frozen=True)
class Limits:
    """What one sandboxed command may use.

    ``memory_bytes`` caps the whole command's memory (its ``/tmp`` and ``/dev/shm``
    included) and ``processes`` its processes where a control group can be made
    (:mod:`asu.worker.cgroups`); ``address_space_bytes`` caps each process's, always;
    ``disk_bytes`` caps what it writes to the job's directory and its copy of the
    ImageBuilder.
    """

    timeout: float = 600.0
    memory_bytes: int = 4 << 30
    address_space_bytes: int = 4 << 30
    processes: int = 512
    disk_bytes: int = 8 << 30
    file_bytes: int = 2 << 30
    output_bytes: int = 1 << 20
    tmp_bytes: int = 256 << 20
    shm_bytes: int = 64 << 20


@dataclass(frozen=True)
class Result:
    """How a sandboxed command ended and what it printed (cut to the limit)."""

    returncode: int
    stdout: str
    stderr: str
    #: the limit that ended it: ``time``, ``disk``, ``processes``, ``memory`` or ""
    limit: str = ""


def sandbox_command(
    command: Sequence[str], layout: Layout, cwd: str = "", limits: Limits = Limits()
) -> list[str]:
    """The argument list running ``command`` sandboxed in ``JOB_DIR/cwd``.

    The job's directory is mounted at :data:`JOB_DIR`, so paths passed to the
    command must be below that (or be one of the read-only directories).
    """
    return [*_overlay_mount(layout), *_bwrap(command, layout, cwd, limits)]


def _overlay_mount(layout: Layout) -> list[str]:
    """What mounts the overlay, in a mount namespace of its own, before ``bwrap``
    starts: nothing is left mounted on the host when the sandbox ends."""
    if layout.overlay is None:
        return []
    options = layout.overlay.options()
    if os.geteuid() == 0:
        namespaces = ["unshare", "--mount", "--propagation", "private"]
    else:
        namespaces = ["unshare", "--user", "--map-root-user", "--mount"]
        namespaces += ["--propagation", "private"]
        options = f"userxattr,{options}"
    mount_point = str(layout.mount_point().resolve())
    return [*namespaces, "--", "sh", "-c", MOUNT_OVERLAY, "mount", options, mount_point]


def _bwrap(
    command: Sequence[str], layout: Layout, cwd: str, limits: Limits
) -> list[str]:
    binary = shutil.which("bwrap")
    if not binary:
        raise RuntimeError("bubblewrap (bwrap) is not installed")
    args = [binary, "--die-with-parent", "--new-session"]
    args += ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
    args.append("--unshare-net")
    if os.geteuid() != 0:
        args += ["--unshare-user", "--cap-drop", "ALL"]
        if layout.overlay is not None:  # root of the overlay's user namespace
            user = str(UNPRIVILEGED)
            args += ["--uid", user, "--gid", user]
    args += ["--perms", "0755", "--dir", "/etc"]
    for path in SYSTEM_PATHS:
        if os.path.lexists(path):
            kind = "--symlink" if os.path.islink(path) else "--ro-bind"
            source = os.readlink(path) if kind == "--symlink" else path
            args += [kind, source, path]
    args += [
        "--proc", "/proc",
        "--dev", "/dev",
        "--perms", "1777", "--size", str(limits.shm_bytes), "--tmpfs", "/dev/shm",
        "--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp",
        "--bind", str(layout.job_dir.resolve()), JOB_DIR,
    ]  # fmt: skip
    for inside, outside in layout.read_only:
        args += ["--ro-bind", str(outside.resolve()), inside]
    # The root is a tmpfs of no set size that a user namespace's root owns: left
    # writable, a build could write outside its capped directories.
    args += ["--remount-ro", "/"]
    args += ["--chdir", f"{JOB_DIR}/{cwd}".rstrip("/"), "--clearenv"]
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


def hand_over(path: Path) -> None:
    """Give the sandbox user ``path`` and all below it (a no-op unless root)."""
    if os.geteuid() != 0:
        return
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(root, name), UNPRIVILEGED, UNPRIVILEGED)
    os.lchown(path, UNPRIVILEGED, UNPRIVILEGED)


def _limit(limits: Limits, group: cgroups.Group | None):
    """Set the limits in the child just before ``bwrap`` starts: rlimits, and its
    control group, which everything it starts inherits. Without one, the process
    count is capped for the sandbox's user as a whole (``RLIMIT_NPROC`` counts
    all of a user's processes): what it runs now, plus the build's allowance."""
    procs_files = group.procs_files() if group else []
    processes = 0 if group else _processes_of(_sandbox_uid()) + limits.processes

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limits.address_space_bytes,) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if processes:
            resource.setrlimit(resource.RLIMIT_NPROC, (processes,) * 2)
        for path in procs_files:
            with open(path, "w") as procs:
                procs.write("0")

    return apply


def _sandbox_uid() -> int:
    return UNPRIVILEGED if os.geteuid() == 0 else os.geteuid()


def _processes_of(uid: int) -> int:
    """How many processes ``uid`` runs now."""
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if os.stat(f"/proc/{pid}").st_uid == uid:
                count += 1
    return count


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
    layout: Layout,
    cwd: str = "",
    limits: Limits = Limits(),
) -> Result:
    """Run ``command`` sandboxed in ``JOB_DIR/cwd``; never raises for its failures.

    Output is read as it comes and only the last ``output_bytes`` of each stream
    are kept, so a command that prints without end costs no memory. A command that
    runs into a limit is stopped and its result names the limit.
    """
    stdout, stderr = _Tail(limits.output_bytes), _Tail(limits.output_bytes)
    group = cgroups.create(
        f"asu-sandbox-{os.getpid()}-{time.monotonic_ns()}",
        limits.processes,
        limits.memory_bytes,
    )
    watch = _Watch(limits, layout, group)
    try:
        with subprocess.Popen(
            sandbox_command(command, layout, cwd, limits),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=BASE_ENV,  # bwrap's own, readable in /proc/1/environ by the sandbox
            preexec_fn=_limit(limits, group),
            start_new_session=True,
        ) as proc:
            streams = {proc.stdout: stdout, proc.stderr: stderr}
            limit = _read_until(watch, streams) or _wait_until(proc, watch.deadline)
            if limit:
                _kill(proc)
        limit = limit or (group.hit() if group else "")
    finally:
        if group:
            group.remove()
    if limit:
        stopped = f"\nstopped: {watch.explain(limit)}"
        return Result(
            proc.returncode or -1, stdout.text(), stderr.text() + stopped, limit
        )
    return Result(proc.returncode, stdout.text(), stderr.text())


class _Watch:
    """The limits checked while a command runs: its time, and the size of what it
    wrote, measured every :data:`DISK_CHECK_SECONDS`."""

    def __init__(
        self, limits: Limits, layout: Layout, group: cgroups.Group | None
    ) -> None:
        self.limits = limits
        self.group = group
        self.deadline = time.monotonic() + limits.timeout
        self.paths = [layout.job_dir]
        if layout.overlay is not None:
            self.paths.append(layout.overlay.changes)
        self._next_check = 0.0

    def exceeded(self) -> str:
        """The limit the command is over (``time``, ``disk``, ``processes``,
        ``memory``), else ""."""
        now = time.monotonic()
        if now >= self.deadline:
            return "time"
        if now < self._next_check:
            return ""
        self._next_check = now + DISK_CHECK_SECONDS
        if sum(map(_disk_usage, self.paths)) > self.limits.disk_bytes:
            return "disk"
        return self.group.hit() if self.group else ""

    def wait(self) -> float:
        """How long to wait for output before checking again."""
        return max(0.0, min(self.deadline - time.monotonic(), DISK_CHECK_SECONDS))

    def explain(self, limit: str) -> str:
        limits = self.limits
        return {
            "time": f"it ran longer than {limits.timeout:.0f} s",
            "disk": f"it wrote more than {limits.disk_bytes >> 20} MiB",
            "processes": f"it started more than {limits.processes} processes",
            "memory": f"it used more than {limits.memory_bytes >> 20} MiB of memory",
        }[limit]


def _disk_usage(path: Path) -> int:
    """Bytes the files below ``path`` occupy (hard links counted once)."""
    total = 0
    seen = set()
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(root, name))
                if (info.st_dev, info.st_ino) not in seen:
                    seen.add((info.st_dev, info.st_ino))
                    total += info.st_blocks * 512
    return total


def _read_until(watch: _Watch, streams: dict) -> str:
    """Read every stream into its tail until all are closed (""), or a limit is
    exceeded (its name)."""
    with selectors.DefaultSelector() as selector:
        for stream in streams:
            selector.register(stream, selectors.EVENT_READ)
        while selector.get_map():
            exceeded = watch.exceeded()
            if exceeded:
                return exceeded
            for key, _ in selector.select(watch.wait()):
                chunk = os.read(key.fd, READ_CHUNK)
                if chunk:
                    streams[key.fileobj].add(chunk)
                else:
                    selector.unregister(key.fileobj)
    return ""


def _wait_until(proc: subprocess.Popen, deadline: float) -> str:
    """ "" once ``proc`` has ended, ``time`` when it outlives ``deadline``."""
    try:
        proc.wait(max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
        return "time"
    return ""


def _kill(proc: subprocess.Popen) -> None:
    """Kill ``bwrap``; its sandbox, a PID namespace, dies with it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
