"""Requests written to trick the server: an injection corpus in every field, bodies
that are too big, not JSON or oddly shaped, and ten thousand bad requests in a row.
Every answer is a 4xx JSON ``detail``; no command ever runs; memory stays flat."""

from __future__ import annotations

import gc
import logging
import sys
import time
from pathlib import Path

import pytest
import redis
import requests
from clients import C7, X86_APK, post, wait_for

from asu.build_request import BuildRequest
from asu.config import load_config
from asu.queue import build_queue

ALLOWED_FEED = "https://feeds.example.org/"
KEY = "RWS1BD5w+adc3j2Hqg9+b66CvLR7NlHbsj7wjNVj0XGt/othDgIAOJS+"


def corpus(canary: Path) -> list[str]:
    """What an attacker puts in a field to reach a shell, make or a path."""
    touch = f"touch {canary}"
    return [
        f"$({touch})",
        f"`{touch}`",
        f"luci;{touch}",
        f"luci; {touch}",
        f"luci|{touch}",
        f"luci && {touch}",
        f"luci\n{touch}",
        f"luci\r\n{touch}",
        "luci\x00htop",
        "luci htop",
        f"PACKAGES=$(shell {touch})",
        f"$(shell {touch})",
        "${HOME}",
        "luci'\"",
        "../../../../etc/passwd",
        "../../cache/keys/server.key",
        "/etc/passwd",
        str(canary),
        "a" * 100_000,
        "ｌｕｃｉ",  # fullwidth
        "luсi",  # Cyrillic es
        "23.05.4\u200b",  # zero-width space
        "٢٣.٠٥.٤",  # Arabic-Indic digits
        "ath79∕generic",  # division slash
        "-",
        "",
    ]


def field(key: str):
    return lambda value: {key: value}


#: Where a corpus entry goes: each field, and each key and value of the maps.
PLACES = {
    **{
        key: field(key)
        for key in (
            "version",
            "target",
            "profile",
            "filesystem",
            "distro",
            "version_code",
            "client",
            "rootfs_size_mb",
            "repositories_mode",
            "diff_packages",
        )
    },
    "packages": lambda value: {"packages": ["luci", value]},
    "packages_versions key": lambda value: {"packages_versions": {value: "1"}},
    "packages_versions value": lambda value: {"packages_versions": {"luci": value}},
    "repositories name": lambda value: {"repositories": {value: ALLOWED_FEED}},
    "repositories url": lambda value: {"repositories": {"f": ALLOWED_FEED + value}},
    "repository_keys": lambda value: {"repository_keys": [KEY, value]},
}
#: Corpus entries that are fine where they go ("" leaves a field out).
HARMLESS = {
    "client": {"", "luci htop"},  # "name version", as a User-Agent
    "repositories name": {"-"},  # names are ^[\w.-]+$ by contract
    "repositories url": {"", "-"},
    **{
        key: {""}
        for key in (
            "filesystem",
            "distro",
            "version_code",
            "rootfs_size_mb",
            "repositories_mode",
        )
    },
}


def hostile_bodies(canary: Path):
    """``(place, body)``: the C7 request with one field or entry made hostile."""
    for place, put in PLACES.items():
        for value in corpus(canary):
            if value not in HARMLESS.get(place, ()):
                yield place, C7 | put(value)


@pytest.fixture
def app_config(app_config):
    return app_config | {"repository_allow_list": [ALLOWED_FEED]}


def assert_refused(response, expected=(400, 404, 422)):
    assert response.status_code in expected, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert body["status"] == response.status_code
    assert isinstance(body["detail"], str) and body["detail"]


def test_injection_corpus_is_refused_in_every_field(client, tmp_path, caplog):
    canary = tmp_path / "canary"
    caplog.set_level(logging.ERROR)
    for _, body in hostile_bodies(canary):
        response = client.post("/api/v1/build", json=body)
        assert_refused(response)
    assert not canary.exists()
    assert not Path("canary").exists()
    assert caplog.records == [], "an error was logged"


def test_shell_text_in_defaults_is_built_into_the_image_and_never_run(
    live_server, worker, tmp_path
):
    canary = tmp_path / "canary"
    script = "".join(f"{line}\n" for line in corpus(canary)[:13] if "\0" not in line)
    response = wait_for(live_server, X86_APK | {"defaults": script})
    assert response.status_code == 200, response.json()["detail"]
    assert response.json()["request"]["defaults"] == script
    assert not canary.exists()


def test_the_worker_refuses_what_validation_would_have_caught(redis_url, worker):
    """Defence in depth: a request that skipped validation (a bug, or a Redis
    written by someone else) still never reaches make's command line."""
    connection = redis.Redis.from_url(redis_url)
    hostile = BuildRequest(
        version="25.12.0",
        target="x86/64",
        profile="generic",
        packages=("htop", "$(info INJECTED)", "$(shell echo INJECTED >&2)"),
    )
    job = build_queue.submit(connection, load_config(), hostile)
    deadline = time.monotonic() + 60
    while (
        answer := build_queue.answer(build_queue.fetch(connection, job.id))
    ).status == 202:
        assert time.monotonic() < deadline, answer.body
        time.sleep(0.1)
    assert answer.status == 500
    assert "refusing to run make with PACKAGES=" in answer.body["detail"]
    assert "INJECTED" not in answer.body["stdout"] + answer.body["stderr"]


