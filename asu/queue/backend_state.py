"""What the build backend is doing right now: queue length and workers."""

from __future__ import annotations

import redis
from rq import Worker
from rq.worker import WorkerStatus

from asu.queue.build_queue import get_queue


def queue_length(connection: redis.Redis) -> int:
    """How many builds wait for a worker."""
    return get_queue(connection).count


def backend(connection: redis.Redis) -> dict[str, int]:
    """``queue_length``, ``workers`` and ``workers_busy`` read from Redis now."""
    queue = get_queue(connection)
    workers = Worker.all(queue=queue)
    busy = sum(1 for worker in workers if worker.get_state() == WorkerStatus.BUSY)
    return {"queue_length": queue.count, "workers": len(workers), "workers_busy": busy}
