"""Extra package feeds from the allow-list reach the ImageBuilder."""

from __future__ import annotations

import pytest
from clients import wait_for
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from asu.formats.usign import SecretKey
from offline_upstream import adb_writer
from offline_upstream.model import Package
from offline_upstream.packages import write_feed
from offline_upstream.server import UpstreamServer
from offline_upstream.tree import signing_key

#: What the package's script prints when make image runs it in the image's root.
RAN = "asu-extra: its script ran in the image root"
EXTRA = Package(
    "asu-extra",
    "1.0-r1",
    depends=("libc",),
    installed_size=64_000,
    arch="x86_64",
    postinst=f'#!/bin/sh\n[ -d "$IPKG_INSTROOT/etc" ] && echo "{RAN}"\n',
)
X86_OPKG = {"version": "23.05.4", "target": "x86/64", "profile": "generic"}
X86_APK = {"version": "25.12.0", "target": "x86/64", "profile": "generic"}


@pytest.fixture(scope="module")
def feed_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("feeds")
    write_feed(root / "extra", [EXTRA], "opkg", "x86_64", 1_700_000_000)
    index = (root / "extra" / "Packages").read_bytes()
    (root / "extra" / "Packages.sig").write_text(signing_key().sign(index))
    # apk feeds carry their signature in packages.adb (the offline apk test key)
    write_feed(root / "apk-extra", [EXTRA], "apk", "x86_64", 1_700_000_000)
    server = UpstreamServer(root).start()
    yield server
    server.stop()


@pytest.fixture
def app_config(app_config, feed_server):
    return app_config | {"repository_allow_list": [f"{feed_server.url}/"]}


def test_a_package_from_an_extra_feed_is_built_in(live_server, worker, feed_server):
    key = signing_key().public_key.to_text().splitlines()[-1]
    body = X86_OPKG | {
        "packages": ["asu-extra"],
        "repositories": {"extra": f"{feed_server.url}/extra"},
        "repository_keys": [key],
        "repositories_mode": "append",
    }
    response = wait_for(live_server, body)
    assert response.status_code == 200, response.json()
    assert response.json()["manifest"]["asu-extra"] == "1.0-r1"
    assert RAN in response.json()["stdout"]  # its postinst
    fetched = [path for _, path, _ in feed_server.request_log]
    assert "/extra/Packages.gz" in fetched
    assert "/extra/asu-extra_1.0-r1_x86_64.ipk" in fetched
    # The worker fetched the feed: the sandboxed make never went online.
    assert "Downloading http" not in response.json()["stderr"]

    without = wait_for(live_server, X86_OPKG | {"packages": ["asu-extra"]})
    assert without.status_code == 422
    assert without.headers["X-Unknown-Package"] == "asu-extra"

    # replace, the default: the extra feed instead of the distribution's feeds
    replaced = wait_for(live_server, body | {"repositories_mode": None})
    assert replaced.status_code == 500
    assert "busybox" in replaced.json()["detail"]  # a default from base


def test_feeds_off_the_allow_list_are_refused(live_server):
    body = X86_OPKG | {"repositories": {"x": "https://elsewhere.example/feed"}}
    response = wait_for(live_server, body)
    assert response.status_code == 400
    assert "allow-list" in response.json()["detail"]


def test_an_extra_feed_signed_by_another_key_is_refused(
    live_server, worker, feed_server
):
    stranger = SecretKey.from_seed(b"\x05" * 32).public_key.to_text()
    body = X86_OPKG | {
        "packages": ["asu-extra", "nano"],
        "repositories": {"extra": f"{feed_server.url}/extra"},
        "repository_keys": [stranger.splitlines()[-1]],
    }
    response = wait_for(live_server, body)
    assert response.status_code == 500
    assert "extra" in response.json()["detail"]
    assert "signature" in response.json()["detail"]


def stranger_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.mark.parametrize("trusted", [True, False])
def test_an_apk_extra_feed_is_fetched_by_the_worker(
    live_server, worker, feed_server, trusted
):
    """A PEM key and the feed's packages.adb URL, as clients send them: the worker
    fetches and checks the index and the package; the sandbox reads copies."""
    key = adb_writer.signing_key().public_pem() if trusted else stranger_pem()
    body = X86_APK | {
        "packages": ["asu-extra"],
        "repositories": {"extra": f"{feed_server.url}/apk-extra/packages.adb"},
        "repository_keys": [key],
        "repositories_mode": "append",
    }
    response = wait_for(live_server, body)
    if not trusted:
        assert response.status_code == 500
        detail = response.json()["detail"]
        assert "feed extra" in detail and "signature" in detail
        return
    assert response.status_code == 200, response.json()["detail"]
    assert response.json()["manifest"]["asu-extra"] == "1.0-r1"
    assert RAN in response.json()["stdout"]  # its post-install, from scripts.tar
    fetched = [path for _, path, _ in feed_server.request_log]
    assert "/apk-extra/packages.adb" in fetched
    assert "/apk-extra/asu-extra-1.0-r1.apk" in fetched
