"""``make demo``: the whole service on this machine against the offline upstream.

Starts, in order: the offline upstream's HTTP server, a private ``redis-server``
(unless ``ASU_REDIS_URL`` is set), one RQ worker and the web server; prints the URL
and a ready ``curl`` request; runs until SIGINT or SIGTERM, then stops every process
it started. Logs go to ``var/demo/logs/``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

from asu.local.services import (
    ProcessGroup,
    flask_command,
    free_port,
    gunicorn_command,
    http_ok,
    start_redis,
    without_password,
)
from offline_upstream import adb_writer
from offline_upstream.tree import is_current, signing_key

VAR = Path("var")
DEMO = VAR / "demo"
LOGS = DEMO / "logs"
UPSTREAM_TREE = VAR / "offline-upstream"
#: Seconds between the demo janitor's passes over the offline upstream.
JANITOR_INTERVAL = 300

EXAMPLE_REQUEST = {
    "version": "23.05.4",
    "target": "ath79/generic",
    "profile": "tplink,archer-c7-v5",
    "packages": ["luci", "htop"],
    "defaults": "uci set system.@system[0].hostname=demo\nuci commit system\n",
    "client": "demo/1",
}


def _environment(upstream_url: str, redis_url: str) -> dict[str, str]:
    """The configuration every child process gets; the user's ASU_* values win."""
    defaults = {
        "ASU_REDIS_URL": redis_url,
        "ASU_UPSTREAM_URL": upstream_url,
        "ASU_UPSTREAM_KEYS": signing_key().public_key.to_text().splitlines()[-1],
        "ASU_UPSTREAM_APK_KEYS": adb_writer.signing_key().public_pem(),
        "ASU_PUBLIC_PATH": str((DEMO / "public").resolve()),
        "ASU_CACHE_PATH": str((DEMO / "cache").resolve()),
    }
    return defaults | dict(os.environ) | {"ASU_REDIS_URL": redis_url}


def run() -> int:
    """Bring the demo up, wait for a signal, bring it down."""
    LOGS.mkdir(parents=True, exist_ok=True)
    demo = ProcessGroup(LOGS)
    status = demo.run(lambda: _bring_up(demo))
    print("demo stopped", flush=True)
    return status


def _bring_up(demo: ProcessGroup) -> None:
    python = sys.executable
    if not is_current(UPSTREAM_TREE):
        for unfinished in VAR.glob(f".{UPSTREAM_TREE.name}.*"):
            shutil.rmtree(unfinished)  # a generator stopped before its rename
        print(f"generating the offline upstream in {UPSTREAM_TREE} ...", flush=True)
        demo.run_to_end(
            "generate",
            [python, "-m", "offline_upstream", "generate", str(UPSTREAM_TREE)],
        )

    upstream_port = free_port()
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    serve = [python, "-m", "offline_upstream", "serve", str(UPSTREAM_TREE)]
    upstream = demo.start("upstream", [*serve, "--port", str(upstream_port)])
    demo.wait_until(
        lambda: http_ok(f"{upstream_url}/.versions.json"), "upstream", upstream
    )
    print(f"offline upstream: {upstream_url}", flush=True)

    redis_url = os.environ.get("ASU_REDIS_URL", "")
    if not redis_url:
        password = secrets.token_urlsafe(24)
        redis_proc, redis_url = start_redis(DEMO / "redis", password=password)
        demo.adopt("redis-server", redis_proc)
    print(f"redis: {without_password(redis_url)}", flush=True)

    env = _environment(upstream_url, redis_url)
    print("loading upstream metadata (janitor init) ...", flush=True)
    loaded = demo.run_to_end("janitor-init", flask_command("janitor", "init"), env)
    print(f"  {loaded.strip().splitlines()[-1]}", flush=True)
    update = flask_command("janitor", "update", "--interval", str(JANITOR_INTERVAL))
    demo.start("janitor", update, env)
    demo.start("worker", flask_command("worker"), env)
    port = int(os.environ.get("ASU_PORT", "8000"))
    url = f"http://127.0.0.1:{port}"
    web = demo.start("web", gunicorn_command(f"127.0.0.1:{port}"), env)
    demo.wait_until(lambda: _workers_seen(url) > 0, f"web server on {url}", web)
    _print_welcome(url)
    _show_one_build(url, demo)


def _workers_seen(url: str) -> int:
    if not http_ok(f"{url}/api/v1/health"):
        return 0
    with urllib.request.urlopen(f"{url}/api/v1/health", timeout=2) as response:
        return json.load(response)["workers"]


def _print_welcome(url: str) -> None:
    with urllib.request.urlopen(f"{url}/api/v1/health", timeout=2) as response:
        health = json.load(response)
    body = json.dumps(EXAMPLE_REQUEST)
    print(
        f"\nasu is up at {url}\n"
        f"health: {json.dumps(health)}\n\n"
        f"request a build:\n"
        f"  curl -s -H 'Content-Type: application/json' -d '{body}' "
        f"{url}/api/v1/build\n\n"
        f"logs in {LOGS}/; stop with Ctrl-C\n",
        flush=True,
    )


def _post(url: str, body: dict) -> tuple[int, dict]:
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "asu-demo/1"}
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def _show_one_build(url: str, demo: ProcessGroup) -> None:
    """Request the example build and poll it until it is done, as a client does."""
    print("building the example request end to end ...", flush=True)
    status, body = _post(f"{url}/api/v1/build", EXAMPLE_REQUEST)
    while status == 202:
        stage = body.get("stage") or body.get("detail")
        print(f"  {status} {stage} (queue position {body.get('queue_position', '-')})")
        demo.sleep(1)
        with urllib.request.urlopen(
            f"{url}/api/v1/build/{body['request_hash']}", timeout=30
        ) as response:
            status, body = response.status, json.load(response)
    if status != 200:
        print(f"  build answered {status}: {body.get('detail')}", flush=True)
        return
    print(f"  200 done: {body['id']} {body['version_number']} {body['version_code']}")
    for image in body["images"]:
        print(f"  {url}/store/{body['bin_dir']}/{image['name']}")
        print(f"      sha256 {image['sha256']}, {image['size']} bytes")
    print(f"  {len(body['manifest'])} packages in the image\n", flush=True)


if __name__ == "__main__":
    sys.exit(run())
