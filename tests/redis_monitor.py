"""Every command a Redis runs, in order, as its ``MONITOR`` reports them: for
tests of what was sent, by whom and in which transaction."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

import redis


class RedisMonitor(threading.Thread):
    """``commands`` holds ``(client address, command)`` from ``start`` (or
    entering) until ``stop`` (or leaving); ``stop`` returns once every command
    sent before it is in."""

    #: Sent by ``stop``: the feed has delivered every earlier command before it.
    END = "end-of-monitored-commands"

    def __init__(
        self,
        connect: Callable[[], redis.Redis],
        where: Callable[[], AbstractContextManager] = contextlib.nullcontext,
    ) -> None:
        super().__init__(daemon=True)
        self.connect = connect
        self.where = where
        self.commands: list[tuple[str, str]] = []
        self.listening = threading.Event()

    def run(self) -> None:
        with self.where(), self.connect().monitor() as feed:
            self.listening.set()
            for command in feed.listen():
                if command["command"] == f"ECHO {self.END}":
                    return
                self.commands.append((command["client_address"], command["command"]))

    def start(self) -> None:
        super().start()
        self.listening.wait(10)

    def stop(self) -> None:
        self.connect().echo(self.END)
        self.join(10)

    def __enter__(self) -> RedisMonitor:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
