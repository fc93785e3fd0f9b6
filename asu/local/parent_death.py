"""Processes that die with their parent (Linux ``PR_SET_PDEATHSIG``).

A supervisor that is itself SIGKILLed (the OOM killer, a container engine at the
end of its stop timeout) cannot stop what it started; the kernel can, when each
child asked, before it ran anything, to be killed at its parent's death. The
kernel's "parent" is the thread that forked: fork from a thread that lives as
long as the child should (the main thread).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def prctl(option: int, value: int) -> None:
    """``prctl(option, value)``; OSError when the kernel refuses."""
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def die_with_parent(parent_pid: int) -> None:
    """Be SIGKILLed when the parent dies; exit now if ``parent_pid`` is gone already.

    Called in the child right after fork; ``parent_pid`` is the process that forked
    it, read before the fork (the parent may have died in between).
    """
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


def dies_with_this_process() -> Callable[[], None]:
    """A ``preexec_fn`` for :mod:`subprocess`: the child dies when we do."""
    parent_pid = os.getpid()
    return lambda: die_with_parent(parent_pid)
