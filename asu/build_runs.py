"""Which run of a build may publish it.

A worker cut off from Redis keeps building; meanwhile its build counts as
interrupted and asking again replaces its job with a new one of the same hash.
Should the first worker come back, its writes would land on the new job and its
images over the new ones. So each run claims the build when it starts
(``redis_keys.build_run``), replacing a job takes the claim away, and a run
checks that it still holds it before every step that writes: a run without it
is superseded and leaves everything to the new job.
"""

from __future__ import annotations

import secrets

from redis import Redis

from asu import redis_keys

#: Set in an RQ work horse (the forked process running one job): there a
#: superseded run may end the process.
WORK_HORSE = "ASU_WORK_HORSE"


class Superseded(Exception):
    """The build's job was replaced: this run must write nothing more."""


def claim(connection: Redis, request_hash: str, seconds: int) -> str:
    """Claim the build of ``request_hash`` for a new run; the run's token."""
    token = secrets.token_hex(8)
    connection.set(redis_keys.build_run(request_hash), token, ex=seconds)
    return token


def check(connection: Redis, request_hash: str, token: str) -> None:
    """Raise :class:`Superseded` unless the run ``token`` still holds the build."""
    held = connection.get(redis_keys.build_run(request_hash))
    if held is None or held.decode() != token:
        raise Superseded(f"build {request_hash} was taken over by a new job")


def revoke(connection: Redis, request_hash: str) -> None:
    """Take the build away from the run holding it (``connection`` may be a
    pipeline: in the transaction that replaces the job)."""
    connection.delete(redis_keys.build_run(request_hash))
