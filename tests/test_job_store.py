"""What Redis holds about a build is data: a job planted in Redis with a pickle in
it (as anything that reaches Redis could write) is failed with a clear detail, in
the web process and in the worker, and the pickle never runs."""

from __future__ import annotations

import os
import pickle
import time
import zlib

import redis
import requests
from clients import X86_APK, post, wait_for


class Planted:
    """Unpickling this creates ``path``: proof that code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mknod, (self.path,))


def plant(connection: redis.Redis, request_hash: str, marker: str) -> None:
    payload = pickle.dumps(Planted(marker))
    connection.hset(
        f"rq:job:{request_hash}",
        mapping={"data": zlib.compress(payload), "meta": payload},
    )


def test_a_planted_pickle_never_runs(live_server, redis_url, tmp_path):
    marker = str(tmp_path / "code-ran")
    queued = post(live_server, X86_APK)
    assert queued.status_code == 202
    request_hash = queued.json()["request_hash"]
    plant(redis.Redis.from_url(redis_url), request_hash, marker)

    answer = requests.get(f"{live_server}/api/v1/build/{request_hash}", timeout=10)
    assert answer.status_code == 500
    assert "not written by this server" in answer.json()["detail"]
    assert not os.path.exists(marker)


def test_a_worker_fails_a_planted_job_without_running_it(
    live_server, redis_url, worker, tmp_path
):
    marker = str(tmp_path / "code-ran")
    connection = redis.Redis.from_url(redis_url)
    connection.hset("rq:job:planted", mapping={"status": "queued", "origin": "builds"})
    plant(connection, "planted", marker)
    connection.rpush("rq:queue:builds", "planted")
    deadline = time.monotonic() + 30
    while connection.hget("rq:job:planted", "status") != b"failed":
        assert time.monotonic() < deadline, "the worker did not fail the job"
        time.sleep(0.2)
    assert not os.path.exists(marker)
    # and it goes on building
    assert wait_for(live_server, X86_APK).status_code == 200
