"""Limits an operator sets: new builds per client (429), the queue (503), both with
``Retry-After``; cached answers and polls are never limited. Jobs stay queued here:
no worker runs, so every accepted request is one new build."""

from __future__ import annotations

import time

import pytest
import redis
import requests
from clients import C7, X86_APK, post

from asu import create_app, redis_keys
from asu.queue.build_queue import fetch
from asu.queue.limits import client_id

WINDOW = 600


@pytest.fixture
def app_config(app_config):
    return app_config | {"max_builds_per_client": 2, "client_builds_window": WINDOW}


def new_build(n: int) -> dict:
    return C7 | {"packages": ["luci", f"-ppp{'p' * n}"]}


def test_new_builds_over_the_limit_are_429_until_the_window_ends(live_server):
    first, second = post(live_server, new_build(1)), post(live_server, new_build(2))
    assert {first.status_code, second.status_code} == {202}
    refused = post(live_server, new_build(3))
    assert refused.status_code == 429
    assert refused.json()["status"] == 429
    assert "127.0.0.1" in refused.json()["detail"]
    assert 0 < int(refused.headers["Retry-After"]) <= WINDOW
    assert refused.headers["Access-Control-Allow-Origin"] == "*"


def test_cached_answers_and_polls_are_not_limited(live_server):
    accepted = post(live_server, new_build(1)).json()
    post(live_server, new_build(2))
    for _ in range(20):
        assert post(live_server, new_build(1)).status_code == 202
        poll = f"{live_server}/api/v1/build/{accepted['request_hash']}"
        assert post(live_server, C7 | {"packages": ["$no"]}).status_code == 400
        assert requests.get(poll, timeout=10).status_code == 202
    assert post(live_server, new_build(3)).status_code == 429


def test_refused_requests_do_not_count(live_server):
    for _ in range(10):
        assert post(live_server, C7 | {"profile": "no-such-device"}).status_code == 400
    assert post(live_server, new_build(1)).status_code == 202


def test_the_counter_is_in_redis_and_expires(live_server, redis_url):
    post(live_server, new_build(1))
    connection = redis.Redis.from_url(redis_url)
    key = redis_keys.client_builds("127.0.0.1")
    assert connection.get(key) == b"1"
    assert 0 < connection.ttl(key) <= WINDOW


class TestBehindAProxy:
    @pytest.fixture
    def app_config(self, app_config):
        return app_config | {"trusted_proxies": 1}

    def test_clients_are_told_apart_by_the_proxy_header(self, client):
        def as_client(address: str, n: int):
            return client.post(
                "/api/v1/build",
                json=new_build(n),
                headers={"X-Forwarded-For": f"198.51.100.9, {address}"},
            )

        for n in (1, 2):
            assert as_client("192.0.2.1", n).status_code == 202
        assert as_client("192.0.2.1", 3).status_code == 429
        assert as_client("192.0.2.2", 3).status_code == 202  # another client


def test_without_a_proxy_the_header_is_ignored(client):
    for n in (1, 2, 3):
        response = client.post(
            "/api/v1/build",
            json=new_build(n),
            headers={"X-Forwarded-For": f"192.0.2.{n}"},
        )
    assert response.status_code == 429


def test_zero_means_no_limit(app_config):
    unlimited = {"max_builds_per_client": 0, "max_client_builds_in_flight": 0}
    client = create_app(app_config | unlimited).test_client()
    statuses = {
        client.post("/api/v1/build", json=new_build(n)).status_code for n in range(5)
    }
    assert statuses == {202}


class TestBuildsInFlight:
    """However many new builds a client may ask for per window, only a few of its
    builds wait or run at once: a few addresses cannot fill everybody's queue."""

    @pytest.fixture
    def app_config(self, app_config):
        return app_config | {
            "max_builds_per_client": 0,
            "max_client_builds_in_flight": 2,
        }

    def test_a_third_build_waits_until_one_is_done(self, live_server, redis_url):
        first = post(live_server, new_build(1)).json()["request_hash"]
        assert post(live_server, new_build(2)).status_code == 202
        refused = post(live_server, new_build(3))
        assert refused.status_code == 429
        assert "2 builds waiting or running" in refused.json()["detail"]
        assert int(refused.headers["Retry-After"]) > 0
        # Asking again for a build in flight is no new build.
        assert post(live_server, new_build(1)).status_code == 202
        fetch(redis.Redis.from_url(redis_url), first).cancel()
        assert post(live_server, new_build(3)).status_code == 202
        assert post(live_server, new_build(4)).status_code == 429

    def test_other_clients_are_not_held_back(self, client):
        def as_client(address: str, n: int):
            return client.post(
                "/api/v1/build",
                json=new_build(n),
                environ_base={"REMOTE_ADDR": address},
            )

        for n in (1, 2):
            assert as_client("192.0.2.1", n).status_code == 202
        assert as_client("192.0.2.1", 3).status_code == 429
        assert as_client("192.0.2.2", 3).status_code == 202


class TestBothLimits:
    """A request refused for the client's allowance of new builds holds none of
    its builds in flight."""

    @pytest.fixture
    def app_config(self, app_config):
        return app_config | {
            "max_builds_per_client": 1,
            "client_builds_window": 1,
            "max_client_builds_in_flight": 2,
        }

    def test_a_refused_request_holds_no_slot(self, live_server):
        assert post(live_server, new_build(1)).status_code == 202
        refused = post(live_server, new_build(2))
        assert refused.status_code == 429
        assert "too many new builds" in refused.json()["detail"]
        time.sleep(1.5)  # a new window: one more new build is allowed
        assert post(live_server, new_build(3)).status_code == 202


def test_queue_cap_is_503_with_retry_after(app_config):
    client = create_app(app_config | {"max_pending_jobs": 1}).test_client()
    assert client.post("/api/v1/build", json=C7).status_code == 202
    full = client.post("/api/v1/build", json=X86_APK)
    assert full.status_code == 503
    assert full.json["status"] == 503 and "queue is full" in full.json["detail"]
    assert int(full.headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    ("address", "client"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("not an address", "unknown"),
        (None, "unknown"),
    ],
)
def test_client_identity(address, client):
    assert client_id(address) == client
