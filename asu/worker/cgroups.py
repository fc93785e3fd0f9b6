"""A control group per sandboxed command: caps on its processes and memory as a
whole, and afterwards which cap it hit.

Resource limits (``setrlimit``) cap one process (``RLIMIT_AS``) or count a user's
processes across the whole machine (``RLIMIT_NPROC``); a build needs caps on
itself. Where the machine lets the worker make control groups, every sandbox starts
inside a new one below the worker's own, with ``pids.max`` and a memory limit that
counts everything the build holds, its ``/tmp`` and ``/dev/shm`` included:

- cgroup v1 (the ``pids`` and ``memory`` hierarchies writable, as for root on most
  machines with them);
- cgroup v2 where the worker's group already hands ``pids`` and ``memory`` to its
  children (``cgroup.subtree_control``), as a delegated subtree does (systemd's
  ``Delegate=yes`` with the worker in a leaf group of its own).

Elsewhere :func:`create` gives None and the rlimits stay the only caps.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("pids", "memory")


@dataclass(frozen=True)
class Group:
    """One command's control group: a directory per hierarchy (v1) or one (v2)."""

    version: int
    directories: dict[str, Path]

    def procs_files(self) -> list[str]:
        """The ``cgroup.procs`` files a process writes ``0`` to, to enter."""
        unique = dict.fromkeys(self.directories.values())
        return [str(directory / "cgroup.procs") for directory in unique]

    def hit(self) -> str:
        """``processes`` or ``memory``: the cap the command ran into, else ""."""
        if _counter(self.directories["pids"] / "pids.events", "max"):
            return "processes"
        memory = self.directories["memory"]
        events = "memory.events" if self.version == 2 else "memory.oom_control"
        if _counter(memory / events, "oom_kill"):
            return "memory"
        return ""

    def remove(self) -> None:
        """Kill what is left in the group, then remove it."""
        for directory in dict.fromkeys(self.directories.values()):
            for _ in range(100):
                _kill_members(directory)
                try:
                    directory.rmdir()
                except FileNotFoundError:
                    break
                except OSError:  # members not reaped yet
                    time.sleep(0.02)
                else:
                    break


def create(name: str, processes: int, memory_bytes: int) -> Group | None:
    """A new group ``name`` below the worker's own with the two caps, or None
    where the machine lets the worker make none."""
    own = _own_groups()
    if "" in own:
        base = ROOT / own[""].lstrip("/")
        if not _v2_delegates(base):
            return None
        group = Group(2, dict.fromkeys(CONTROLLERS, base / name))
    elif own:
        paths = {c: ROOT / c / own[c].lstrip("/") / name for c in CONTROLLERS}
        group = Group(1, paths)
    else:
        return None
    try:
        for directory in dict.fromkeys(group.directories.values()):
            directory.mkdir()
        _write(group.directories["pids"] / "pids.max", str(processes))
        memory = group.directories["memory"]
        if group.version == 2:
            _write(memory / "memory.max", str(memory_bytes))
            _write(memory / "memory.swap.max", "0")
        else:
            _write(memory / "memory.limit_in_bytes", str(memory_bytes))
    except OSError:
        group.remove()
        return None
    return group


def _own_groups() -> dict[str, str]:
    """``{controller: path}`` of this process's v1 groups with both controllers
    mounted, or ``{"": path}`` on a pure v2 machine; empty when neither."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return {}
    groups = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            groups[controller] = path
    if all(c in groups and (ROOT / c / "tasks").is_file() for c in CONTROLLERS):
        return {c: groups[c] for c in CONTROLLERS}
    if "" in groups and (ROOT / "cgroup.controllers").is_file():
        return {"": groups[""]}
    return {}


def _v2_delegates(base: Path) -> bool:
    """Whether children of ``base`` get both controllers and the worker may
    create them."""
    try:
        enabled = (base / "cgroup.subtree_control").read_text().split()
    except OSError:
        return False
    return set(CONTROLLERS) <= set(enabled) and os.access(base, os.W_OK)


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _counter(path: Path, name: str) -> int:
    """The number after ``name`` in a flat keyed file (``max 3``), 0 if absent."""
    with contextlib.suppress(OSError, ValueError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name:
                return int(value)
    return 0


def _kill_members(directory: Path) -> None:
    with contextlib.suppress(OSError):
        for pid in (directory / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
