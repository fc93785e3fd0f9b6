"""Statistics kept in Redis as requests arrive and builds finish.

Counting is on the hot path, so each event is one pipeline of increments and
nothing is read back. Everything else (the ``/api/v1/stats`` answers, the
Prometheus metrics, the web page's charts) reads these keys later. A Redis error
while counting is logged and swallowed: statistics never fail a request or build.

The sorted sets of names clients choose (clients, packages, profiles) are trimmed
to :data:`TOP_LIMIT` members in the same pipeline, so a client inventing names
cannot grow them without bound.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta

import redis
from rq import get_current_job

from asu import redis_keys
from asu.branches import branch_name
from asu.build_request import BuildRequest

log = logging.getLogger(__name__)

#: Bucket bounds (seconds) of the duration histograms.
DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200)
#: Members kept in each sorted set of names; the least counted go first.
TOP_LIMIT = 1000
#: Days a per-day hash is kept.
DAY_TTL = 400 * 86400

#: How a build request was answered: from a kept result, by joining the job
#: already queued or running for the same hash, or by queueing a new build.
OUTCOMES = ("hit", "joined", "miss")


def today() -> str:
    """The current UTC day as ``YYYY-MM-DD``."""
    return datetime.now(UTC).date().isoformat()


def failure_kind(error: BaseException) -> str:
    """Why a build failed: the :class:`~asu.worker.build.BuildError` kind, else what
    broke."""
    kind = getattr(error, "kind", None)
    if kind:
        return kind
    return "timeout" if "Timeout" in type(error).__name__ else "internal"


def _bucket(seconds: float) -> str:
    for bound in DURATION_BUCKETS:
        if seconds <= bound:
            return str(bound)
    return "+Inf"


def _observe(pipe: redis.client.Pipeline, name: str, seconds: float) -> None:
    key = redis_keys.stats_histogram(name)
    pipe.hincrby(key, _bucket(seconds), 1)
    pipe.hincrbyfloat(key, "sum", round(max(seconds, 0.0), 3))


def _top(pipe: redis.client.Pipeline, name: str, members: Iterable[str]) -> None:
    key = redis_keys.stats_top(name)
    for member in members:
        pipe.zincrby(key, 1, member)
    pipe.zremrangebyrank(key, 0, -TOP_LIMIT - 1)


def _count(pipe: redis.client.Pipeline, field: str) -> None:
    day = redis_keys.stats_day(today())
    pipe.hincrby(redis_keys.stats_totals(), field, 1)
    pipe.hincrby(day, field, 1)
    pipe.expire(day, DAY_TTL)


def _execute(pipe: redis.client.Pipeline, what: str) -> None:
    try:
        pipe.execute()
    except redis.RedisError as error:
        log.warning("statistics of %s not counted: %s", what, error)


def count_request(connection: redis.Redis, request: BuildRequest, outcome: str) -> None:
    """Count one build request and how it was answered (one of :data:`OUTCOMES`)."""
    pipe = connection.pipeline(transaction=False)
    _count(pipe, "requests")
    _count(pipe, f"requests:{outcome}")
    if request.client:
        _top(pipe, "clients", [request.client])
    _execute(pipe, "a request")


def extra_packages(request: dict, result: dict) -> list[str]:
    """The packages a build added beyond its profile's default and device packages."""
    preset = {*result.get("default_packages", ()), *result.get("device_packages", ())}
    return [
        name
        for name in dict.fromkeys(request.get("packages", ()))
        if not name.startswith("-") and name not in preset
    ]


def count_build(
    connection: redis.Redis,
    request: dict,
    seconds: float,
    waited: float | None,
    result: dict | None = None,
    error: BaseException | None = None,
) -> None:
    """Count one finished build: its result (None: it failed with ``error``),
    durations and what it was for."""
    pipe = connection.pipeline(transaction=False)
    _observe(pipe, "build_duration", seconds)
    if waited is not None:
        _observe(pipe, "queue_wait", waited)
    if result is None:
        _count(pipe, "builds:failed")
        pipe.hincrby(redis_keys.stats_failures(), failure_kind(error), 1)
    else:
        version, target = request["version"], request["target"]
        _count(pipe, "builds:succeeded")
        _top(pipe, "versions", [version])
        _top(pipe, "targets", [target])
        _top(pipe, "profiles", [f"{target} {result.get('id', request['profile'])}"])
        branch = branch_name(version)
        packages = extra_packages(request, result)
        _top(pipe, "branches", [branch])
        _top(pipe, "packages", packages)
        _top(pipe, f"packages:{branch}", packages)
    _execute(pipe, "a build")


