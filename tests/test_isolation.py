"""What an ImageBuilder can do to the server: nothing. Hostile ImageBuilders, signed
by the trusted key and served by their own upstream, try to read the server's key,
write outside their job, reach Redis, see other processes, exhaust memory, flood
the log, outlive their time and smuggle a link to the key into the store; a real
worker builds with them and each attempt fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis
from clients import X86_APK, explain, wait_for
from unprivileged import NOBODY, runtime
from upstreams import ATH79, X86, copy_tree, repack, replace_make_target

from asu import job_store
from asu.config import load_config
from asu.signing import server_key
from asu.worker import cgroups
from offline_upstream.model import Package
from offline_upstream.packages import write_feed
from offline_upstream.server import UpstreamServer
from offline_upstream.tree import signing_key

X86_OPKG = {"version": "23.05.4", "target": "x86/64", "profile": "generic"}
C7_2305 = {
    "version": "23.05.4",
    "target": "ath79/generic",
    "profile": "tplink_archer-c7-v5",
}

PROBE = r"""
import json, os, socket, sys

config = json.load(open(os.path.join(os.path.dirname(__file__), "probe.json")))


def attempt(name, action):
    try:
        detail = action()
    except BaseException as error:
        print(f"PROBE {name}: blocked ({type(error).__name__})")
    else:
        print(f"PROBE {name}: POSSIBLE {detail!r}"[:300])


def read(path):
    with open(path, "rb") as handle:
        return len(handle.read())


def write(path):
    with open(path, "w") as handle:
        handle.write("written from inside the sandbox")
    return path


def visible(path):
    if not os.path.lexists(path):
        raise FileNotFoundError(path)
    return path


def connect(port):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"SET asu:sandbox-escaped 1\r\n")
        return sock.recv(100)


def secrets_in_environment():
    leaked = [name for name in os.environ if "ASU" in name or "REDIS" in name]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                if b"ASU_" in handle.read():
                    leaked.append(f"/proc/{pid}/environ")
        except OSError:
            pass
    if not leaked:
        raise LookupError("nothing leaked")
    return leaked


def server_processes():
    seen = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(word in command for word in ("flask", "redis-server", "gunicorn")):
            seen.append(command[:80])
    if not seen:
        raise LookupError("only the sandbox's own processes")
    return seen


def become_root():
    os.setuid(0)
    return os.getuid()


def use_memory():
    return len(bytearray(6 << 30))


attempt("read the server key", lambda: read(config["key"]))
attempt("read the key by a relative path", lambda: read("/job/../../keys/server.key"))
for path in config["hidden"]:
    attempt(f"see {path}", lambda: visible(path))
for path in config["write"]:
    attempt(f"write {path}", lambda: write(path))
attempt("connect to Redis", lambda: connect(config["redis_port"]))
attempt("connect to the upstream", lambda: connect(config["upstream_port"]))
attempt("find the server's secrets", secrets_in_environment)
attempt("see the server's processes", server_processes)
attempt("become root", become_root)
attempt("allocate 6 GiB", use_memory)
sys.stdout.flush()
sys.stderr.write("flood " * (1 << 20))
"""


def probing_imagebuilder(settings: dict):
    """An ImageBuilder whose ``make image`` runs the probes and then fails."""

    def change(top: Path) -> None:
        (top / "scripts" / "probe.py").write_text(PROBE)
        (top / "scripts" / "probe.json").write_text(json.dumps(settings))
        recipe = ["@python3 $(TOPDIR)/scripts/probe.py", "@exit 1"]
        replace_make_target(top, "image", recipe)

    return change


def linking_imagebuilder(key: Path):
    """An ImageBuilder that builds, then swaps its sysupgrade image for a link to
    the server's key, which only the worker outside the sandbox could follow."""

    def change(top: Path) -> None:
        replace_make_target(
            top,
            "image",
            [
                "@$(IB) image",
                f"@for f in $(BIN_DIR)/*sysupgrade*; do rm $$f; ln -s {key} $$f; done",
            ],
        )

    return change


@pytest.fixture
def worker_user(request) -> str:
    """Whom the worker runs as: the suite's own user, or ``nobody`` (as in the
    container and the systemd unit) where a test asks for it."""
    return getattr(request, "param", "suite")


@pytest.fixture
def home(request, worker_user, tmp_path) -> Path:
    """Where the server keeps its files: somewhere its worker's user owns."""
    if worker_user == "nobody":
        return request.getfixturevalue("nobody_scratch")
    return tmp_path


