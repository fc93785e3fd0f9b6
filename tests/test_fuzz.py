"""Property-based fuzzing of every POST route of every API generation, over HTTP.

Each route gets random JSON (of every type, nesting and size) and its own
generation's valid request with a few fields changed, dropped or added. No answer
is a 5xx, every 4xx is a JSON body in that generation's error shape, no error is
logged, and the server answers its health check afterwards.

`make test` draws the same examples every run (tests/conftest.py); `make fuzz`
draws new ones, many more. What either found is kept below as ``@example``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from clients import C7, UPGRADE_2019
from conftest import serving
from hypothesis import example, given
from hypothesis import strategies as st

#: The body first seen answered with a 500 (by ``POST /api/build``).
EMPTY_TARGET_LIST_DISTRO = {
    "version": "23.05.4",
    "target": "",
    "profile": "tplink,archer-c7-v5",
    "packages": ["luci", "htop"],
    "distro": [],
}


def _status_and_detail(response: requests.Response) -> None:
    body = response.json()
    assert body["status"] == response.status_code
    assert isinstance(body["detail"], str) and body["detail"]


def _status_and_error(response: requests.Response) -> None:
    body = response.json()
    assert body["status"] == response.status_code
    assert isinstance(body["error"], str) and body["error"]


def _error(response: requests.Response) -> None:
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]


def _error_word_and_detail(response: requests.Response) -> None:
    body = response.json()
    assert body["status"] == "error"
    assert isinstance(body["detail"], str) and body["detail"]


@dataclass(frozen=True)
class Route:
    """A POST route, a request its clients send, and its error shape."""

    path: str
    valid: dict[str, Any]
    error_shape: Callable[[requests.Response], None]

    def __str__(self) -> str:
        return self.path


BOARD_2017 = {
    "distro": "LEDE",
    "version": "23.05.4",
    "target": "ath79",
    "subtarget": "generic",
    "board": "tplink,archer-c7-v5",
    "packages": {"luci": "git-23.093.57104-ce20b4a", "htop": "3.2.1-1"},
}
CHECK_2019 = {
    "distro": "OpenWrt",
    "version": "23.05.4",
    "target": "ath79/generic",
    "installed": {"luci": "git-23.093.57104-ce20b4a", "htop": "3.2.1-1"},
}
ROUTES = (
    Route("/api/v1/build", C7, _status_and_detail),
    Route(
        "/api/build",
        {k: v for k, v in C7.items() if k != "target"},
        _error_word_and_detail,
    ),
    Route("/api/upgrade-request", UPGRADE_2019, _error),
    Route(
        "/api/build-request",
        UPGRADE_2019 | {"defaults": "uci set system.@system[0].hostname=ap\n"},
        _error,
    ),
    Route("/api/upgrade-check", CHECK_2019, _status_and_error),
    Route("/image-request", BOARD_2017, _status_and_error),
    Route("/api/image-request", BOARD_2017, _status_and_error),
    Route("/update-request", BOARD_2017, _status_and_error),
    Route("/api/update-request", BOARD_2017, _status_and_error),
)
#: Every field some generation reads.
FIELDS = sorted(
    {field for route in ROUTES for field in route.valid}
    | {
        "packages_versions",
        "diff_packages",
        "defaults",
        "rootfs_size_mb",
        "filesystem",
        "version_code",
        "client",
        "repositories",
        "repository_keys",
        "repositories_mode",
    }
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.text(alphabet="$`;|&\n\0 ./\\'\"=", max_size=30)
    # JSON may carry lone surrogates ("\ud800"), which are no UTF-8 text.
    | st.text(st.characters(categories=["Cs"]) | st.characters(), max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=25,
)
random_objects = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=12), json_values, max_size=12
)
#: Strings that pass (or nearly pass) the server's patterns, so that changed
#: requests get past the first check and reach the lookups behind it.
plausible = st.sampled_from(
    [
        "",
        "23.05.4",
        "24.10.4",
        "25.12.0",
        "SNAPSHOT",
        "24.10-SNAPSHOT",
        "99.99.99",
        "ath79/generic",
        "x86/64",
        "ath79",
        "generic",
        "64",
        "tplink,archer-c7-v5",
        "tplink_archer-c7-v5",
        "openwrt",
        "OpenWrt",
        "LEDE",
        "luci",
        "htop",
        "-luci",
        "+htop",
        "git-23.093.57104-ce20b4a",
        "3.2.1-1",
        "squashfs",
        "ext4",
        "append",
        "replace",
        "1024",
        "1025",
        "r28427-6df0e3d02a",
        "auc/0.3.2",
        "\ud800",
    ]
) | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.,+~:/-]{0,24}", fullmatch=True)
#: A field left out of a changed request.
DROP = "(dropped)"
#: What a changed field becomes.
new_values = (
    st.just(DROP)
    | plausible
    | json_values
    | st.lists(plausible, max_size=8)
    | st.dictionaries(plausible, plausible | json_values, max_size=8)
)
#: One to four fields of a valid request changed, dropped or added.
changes = st.dictionaries(st.sampled_from(FIELDS), new_values, min_size=1, max_size=4)


def changed(valid: dict, change: dict) -> dict:
    """``valid`` with ``change`` made."""
    return {key: value for key, value in (valid | change).items() if value != DROP}


@pytest.fixture(params=ROUTES, ids=str)
def route(request) -> Route:
    return request.param


@pytest.fixture(scope="module")
def loaded_settings() -> dict:
    # Requests the changes leave valid are queued (no worker builds them): no
    # per-client or queue limit then hides the paths behind a new build.
    return {
        "max_builds_per_client": 0,
        "max_client_builds_in_flight": 0,
        "max_pending_jobs": 100_000,
    }


@pytest.fixture(scope="module")
def server(loaded) -> Iterator[str]:
    """One live server for the module, with the offline upstream's metadata
    loaded (a ``janitor init`` takes seconds)."""
    with serving(loaded) as url:
        yield url


@pytest.fixture
def http(server, caplog):
    caplog.set_level(logging.ERROR)
    with requests.Session() as session:
        yield session
    assert caplog.records == [], "an error was logged"
    health = requests.get(f"{server}/api/v1/health", timeout=10)
    assert health.status_code == 200


def send(http: requests.Session, url: str, body: Any) -> requests.Response:
    """POST ``body`` as JSON (bytes as they are)."""
    data = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True)
    headers = {"Content-Type": "application/json"}
    return http.post(url, data=data, headers=headers, timeout=30)


def assert_answered(route: Route, response: requests.Response) -> None:
    """No 5xx; a 4xx in the route's error shape; a JSON answer (or 204)."""
    assert response.status_code < 500, response.text[:300]
    if response.status_code == 204:
        return
    assert response.headers["Content-Type"].startswith("application/json")
    if response.status_code >= 400:
        route.error_shape(response)


def test_each_routes_valid_request_is_accepted(http, server, route):
    # The property tests change these requests: they must be real ones.
    response = send(http, f"{server}{route.path}", route.valid)
    assert response.status_code in (200, 201, 202), response.text[:300]


def test_the_body_that_gave_a_500_is_refused_by_every_generation(http, server, route):
    response = send(http, f"{server}{route.path}", EMPTY_TARGET_LIST_DISTRO)
    assert 400 <= response.status_code < 500, response.text[:300]
    route.error_shape(response)


def test_an_oversized_body_is_refused_in_the_generations_shape(http, server, route):
    big = route.valid | {"defaults": "#" * 256 * 1024}
    response = send(http, f"{server}{route.path}", big)
    assert response.status_code == 413
    route.error_shape(response)


@given(body=json_values | random_objects | st.binary())
def test_random_bodies(http, server, route, body):
    assert_answered(route, send(http, f"{server}{route.path}", body))


@given(change=changes)
@example(change={"target": "", "distro": []})
@example(change={"defaults": "\ud800"})
@example(change={"profile": False})
def test_changed_requests(http, server, route, change):
    body = changed(route.valid, change)
    assert_answered(route, send(http, f"{server}{route.path}", body))
