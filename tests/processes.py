"""Processes as /proc shows them: what a process started, and whether it all ended."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from asu.local.parent_death import prctl

PR_SET_CHILD_SUBREAPER = 36


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, None when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has ended)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def catches(pid: int, sig: int) -> bool:
    """Whether ``pid`` has a handler of its own for ``sig`` (/proc's SigCgt)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    (mask,) = (line.split()[1] for line in status.splitlines() if line[:7] == "SigCgt:")
    return bool(int(mask, 16) & (1 << (sig - 1)))


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()
    except OSError:
        return ""


class Orphanage:
    """While open, this test process is a subreaper: whatever a process started
    below it leaves behind when it dies becomes our child instead of init's, so
    :meth:`left` finds every process started since the orphanage opened that
    still runs, however it was detached (new session, own process group)."""

    def __enter__(self) -> Orphanage:
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        self.before = descendants(os.getpid())
        return self

    def __exit__(self, *exc) -> None:
        prctl(PR_SET_CHILD_SUBREAPER, 0)
        self._reap()

    def left(self) -> list[str]:
        """The command lines of the processes started since that still run."""
        self._reap()
        new = descendants(os.getpid()) - self.before
        return [f"{pid} {command_line(pid)}" for pid in sorted(new) if alive(pid)]

    def all_gone(self, within: float) -> list[str]:
        """:meth:`left`, once empty or after ``within`` seconds."""
        deadline = time.monotonic() + within
        while (left := self.left()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return left

    def _reap(self) -> None:
        """Collect the exit of orphans that became our children and ended."""
        for pid in descendants(os.getpid()) - self.before:
            if not alive(pid):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
