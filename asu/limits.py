"""Per-client limits on new builds, counted in Redis.

A client is the address the app sees: the connection's, or the one the reverse
proxies in front of it report when ``trusted_proxies`` says there are some (see
:func:`asu.app.create_app`). IPv6 clients are counted per /64, the block one
subscriber usually gets, so that hopping between its addresses does not escape the
limit. Only new builds are counted: a cached answer or a poll costs a Redis read
and is never limited.
"""

from __future__ import annotations

import ipaddress

from redis import Redis

from asu import keys
from asu.build_request import RequestError
from asu.config import Config

#: Every address that cannot be parsed shares this one counter.
UNKNOWN_CLIENT = "unknown"


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
    key = keys.client_builds(client)
    with connection.pipeline() as pipe:
        pipe.set(key, 0, ex=config.client_builds_window, nx=True)
        pipe.incr(key)
        pipe.ttl(key)
        _, count, ttl = pipe.execute()
    if count > limit:
        raise RequestError(
            f"too many new builds from {client}: at most {limit} every "
            f"{config.client_builds_window} s; cached builds are still served",
            status=429,
            headers={"Retry-After": str(max(ttl, 1))},
        )
