"""Admitting a parsed request, for every API generation: version, target and
profile resolved (a 400 naming the field); then the cached or in-flight job of
the same hash, or, for a new build only, packages known (422) and the client's
allowances (429) before the one queue. A cached answer costs no package check:
the request passed it when it was built."""

from __future__ import annotations

from redis import Redis
from rq.job import Job

from asu.build_request import BuildRequest
from asu.config import Config
from asu.metadata import lookup, package_validation
from asu.queue import build_queue, limits


def accept(
    connection: Redis, config: Config, parsed: BuildRequest, remote_addr: str | None
) -> Job:
    """The job for ``parsed``: cached, in flight, or newly queued."""
    resolved = lookup.resolve(connection, config, parsed)
    client = limits.client_id(remote_addr)

    def admit() -> None:
        package_validation.check_packages(connection, config, resolved)
        limits.admit_in_flight(connection, config, client, resolved.hash)
        try:
            limits.charge_new_build(connection, config, client)
        except limits.OverLimit:
            limits.release_in_flight(connection, client, resolved.hash)
            raise

    def refund() -> None:
        limits.refund_new_build(connection, client)

    return build_queue.submit(connection, config, resolved, admit, refund)
