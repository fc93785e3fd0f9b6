"""The app as a client sees it: health, CORS, JSON errors, URL quirks."""

import http.client
from urllib.parse import urlsplit

import requests

import asu
from asu import create_app


def test_health_sees_redis_and_the_worker(client, worker):
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json == {
        "status": 200,
        "redis": True,
        "workers": 1,
        "version": asu.__version__,
    }


def test_health_without_workers_counts_zero(client):
    assert client.get("/api/v1/health").json["workers"] == 0


def test_health_is_503_json_when_redis_is_down(app_config):
    app = create_app(app_config | {"redis_url": "redis://127.0.0.1:1/0"})
    response = app.test_client().get("/api/v1/health")
    assert response.status_code == 503
    assert response.json["status"] == 503
    assert response.json["redis"] is False


def test_unknown_route_is_json_404(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json["status"] == 404
    assert response.json["detail"]


def test_preflight_allows_any_origin(live_server):
    response = requests.options(
        f"{live_server}/api/v1/health",
        headers={
            "Origin": "https://firmware-selector.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type",
        },
    )
    assert 200 <= response.status_code < 300
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "content-type" in response.headers["Access-Control-Allow-Headers"].lower()


def test_doubled_leading_slash_and_query_string(live_server):
    # A server URL configured with a trailing slash makes clients send "//api".
    parts = urlsplit(live_server)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    connection.request("GET", "//api/v1/health?1732541234")
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Access-Control-Allow-Origin") == "*"
