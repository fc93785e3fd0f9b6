"""Machines as Linux network namespaces, for the tests and benchmarks of the
several-machine shape on one machine.

:class:`Network` makes a server namespace holding a bridge at
:data:`SERVER_ADDRESS` and joins every further host to it by a veth pair, one end
in the host (``eth0``), the other a port of the bridge. These addresses exist only
inside the namespaces, so nothing collides with the machine's own network or with
another run. A process runs on a host through ``ip netns exec``; all hosts share
the file system, so a directory is at the same path everywhere, as an NFS mount
would be. A thread of ours can step onto a host with :meth:`Host.entered`: the
sockets it opens there are that host's. Needs root and ``ip`` (Debian
``iproute2``); :func:`unavailable` says why it cannot work.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from asu.local.services import spawn

SUBNET = "10.117.0"
SERVER_ADDRESS = f"{SUBNET}.1"
#: Our namespaces are named ``asu<pid of the process that made them>-<host>``.
NAME = re.compile(r"^asu(\d+)-")
CLONE_NEWNET = 0x40000000
#: Where ``ip netns`` keeps its named namespaces.
NETNS_DIR = Path("/run/netns")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class NamespaceError(RuntimeError):
    """An ``ip`` command failed; the message has its error."""


def ip(*args: str) -> str:
    """Run ``ip <args>``; its output, or NamespaceError with its error."""
    binary = shutil.which("ip") or "/usr/sbin/ip"
    done = subprocess.run([binary, *args], capture_output=True, text=True)
    if done.returncode != 0:
        command = " ".join(["ip", *args])
        raise NamespaceError(f"{command}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns)"
    if not (shutil.which("ip") or os.access("/usr/sbin/ip", os.X_OK)):
        return "ip is not installed (Debian: iproute2)"
    probe = f"asu{os.getpid()}-probe"
    try:
        ip("netns", "add", probe)
        ip("-n", probe, "link", "add", "probe0", "type", "bridge")
    except NamespaceError as error:
        return f"cannot make network namespaces here: {error}"
    finally:
        with contextlib.suppress(NamespaceError):
            ip("netns", "del", probe)
    return None


def _setns(path: str | Path) -> None:
    """Move the calling thread into the network namespace at ``path``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns {path}: {os.strerror(error)}")
    finally:
        os.close(fd)


@dataclass
class Host:
    """One machine: a network namespace with one address."""

    role: str
    namespace: str
    address: str
    #: The veth end in the server namespace, a port of its bridge ("" on the server).
    link: str = ""
    processes: list[subprocess.Popen] = field(default_factory=list)

    def command(self, args: list[str]) -> list[str]:
        """``args`` run on this host."""
        return ["ip", "netns", "exec", self.namespace, *args]

    def spawn(
        self,
        args: list[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen:
        """Start ``args`` on this host (see :func:`asu.local.services.spawn`)."""
        proc = spawn(self.command(args), log_path, env, cwd)
        self.processes.append(proc)
        return proc

    def run(self, args: list[str], env: Mapping[str, str], cwd: Path):
        """Run ``args`` on this host to the end; the CompletedProcess."""
        return subprocess.run(
            self.command(args), env=dict(env), cwd=cwd, capture_output=True, text=True
        )

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """The calling thread on this host's network while inside."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _setns(NETNS_DIR / self.namespace)
            try:
                yield
            finally:
                _setns(f"/proc/self/fd/{home}")
        finally:
            os.close(home)

    def pids(self) -> list[int]:
        """Every process on this host."""
        return [int(pid) for pid in ip("netns", "pids", self.namespace).split()]

    def kill_all(self) -> None:
        """SIGKILL every process on this host, as a power cut would."""
        deadline = time.monotonic() + 10
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        for proc in self.processes:
            proc.wait()
        self.processes.clear()


class Network:
    """A server host and the hosts joined to it, removed again on exit (with
    every process on them), also when what ran in between failed."""

    def __init__(self) -> None:
        self.prefix = f"asu{os.getpid()}"
        self.hosts: list[Host] = []

    def __enter__(self) -> Network:
        remove_stale_namespaces()
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    @property
    def server(self) -> Host:
        """The server host, made on first use."""
        if not self.hosts:
            host = self._namespace("server", SERVER_ADDRESS)
            ip("-n", host.namespace, "link", "add", "br0", "type", "bridge")
            ip("-n", host.namespace, "link", "set", "br0", "up")
            ip(
                "-n",
                host.namespace,
                "addr",
                "add",
                f"{SERVER_ADDRESS}/24",
                "dev",
                "br0",
            )
        return self.hosts[0]

    def add_host(self, role: str) -> Host:
        """A new host joined to the server's bridge."""
        server = self.server
        host = self._namespace(role, f"{SUBNET}.{len(self.hosts) + 1}")
        host.link = f"to{len(self.hosts)}"
        ns = server.namespace
        peer = ("peer", "name", "eth0", "netns", host.namespace)
        ip("-n", ns, "link", "add", host.link, "type", "veth", *peer)
        ip("-n", ns, "link", "set", host.link, "master", "br0", "up")
        ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
        ip("-n", host.namespace, "link", "set", "eth0", "up")
        return host

    def _namespace(self, role: str, address: str) -> Host:
        host = Host(role, f"{self.prefix}-{role}", address)
        ip("netns", "add", host.namespace)
        self.hosts.append(host)
        ip("-n", host.namespace, "link", "set", "lo", "up")
        return host

    def cut(self, host: Host) -> None:
        """Take ``host`` off the network: its cable pulled at the bridge."""
        ip("-n", self.server.namespace, "link", "set", host.link, "down")

    def mend(self, host: Host) -> None:
        """Put ``host`` back on the network."""
        ip("-n", self.server.namespace, "link", "set", host.link, "up")

    def remove(self) -> None:
        """Kill every process on every host, then remove the namespaces."""
        for host in reversed(self.hosts):
            host.kill_all()
            with contextlib.suppress(NamespaceError):
                ip("netns", "del", host.namespace)
        self.hosts.clear()


def remove_stale_namespaces() -> None:
    """Remove the namespaces a run that died left behind (its pid is gone)."""
    if not NETNS_DIR.is_dir():
        return
    for entry in NETNS_DIR.iterdir():
        match = NAME.match(entry.name)
        if match and not Path(f"/proc/{match[1]}").exists():
            Host("stale", entry.name, "").kill_all()
            with contextlib.suppress(NamespaceError):
                ip("netns", "del", entry.name)
