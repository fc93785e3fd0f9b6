"""Builds whose worker died, noticed by whoever reads the job next.

When only a worker's work horse is killed, the worker notices at once and fails
the job. When the worker goes with it (the OOM killer, a lost machine), the job
stays ``started`` until RQ's own clean-up of abandoned jobs, which runs minutes
later and only inside a live worker. Meanwhile the worker would have written a
heartbeat into the job every ``worker_heartbeat_interval``: the interval is put
into the job's meta when it is enqueued, so any process reading the job can tell
when several heartbeats are missing and fail it the way RQ fails abandoned jobs.
"""

from __future__ import annotations

from datetime import UTC, datetime

from redis.exceptions import WatchError
from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure

#: Key of the job's meta holding the worker's heartbeat interval in seconds.
HEARTBEAT_META = "heartbeat_interval"
#: Heartbeats a worker may miss before its job counts as abandoned.
MISSED_HEARTBEATS = 3
#: Seconds added for clocks and Redis round trips.
GRACE = 2


def silent_for(job: Job) -> float | None:
    """Seconds since the job's last heartbeat, None if it never started."""
    beat = job.last_heartbeat
    if beat is None:
        return None
    if beat.tzinfo is None:
        beat = beat.replace(tzinfo=UTC)
    return (datetime.now(UTC) - beat).total_seconds()


def abandoned(job: Job) -> bool:
    """Whether ``job`` is started but its worker stopped sending heartbeats."""
    interval = job.meta.get(HEARTBEAT_META)
    if job.get_status(refresh=False) != JobStatus.STARTED or not interval:
        return False
    silence = silent_for(job)
    return silence is not None and silence > MISSED_HEARTBEATS * interval + GRACE


def fail_if_abandoned(job: Job) -> None:
    """Fail ``job`` as interrupted when it is abandoned.

    The job's key is watched, so a heartbeat or a result written meanwhile wins and
    the job is left alone.
    """
    if not abandoned(job):
        return
    with job.connection.pipeline() as pipe:
        try:
            pipe.watch(job.key)
            job.refresh()
            if not abandoned(job):
                return
            pipe.multi()
            silence = silent_for(job) or 0
            reason = f"abandoned: no heartbeat from its worker for {silence:.0f} s"
            record_job_failure(job, reason, pipe)
            pipe.execute()
        except WatchError:
            return