def counted_build(function: Callable[[dict], dict]) -> Callable[[dict], dict]:
    """Wrap the worker's job so that every build, finished or failed, is counted."""

    @functools.wraps(function)
    def wrapper(request: dict) -> dict:
        job = get_current_job()
        started = time.time()
        waited = _waited(job, started)
        result, error = None, None
        try:
            result = function(request)
            return result
        except Exception as failure:
            error = failure
            raise
        finally:
            if job is not None:
                seconds = time.time() - started
                count_build(job.connection, request, seconds, waited, result, error)

    return wrapper


def _waited(job, started: float) -> float | None:
    enqueued = getattr(job, "enqueued_at", None)
    if enqueued is None:
        return None
    if enqueued.tzinfo is None:
        enqueued = enqueued.replace(tzinfo=UTC)
    return max(started - enqueued.timestamp(), 0.0)


# -- reading ----------------------------------------------------------------------


def _ints(mapping: dict) -> dict[str, int]:
    return {key.decode(): int(float(value)) for key, value in mapping.items()}


def totals(connection: redis.Redis) -> dict[str, int]:
    """Every counter since the start, ``{field: count}``."""
    return _ints(connection.hgetall(redis_keys.stats_totals()))


def days(connection: redis.Redis, count: int = 30) -> list[dict]:
    """The counters of the last ``count`` UTC days, oldest first, zeros included."""
    last = date.fromisoformat(today())
    dates = [(last - timedelta(days=n)).isoformat() for n in reversed(range(count))]
    pipe = connection.pipeline(transaction=False)
    for day in dates:
        pipe.hgetall(redis_keys.stats_day(day))
    return [
        {"date": day, **_fields(_ints(values))}
        for day, values in zip(dates, pipe.execute(), strict=True)
    ]


def _fields(counters: dict[str, int]) -> dict[str, int]:
    """The request and build counters under their answer names."""
    return {
        "requests": counters.get("requests", 0),
        **{outcome: counters.get(f"requests:{outcome}", 0) for outcome in OUTCOMES},
        "succeeded": counters.get("builds:succeeded", 0),
        "failed": counters.get("builds:failed", 0),
    }


def hit_ratio(counters: dict[str, int]) -> float | None:
    """Requests answered from a kept result among those that were or needed one."""
    hits, misses = counters.get("hit", 0), counters.get("miss", 0)
    return round(hits / (hits + misses), 4) if hits + misses else None


def failures(connection: redis.Redis) -> dict[str, int]:
    """Failed builds by kind, ``{kind: count}``."""
    return _ints(connection.hgetall(redis_keys.stats_failures()))


def histogram(connection: redis.Redis, name: str) -> dict:
    """One histogram: cumulative ``buckets`` ``[[bound, count]]``, sum, count.

    Redis keeps a count per bucket (not cumulative), so one increment records
    an observation; the running total is made here."""
    raw = {
        key.decode(): float(value)
        for key, value in connection.hgetall(redis_keys.stats_histogram(name)).items()
    }
    running, buckets = 0, []
    for bound in (*map(str, DURATION_BUCKETS), "+Inf"):
        running += int(raw.get(bound, 0))
        buckets.append([bound, running])
    return {"buckets": buckets, "sum": raw.get("sum", 0.0), "count": running}


def top(connection: redis.Redis, name: str, limit: int = 20) -> list[dict]:
    """The most counted members of one sorted set, ``[{"name", "count"}]``."""
    members = connection.zrevrange(
        redis_keys.stats_top(name), 0, limit - 1, withscores=True
    )
    return [{"name": m.decode(), "count": int(score)} for m, score in members]


def build_summary(connection: redis.Redis, day_count: int = 30) -> dict:
    """What the builds gave: succeeded, failed by kind, durations, per day."""
    counters = _fields(totals(connection))
    duration = histogram(connection, "build_duration")
    return {
        "succeeded": counters["succeeded"],
        "failed": counters["failed"],
        "failures": failures(connection),
        "duration_seconds": {
            "count": duration["count"],
            "sum": round(duration["sum"], 3),
            "mean": round(duration["sum"] / duration["count"], 3)
            if duration["count"]
            else None,
        },
        "days": [
            {"date": d["date"], "succeeded": d["succeeded"], "failed": d["failed"]}
            for d in days(connection, day_count)
        ],
    }


def request_summary(connection: redis.Redis) -> dict:
    """Build requests since the start, by outcome, with the cache hit ratio."""
    counters = _fields(totals(connection))
    return {
        "total": counters["requests"],
        **{outcome: counters[outcome] for outcome in OUTCOMES},
        "hit_ratio": hit_ratio(counters),
    }


def package_counts(connection: redis.Redis) -> dict:
    """How many different extra packages were built, in all and per branch."""
    branches = [entry["name"] for entry in top(connection, "branches", TOP_LIMIT)]
    pipe = connection.pipeline(transaction=False)
    for name in ["packages", *(f"packages:{branch}" for branch in branches)]:
        pipe.zcard(redis_keys.stats_top(name))
    total, *per_branch = pipe.execute()
    return {"packages": total, "branches": dict(zip(branches, per_branch, strict=True))}