@pytest.fixture
def paths(home, worker_user) -> dict:
    config = load_config(
        overrides={
            "cache_path": str(home / "cache"),
            "public_path": str(home / "public"),
        }
    )
    key = config.cache_path / "keys" / "server.key"
    server_key(config)  # exists before the build, as on any running server
    if worker_user == "nobody":
        for path in (config.cache_path, key.parent, key):
            os.chown(path, NOBODY, NOBODY)
    outside = f"/usr/asu-escaped-{uuid.uuid4().hex}"
    yield {"config": config, "key": key, "outside": outside}
    Path(outside).unlink(missing_ok=True)


@pytest.fixture
def hostile_upstream(upstream_tree, tmp_path, redis_url, upstream, paths):
    config = paths["config"]
    settings = {
        "key": str(paths["key"]),
        "hidden": [
            str(paths["key"]),
            str(config.cache_path / "jobs"),
            str(config.cache_path / "imagebuilders"),
            str(config.public_path),
            str(tmp_path),
        ],
        "write": [
            str(config.cache_path / "escaped"),
            str(config.store_path / "escaped"),
            str(tmp_path / "escaped"),
            "/job/../escaped",
            paths["outside"],
        ],
        "redis_port": urlparse(redis_url).port,
        "upstream_port": urlparse(upstream.url).port,
    }
    root = copy_tree(upstream_tree, tmp_path / "hostile")
    repack(root / X86, probing_imagebuilder(settings))
    repack(root / ATH79, linking_imagebuilder(paths["key"]))
    server = UpstreamServer(root).start()
    yield server
    server.stop()


@pytest.fixture
def app_config(app_config, hostile_upstream, paths):
    return app_config | {
        "upstream_url": hostile_upstream.url,
        "cache_path": str(paths["config"].cache_path),
        "public_path": str(paths["config"].public_path),
    }


@pytest.fixture
def base(request, live_server, worker_user):
    request.getfixturevalue(
        "unprivileged_worker" if worker_user == "nobody" else "worker"
    )
    return live_server


def probes(stdout: str) -> dict[str, str]:
    lines = [line for line in stdout.splitlines() if line.startswith("PROBE ")]
    return dict(line.removeprefix("PROBE ").split(": ", 1) for line in lines)


@pytest.mark.parametrize("worker_user", ["suite", "nobody"], indirect=True)
def test_every_escape_attempt_fails_and_the_build_fails(base, paths, redis_url):
    response = wait_for(base, X86_APK)
    assert response.status_code == 500
    body = response.json()
    assert body["detail"] == "Error: make image failed (see stderr)"
    results = probes(body["stdout"])
    assert len(results) == 18, body["stdout"][-2000:]
    escaped = {name: r for name, r in results.items() if not r.startswith("blocked")}
    assert escaped == {}
    for name in results:
        if name.startswith("write "):
            written = name.removeprefix("write ").replace("/job/..", "/")
            assert not Path(written).exists(), f"{written} was written"
    assert not list(paths["config"].store_path.glob("**/escaped"))
    assert redis.Redis.from_url(redis_url).get("asu:sandbox-escaped") is None


def test_output_is_cut_to_the_limit(base):
    body = wait_for(base, X86_APK).json()
    assert body["status"] == 500
    assert len(body["stderr"]) < 1.1 * (1 << 20)
    assert "bytes of output cut" in body["stderr"]


HOSTILE_POSTINST = """#!/bin/sh
# make image runs it, as OpenWrt's prepare_rootfs runs every package's postinst.
python3 - <<'PROBES'
import socket

for name, (host, port, message) in {targets!r}.items():
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(message.encode())
    except OSError as error:
        print(f"PROBE {{name}}: blocked ({{type(error).__name__}})", flush=True)
    else:
        print(f"PROBE {{name}}: POSSIBLE", flush=True)
PROBES
"""


