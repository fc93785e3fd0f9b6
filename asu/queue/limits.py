"""Per-client limits on new builds, counted in Redis.

A client is the address the app sees: the connection's, or the one the reverse
proxies in front of it report when ``trusted_proxies`` says there are some (see
:func:`asu.app.create_app`). IPv6 clients are counted per /64, the block one
subscriber usually gets, so that hopping between its addresses does not escape the
limit. Only new builds are counted: a cached answer or a poll costs a Redis read
and is never limited.

Two limits: new builds per window (``max_builds_per_client``), and builds in
flight at once (``max_client_builds_in_flight``), so that a few addresses cannot
fill the one queue that everybody waits in.
"""

from __future__ import annotations

import functools
import ipaddress
import time

from redis import Redis
from redis.commands.core import Script
from rq.job import Job

from asu import redis_keys
from asu.build_request import RequestError
from asu.config import Config

#: Every address that cannot be parsed shares this one counter.
UNKNOWN_CLIENT = "unknown"

#: What a client over its builds in flight is told to wait, in seconds.
IN_FLIGHT_RETRY_AFTER = 30

#: Seconds an admitted hash counts before its job exists (it is enqueued just after).
ENQUEUE_GRACE = 10

#: An idle client's set of builds in flight goes after a day.
IN_FLIGHT_TTL = 86400


class OverLimit(RequestError):
    """A client asked for more new builds than its allowance; retry later."""


#: Decrements KEYS[1] only while it exists: a count without its window would
#: never expire.
_REFUND = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('DECR', KEYS[1])
end
return 0
"""

#: Keeps the client's hashes whose job is still waiting or running, drops the rest,
#: and admits ARGV[2] when fewer than ARGV[3] remain: the count (-1 when admitted).
#: One script, so that a client's concurrent requests cannot all pass the count.
_IN_FLIGHT = """
local now = tonumber(ARGV[4])
local live = 0
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #members, 2 do
  local id, since = members[i], tonumber(members[i + 1])
  local status = redis.call('HGET', ARGV[1] .. id, 'status')
  if status == 'queued' or status == 'started' or status == 'deferred'
      or status == 'scheduled' or (not status and now - since < tonumber(ARGV[5])) then
    live = live + 1
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
if live >= tonumber(ARGV[3]) then
  return live
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[6])
return -1
"""


def client_id(remote_addr: str | None) -> str:
    """The name a client's builds are counted under."""
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return UNKNOWN_CLIENT
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def charge_new_build(connection: Redis, config: Config, client: str) -> None:
    """Count one new build for ``client``; a 429 when it is over its limit.

    A fixed window: the first build of a client starts it, and it ends
    ``client_builds_window`` seconds later, which ``Retry-After`` tells.
    """
    limit = config.max_builds_per_client
    if limit <= 0:
        return
    key = redis_keys.client_builds(client)
    with connection.pipeline() as pipe:
        pipe.set(key, 0, ex=config.client_builds_window, nx=True)
        pipe.incr(key)
        pipe.ttl(key)
        _, count, ttl = pipe.execute()
    if count > limit:
        raise OverLimit(
            f"too many new builds from {client}: at most {limit} every "
            f"{config.client_builds_window} s; cached builds are still served",
            max(ttl, 1),
        )


def admit_in_flight(
    connection: Redis, config: Config, client: str, request_hash: str
) -> None:
    """Count ``request_hash`` among ``client``'s builds in flight; refused when
    it already has ``max_client_builds_in_flight`` waiting or running."""
    limit = config.max_client_builds_in_flight
    if limit <= 0:
        return
    in_flight = _script(connection, _IN_FLIGHT)(
        keys=[redis_keys.client_in_flight(client)],
        args=[
            Job.redis_job_namespace_prefix,
            request_hash,
            limit,
            int(time.time()),
            ENQUEUE_GRACE,
            IN_FLIGHT_TTL,
        ],
    )
    if in_flight >= 0:
        raise OverLimit(
            f"{client} has {in_flight} builds waiting or running, at most {limit} "
            "at once: retry when one has finished",
            IN_FLIGHT_RETRY_AFTER,
        )


def refund_new_build(connection: Redis, client: str) -> None:
    """Take back one new build counted for ``client``: another request's build of
    the same hash is the one that runs. Nothing when its window has ended."""
    _script(connection, _REFUND)(keys=[redis_keys.client_builds(client)])


def release_in_flight(connection: Redis, client: str, request_hash: str) -> None:
    """Drop ``request_hash`` from ``client``'s builds in flight: it was refused."""
    connection.zrem(redis_keys.client_in_flight(client), request_hash)


@functools.cache
def _script(connection: Redis, source: str) -> Script:
    """``source`` registered once per connection (sent again only if Redis lost it)."""
    return connection.register_script(source)
