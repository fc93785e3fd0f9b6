"""The files that run asu elsewhere: Dockerfile, docker-compose.yml, the systemd
units and the nginx configuration. No container engine runs here, so each is
checked with what can check it: hadolint, docker-compose's own validation, the
cross-references between services, ``systemd-analyze verify``, the commands they
start (run here with ``--help`` or gunicorn's ``--check-config``), and nginx
itself serving a store in front of the app."""

from __future__ import annotations

import configparser
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from clients import X86_APK, wait_for
from conftest import REPO

from asu.config import load_config
from asu.local import nginx_site
from asu.local.services import stop

BIN = Path(sys.executable).parent
SYSTEMD = REPO / "misc" / "systemd"
#: Where the units expect the installation; the tests map it onto this checkout.
INSTALLED = "/srv/asu/.venv/bin/"


def run_here(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Run a deployment's command with this checkout's virtualenv.

    Flask commands get ``--help`` (click still rejects unknown options and
    commands), gunicorn ``--check-config`` (it loads the app).
    """
    program = Path(argv[0]).name
    check = ["--check-config"] if program == "gunicorn" else ["--help"]
    command = [str(BIN / program), *argv[1:], *check]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASU_")}
    env["ASU_REDIS_URL"] = "redis://127.0.0.1:1/0"
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


def assert_runs(argv: list[str], tmp_path: Path) -> None:
    result = run_here(argv, tmp_path)
    assert result.returncode == 0, f"{shlex.join(argv)}:\n{result.stderr}"


# -- Dockerfile ---------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        tuple(line.split(None, 1))
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_passes_hadolint():
    hadolint = BIN / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--config", str(REPO / ".hadolint.yaml"), "Dockerfile"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_copies_only_what_the_context_keeps():
    kept = [
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for instruction, arguments in dockerfile_instructions():
        if instruction == "COPY":
            *sources, _ = arguments.split()
            for source in sources:
                assert source.rstrip("/") in kept, f"{source} is not in the context"
                assert (REPO / source).exists()


def test_dockerfile_command_loads_the_app(tmp_path):
    (cmd,) = [args for name, args in dockerfile_instructions() if name == "CMD"]
    assert_runs(json.loads(cmd), tmp_path)


# -- docker-compose.yml ---------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_file_is_valid_for_docker_compose():
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose)")

    def config(**environ: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [tool, "-f", "docker-compose.yml", "config", "--quiet"],
            cwd=REPO,
            capture_output=True,
            text=True,
            env=os.environ | environ,
        )

    result = config(ASU_REDIS_PASSWORD="a-long-random-string")
    assert result.returncode == 0, result.stderr
    # Without a password for Redis, compose refuses to start anything.
    unset = config(ASU_REDIS_PASSWORD="")
    assert unset.returncode != 0 and "ASU_REDIS_PASSWORD" in unset.stderr


def test_compose_services_and_volumes_refer_to_each_other(compose):
    services, volumes = compose["services"], compose["volumes"]
    assert set(services) == {"redis", "server", "worker", "janitor", "nginx"}
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for dependency in service.get("depends_on", ()):
            assert dependency in services, f"{name} depends on {dependency}"
        for mount in service.get("volumes", ()):
            source = mount.split(":", 1)[0]
            if source.startswith("."):
                assert (REPO / source).is_file(), f"{name} mounts {source}"
            else:
                assert source in volumes, f"{name} mounts undeclared {source}"
    # Redis keeps its data behind a password, and every app role shares the
    # store and the key.
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command
    assert "requirepass $$ASU_REDIS_PASSWORD" in redis_command
    for role in ("server", "worker", "janitor"):
        mounts = {m.split(":")[0]: m.split(":")[1] for m in services[role]["volumes"]}
        assert mounts == {"public": "/srv/asu/public", "cache": "/srv/asu/cache"}
    assert "public:/srv/asu/public:ro" in services["nginx"]["volumes"]


def test_compose_settings_are_real_config_keys(compose):
    for name in ("server", "worker", "janitor"):
        environ = {
            k: str(v) for k, v in compose["services"][name]["environment"].items()
        }
        config = load_config(environ=environ)
        assert config.redis_url.startswith("redis://:${ASU_REDIS_PASSWORD:?")
        assert config.redis_url.endswith("}@redis:6379/0")
        assert str(config.store_path) == "/srv/asu/public/store"
    assert load_config(environ={"ASU_TRUSTED_PROXIES": "1"}).trusted_proxies == 1


def test_compose_commands_run(compose, tmp_path):
    for name in ("worker", "janitor"):
        assert_runs(compose["services"][name]["command"], tmp_path)
    health = compose["services"]["server"]["healthcheck"]["test"]
    assert "/api/v1/health" in health[-1]


# -- systemd units ----------------------------------------------------------------


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(path)
    return parser


def test_systemd_units_start_commands_that_run(tmp_path):
    units = sorted(SYSTEMD.glob("*.service"))
    assert {u.name for u in units} >= {
        "asu-server.service",
        "asu-worker@.service",
        "asu-janitor.service",
    }
    for path in units:
        service = unit(path)["Service"]
        argv = shlex.split(service["ExecStart"])
        assert argv[0].startswith(INSTALLED), path.name
        argv = [
            arg.replace("%i", "1").replace("%H", socket.gethostname()) for arg in argv
        ]
        assert_runs(argv, tmp_path)
        assert service["WorkingDirectory"] == "/srv/asu"


def test_systemd_units_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    # The same units, pointed at this checkout instead of /srv/asu.
    for path in [*SYSTEMD.glob("*.service"), *SYSTEMD.glob("*.timer")]:
        text = path.read_text().replace(INSTALLED, f"{BIN}/")
        (tmp_path / path.name).write_text(text.replace("=/srv/asu\n", f"={tmp_path}\n"))
    (tmp_path / "asu-worker@1.service").symlink_to("asu-worker@.service")
    names = [p.name for p in tmp_path.iterdir() if p.name != "asu-worker@.service"]
    result = subprocess.run(
        [analyze, "verify", *sorted(names)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "asu" not in result.stderr, result.stderr


def test_the_units_example_environment_is_real_settings():
    lines = (SYSTEMD / "asu.default").read_text().splitlines()
    environ = dict(line.split("=", 1) for line in lines if line[:4] == "ASU_")
    config = load_config(environ=environ)
    assert config.redis_url.startswith("redis://:") and "@" in config.redis_url
    assert config.trusted_proxies == 1


# -- nginx ------------------------------------------------------------------------


@pytest.fixture
def nginx(tmp_path, live_server, app_config):
    """nginx from misc/nginx in front of the live app; yields its base URL."""
    try:
        proc, url = nginx_site.start(
            live_server.removeprefix("http://"),
            Path(app_config["public_path"]),
            tmp_path / "nginx",
        )
    except nginx_site.NginxUnavailable as error:
        pytest.skip(str(error))
    yield url
    stop(proc)


def test_nginx_serves_json_and_store_from_disk_and_proxies_the_rest(nginx, app_config):
    public = Path(app_config["public_path"])
    overview = public / "json/v1/overview.json"
    overview.parent.mkdir(parents=True)
    overview.write_text('{"latest": ["23.05.4"]}')
    image = public / "store" / ("a" * 64) / "openwrt-sysupgrade.bin"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"\x27\x05\x19\x56" * 1000)
    (image.parent / "elsewhere.bin").symlink_to(overview)

    # LuCI appends ?<timestamp>; the file is served all the same.
    answer = requests.get(f"{nginx}/json/v1/overview.json?1700000000", timeout=5)
    assert answer.status_code == 200 and answer.json() == {"latest": ["23.05.4"]}
    assert answer.headers["Cache-Control"] == "public, max-age=300"
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "Server" in answer.headers and "gunicorn" not in answer.headers["Server"]

    preflight = requests.options(f"{nginx}/store/{'a' * 64}/x.bin", timeout=5)
    assert preflight.status_code == 204
    assert "GET" in preflight.headers["Access-Control-Allow-Methods"]

    download = requests.get(f"{nginx}/store/{'a' * 64}/{image.name}", timeout=5)
    assert download.content == image.read_bytes()
    assert int(download.headers["Content-Length"]) == image.stat().st_size
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert download.headers["Cache-Control"] == "public, max-age=3600"
    assert download.headers["ETag"]
    linked = requests.get(f"{nginx}/store/{'a' * 64}/elsewhere.bin", timeout=5)
    assert linked.status_code in (403, 404)
    for name in ("page.html", "drawing.svg"):  # what a hostile build might write
        (image.parent / name).write_text("<script>alert(1)</script>")
        active = requests.get(f"{nginx}/store/{'a' * 64}/{name}", timeout=5)
        assert active.headers["Content-Type"] == "application/octet-stream"
        assert active.headers["X-Content-Type-Options"] == "nosniff"

    health = requests.get(f"{nginx}//api/v1/health", timeout=5)
    assert health.status_code == 200 and health.json()["redis"] is True
    page = requests.get(f"{nginx}/", timeout=5)
    assert page.status_code == 200 and "Build a firmware image" in page.text
    assert requests.get(f"{nginx}/metrics", timeout=5).status_code == 200


class TestAnswersBehindNginx:
    """nginx keeps a finished build's answer as long as the app says, never past
    the build's own expiry."""

    @pytest.fixture
    def app_config(self, app_config):
        return app_config | {"build_ttl": 4}

    def test_a_finished_answer_is_cached_until_it_expires(self, nginx, worker):
        done = wait_for(nginx, X86_APK)
        assert done.status_code == 200
        url = f"{nginx}/api/v1/build/{done.json()['request_hash']}"
        first = requests.get(f"{url}?1700000000", timeout=10)
        again = requests.get(f"{url}?1700000001", timeout=10)
        assert again.headers["X-Cache-Status"] == "HIT"
        assert again.content == first.content
        assert "X-Accel-Expires" not in again.headers
        time.sleep(5)  # the build's result has expired
        gone = requests.get(url, timeout=10)
        assert gone.status_code == 404 and gone.headers["X-Cache-Status"] != "HIT"


class TestBuildRequestsBehindNginx:
    """nginx answers a burst of one build request from its cache for a second or
    two, keyed on the body as sent; anything else reaches the app."""

    def post(self, base: str, body: str) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        return requests.post(
            f"{base}/api/v1/build", data=body, headers=headers, timeout=10
        )

    def test_a_burst_of_one_request_is_answered_from_the_cache(self, nginx, worker):
        assert wait_for(nginx, X86_APK).status_code == 200
        body = json.dumps(X86_APK)
        first = self.post(nginx, body)
        burst = [self.post(nginx, body) for _ in range(3)]
        assert first.status_code == 200
        assert "HIT" in [answer.headers["X-Cache-Status"] for answer in burst]
        assert all(answer.content == first.content for answer in burst)
        # Another spelling of the same request is the app's to answer.
        respelled = self.post(nginx, json.dumps(X86_APK, indent=2))
        assert respelled.headers["X-Cache-Status"] != "HIT"
        assert respelled.content == first.content
        time.sleep(2.5)  # nginx counts whole seconds: a second is up to two
        later = self.post(nginx, body)
        assert later.headers["X-Cache-Status"] != "HIT", "kept past two seconds"
        assert later.content == first.content

    def test_a_build_in_progress_is_never_answered_from_the_cache(self, nginx):
        body = json.dumps(X86_APK | {"packages": ["htop"]})
        answers = [self.post(nginx, body) for _ in range(3)]
        assert [answer.status_code for answer in answers] == [202, 202, 202]
        assert all(answer.headers["X-Cache-Status"] != "HIT" for answer in answers)
