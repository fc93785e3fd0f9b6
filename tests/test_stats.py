"""Statistics counted in Redis as requests arrive and builds finish, and the
``/api/v1/stats…`` and ``/api/v1/status`` answers built from them."""

from __future__ import annotations

import os

import pytest
import redis
from clients import C7, explain, post, wait_for

from asu import redis_keys, stats
from asu.branches import branch_name
from asu.build_request import BuildRequest


@pytest.fixture
def connection(redis_url) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def test_requests_builds_failures_and_popularity_end_to_end(
    request, live_server, client
):
    body = C7 | {"client": "stats-test/1.0"}
    assert post(live_server, body).json()["detail"] == "queued"
    assert post(live_server, body).json()["detail"] == "queued"  # joins the job
    assert client.get("/api/v1/stats").json["queue_length"] == 1
    request.getfixturevalue("worker")
    assert wait_for(live_server, body).status_code == 200  # joins, then polls
    assert post(live_server, body).status_code == 200  # a kept result: a hit
    wrong_revision = body | {"version_code": "r1-0000000000"}
    failed = wait_for(live_server, wrong_revision)
    assert failed.status_code == 500, explain(failed)

    summary = client.get("/api/v1/stats").json
    assert summary["queue_length"] == 0
    assert summary["requests"] == {
        "total": 5,
        "hit": 1,
        "joined": 2,
        "miss": 2,
        "hit_ratio": 0.3333,
    }
    builds = summary["builds"]
    assert (builds["succeeded"], builds["failed"]) == (1, 1)
    assert builds["failures"] == {"version_code": 1}
    assert builds["duration_seconds"]["count"] == 2
    assert builds["duration_seconds"]["mean"] > 0
    assert summary["queue_wait_seconds"]["count"] == 2
    today = summary["days"][-1]
    assert today["date"] == stats.today() and len(summary["days"]) == 30
    assert (today["requests"], today["succeeded"], today["failed"]) == (5, 1, 1)
    assert summary["clients"] == [{"name": "stats-test/1.0", "count": 5}]
    assert summary["versions"] == [{"name": "23.05.4", "count": 1}]
    assert summary["profiles"] == [
        {"name": "ath79/generic tplink_archer-c7-v5", "count": 1}
    ]

    # The seed's endpoints: luci and htop are not in the C7's default packages.
    popular = client.get("/api/v1/stats/popular_packages").json
    assert sorted(entry["name"] for entry in popular) == ["htop", "luci"]
    assert client.get("/api/v1/stats/popular_packages?branch=23.05").json == popular
    assert client.get("/api/v1/stats/popular_packages?branch=24.10").json == []
    assert client.get("/api/v1/stats/popular_targets").json == [
        {"name": "ath79/generic", "count": 1}
    ]
    assert client.get("/api/v1/stats/images").json == builds
    assert client.get("/api/v1/stats/packages").json == {
        "packages": 2,
        "branches": {"23.05": 2},
    }


def test_extra_packages_leave_out_defaults_and_removals():
    result = {"default_packages": ["base-files", "dropbear"], "device_packages": ["x"]}
    request = {"packages": ["dropbear", "htop", "-ppp", "x", "htop", "luci"]}
    assert stats.extra_packages(request, result) == ["htop", "luci"]


@pytest.mark.parametrize(
    "version, branch",
    [("23.05.4", "23.05"), ("24.10.0-rc2", "24.10"), ("24.10-SNAPSHOT", "24.10")],
)
def test_branch_of_a_version(version, branch):
    assert branch_name(version) == branch
    assert branch_name("SNAPSHOT") == "SNAPSHOT"


def test_duration_histogram_is_cumulative(connection):
    request = C7 | {"profile": "tplink_archer-c7-v5"}
    for seconds in (0.5, 7, 5000):
        stats.count_build(connection, request, seconds, None, error=TimeoutError())
    histogram = stats.histogram(connection, "build_duration")
    assert dict(histogram["buckets"]) == {
        "1": 1,
        "5": 1,
        "10": 2,
        "30": 2,
        "60": 2,
        "120": 2,
        "300": 2,
        "600": 2,
        "1200": 2,
        "+Inf": 3,
    }
    assert histogram["sum"] == pytest.approx(5007.5)
    assert stats.failures(connection) == {"timeout": 3}
    assert stats.histogram(connection, "queue_wait")["count"] == 0


def test_names_clients_choose_are_kept_bounded(connection, monkeypatch):
    monkeypatch.setattr(stats, "TOP_LIMIT", 3)
    popular = BuildRequest(**C7, client="popular/1")
    for _ in range(3):
        stats.count_request(connection, popular, "miss")
    for number in range(10):
        made_up = BuildRequest(**C7, client=f"made-up/{number}")
        stats.count_request(connection, made_up, "miss")
    assert connection.zcard(redis_keys.stats_top("clients")) == 3
    assert stats.top(connection, "clients", 1) == [{"name": "popular/1", "count": 3}]


def test_counting_never_fails_a_request_when_redis_is_down(caplog):
    down = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    stats.count_request(down, BuildRequest(**C7), "hit")
    assert "not counted" in caplog.text


def test_status_reports_queue_workers_and_the_janitor(client, app_config, worker):
    answer = client.get("/api/v1/status").json
    assert answer["workers"] == 1 and answer["queue_length"] == 0
    assert answer["workers_busy"] == 0 and answer["janitor_last_run"] is None

    overview = os.path.join(app_config["public_path"], "json/v1/overview.json")
    os.makedirs(os.path.dirname(overview))
    with open(overview, "w") as file:
        file.write("{}")
    os.utime(overview, (1767225600, 1767225600))
    answer = client.get("/api/v1/status").json
    assert answer["janitor_last_run"] == "2026-01-01T00:00:00Z"


def test_limit_is_bounded(client, connection):
    for number in range(30):
        connection.zincrby(redis_keys.stats_top("targets"), number, f"t/{number}")
    assert len(client.get("/api/v1/stats/popular_targets").json) == 20
    assert len(client.get("/api/v1/stats/popular_targets?limit=5").json) == 5
    assert len(client.get("/api/v1/stats/popular_targets?limit=999").json) == 30
    assert client.get("/api/v1/stats/popular_targets?limit=x").json[0] == {
        "name": "t/29",
        "count": 29,
    }


def test_days_list_today_and_zeros(connection):
    stats.count_request(connection, BuildRequest(**C7), "hit")
    days = stats.days(connection, 3)
    assert [d["date"] for d in days][-1] == stats.today()
    assert days[-1]["requests"] == 1 and days[-1]["hit"] == 1
    assert days[0]["requests"] == 0
    assert 0 < connection.ttl(redis_keys.stats_day(stats.today())) <= stats.DAY_TTL
