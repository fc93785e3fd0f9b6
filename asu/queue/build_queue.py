"""The build queue: one RQ job per request hash, and what to answer about it.

The job id is the request hash and jobs are enqueued with RQ's atomic ``unique``
check, so identical requests arriving at once share one job. A finished job keeps
its result for ``build_ttl`` (``build_defaults_ttl`` when the request carries a
``defaults`` script), a failed one for ``build_failure_ttl``; within that time the
same request is answered from Redis without touching the queue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import WatchError
from rq import Queue
from rq.exceptions import DuplicateJobError
from rq.job import Job, JobStatus

from asu import answers, build_runs, job_store, stats
from asu.build_request import REQUEST_HASH, BuildRequest, RequestError
from asu.config import Config
from asu.queue.abandoned_jobs import HEARTBEAT_META, fail_if_abandoned

#: The one queue every API generation enqueues builds on.
QUEUE_NAME = "builds"
#: Seconds clients are told to wait when the queue is full.
QUEUE_FULL_RETRY_AFTER = 60
#: The job's function, by name: the web process enqueues it without loading the
#: build pipeline (a worker imports it when it runs the job).
BUILD = "asu.worker.build.build"
#: Extra seconds RQ allows beyond the build's own timeout, for download and signing.
JOB_TIMEOUT_MARGIN = 300

_WAITING = {JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


class UnknownBuild(RequestError):
    """No build has the request hash a client asks about."""


class QueueFull(RequestError):
    """The queue holds as many builds as the server allows; retry later."""


@dataclass
class Answer:
    """What to tell a client about a build: HTTP status, JSON body, headers."""

    status: int
    body: dict
    headers: dict[str, str] = field(default_factory=dict)


def get_queue(connection: Redis) -> Queue:
    """The build queue on ``connection``."""
    return Queue(QUEUE_NAME, connection=connection, serializer=job_store.SERIALIZER)


def fetch(connection: Redis, request_hash: str) -> Job | None:
    """The job of ``request_hash``, or None when there is none (or it expired)."""
    job = job_store.fetch(connection, request_hash)
    if job is not None:
        fail_if_abandoned(job)
    return job


def polled(connection: Redis, request_hash: str) -> Job:
    """The job of a hash a client polls with (any API generation)."""
    job = (
        fetch(connection, request_hash)
        if REQUEST_HASH.fullmatch(request_hash)
        else None
    )
    if job is None:
        raise UnknownBuild(f"no build with request hash {request_hash[:80]}")
    return job


def _result_ttl(config: Config, request: BuildRequest) -> int:
    if request.defaults and not request.packages_versions:
        return config.build_defaults_ttl
    return config.build_ttl


def _reusable(job: Job) -> bool:
    """Whether a client asking again should get this job's answer.

    Failures the build reported itself (its ``detail``) are kept, unless they were
    the server's (a full disk); a job that was interrupted, stopped or cancelled is
    not: the request builds again.
    """
    status = job.get_status(refresh=False)
    if status == JobStatus.FAILED:
        kind = job.meta.get("error_kind")
        return "detail" in job.meta and kind not in answers.TRANSIENT
    return status not in (JobStatus.STOPPED, JobStatus.CANCELED, None)


def submit(
    connection: Redis,
    config: Config,
    request: BuildRequest,
    admit: Callable[[], None] = lambda: None,
    refund: Callable[[], None] = lambda: None,
) -> Job:
    """The job building ``request``: the existing one, or a new one enqueued.

    ``admit`` is called only before a new job is enqueued; it raises
    :class:`RequestError` to refuse it (a client over its limit). ``refund``
    undoes what it counted when another request enqueued the job first.
    """
    job = fetch(connection, request.hash)
    if job is not None and _reusable(job):
        stats.count_request(connection, request, _reuse_outcome(job))
        return job
    queue = get_queue(connection)
    if queue.count >= config.max_pending_jobs:
        raise QueueFull("the build queue is full, retry later", QUEUE_FULL_RETRY_AFTER)
    admit()
    try:
        if job is None:
            job = _enqueue(queue, config, request)
        else:
            job = _replace(connection, queue, config, request, job)
    except (DuplicateJobError, WatchError):  # another request was first
        job = fetch(connection, request.hash)
        if job is None:  # and its job is gone already: this one is admitted
            return submit(connection, config, request, refund=refund)
        refund()
        stats.count_request(connection, request, _reuse_outcome(job))
        return job
    stats.count_request(connection, request, "miss")
    return job


def _enqueue(
    queue: Queue,
    config: Config,
    request: BuildRequest,
    pipeline: Pipeline | None = None,
) -> Job:
    """A new job for ``request``; without ``pipeline``, only if its hash has none."""
    return queue.enqueue_call(
        BUILD,
        args=(request.as_dict(),),
        job_id=request.hash,
        unique=pipeline is None,
        pipeline=pipeline,
        timeout=config.job_timeout + JOB_TIMEOUT_MARGIN,
        result_ttl=_result_ttl(config, request),
        failure_ttl=config.build_failure_ttl,
        description=f"{request.version} {request.target} {request.profile}",
        meta={HEARTBEAT_META: config.worker_heartbeat_interval},
    )


def _replace(
    connection: Redis, queue: Queue, config: Config, request: BuildRequest, stale: Job
) -> Job:
    """A new job in place of ``stale``, in one transaction: a client polling the
    hash meanwhile gets the old job's answer or the new one's, never a 404.
    :class:`WatchError` when another request replaced it first, before the watch
    (the job read again is one to reuse) or after it (the transaction fails)."""
    with connection.pipeline() as pipe:
        pipe.watch(stale.key)
        current = job_store.fetch(connection, stale.id)
        if current is not None and _reusable(current):
            raise WatchError(f"job {stale.id} was replaced by another request")
        pipe.multi()
        stale.delete(pipeline=pipe)
        answers.forget(pipe, stale.id)
        build_runs.revoke(pipe, stale.id)
        job = _enqueue(queue, config, request, pipe)
        pipe.execute()
    return job


def _reuse_outcome(job: Job) -> str:
    """``hit`` when the job's result is kept, ``joined`` while it is in progress."""
    done = job.get_status(refresh=False) in (JobStatus.FINISHED, JobStatus.FAILED)
    return "hit" if done else "joined"


def answer(job: Job) -> Answer:
    """The status, body and headers a client gets for ``job`` now."""
    status = job.get_status(refresh=False)  # fetched or enqueued just now
    base = {"request_hash": job.id}
    if status == JobStatus.FINISHED:
        result = job.return_value()
        if isinstance(result, dict):
            return Answer(200, answers.done(result), dict(answers.DONE_HEADERS))
        return Answer(500, answers.failed(job.id, job.meta))
    if status == JobStatus.FAILED:
        return Answer(500, answers.failed(job.id, job.meta))
    if status in _WAITING or status is None:
        position = job.get_position()
        position = 0 if position is None else position
        return Answer(
            202,
            base | {"status": 202, "detail": "queued", "queue_position": position},
            {"X-Queue-Position": str(position)},
        )
    stage = job.meta.get("imagebuilder_status", "init")
    return Answer(
        202,
        base
        | {
            "status": 202,
            "detail": "started",
            "imagebuilder_status": stage,
            "stage": job.meta.get("stage", stage),
        },
        {"X-Imagebuilder-Status": stage},
    )
