"""The answer to a finished build, serialized once.

A finished build's answer never changes until it expires: the worker writes it
once, as the bytes of the JSON body every later client gets (``redis_keys.answer``, with
the result's own time to live), and a cached ``GET`` or ``POST`` sends those bytes
after one Redis round trip, without decoding or encoding anything. A cached
``POST`` counts its statistics in the same round trip (a small Lua script), so
that being answered from the cache and being counted as a hit are one step.

Answers of failures that say nothing about the request (a full disk, an unreadable
job) are not kept: asking again builds again. The body is the one the slower path
(:func:`asu.queue.build_queue.answer`) gives for the job; keys sorted, compact,
ASCII, as Flask writes JSON.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

from redis import Redis
from redis.commands.core import Script

from asu import redis_keys, stats

#: The header of a build that is done.
DONE_HEADERS = {"X-Imagebuilder-Status": "done"}
#: How long a proxy in front may keep a finished build's answer at most: never
#: past the build's expiry, and not much past a janitor pass that could drop it
#: (a new snapshot revision).
PROXY_SECONDS = 300
#: Failures that say nothing about the request: asking again builds again.
TRANSIENT = {"disk_full", "unreadable"}
INTERRUPTED = "Error: the build was interrupted before it finished; request it again"
_SEPARATOR = b"\n"

#: Returns the kept answer of KEYS[1] and its remaining milliseconds; counts a hit
#: (KEYS[2] totals, KEYS[3] the day, KEYS[4] the clients) when there is one.
#: ARGV: the day's time to live, the client ("" for none), the clients kept.
_HIT = """
local answer = redis.call('GET', KEYS[1])
if not answer then
  return false
end
for _, hash in ipairs({KEYS[2], KEYS[3]}) do
  redis.call('HINCRBY', hash, 'requests', 1)
  redis.call('HINCRBY', hash, 'requests:hit', 1)
end
redis.call('EXPIRE', KEYS[3], ARGV[1])
if ARGV[2] ~= '' then
  redis.call('ZINCRBY', KEYS[4], 1, ARGV[2])
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -tonumber(ARGV[3]) - 1)
end
return answer
"""


@dataclass(frozen=True)
class Kept:
    """A kept answer: HTTP status, the body's bytes, when it expires (Unix time)."""

    status: int
    body: bytes
    expires: int

    @property
    def seconds_left(self) -> int:
        return max(self.expires - int(time.time()), 0)

    @property
    def headers(self) -> dict[str, str]:
        """A 200's: it is done, and how long nginx may keep it (``X-Accel-Expires``,
        which nginx keeps to itself)."""
        if self.status != 200:
            return {}
        keep = min(self.seconds_left, PROXY_SECONDS)
        return DONE_HEADERS | {"X-Accel-Expires": str(keep)}


def done(result: dict) -> dict:
    """The body of a finished build's 200."""
    return result | {"status": 200, "detail": "done"}


def failed(request_hash: str, meta: Mapping) -> dict:
    """The body of a failed build's 500, from what the build said (its job's meta)."""
    return {
        "request_hash": request_hash,
        "status": 500,
        "detail": meta.get("detail") or INTERRUPTED,
        "stdout": meta.get("stdout", ""),
        "stderr": meta.get("stderr", ""),
        "error_kind": meta.get("error_kind", "interrupted"),
    }


def encode(body: dict) -> bytes:
    """``body`` as Flask's ``jsonify`` writes it."""
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def keep(connection: Redis, request_hash: str, body: dict, ttl: int) -> None:
    """Keep the final answer of a build (:func:`done` or :func:`failed`) for
    ``ttl`` seconds, unless it is a failure that says nothing about the request."""
    if body.get("error_kind") in TRANSIENT:
        return
    head = f"{body['status']} {int(time.time()) + ttl}".encode()
    connection.set(
        redis_keys.answer(request_hash), head + _SEPARATOR + encode(body), ex=ttl
    )


def forget(connection: Redis, *request_hashes: str) -> None:
    """Drop the kept answers of builds that are dropped."""
    if request_hashes:
        connection.delete(*(redis_keys.answer(h) for h in request_hashes))


def kept(connection: Redis, request_hash: str) -> Kept | None:
    """The kept answer of ``request_hash`` (a poll: nothing is counted)."""
    return _parse(connection.get(redis_keys.answer(request_hash)))


def hit(connection: Redis, request_hash: str, client: str | None) -> Kept | None:
    """The kept answer of ``request_hash``, counted as a request answered from the
    cache, in one round trip; None (and nothing counted) when there is none."""
    found = _hit_script(connection)(
        keys=[
            redis_keys.answer(request_hash),
            redis_keys.stats_totals(),
            redis_keys.stats_day(stats.today()),
            redis_keys.stats_top("clients"),
        ],
        args=[stats.DAY_TTL, client or "", stats.TOP_LIMIT],
    )
    return _parse(found)


@functools.cache
def _hit_script(connection: Redis) -> Script:
    return connection.register_script(_HIT)


def _parse(value: bytes | None) -> Kept | None:
    if not value:
        return None
    head, _, body = value.partition(_SEPARATOR)
    status, _, expires = head.partition(b" ")
    return Kept(int(status), body, int(expires))
