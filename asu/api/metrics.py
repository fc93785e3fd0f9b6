"""Prometheus metrics at ``/metrics``, read from Redis at scrape time.

Nothing is counted in the process that serves the scrape: every gunicorn worker
and every RQ worker counts into Redis (:mod:`asu.stats`), so whichever process
answers sees the same totals.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis
from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from asu import stats
from asu.api import app_redis
from asu.queue import backend_state

bp = Blueprint("metrics", __name__)

#: Histograms kept by :mod:`asu.stats` and what they measure.
HISTOGRAMS = {
    "build_duration": "Seconds from a build's start to its end, failed ones included",
    "queue_wait": "Seconds a build waited in the queue before a worker took it",
}
#: Sorted sets of :mod:`asu.stats` exported as counters: set, metric, help, label.
TOPS = (
    ("versions", "asu_builds_by_version", "Successful builds by version", "version"),
    ("targets", "asu_builds_by_target", "Successful builds by target", "target"),
    ("clients", "asu_requests_by_client", "Build requests by client", "client"),
)
#: The most label values exported per sorted set (the most counted).
TOP_LABELS = 50


class RedisCollector(Collector):
    """Yields the server's metrics from Redis each time it is collected."""

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection

    def collect(self) -> Iterator[Metric]:
        yield from self._backend()
        totals = stats.totals(self.connection)
        yield from self._requests(totals)
        yield from self._builds(totals)
        for name, documentation in HISTOGRAMS.items():
            yield self._histogram(name, documentation)
        yield from self._tops()

    def _backend(self) -> Iterator[Metric]:
        now = backend_state.backend(self.connection)
        yield GaugeMetricFamily(
            "asu_queue_length", "Builds waiting in the queue", now["queue_length"]
        )
        yield GaugeMetricFamily("asu_workers", "RQ workers seen", now["workers"])
        yield GaugeMetricFamily(
            "asu_workers_busy", "RQ workers building now", now["workers_busy"]
        )

    def _requests(self, totals: dict[str, int]) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "asu_requests",
            "Build requests by how they were answered (hit: kept result, "
            "joined: a build in progress, miss: a new build)",
            labels=["outcome"],
        )
        for outcome in stats.OUTCOMES:
            family.add_metric([outcome], totals.get(f"requests:{outcome}", 0))
        yield family

    def _builds(self, totals: dict[str, int]) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "asu_builds", "Builds finished, by result", labels=["result"]
        )
        for result in ("succeeded", "failed"):
            family.add_metric([result], totals.get(f"builds:{result}", 0))
        yield family
        failures = CounterMetricFamily(
            "asu_build_failures", "Failed builds by kind", labels=["kind"]
        )
        for kind, count in stats.failures(self.connection).items():
            failures.add_metric([kind], count)
        yield failures

    def _histogram(self, name: str, documentation: str) -> Metric:
        data = stats.histogram(self.connection, name)
        buckets = [(floatToGoString(bound), count) for bound, count in data["buckets"]]
        return HistogramMetricFamily(
            f"asu_{name}_seconds", documentation, buckets=buckets, sum_value=data["sum"]
        )

    def _tops(self) -> Iterator[Metric]:
        for name, metric, documentation, label in TOPS:
            family = CounterMetricFamily(metric, documentation, labels=[label])
            for entry in stats.top(self.connection, name, TOP_LABELS):
                family.add_metric([entry["name"]], entry["count"])
            yield family


@bp.get("/metrics")
def metrics() -> Response:
    """The Prometheus text exposition of every metric."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(app_redis()))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
