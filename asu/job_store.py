"""Build jobs as RQ keeps them in Redis: in JSON, in every process.

RQ's default serializer is pickle, and unpickling runs code: whoever can write
``rq:job:<hash>`` could then run code in the next web or worker process that reads
it, the processes holding the server's signing key. Jobs, their metadata and their
results are stored as JSON instead (:data:`SERIALIZER`, passed to every queue,
job and worker), so what Redis holds is data. A job whose stored data does not
parse as JSON was not written by this server: it is failed with a detail saying so,
and a client asking again builds again.
"""

from __future__ import annotations

import logging

from redis import Redis
from rq.exceptions import DeserializationError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

log = logging.getLogger(__name__)

SERIALIZER = JSONSerializer
#: ``error_kind`` of a job found in a format the server does not write (a failure
#: that says nothing about the request: :data:`asu.answers.TRANSIENT`).
UNREADABLE = "unreadable"
UNREADABLE_DETAIL = (
    "Error: the build's stored job was not written by this server and is ignored; "
    "request the build again"
)


def fetch(connection: Redis, job_id: str) -> Job | None:
    """The job ``job_id``, or None when there is none (or it expired)."""
    try:
        job = Job.fetch(job_id, connection=connection, serializer=SERIALIZER)
    except NoSuchJobError:
        return None
    try:
        job.func_name  # noqa: B018 -- parses the stored call, the part that could run
    except DeserializationError:
        _fail_unreadable(job)
    return job


def _fail_unreadable(job: Job) -> None:
    log.warning("job %s holds data that is not JSON: failed, never run", job.id)
    job.meta = {"detail": UNREADABLE_DETAIL, "error_kind": UNREADABLE}
    with job.connection.pipeline() as pipe:
        job.save_meta()
        job.set_status(JobStatus.FAILED, pipeline=pipe)
        pipe.execute()
