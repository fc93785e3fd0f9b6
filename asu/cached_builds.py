"""Which finished builds belong to which version and target, and dropping them.

The worker records each finished build's request hash per distribution, version
and target. When the janitor sees a target move to another revision (a new
snapshot), the builds of the old one must not be served any more: their jobs and
their ``store/<hash>/`` directories are deleted, and the next identical request
builds again from the new ImageBuilder. Builds already at the new revision stay.
"""

from __future__ import annotations

import shutil

import redis
from rq.job import Job

from asu import answers, job_store, redis_keys
from asu.build_request import REQUEST_HASH, BuildRequest
from asu.config import Config


def remember(job: Job | None, request: BuildRequest, config: Config) -> None:
    """Record that ``job`` (the running RQ job, if any) finished ``request``."""
    if job is None:
        return
    key = redis_keys.builds(request.distro, request.version, request.target)
    with job.connection.pipeline() as pipe:
        pipe.sadd(key, request.hash)
        pipe.expire(key, max(config.build_ttl, config.build_defaults_ttl))
        pipe.execute()


def forget_other_revisions(
    connection: redis.Redis,
    config: Config,
    distro: str,
    version: str,
    target: str,
    revision: str,
) -> int:
    """Delete the recorded builds of ``version``/``target`` that are not at
    ``revision`` (a build of the new one may have finished already); how many."""
    key = redis_keys.builds(distro, version, target)
    dropped = []
    for member in connection.smembers(key):
        request_hash = member.decode()
        if not REQUEST_HASH.fullmatch(request_hash):
            continue
        job = job_store.fetch(connection, request_hash)
        if job is not None and _revision_of(job) == revision:
            continue
        if job is not None:
            job.delete()
        shutil.rmtree(config.store_path / request_hash, ignore_errors=True)
        dropped.append(request_hash)
    if dropped:
        connection.srem(key, *dropped)
        answers.forget(connection, *dropped)
    return len(dropped)


def _revision_of(job: Job) -> str:
    result = job.return_value() if job.is_finished else None
    return result.get("version_code", "") if isinstance(result, dict) else ""
