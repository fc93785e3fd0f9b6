"""A finished build's answer is written once by the worker and sent as those bytes:
the same answer the job gives, for as long as the job keeps its result, counted as
a hit on a POST, and gone with the build."""

from __future__ import annotations

import redis
import requests
from clients import X86_APK, post, wait_for

from asu import answers, cached_builds, job_store, redis_keys
from asu.queue import build_queue


def slow_answer(connection: redis.Redis, request_hash: str) -> dict:
    """What the job itself says, as every answer was made before answers were kept."""
    return build_queue.answer(job_store.fetch(connection, request_hash)).body


def test_a_kept_answer_is_the_job_s_answer(live_server, worker, redis_url):
    connection = redis.Redis.from_url(redis_url)
    built = wait_for(live_server, X86_APK | {"packages": ["htop"]})
    request_hash = built.json()["request_hash"]
    kept = answers.kept(connection, request_hash)
    assert kept is not None and kept.status == 200
    job_ttl = connection.ttl(f"rq:job:{request_hash}")
    assert abs(kept.seconds_left - job_ttl) <= 2

    polled = requests.get(f"{live_server}/api/v1/build/{request_hash}", timeout=10)
    assert polled.content == kept.body
    assert polled.json() == slow_answer(connection, request_hash)
    assert polled.headers["X-Imagebuilder-Status"] == "done"
    assert polled.headers["Content-Type"] == "application/json"
    head = requests.head(f"{live_server}/api/v1/build/{request_hash}", timeout=10)
    assert head.status_code == 200 and head.content == b""


def test_a_cached_post_is_counted_as_a_hit(live_server, worker, redis_url):
    connection = redis.Redis.from_url(redis_url)
    body = X86_APK | {"client": "owut/2025.1"}
    wait_for(live_server, body)
    before = connection.hgetall(redis_keys.stats_totals())
    again = post(live_server, body)
    assert again.status_code == 200 and again.json()["detail"] == "done"
    after = connection.hgetall(redis_keys.stats_totals())
    assert int(after[b"requests:hit"]) == int(before.get(b"requests:hit", 0)) + 1
    assert int(after[b"requests"]) == int(before[b"requests"]) + 1
    assert connection.zscore(redis_keys.stats_top("clients"), "owut/2025.1") >= 2


def test_a_failed_build_s_answer_is_kept_as_long_as_the_failure(
    live_server, worker, redis_url
):
    connection = redis.Redis.from_url(redis_url)
    failed = wait_for(live_server, X86_APK | {"packages": ["dnsmasq-full"]})
    assert failed.status_code == 500
    request_hash = failed.json()["request_hash"]
    kept = answers.kept(connection, request_hash)
    assert kept is not None and kept.status == 500
    assert 0 < kept.seconds_left <= 3600
    again = post(live_server, X86_APK | {"packages": ["dnsmasq-full"]})
    assert again.status_code == 500 and again.json() == failed.json()


def test_a_dropped_build_s_answer_is_gone(live_server, worker, redis_url, app):
    connection = redis.Redis.from_url(redis_url)
    built = wait_for(live_server, X86_APK).json()
    config = app.config["ASU"]
    dropped = cached_builds.forget_other_revisions(
        connection, config, "openwrt", "25.12.0", "x86/64", "r99999-0000000000"
    )
    assert dropped == 1
    assert answers.kept(connection, built["request_hash"]) is None
    gone = requests.get(f"{live_server}/api/v1/build/{built['request_hash']}")
    assert gone.status_code == 404