class TestAHostilePackageScript:
    """A package from an allowed extra feed runs its ``postinst`` during
    ``make image`` and tries Redis, the web server, the feed it came from and an
    outside address: all fail, the image is built as asked, Redis is untouched."""

    SENTINEL = "rq:job:" + "5" * 64

    @pytest.fixture
    def feed(self, tmp_path):
        server = UpstreamServer(tmp_path / "feed").start()
        yield server
        server.stop()

    @pytest.fixture
    def app_config(self, app_config, feed):
        return app_config | {"repository_allow_list": [f"{feed.url}/"]}

    def publish(self, feed: UpstreamServer, redis_url: str, web_url: str) -> None:
        """The signed feed, its package's script aimed at this test's servers."""
        attack = (
            f"HSET {self.SENTINEL} status finished\r\nSET asu:sandbox-escaped 1\r\n"
        )
        targets = {
            "reach Redis": ("127.0.0.1", urlparse(redis_url).port, attack),
            "reach the web server": ("127.0.0.1", urlparse(web_url).port, "GET /"),
            "reach the feed": ("127.0.0.1", urlparse(feed.url).port, "GET /"),
            "reach an outside address": ("1.1.1.1", 443, ""),
        }
        script = HOSTILE_POSTINST.format(targets=targets)
        package = Package("hostile", "1.0-r1", arch="x86_64", postinst=script)
        root = feed.root / "extra"
        write_feed(root, [package], "opkg", "x86_64", 1_700_000_000)
        (root / "Packages.sig").write_text(
            signing_key().sign((root / "Packages").read_bytes())
        )

    @pytest.mark.parametrize("worker_user", ["suite", "nobody"], indirect=True)
    def test_its_attempts_fail_and_the_image_is_built(self, base, feed, redis_url):
        self.publish(feed, redis_url, base)
        connection = redis.Redis.from_url(redis_url)
        connection.hset(self.SENTINEL, "status", "queued")
        body = X86_OPKG | {
            "packages": ["hostile"],
            "repositories": {"extra": f"{feed.url}/extra"},
            "repository_keys": [signing_key().public_key.to_text().splitlines()[-1]],
            "repositories_mode": "append",
        }
        response = wait_for(base, body)
        assert response.status_code == 200, explain(response)
        result = response.json()
        assert result["manifest"]["hostile"] == "1.0-r1"
        results = probes(result["stdout"])
        assert len(results) == 4, result["stdout"][-2000:]
        assert all(outcome.startswith("blocked") for outcome in results.values())
        assert connection.hgetall(self.SENTINEL) == {b"status": b"queued"}
        assert connection.get("asu:sandbox-escaped") is None


def test_a_link_out_of_the_sandbox_is_never_published(base, paths):
    response = wait_for(base, C7_2305)
    assert response.status_code == 500
    assert "missing image" in response.json()["detail"]
    secret = paths["key"].read_bytes()
    store = paths["config"].store_path
    published = [p for p in store.rglob("*") if p.is_file() or p.is_symlink()]
    assert all(p.is_file() and not p.is_symlink() for p in published)
    assert all(secret not in p.read_bytes() for p in published)


class TestTimeLimit:
    @pytest.fixture
    def hostile_upstream(self, upstream_tree, tmp_path):
        root = copy_tree(upstream_tree, tmp_path / "slow")
        repack(
            root / X86,
            lambda top: replace_make_target(top, "image", ["@sleep 60"]),
        )
        server = UpstreamServer(root).start()
        yield server
        server.stop()

    @pytest.fixture
    def app_config(self, app_config, hostile_upstream):
        return app_config | {"upstream_url": hostile_upstream.url, "job_timeout": 2}

    def test_a_build_that_takes_too_long_is_stopped(self, base):
        response = wait_for(base, X86_APK, timeout=60)
        assert response.status_code == 500
        assert "took too long" in response.json()["detail"]
        assert "stopped: it ran longer than 2 s" in response.json()["stderr"]


SANDBOX_RUN = r"""
import os, sys
from pathlib import Path

from asu.worker import sandbox

os.environ["ASU_REDIS_URL"] = "redis://:worker-secret@127.0.0.1:6379/0"
command = ["sh", "-c", "cat /proc/*/environ | tr '\\0' '\\n'; id -u"]
result = sandbox.run(command, sandbox.Layout(Path(sys.argv[1])))
print(result.stdout, result.stderr)
"""


def test_an_unprivileged_worker_leaks_no_environment(tmp_path):
    """Without root, bwrap runs as the worker's user and the sandbox can read
    the environment of the sandbox's first process, bwrap itself: it must not be
    the worker's."""
    job = Path(tempfile.mkdtemp(prefix="asu-job-"))
    job.chmod(0o777)
    nobody = runtime() if os.geteuid() == 0 else None
    if nobody is None:
        command, env = [sys.executable, "-c", SANDBOX_RUN, str(job)], None
    else:
        command = nobody.command("-c", SANDBOX_RUN, str(job))
        env = nobody.environ({"PATH": os.environ["PATH"]})
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=60, cwd=job, env=env
        )
    finally:
        shutil.rmtree(job)
        if nobody is not None:
            nobody.remove()
    assert done.returncode == 0, done.stderr
    assert "PATH=/usr/bin" in done.stdout, done.stdout
    assert "worker-secret" not in done.stdout
    assert "ASU_" not in done.stdout


