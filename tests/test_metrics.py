"""Prometheus ``/metrics``: read from Redis at scrape time, so any process that
answers the scrape reports what every process counted."""

from __future__ import annotations

import json
import re

import pytest
import redis
from clients import C7, post, wait_for
from conftest import REPO
from prometheus_client.parser import text_string_to_metric_families

from asu import create_app, stats
from asu.build_request import BuildRequest


def scrape(client) -> dict[str, dict]:
    """``{family name: {labels as a sorted tuple, or sample name: value}}``."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")
    families = {}
    for family in text_string_to_metric_families(response.text):
        samples = {}
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            samples[key] = sample.value
        families[family.name] = samples
    return families


def value(families, family: str, sample: str | None = None, **labels) -> float:
    return families[family][(sample or family, tuple(sorted(labels.items())))]


def test_queue_and_workers(client, live_server, request):
    post(live_server, C7)
    families = scrape(client)
    assert value(families, "asu_queue_length") == 1
    assert value(families, "asu_workers") == 0
    request.getfixturevalue("worker")
    assert wait_for(live_server, C7).status_code == 200
    families = scrape(client)
    assert value(families, "asu_queue_length") == 0
    assert value(families, "asu_workers") == 1
    assert value(families, "asu_workers_busy") == 0
    assert value(families, "asu_builds", "asu_builds_total", result="succeeded") == 1
    by_target = value(
        families, "asu_builds_by_target", "asu_builds_by_target_total",
        target="ath79/generic",
    )  # fmt: skip
    assert by_target == 1


def test_counters_and_histograms_from_any_process(app_config, redis_url):
    # Counted by one process (say a worker) ...
    connection = redis.Redis.from_url(redis_url)
    request = C7 | {"profile": "tplink_archer-c7-v5"}
    stats.count_build(connection, request, 42.0, 3.0, error=TimeoutError())
    stats.count_build(connection, request, 0.4, 0.1, {"id": "tplink_archer-c7-v5"})
    # ... and scraped from another (say another gunicorn worker).
    families = scrape(create_app(app_config).test_client())

    assert value(families, "asu_builds", "asu_builds_total", result="failed") == 1
    kind = value(
        families, "asu_build_failures", "asu_build_failures_total", kind="timeout"
    )
    assert kind == 1
    histogram = "asu_build_duration_seconds"
    assert value(families, histogram, f"{histogram}_count") == 2
    assert value(families, histogram, f"{histogram}_sum") == pytest.approx(42.4)
    assert value(families, histogram, f"{histogram}_bucket", le="1.0") == 1
    assert value(families, histogram, f"{histogram}_bucket", le="30.0") == 1
    assert value(families, histogram, f"{histogram}_bucket", le="60.0") == 2
    assert value(families, histogram, f"{histogram}_bucket", le="+Inf") == 2
    wait = "asu_queue_wait_seconds"
    assert value(families, wait, f"{wait}_bucket", le="5.0") == 2
    versions = value(
        families, "asu_builds_by_version", "asu_builds_by_version_total",
        version="23.05.4",
    )  # fmt: skip
    assert versions == 1


def test_requests_by_outcome_and_client(client, redis_url):
    connection = redis.Redis.from_url(redis_url)
    for outcome in ("hit", "hit", "miss"):
        stats.count_request(connection, BuildRequest(**C7, client="auc/0.3.2"), outcome)
    families = scrape(client)
    requests_total = "asu_requests_total"
    assert value(families, "asu_requests", requests_total, outcome="hit") == 2
    assert value(families, "asu_requests", requests_total, outcome="joined") == 0
    assert value(families, "asu_requests", requests_total, outcome="miss") == 1
    by_client = value(
        families, "asu_requests_by_client", "asu_requests_by_client_total",
        client="auc/0.3.2",
    )  # fmt: skip
    assert by_client == 3


def test_grafana_dashboard_queries_only_metrics_we_export(client, redis_url):
    connection = redis.Redis.from_url(redis_url)
    stats.count_build(connection, C7, 1.0, 1.0, {"id": "tplink_archer-c7-v5"})
    stats.count_build(connection, C7, 1.0, 1.0, error=TimeoutError())
    stats.count_request(connection, BuildRequest(**C7, client="owut/1"), "miss")
    exported = {sample for samples in scrape(client).values() for sample, _ in samples}
    dashboard = json.loads((REPO / "misc" / "grafana-dashboard.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\basu_[a-z_]+", target["expr"])
    }
    assert len(queried) >= 8
    assert queried <= exported, queried - exported
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(set(ids)) == len(ids)
