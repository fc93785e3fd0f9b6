"""Everything between a parsed request and its build job, for every API
generation: version, target and profile resolved (404), packages known (422),
the client's allowance for new builds (429), then the one queue."""

from __future__ import annotations

from redis import Redis
from rq.job import Job

from asu import build_queue, limits, metadata, package_validation
from asu.build_request import BuildRequest
from asu.config import Config


def accept(
    connection: Redis, config: Config, parsed: BuildRequest, remote_addr: str | None
) -> Job:
    """The job for ``parsed``: cached, in flight, or newly queued."""
    resolved = metadata.resolve(connection, config, parsed)
    package_validation.check_packages(connection, config, resolved)
    client = limits.client_id(remote_addr)
    return build_queue.submit(
        connection,
        config,
        resolved,
        admit=lambda: limits.charge_new_build(connection, config, client),
    )