class TestTheSharedImageBuilder:
    """A build sees the ImageBuilder copy-on-write: what it changes there reaches
    neither the unpacked tree in the cache nor the next build."""

    @pytest.fixture
    def hostile_upstream(self, upstream_tree, tmp_path):
        root = copy_tree(upstream_tree, tmp_path / "scribbling")
        recipe = [
            "@test ! -e $(TOPDIR)/marker || { echo saw another build; exit 1; }",
            "@touch $(TOPDIR)/marker",
            "@echo '# changed by a build' >> $(TOPDIR)/Makefile",
            "@$(IB) image",
        ]
        repack(root / X86, lambda top: replace_make_target(top, "image", recipe))
        server = UpstreamServer(root).start()
        yield server
        server.stop()

    def test_changes_stay_in_their_build(self, base, paths):
        for packages in ([], ["htop"]):
            response = wait_for(base, X86_APK | {"packages": packages})
            assert response.status_code == 200, response.json()["stderr"][-500:]
        (unpacked,) = (paths["config"].cache_path / "imagebuilders").glob("*/*/*/*")
        assert not (unpacked / "marker").exists()
        assert not (unpacked / "Makefile").read_text().endswith("a build\n")
        assert not list((paths["config"].cache_path / "jobs").iterdir())


ATTACKS = r"""#!/bin/sh
# What a hostile package or ImageBuilder might do to the machine; $1 picks one.
case "$1" in
8dev_carambola2)  # a fork bomb
    python3 -c '
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
' ;;
8dev_lima)  # fill /dev/shm
    dd if=/dev/zero of=/dev/shm/fill bs=1M count=2048 ;;
adtran_bsap1800-v2)  # write 10 GB
    for i in 1 2 3 4 5 6 7 8 9 10; do
        dd if=/dev/zero of="$TOPDIR/big$i" bs=1M count=1024 status=none
    done ;;
adtran_bsap1840)  # more memory than one build may use, in several processes
    for i in 1 2 3 4; do
        python3 -c 'import time; b = bytearray(200 << 20); time.sleep(30)' &
    done
    wait ;;
esac
exit 1
"""
ATTACKED = {
    "8dev_carambola2": "processes",
    "8dev_lima": "disk_limit",
    "adtran_bsap1800-v2": "disk_limit",
    "adtran_bsap1840": "memory",
}


class TestResourceLimits:
    """A fork bomb, a /dev/shm fill, a 10 GB write and a memory hog each end their
    build with a clear ``error_kind``; the worker goes on to the next job."""

    @pytest.fixture
    def hostile_upstream(self, upstream_tree, tmp_path):
        def change(top: Path) -> None:
            (top / "scripts" / "attack.sh").write_text(ATTACKS)
            recipe = ["@sh $(TOPDIR)/scripts/attack.sh $(PROFILE)"]
            replace_make_target(top, "image", recipe)

        root = copy_tree(upstream_tree, tmp_path / "attacking")
        repack(root / ATH79, change)
        server = UpstreamServer(root).start()
        yield server
        server.stop()

    @pytest.fixture
    def app_config(self, app_config, hostile_upstream):
        return app_config | {
            "upstream_url": hostile_upstream.url,
            "build_memory_mb": 300,
            "build_processes": 64,
            "build_disk_mb": 200,
            "job_timeout": 120,
        }

    @pytest.mark.parametrize("profile", ATTACKED)
    def test_an_attack_ends_its_build_with_its_kind(self, base, redis_url, profile):
        if ATTACKED[profile] in ("processes", "memory") and not control_groups():
            pytest.skip("this machine lets the worker make no control group")
        response = wait_for(base, C7_2305 | {"profile": profile}, timeout=180)
        assert response.status_code == 500
        body = response.json()
        job = job_store.fetch(redis.Redis.from_url(redis_url), body["request_hash"])
        assert job.meta["error_kind"] == ATTACKED[profile], body["detail"]
        assert body["detail"].startswith("Error: the build")
        # the worker goes on to the next job
        after = wait_for(base, X86_APK)
        assert after.status_code == 200, explain(after)


def control_groups() -> bool:
    """Whether this machine lets the worker make control groups."""
    group = cgroups.create(f"asu-test-{uuid.uuid4().hex}", 8, 1 << 30)
    if group is not None:
        group.remove()
    return group is not None
