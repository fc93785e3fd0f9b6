"""One server with workers on other machines, each machine a network namespace,
set up as the README's several-machines section says (:mod:`asu.local.machines`).

The server host runs Redis (password, bound to the server's address), the
janitor, gunicorn and the offline upstream; two worker hosts run one RQ worker
each, with caches of their own; the store is one directory all of them see. The
test itself is a client on the server's network. Where network namespaces cannot
be made (not root, no ``ip``) the module skips, saying why; with
``ASU_REQUIRE_NAMESPACES=1`` (CI) it fails instead.
"""

from __future__ import annotations

import hashlib
import os
import threading

import pytest
import requests
from clients import X86_APK, download, post, until_stage, wait_for
from redis_monitor import RedisMonitor
from upstreams import FaultyUpstream, offline_keys

from asu import redis_keys
from asu.formats import usign
from asu.local import netns
from asu.local.machines import Site
from asu.local.netns import SERVER_ADDRESS, Host, Network
from asu.local.services import flask_command, wait_until
from asu.queue.build_queue import fetch
from offline_upstream.server import UpstreamServer

INTERRUPTED = "Error: the build was interrupted before it finished; request it again"


@pytest.fixture(scope="module")
def network():
    reason = netns.unavailable()
    if reason and os.environ.get("ASU_REQUIRE_NAMESPACES"):
        pytest.fail(f"ASU_REQUIRE_NAMESPACES is set, but {reason}")
    if reason:
        pytest.skip(reason)
    with Network() as network:
        yield network


@pytest.fixture(scope="module")
def site(network, small_tree, tmp_path_factory):
    """The server host and two worker hosts, each with one worker, running."""
    with network.server.entered():
        upstream = UpstreamServer(small_tree, host=SERVER_ADDRESS).start()
    settings = offline_keys() | {
        "upstream_url": upstream.url,
        "worker_heartbeat_interval": 1,
    }
    site = Site(network, tmp_path_factory.mktemp("hosts"), settings)
    site.start_server()
    site.add_worker_host("worker-a")
    site.add_worker_host("worker-b")
    yield site
    upstream.stop()


@pytest.fixture(autouse=True)
def on_the_server_network(site):
    """The test talks to the site as a client on the server's network."""
    with site.network.server.entered():
        yield


def worker_of(site: Site, request_hash: str) -> str:
    """The name of the worker that took the build of ``request_hash``."""
    return fetch(site.redis(), request_hash).worker_name


def host_of(site: Site, worker: str) -> Host:
    (host,) = [h for h in site.network.hosts if worker.startswith(f"{h.role}-")]
    return host


def assert_served_and_signed(site: Site, result: dict) -> None:
    """Every image of ``result`` is served as listed, signed with the key the
    server publishes."""
    overview = requests.get(f"{site.url}/json/v1/overview.json", timeout=10).json()
    public_key = overview["server"]["public_key"]
    assert result["images"]
    for image in result["images"]:
        data = download(site.url, result, image)
        assert hashlib.sha256(data).hexdigest() == image["sha256"]
        store = f"{site.url}/store/{result['bin_dir']}/{image['name']}.sig"
        usign.verify(data, requests.get(store, timeout=10).text, [public_key])


def test_builds_from_both_worker_hosts_land_and_are_served(site):
    bodies = [X86_APK | {"defaults": f"echo host test {n}\n"} for n in (1, 2)]
    hashes = [post(site.url, body).json()["request_hash"] for body in bodies]
    results = [wait_for(site.url, body) for body in bodies]
    assert [r.status_code for r in results] == [200, 200], [r.text for r in results]
    hosts = {host_of(site, worker_of(site, h)).role for h in hashes}
    assert hosts == {"worker-a", "worker-b"}
    for result in results:
        assert_served_and_signed(site, result.json())
    store = site.public_path / "store"
    assert sorted(p.name for p in store.iterdir()) == sorted(hashes)