@pytest.mark.parametrize(
    ("data", "content_type", "word"),
    [
        ("version=23.05.4", "application/x-www-form-urlencoded", "JSON"),
        ("not json at all", "text/plain", "JSON"),
        ("", "application/json", "JSON"),
        (b"\xff\xfe\x00garbage", "application/json", "JSON"),
        ("[1, 2, 3]", "application/json", "JSON object"),
        ('"a string"', "application/json", "JSON object"),
        ("null", "application/json", "JSON object"),
        ("[" * 5000 + "]" * 5000, "application/json", "JSON"),
        ('{"a":' * 100 + "1" + "}" * 100, "application/json", "nested"),
        ('{"version": 1' + "0" * 5000 + "}", "application/json", "JSON"),
        ('{"version": NaN}', "application/json", "version"),
        ("--x\r\nContent-Disposition: form-data\r\n\r\n{}\r\n--x--", None, "JSON"),
    ],
)
def test_bodies_that_are_not_a_request(client, data, content_type, word):
    headers = {"Content-Type": content_type or "multipart/form-data; boundary=x"}
    response = client.post("/api/v1/build", data=data, headers=headers)
    assert_refused(response, (400,))
    assert word in response.get_json()["detail"]


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"packages": [f"pkg{i}" for i in range(501)]}, "at most 500"),
        ({"packages_versions": {f"p{i}": "1" for i in range(501)}}, "more than"),
        ({"defaults": "x" * 20481}, "at most 20480"),
        ({"defaults": "echo \ud800"}, "UTF-8"),
        ({"rootfs_size_mb": 10**30}, "between 1 and"),
        ({"repositories": {f"r{i}": ALLOWED_FEED for i in range(17)}}, "at most"),
    ],
)
def test_fields_over_their_limits(client, change, word):
    response = client.post("/api/v1/build", json=C7 | change)
    assert_refused(response, (400,))
    assert word in response.get_json()["detail"]


def test_body_over_the_size_limit_is_413_json(live_server, app_config):
    limit = 256 * 1024
    big = C7 | {"defaults": "#" * limit}
    response = post(live_server, big)
    assert response.status_code == 413
    assert response.json()["status"] == 413
    assert str(limit) in response.json()["detail"]
    assert post(live_server, C7 | {"packages": ["$bad"]}).status_code == 400


class TestSmallerBodyLimit:
    @pytest.fixture
    def app_config(self, app_config):
        return app_config | {"max_request_bytes": 1000}

    def test_the_limit_is_configuration(self, live_server):
        response = post(live_server, C7 | {"defaults": "#" * 1000})
        assert response.status_code == 413
        assert "1000 bytes" in response.json()["detail"]
        assert post(live_server, C7).status_code == 202


def test_every_error_is_json(client):
    for method, url in [
        ("delete", "/api/v1/build"),
        ("put", f"/api/v1/build/{'0' * 64}"),
        ("get", "/api/v1/build/../../etc/passwd"),
        ("get", "/api/v1/build/%00"),
        ("get", "/no/such/page"),
        ("post", "/api/v1/health"),
    ]:
        response = getattr(client, method)(url)
        assert 400 <= response.status_code < 500
        assert response.is_json, (method, url)
        assert response.json["status"] == response.status_code
    assert "POST" in client.delete("/api/v1/build").headers["Allow"]


def test_ten_thousand_bad_requests_leave_no_trace_in_memory(client):
    """Counted in live allocations (``sys.getallocatedblocks``), which unlike the
    process's RSS shows even a small object kept per request, at no cost."""

    def bad(i: int):
        kinds = (
            {"packages": [f"pkg{i}$(id)"]},
            {"version": f"{i}.bad"},
            {"packages_versions": {f"pkg{i}": f"1.{i}`id`"}},
            {"target": f"ath79/{i};id"},
        )
        change = {"profile": f"no-such-{i}"} if i % 10 == 0 else kinds[i % 4]
        return client.post("/api/v1/build", json=C7 | change)

    for i in range(500):  # caches, pools and lazy imports settle first
        bad(i)
    logging.disable()  # log records pytest keeps for its report would count
    try:
        gc.collect()
        before = sys.getallocatedblocks()
        statuses = {bad(i).status_code for i in range(500, 10_500)}
        gc.collect()
        growth = sys.getallocatedblocks() - before
    finally:
        logging.disable(logging.NOTSET)
    assert statuses == {400}
    assert growth < 1000, f"{growth} more allocations after 10 000 bad requests"


def test_hostile_paths_never_reach_the_store(live_server):
    for path in ("..%2f..%2fcache/keys/server.key", ".%2e/config.yml", "%2e%2e"):
        response = requests.get(f"{live_server}/store/{path}", timeout=10)
        assert response.status_code == 404
        assert response.json()["status"] == 404


@pytest.mark.unloaded
def test_requests_never_make_the_server_fetch_upstream(client, upstream):
    """What the janitor has not loaded is unknown: no request, on any route, makes
    the server ask upstream (each would cost upstream requests and a web thread)."""
    before = len(upstream.request_log)
    answers = [
        client.post("/api/v1/build", json=C7),
        client.post("/api/v1/build", json=X86_APK | {"version": "24.10.4"}),
        client.get("/api/v1/devices/23.05.4"),
        client.get("/api/v1/devices/23.05.4/ath79/generic/tplink_archer-c7-v5"),
        client.get("/api/v1/revision/23.05.4/ath79/generic"),
        client.get("/api/v1/versions"),
    ]
    assert [a.status_code for a in answers[:5]] == [400] * 5
    assert all(a.json["detail"].startswith("version:") for a in answers[:5])
    assert len(upstream.request_log) == before
