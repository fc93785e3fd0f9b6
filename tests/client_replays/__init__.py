"""LuCI's attended sysupgrade view, ``auc`` and ``owut``, replayed request by
request as their sources make them, against a build server.

Each replay does what the client does with HTTP, in the same order, with the
same headers, intervals and checks, and raises :class:`ClientError` where the
client would stop with an error (or would poll forever). What a router tells
its client about itself (``ubus call system board``, ``rpc-sys packagelist``,
``/sys/firmware/efi``) is a :class:`Device`.

Sources read: luci-app-attendedsysupgrade ``view/attendedsysupgrade/overview.js``
with LuCI's ``luci.js`` request and poll classes; auc ``src/auc.c`` 0.3.2; owut
``files/owut``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

#: Seconds a replay may take before it counts as hanging.
DEADLINE = 300


class ClientError(AssertionError):
    """Where the client stops with an error, or would never stop."""


@dataclass(frozen=True)
class Device:
    """A router as its client sees it."""

    board_name: str  # ubus system board: board_name
    target: str  # release.target
    version: str  # release.version
    revision: str  # release.revision
    rootfs_type: str  # rootfs_type
    efi: bool  # /sys/firmware/efi exists
    #: rpc-sys packagelist: every installed package (all) and the top-level ones
    installed: dict[str, str]
    top_level: dict[str, str]

    @property
    def x86(self) -> bool:
        return self.target.startswith("x86/")


@dataclass
class Outcome:
    """What a replay asked, what it got, and the image it downloaded."""

    client: str
    asked: list[tuple[str, str, int]] = field(default_factory=list)
    request: dict = field(default_factory=dict)  # the build request body
    result: dict = field(default_factory=dict)  # the 200 answer
    image: dict = field(default_factory=dict)  # the image chosen from it
    data: bytes = b""  # the image's bytes as downloaded

    def chose(self, result: dict, image: dict) -> str:
        """Keep the 200 answer and the image chosen from it; the image's path."""
        self.result, self.image = result, image
        return f"/store/{result['bin_dir']}/{image['name']}"


class Session:
    """HTTP as one client speaks it, every request recorded in ``outcome``."""

    def __init__(self, base: str, agent: str, outcome: Outcome) -> None:
        self.base = base
        self.http = requests.Session()
        self.http.headers["User-Agent"] = agent
        self.outcome = outcome
        self.deadline = time.monotonic() + DEADLINE

    def __call__(self, method: str, url: str, **kwargs) -> requests.Response:
        if time.monotonic() > self.deadline:
            raise ClientError(f"{self.outcome.client} still waiting after {DEADLINE} s")
        absolute = url if "://" in url else self.base + url
        response = self.http.request(method, absolute, timeout=30, **kwargs)
        for answer in [*response.history, response]:  # redirects followed
            self.outcome.asked.append(
                (answer.request.method, self._where(answer.url), answer.status_code)
            )
        return response

    def _where(self, url: str) -> str:
        """``url`` without this server's address."""
        parts = urlsplit(url)
        where = parts.path + (f"?{parts.query}" if parts.query else "")
        if parts.netloc != urlsplit(self.base).netloc:
            return f"{parts.scheme}://{parts.netloc}{where}"
        return where


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def revision_count(revision: str) -> int:
    """The commit count of a revision: ``r24012-d8dd03c46f`` → 24012."""
    return int(revision[1:].split("-")[0])
