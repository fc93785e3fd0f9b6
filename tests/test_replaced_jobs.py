"""A build that ended with nothing to keep (interrupted, stopped, cancelled) is
built again by the next request for it. The new job takes the old one's place in
one transaction: a client polling the hash meanwhile never finds it missing (a 404
would end its wait), and identical requests arriving together enqueue it once.
No worker runs here: the jobs stay queued."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from clients import X86_APK, post
from redis_monitor import RedisMonitor
from rq.job import JobStatus

from asu import redis_keys, stats
from asu.queue.build_queue import fetch, get_queue


@pytest.fixture
def app_config(app_config):
    """New builds are counted per client (and far from its limit)."""
    return app_config | {"max_builds_per_client": 100}


def cancelled_build(live_server: str, connection: redis.Redis) -> str:
    request_hash = post(live_server, X86_APK).json()["request_hash"]
    fetch(connection, request_hash).cancel()
    assert fetch(connection, request_hash).get_status() == JobStatus.CANCELED
    return request_hash


def test_the_new_job_replaces_the_old_in_one_transaction(live_server, redis_url):
    connection = redis.Redis.from_url(redis_url)
    request_hash = cancelled_build(live_server, connection)
    with RedisMonitor(lambda: redis.Redis.from_url(redis_url)) as monitor:
        again = post(live_server, X86_APK)
    assert again.status_code == 202 and again.json()["detail"] == "queued"
    key = f"rq:job:{request_hash}"
    commands = [command for _, command in monitor.commands]
    (deleted,) = [i for i, c in enumerate(commands) if c.startswith(f"DEL {key} ")]
    begun = max(i for i, c in enumerate(commands[:deleted]) if c == "MULTI")
    ended = deleted + commands[deleted:].index("EXEC")
    assert not [c for c in commands[begun:ended] if c in ("EXEC", "DISCARD")]
    assert any(c.startswith(f"HSET {key} ") for c in commands[deleted:ended])


def counted(connection: redis.Redis) -> dict[str, int]:
    """The request counters of the statistics and the client's count of new
    builds, as they are now."""
    totals = stats.totals(connection)
    names = ("requests", "requests:miss", "requests:joined")
    counts = {name: totals.get(name, 0) for name in names}
    charged = connection.get(redis_keys.client_builds("127.0.0.1"))
    return counts | {"new builds of the client": int(charged or 0)}


def test_requests_arriving_together_enqueue_it_once(live_server, redis_url):
    connection = redis.Redis.from_url(redis_url)
    request_hash = cancelled_build(live_server, connection)
    before = counted(connection)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(live_server, X86_APK), range(8)))
    assert {a.status_code for a in answers} == {202}
    # Every request is counted once: the first enqueued it, the rest joined it.
    after = counted(connection)
    assert {k: after[k] - before[k] for k in after} == {
        "requests": 8,
        "requests:miss": 1,
        "requests:joined": 7,
        "new builds of the client": 1,
    }
    assert {a.json()["request_hash"] for a in answers} == {request_hash}
    assert get_queue(connection).job_ids.count(request_hash) == 1
    assert fetch(connection, request_hash).get_status() == JobStatus.QUEUED
