"""The janitor against the stand-in upstream over HTTP and a real Redis: what it
loads, the /json/v1 files it writes, conditional updates, revision changes,
package validation and a second distribution."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import redis
import requests
from rq import Queue
from rq.job import Job
from upstreams import FaultyUpstream, snapshot_only

from asu import redis_keys
from asu.formats.usign import SecretKey
from asu.metadata import janitor as janitor_module
from asu.metadata import lookup
from asu.metadata.janitor import run as janitor_pass
from offline_upstream import adb_writer
from offline_upstream.tree import signing_key

OFFLINE_KEY = signing_key().public_key.to_text().splitlines()[-1]
OTHER_KEY = SecretKey.from_seed(b"\x07" * 32)
OTHER_CODE = "r33999-0badc0ffee"
ONLY_SNAPSHOT = {name: {"enabled": False} for name in ("23.05", "24.10", "25.12")}
C7 = {
    "version": "23.05.4",
    "target": "ath79/generic",
    "profile": "tplink,archer-c7-v5",
    "packages": ["luci", "htop"],
}
# What LuCI on an Archer C7 with 23.05.4 sends (diff_packages: every package)
C7_INSTALLED = [
    "base-files",
    "busybox",
    "ca-bundle",
    "dnsmasq",
    "dropbear",
    "firewall4",
    "fstools",
    "kmod-ath10k-ct",
    "kmod-ath9k",
    "kmod-gpio-button-hotplug",
    "kmod-nft-offload",
    "kmod-usb2",
    "kmod-usb-ledtrig-usbport",
    "libc",
    "libgcc",
    "libustream-mbedtls",
    "logd",
    "luci",
    "luci-app-attendedsysupgrade",
    "mtd",
    "netifd",
    "nftables",
    "odhcp6c",
    "odhcpd-ipv6only",
    "opkg",
    "ppp",
    "ppp-mod-pppoe",
    "procd",
    "procd-seccomp",
    "procd-ujail",
    "swconfig",
    "uboot-envtools",
    "uci",
    "uclient-fetch",
    "urandom-seed",
    "urngd",
    "wpad-basic-mbedtls",
]


def janitor(app, command: str = "init"):
    """Run ``flask janitor <command>``; the result must be a success."""
    result = app.test_cli_runner().invoke(args=["janitor", command])
    assert result.exit_code == 0, result.output
    return result


# -- one full init of everything (conftest's ``loaded``), read by the tests below ----


@pytest.fixture(scope="module")
def json_root(loaded) -> Path:
    return loaded.config["ASU"].json_path


def test_init_loads_every_target_of_the_23_05_4_sample(loaded, upstream_tree):
    connection = loaded.extensions["redis"]
    targets = json.loads((upstream_tree / "releases/23.05.4/.targets.json").read_text())
    assert len(targets) == 75
    for target in targets:
        info = connection.hgetall(redis_keys.target_info("openwrt", "23.05.4", target))
        assert info[b"revision"] == b"r24012-d8dd03c46f", target
    assert "openwrt 23.05.4: 75 targets" in loaded.init_output
    client = loaded.test_client()
    answer = client.get("/api/v1/revision/23.05.4/bcm53xx/generic")
    assert answer.json == {"revision": "r24012-d8dd03c46f"}
    snapshot = client.get("/api/v1/revision/SNAPSHOT/x86/64?1700000000")
    assert snapshot.json == {"revision": "r33010-5a6c8e1f0b"}
    unknown = client.get("/api/v1/revision/23.05.4/nosuch/target")
    assert unknown.status_code == 400 and unknown.json["status"] == 400
    assert unknown.json["detail"].startswith("target:")
    no_version = client.get("/api/v1/revision/99.99.9/x86/64")
    assert no_version.status_code == 400
    assert no_version.json["detail"].startswith("version:")


def test_every_profile_has_its_file(json_root, upstream_tree):
    for profiles_path in (upstream_tree / "releases/23.05.4/targets").glob("*/*/"):
        profiles = json.loads((profiles_path / "profiles.json").read_text())
        directory = json_root / "releases/23.05.4/targets" / profiles["target"]
        for profile_id in profiles["profiles"]:
            assert (directory / f"{profile_id}.json").is_file(), profile_id


# -- the contract's shapes and JSON types ------------------------------------------


class Optional:
    def __init__(self, shape):
        self.shape = shape


def check(value, shape, where: str = "$") -> None:
    """Assert ``value`` has ``shape``: a type, ``[item]``, ``{key: shape}`` or
    ``{str: shape}`` for any keys; ints are never bools and bools never ints."""
    if isinstance(shape, type):
        exact = shape in (int, bool)
        ok = type(value) is shape if exact else isinstance(value, shape)
        assert ok, f"{where}: {value!r} is not {shape.__name__}"
    elif isinstance(shape, list):
        assert isinstance(value, list), f"{where}: not a list"
        for i, item in enumerate(value):
            check(item, shape[0], f"{where}[{i}]")
    elif list(shape) == [str]:
        assert isinstance(value, dict), f"{where}: not an object"
        for key, item in value.items():
            check(item, shape[str], f"{where}.{key}")
    else:
        assert isinstance(value, dict), f"{where}: not an object"
        for key, item_shape in shape.items():
            if isinstance(item_shape, Optional):
                if key in value:
                    check(value[key], item_shape.shape, f"{where}.{key}")
            else:
                assert key in value, f"{where}: no {key}"
                check(value[key], item_shape, f"{where}.{key}")


CHANGE = {
    "source": Optional(str),
    "target": Optional(str),
    "revision": int,
    "mandatory": bool,
}
BRANCH = {
    "name": str,
    "enabled": bool,
    "snapshot": bool,
    "versions": [str],
    "path": str,
    "path_packages": str,
    "targets": {str: str},
    "branch_off_rev": int,
    "git_branch": str,
    "release_date": str,
    "package_changes": [CHANGE],
}
OVERVIEW = {
    "latest": [str],
    "branches": {str: BRANCH},
    "upstream_url": str,
    "server": {
        "version": str,
        "contact": str,
        "allow_defaults": bool,
        "max_custom_rootfs_size_mb": int,
        "max_defaults_length": int,
        "repository_allow_list": [str],
        "public_key": str,
    },
}
PROFILE = {
    "id": str,
    "target": str,
    "arch_packages": str,
    "build_at": str,
    "metadata_version": int,
    "version_code": str,
    "version_number": str,
    "default_packages": [str],
    "device_packages": [str],
    "images": [{"name": str, "type": str}],
    "titles": [dict],
    "supported_devices": Optional([str]),
}
TARGET_INDEX = {"architecture": str, "packages": {str: str}}
VERSION_OVERVIEW = {
    "branch": str,
    "release": str,
    "image_url": str,
    "profiles": [{"id": str, "target": str, "titles": [dict]}],
}


def test_every_json_file_has_the_contract_shape(json_root):
    counts = dict.fromkeys(("profile", "alias", "target index", "feeds"), 0)
    for path in sorted(json_root.rglob("*.json")):
        data = json.loads(path.read_text())
        name = str(path.relative_to(json_root))
        if name == "overview.json":
            check(data, OVERVIEW, name)
            assert list(data["branches"]) == [
                b["name"] for b in data["branches"].values()
            ]
        elif path.name == "overview.json":
            check(data, VERSION_OVERVIEW, name)
        elif path.name == "branches.json":
            check(data, [BRANCH], name)
        elif path.name == "latest.json":
            check(data, {"latest": [str]}, name)
        elif path.parent.name == "packages":
            check(data, {str: str}, name)
            counts["feeds"] += 1
        elif path.name == "index.json":
            check(data, TARGET_INDEX, name)
            counts["target index"] += 1
        else:
            check(data, PROFILE, name)
            assert data["metadata_version"] == 1
            kind = "profile" if path.stem == data["id"] else "alias"
            if kind == "alias":
                names = data["supported_devices"]
                assert path.stem in names + [n.replace(",", "_") for n in names]
            counts[kind] += 1
    assert counts["target index"] == 75 + 4 * 3
    assert counts["feeds"] == 4 * 4
    assert counts["profile"] > 1000 and counts["alias"] > 1000


def test_overview_names_the_server_and_its_key(loaded, json_root):
    overview = json.loads((json_root / "overview.json").read_text())
    assert overview["latest"] == ["25.12.0", "24.10.4", "23.05.4"]
    assert overview["server"]["public_key"].startswith("RW")
    branches = overview["branches"]
    assert branches["23.05"]["branch_off_rev"] == 23069
    assert branches["SNAPSHOT"]["snapshot"] is True
    assert branches["SNAPSHOT"]["path"] == "snapshots"
    assert branches["24.10"]["targets"]["x86/64"] == "x86_64"
    changes = {
        (c.get("source"), c.get("target")) for c in branches["24.10"]["package_changes"]
    }
    assert ("auc", "owut") in changes and ("opkg", "apk-mbedtls") not in changes


def test_each_version_has_the_overview_of_the_2020_selectors(
    loaded, json_root, upstream
):
    """Every profile of every target, as in upstream's ``.overview.json``, and
    where the selector finds the images of one (it fills in ``{target}``)."""
    for path, branch, release in (
        ("releases/23.05.4", "23.05", "23.05.4"),
        ("releases/25.12.0", "25.12", "25.12.0"),
        ("snapshots", "SNAPSHOT", "SNAPSHOT"),
    ):
        answer = loaded.test_client().get(f"/json/v1/{path}/overview.json")
        overview = answer.json
        assert overview["branch"] == branch and overview["release"] == release
        assert overview["image_url"] == f"{upstream.url}/{path}/targets/{{target}}"
        published = requests.get(f"{upstream.url}/{path}/.overview.json").json()
        entry = ("id", "target", "titles")
        assert sorted(tuple(p[k] for k in entry) for p in overview["profiles"]) == (
            sorted(tuple(p[k] for k in entry) for p in published["profiles"])
        )
    c7 = {"id": "tplink_archer-c7-v5", "target": "ath79/generic"}
    old = json.loads((json_root / "releases/23.05.4/overview.json").read_text())
    (found,) = [p for p in old["profiles"] if c7.items() <= p.items()]
    image_dir = old["image_url"].format(target=found["target"])
    assert requests.get(f"{image_dir}/profiles.json").json()["profiles"][c7["id"]]


# -- serving the tree --------------------------------------------------------------


def test_a_board_name_with_a_comma_reaches_its_profile(loaded):
    client = loaded.test_client()
    base = "/json/v1/releases/23.05.4/targets/ath79/generic"
    for name in ("tplink,archer-c7-v5", "tplink_archer-c7-v5", "archer-c7-v5"):
        response = client.get(f"{base}/{name}.json?1700000000")
        assert response.status_code == 200, name
        assert response.json["id"] == "tplink_archer-c7-v5"
        assert int(response.headers["Content-Length"]) == len(response.data)
        assert response.headers["Content-Type"] == "application/json"


def test_the_tree_serves_nothing_outside(loaded, json_root):
    (json_root.parent.parent / "secret.json").write_text("{}")
    link = json_root / "link.json"
    link.symlink_to(json_root.parent.parent / "secret.json")
    client = loaded.test_client()
    try:
        for path in ("/json/../secret.json", "/json/v1/link.json", "/json/v1/nosuch"):
            response = client.get(path)
            assert response.status_code == 404, path
    finally:
        link.unlink()
    assert client.head("/json/v1/overview.json").status_code == 200


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("/api/v1/overview", "/json/v1/overview.json"),
        ("/api/overview", "/json/v1/overview.json"),
        ("/api/v1/latest", "/json/v1/latest.json"),
        ("/api/latest", "/json/v1/latest.json"),
    ],
)
def test_old_urls_redirect(loaded, old, new):
    response = loaded.test_client().get(old)
    assert response.status_code == 301
    assert response.headers["Location"] == new


# -- package indexes ---------------------------------------------------------------


def test_opkg_indexes_map_abi_names_and_include_kmods(json_root):
    release = json_root / "releases/23.05.4"
    target = json.loads((release / "targets/ath79/generic/index.json").read_text())
    assert target["architecture"] == "mips_24kc"
    assert "kmod-ath9k" in target["packages"]
    feeds = json.loads((release / "packages/mips_24kc-index.json").read_text())
    assert "libubox" in feeds and "libubox20230523" not in feeds
    assert "luci" in feeds and "htop" in feeds
    kmods = json.loads(
        (json_root / "releases/24.10.4/targets/ath79/generic/index.json").read_text()
    )
    assert "kmod-switch-rtl8366s" in kmods["packages"]  # from kmods/<kernel>/


def test_apk_indexes(json_root):
    release = json_root / "releases/25.12.0"
    target = json.loads((release / "targets/x86/64/index.json").read_text())
    assert target["architecture"] == "x86_64"
    assert any(name.startswith("kmod-e1000") for name in target["packages"])
    feeds = json.loads((release / "packages/x86_64-index.json").read_text())
    assert "apk-mbedtls" in feeds and "opkg" not in feeds


# -- validation before the queue ---------------------------------------------------


def test_unknown_packages_are_422_before_the_queue(loaded):
    client = loaded.test_client()
    queue = Queue("builds", connection=loaded.extensions["redis"])
    before = queue.count
    body = C7 | {"packages": ["luci", "no-such-thing", "-also-missing", "+htop"]}
    response = client.post("/api/v1/build", json=body)
    assert response.status_code == 422
    assert response.json["status"] == 422
    # Removing what no index has is no error: opkg and apk ignore it.
    assert response.headers["X-Unknown-Package"] == "no-such-thing"
    assert "no-such-thing" in response.json["detail"]
    versions = C7 | {"packages_versions": {"htop": "1", "nope": "1"}}
    response = client.post("/api/v1/build", json=versions)
    assert response.headers["X-Unknown-Package"] == "nope"
    assert queue.count == before


def test_known_packages_pass_provides_and_abi_names_included(loaded):
    client = loaded.test_client()
    luci = C7 | {"packages": C7_INSTALLED, "diff_packages": True}
    assert client.post("/api/v1/build", json=luci).status_code == 202
    virtual = C7 | {"packages": ["iptables", "libubox20230523", "ca-certs"]}
    assert client.post("/api/v1/build", json=virtual).status_code == 202
    apk = {"version": "25.12.0", "target": "x86/64", "profile": "generic"}
    assert (
        client.post("/api/v1/build", json=apk | {"packages": ["htop"]}).status_code
        == 202
    )
    refused = client.post("/api/v1/build", json=apk | {"packages": ["opkg"]})
    assert refused.status_code == 422
    # Removing what no index has is no error: opkg and apk ignore it.
    removal = C7 | {"packages": ["luci", "-gone-upstream"]}
    assert client.post("/api/v1/build", json=removal).status_code == 202


def test_find_the_target_of_a_board_name(loaded):
    with loaded.app_context():
        connection, config = loaded.extensions["redis"], loaded.config["ASU"]
        for name in ("tplink,archer-c7-v5", "tplink_archer-c7-v5"):
            found = lookup.find_target(connection, config, "openwrt", "23.05.4", name)
            assert found == "ath79/generic"
        nothing = lookup.find_target(connection, config, "openwrt", "23.05.4", "x")
        assert nothing is None


def test_unknown_profile_of_a_loaded_target_is_400_naming_it(loaded):
    response = loaded.test_client().post(
        "/api/v1/build", json=C7 | {"profile": "tplink_archer-c7-v9"}
    )
    assert response.status_code == 400
    assert response.json["detail"].startswith("profile:")
    assert "tplink_archer-c7-v" in response.json["detail"]


# -- conditional updates -----------------------------------------------------------


def test_update_with_nothing_changed_sends_only_conditional_requests(app, upstream):
    app.config["ASU"] = _with(app, branches=ONLY_SNAPSHOT | {"24.10": {}})
    janitor(app)
    seen = len(upstream.request_log)
    result = janitor(app, "update")
    repeated = upstream.request_log[seen:]
    assert repeated, "update asked nothing"
    assert {status for _, _, status in repeated} == {304}, repeated
    assert "0 target(s) and 0 feed(s) loaded" in result.output


def _with(app, **overrides):
    config = app.config["ASU"]
    return type(config)(**{**config.__dict__, **overrides})


# -- a snapshot that moved on ------------------------------------------------------


@pytest.fixture(scope="module")
def other_upstream(tmp_path_factory):
    """Another upstream: only a SNAPSHOT, at another revision, with its own key."""
    server = snapshot_only(tmp_path_factory.mktemp("other"), OTHER_CODE, OTHER_KEY)
    yield server
    server.stop()


def other_key_line() -> str:
    return OTHER_KEY.public_key.to_text().splitlines()[-1]


def wait_for_build(client, body: dict, timeout: float = 120):
    response = client.post("/api/v1/build", json=body)
    deadline = time.monotonic() + timeout
    while response.status_code == 202:
        assert time.monotonic() < deadline, response.json
        time.sleep(0.3)
        response = client.get(f"/api/v1/build/{response.json['request_hash']}")
    return response


def test_a_new_snapshot_revision_drops_cached_builds(
    app, worker, other_upstream, redis_url
):
    app.config["ASU"] = _with(app, branches=ONLY_SNAPSHOT)
    janitor(app)
    client = app.test_client()
    body = {"version": "SNAPSHOT", "target": "x86/64", "profile": "generic"}
    built = wait_for_build(client, body | {"packages": ["htop"]})
    assert built.status_code == 200, built.json.get("detail")
    request_hash = built.json["request_hash"]
    connection = redis.Redis.from_url(redis_url)
    recorded = redis_keys.builds("openwrt", "SNAPSHOT", "x86/64")
    assert connection.sismember(recorded, request_hash)
    store = app.config["ASU"].store_path / request_hash
    assert store.is_dir()

    moved = _with(
        app,
        upstream_url=other_upstream.url,
        upstream_keys=(other_key_line(),),
    )
    app.config["ASU"] = moved
    result = janitor(app, "update")
    assert "1 cached build(s) dropped" in result.output
    assert not store.exists()
    assert not Job.exists(request_hash, connection=connection)
    assert client.get("/api/v1/revision/SNAPSHOT/x86/64").json == {
        "revision": OTHER_CODE
    }
    again = client.post("/api/v1/build", json=body | {"packages": ["htop"]})
    assert again.status_code == 202  # built again, not served from the old revision


# -- a second distribution ---------------------------------------------------------


def test_a_second_distribution_beside_openwrt(app, other_upstream):
    lime = {
        "upstream_url": other_upstream.url,
        "upstream_keys": [other_key_line()],
        "upstream_apk_keys": [adb_writer.signing_key().public_pem()],
        "feeds": ["base", "packages", "luci"],
    }
    app.config["ASU"] = _with(app, branches=ONLY_SNAPSHOT, distributions={"lime": lime})
    janitor(app)
    json_root = app.config["ASU"].json_path
    overview = json.loads((json_root / "distros/lime/overview.json").read_text())
    assert overview["upstream_url"] == other_upstream.url
    assert list(overview["branches"]) == ["SNAPSHOT"]
    profile = json_root / "distros/lime/snapshots/targets/x86/64/generic.json"
    assert json.loads(profile.read_text())["version_code"] == OTHER_CODE
    openwrt = json_root / "snapshots/targets/x86/64/generic.json"
    assert json.loads(openwrt.read_text())["version_code"] != OTHER_CODE

    client = app.test_client()
    body = {"distro": "lime", "version": "SNAPSHOT", "target": "x86/64", "profile": "x"}
    unknown = client.post("/api/v1/build", json=body | {"packages": ["no-such"]})
    assert unknown.status_code == 422
    assert (
        client.post("/api/v1/build", json=body | {"packages": ["luci"]}).status_code
        == 202
    )
    nosuch = client.post("/api/v1/build", json=body | {"distro": "nosuch"})
    assert nosuch.status_code == 400 and "distribution" in nosuch.json["detail"]


def test_a_distribution_signed_by_an_untrusted_key_loads_nothing(app, other_upstream):
    lime = {"upstream_url": other_upstream.url, "upstream_keys": [OFFLINE_KEY]}
    app.config["ASU"] = _with(
        app,
        branches={**ONLY_SNAPSHOT, "SNAPSHOT": {"enabled": False}},
        distributions={"lime": lime},
    )
    result = janitor(app)
    assert "not trusted" in result.output
    connection = app.extensions["redis"]
    assert not connection.exists(redis_keys.target_info("lime", "SNAPSHOT", "x86/64"))


# -- one janitor at a time -----------------------------------------------------------


class Recorded:
    """A janitor report that keeps its lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def items(self, items, label):
        return items

    def line(self, message: str) -> None:
        self.lines.append(message)

    detail = line