class Watch(threading.Thread):
    """A client on the server's network asking for the health and for one build
    every 100 ms; every answer that is not a 200 (a 202 or 500 for the build) or
    no answer at all is an error."""

    def __init__(self, site: Site, request_hash: str) -> None:
        super().__init__()
        self.site = site
        self.urls = {
            f"{site.url}/api/v1/health": {200},
            f"{site.url}/api/v1/build/{request_hash}": {200, 202, 500},
        }
        self.answers = 0
        self.errors: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        with self.site.network.server.entered():
            while not self.done.wait(0.1):
                self._ask()

    def _ask(self) -> None:
        for url, expected in self.urls.items():
            try:
                status = requests.get(url, timeout=5).status_code
            except requests.RequestException as error:
                self.errors.append(f"{url}: {error}")
                continue
            self.answers += 1
            if status not in expected:
                self.errors.append(f"{url}: {status}")

    def stop(self) -> None:
        self.done.set()
        self.join()


@pytest.mark.parametrize("cut", ["network", "power"])
def test_a_worker_host_cut_off_mid_build(site, cut):
    """Its cable pulled, or all its processes killed, in the middle of ``make
    image``: the build fails as interrupted, nothing half-written is in the store,
    the web answers throughout, and asking again builds it on the other host."""
    body = X86_APK | {"defaults": f"echo cut off: {cut}\n"}
    request_hash = until_stage(site.url, body, "make_image")
    host = host_of(site, worker_of(site, request_hash))
    watch = Watch(site, request_hash)
    watch.start()
    try:
        if cut == "network":
            site.network.cut(host)
        else:
            host.kill_all()
        failed = wait_for(site.url, body, timeout=60)
        assert failed.status_code == 500, failed.text
        assert failed.json()["detail"] == INTERRUPTED
        store = site.public_path / "store"
        assert not (store / request_hash).exists()

        rebuilt = wait_for(site.url, body)
        assert rebuilt.status_code == 200, rebuilt.text
        assert host_of(site, worker_of(site, request_hash)) != host
        assert_served_and_signed(site, rebuilt.json())
        assert not [path for path in store.iterdir() if path.name.startswith(".")]
        watch.stop()
        assert not watch.errors and watch.answers > 20
    finally:
        watch.stop()
        host.kill_all()
        site.network.mend(host)
        site.start_workers(host, 1)


def test_a_second_janitor_on_a_worker_host_changes_nothing(site, small_tree):
    """While a janitor pass runs on the server, one started on a worker host skips:
    the one command it sends that names a key is its attempt at the lock."""
    slow = FaultyUpstream(small_tree, delay=0.05, matching="/", host=SERVER_ADDRESS)
    slow.start()
    server, worker_host = site.network.server, host_of(site, "worker-a-1")
    lock = redis_keys.janitor_lock("openwrt")
    connection = site.redis()
    first = server.spawn(
        flask_command("janitor", "init"),
        site.directory(server) / "first-janitor.log",
        site.environ(server) | {"ASU_UPSTREAM_URL": slow.url},
        site.directory(server),
    )
    wait_until(lambda: connection.exists(lock), "the first janitor's lock", first)
    monitor = RedisMonitor(site.redis, site.network.server.entered)
    monitor.start()
    second = worker_host.run(
        flask_command("janitor", "update"),
        site.environ(worker_host) | {"ASU_UPSTREAM_URL": slow.url},
        site.directory(worker_host),
    )
    monitor.stop()
    assert first.wait(60) == 0
    slow.stop()
    assert second.returncode == 0, second.stderr
    assert "openwrt: another janitor pass runs, skipped" in second.stdout
    sent = [
        command
        for address, command in monitor.commands
        if address == worker_host.address and not command.startswith("HELLO ")
    ]
    assert len(sent) == 1 and sent[0].startswith(f"SET {lock} "), sent
    assert sent[0].endswith(" NX PX 300000"), "only if no one holds it, for 5 min"
