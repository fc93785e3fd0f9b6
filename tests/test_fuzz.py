"""Property-based fuzzing of request bodies over HTTP: random JSON of every type,
nesting and size in every field. Every answer is a 4xx JSON ``detail``, no error is
logged, and the server answers its health check afterwards."""

from __future__ import annotations

import json
import logging

import pytest
import requests
from clients import C7
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIELDS = (
    "version",
    "target",
    "profile",
    "packages",
    "packages_versions",
    "diff_packages",
    "defaults",
    "rootfs_size_mb",
    "filesystem",
    "version_code",
    "distro",
    "client",
    "repositories",
    "repository_keys",
    "repositories_mode",
)
LEGACY_POSTS = (
    "/api/build",
    "/api/upgrade-request",
    "/api/build-request",
    "/api/image-request",
    "/image-request",
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.text(alphabet="$`;|&\n\0 ./\\'\"=", max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=25,
)
#: Targets that look real but are not, so that a body is never a valid request.
fake_targets = st.text(max_size=40) | st.from_regex(
    r"\A[a-z0-9]{1,12}/zz[a-z0-9_-]{0,12}\Z"
)
mutated_requests = st.fixed_dictionaries(
    {"target": fake_targets},
    optional={field: json_values for field in FIELDS if field != "target"},
).map(lambda changes: C7 | changes)
random_objects = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=12), json_values, max_size=12
)

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def http(live_server, caplog):
    caplog.set_level(logging.ERROR)
    with requests.Session() as session:
        yield session
    assert caplog.records == [], "an error was logged"
    health = requests.get(f"{live_server}/api/v1/health", timeout=10)
    assert health.status_code == 200


def send(http, url: str, body) -> requests.Response:
    data = json.dumps(body, allow_nan=True)
    headers = {"Content-Type": "application/json"}
    return http.post(url, data=data, headers=headers, timeout=30)


def assert_refused(response: requests.Response, allowed=(400, 404, 422)) -> None:
    assert response.status_code in allowed, response.text[:300]
    body = response.json()
    assert body["status"] == response.status_code
    assert isinstance(body["detail"], str) and body["detail"]


@FUZZ
@given(body=mutated_requests)
def test_requests_with_random_fields(http, live_server, body):
    assert_refused(send(http, f"{live_server}/api/v1/build", body))


@FUZZ
@given(body=json_values | random_objects)
def test_random_bodies(http, live_server, body):
    assert_refused(send(http, f"{live_server}/api/v1/build", body))


@settings(FUZZ, max_examples=60)
@given(path=st.sampled_from(LEGACY_POSTS), body=json_values | mutated_requests)
def test_earlier_api_generations_never_fail_on_random_bodies(
    http, live_server, path, body
):
    response = send(http, f"{live_server}{path}", body)
    assert response.status_code < 500, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/json")