@pytest.fixture
def slow_pass(app, upstream_tree):
    """The app's configuration for a pass over SNAPSHOT alone (four targets) from
    an upstream that answers every file 50 ms late: a pass of a few seconds."""
    server = FaultyUpstream(upstream_tree, delay=0.05, matching="/").start()
    yield _with(app, branches=ONLY_SNAPSHOT, upstream_url=server.url)
    server.stop()


class Pass(threading.Thread):
    """One janitor pass in a thread of its own; its summary and report."""

    def __init__(self, app, config) -> None:
        super().__init__()
        self.connection = app.extensions["redis"]
        self.config = config
        self.report = Recorded()

    def run(self) -> None:
        self.summary = janitor_pass(self.connection, self.config, True, self.report)

    def holding(self) -> None:
        """Wait until the pass holds its lock."""
        lock = redis_keys.janitor_lock("openwrt")
        deadline = time.monotonic() + 10
        while not self.connection.exists(lock):
            assert time.monotonic() < deadline
            time.sleep(0.01)


def test_a_pass_longer_than_its_lock_keeps_it(app, slow_pass, monkeypatch):
    monkeypatch.setattr(janitor_module, "LOCK_SECONDS", 1)
    first = Pass(app, slow_pass)
    first.start()
    first.holding()
    time.sleep(1.5)  # longer than the lock lasts unless the pass renews it
    second = Recorded()
    skipped = janitor_pass(app.extensions["redis"], slow_pass, True, second)
    first.join()
    assert second.lines[0] == "openwrt: another janitor pass runs, skipped"
    assert skipped.targets_loaded == 0
    assert first.summary.targets_loaded == 4 and not first.summary.failed
    assert not app.extensions["redis"].exists(redis_keys.janitor_lock("openwrt"))


def test_a_pass_whose_lock_was_taken_stops_writing(app, slow_pass):
    first = Pass(app, slow_pass)
    first.start()
    first.holding()
    # As if the lock had expired and another janitor had taken it.
    connection = app.extensions["redis"]
    connection.set(redis_keys.janitor_lock("openwrt"), "another janitor")
    first.join()
    assert first.summary.failed == ["openwrt"]
    assert "another janitor took it; stopped" in first.report.lines[-1]
    assert connection.get(redis_keys.janitor_lock("openwrt")) == b"another janitor"
    assert not (slow_pass.json_path / "overview.json").exists()
