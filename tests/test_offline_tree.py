"""The offline upstream as clients of a downloads server see it: layout, real
metadata, signatures, package indexes, ImageBuilders, conditional requests."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import requests
from real_upstream import shared

from asu.formats.usign import SecretKey, UsignError, verify
from offline_upstream import tree
from offline_upstream.tree import PUBLIC_URL, generate, signing_key

TRUSTED = [signing_key().public_key]


def test_versions_json_lists_the_releases(upstream):
    versions = requests.get(f"{upstream.url}/.versions.json").json()
    assert versions["stable_version"] == "25.12.0"
    assert versions["oldstable_version"] == "24.10.4"
    assert "upcoming_version" in versions
    assert versions["versions_list"] == ["25.12.0", "24.10.4", "23.05.4"]


def test_targets_json_of_every_release(upstream):
    old = requests.get(f"{upstream.url}/releases/23.05.4/.targets.json").json()
    assert len(old) == 75
    assert old["ath79/generic"] == "mips_24kc"
    assert old["mediatek/filogic"] == "aarch64_cortex-a53"
    snapshot = requests.get(f"{upstream.url}/snapshots/.targets.json").json()
    assert snapshot["x86/64"] == "x86_64"


def test_real_profiles_json(upstream):
    url = f"{upstream.url}/releases/23.05.4/targets/ath79/generic/profiles.json"
    profiles = requests.get(url).json()
    assert profiles["metadata_version"] == 1
    assert profiles["version_code"] == "r24012-d8dd03c46f"
    assert profiles["arch_packages"] == "mips_24kc"
    c7 = profiles["profiles"]["tplink_archer-c7-v5"]
    assert "tplink,archer-c7-v5" in c7["supported_devices"]
    assert {"model": "Archer C7", "vendor": "TP-Link", "variant": "v5"} in c7["titles"]
    assert "kmod-ath10k-ct" in c7["device_packages"]
    assert "wpad-basic-mbedtls" in profiles["default_packages"]


def profile_entries(overview: dict) -> set[tuple[str, str, str]]:
    return {
        (p["id"], p["target"], json.dumps(p["titles"], sort_keys=True))
        for p in overview["profiles"]
    }


def test_overview_json_is_the_real_one(upstream):
    """The firmware selector reads each release's ``.overview.json`` from another
    origin: the stand-in publishes the real one's content, CORS allowed."""
    answer = requests.get(f"{upstream.url}/releases/23.05.4/.overview.json")
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    ours = answer.json()
    real_path = "openwrt-samples/downloads/releases/23.05.4/.overview.json"
    real = json.loads(shared(real_path).read_text())
    assert list(ours) == list(real) == ["release", "profiles"]
    assert ours["release"] == real["release"] == "23.05.4"
    assert profile_entries(ours) == profile_entries(real)
    assert [list(p) for p in ours["profiles"][:1]] == [["id", "titles", "target"]]


@pytest.mark.parametrize(
    ("path", "release"),
    [("releases/24.10.4", "24.10.4"), ("snapshots", "SNAPSHOT")],
)
def test_overview_json_of_newer_releases_and_snapshots(upstream, path, release):
    ours = requests.get(f"{upstream.url}/{path}/.overview.json").json()
    assert ours["release"] == release
    real_path = "real-imagebuilder/downloads/releases/24.10.4/.overview.json"
    (generic,) = json.loads(shared(real_path).read_text())["profiles"]
    assert generic in ours["profiles"]  # x86/64 generic, as the real 24.10.4 has it


def test_apk_profiles_carry_the_kernel(upstream):
    url = f"{upstream.url}/releases/25.12.0/targets/x86/64/profiles.json"
    profiles = requests.get(url).json()
    assert profiles["linux_kernel"]["version"] == "6.12.74"
    assert "apk-mbedtls" in profiles["default_packages"]


@pytest.mark.parametrize(
    ("path", "archive"),
    [
        (
            "releases/23.05.4/targets/ath79/generic",
            "openwrt-imagebuilder-23.05.4-ath79-generic.Linux-x86_64.tar.xz",
        ),
        (
            "releases/25.12.0/targets/mediatek/filogic",
            "openwrt-imagebuilder-25.12.0-mediatek-filogic.Linux-x86_64.tar.zst",
        ),
        (
            "snapshots/targets/x86/64",
            "openwrt-imagebuilder-x86-64.Linux-x86_64.tar.zst",
        ),
    ],
)
def test_signed_sha256sums_cover_the_imagebuilder(upstream, path, archive):
    sums = requests.get(f"{upstream.url}/{path}/sha256sums").content
    signature = requests.get(f"{upstream.url}/{path}/sha256sums.sig").text
    assert verify(sums, signature, TRUSTED) == TRUSTED[0]
    listed = dict(reversed(line.split(" *")) for line in sums.decode().splitlines())
    data = requests.get(f"{upstream.url}/{path}/{archive}").content
    assert listed[archive] == hashlib.sha256(data).hexdigest()


def test_signature_refused_with_another_key_or_a_changed_byte(upstream):
    path = f"{upstream.url}/releases/23.05.4/targets/x86/64/sha256sums"
    sums = requests.get(path).content
    signature = requests.get(f"{path}.sig").text
    stranger = SecretKey.from_seed(bytes(32)).public_key
    with pytest.raises(UsignError, match="not trusted"):
        verify(sums, signature, [stranger])
    changed = bytes([sums[0] ^ 1]) + sums[1:]
    with pytest.raises(UsignError, match="does not match"):
        verify(changed, signature, TRUSTED)


def test_opkg_feed_index_is_real_format_and_signed(upstream):
    base = f"{upstream.url}/releases/23.05.4/packages/mips_24kc/base"
    index = requests.get(f"{base}/Packages").content
    assert verify(index, requests.get(f"{base}/Packages.sig").text, TRUSTED)
    assert gzip.decompress(requests.get(f"{base}/Packages.gz").content) == index
    stanzas = index.decode().split("\n\n")
    libjson = next(s for s in stanzas if s.startswith("Package: libjson-c5\n"))
    assert "Provides: libjson-c" in libjson
    assert "Architecture: mips_24kc" in libjson
    filename = next(
        line.split(": ")[1] for line in libjson.splitlines() if line[:9] == "Filename:"
    )
    package = requests.get(f"{base}/{filename}")
    assert package.status_code == 200
    sha = next(line.split(": ")[1] for line in libjson.splitlines() if "SHA256" in line)
    assert hashlib.sha256(package.content).hexdigest() == sha


def test_apk_indexes_and_kmods(upstream):
    base = f"{upstream.url}/releases/25.12.0/targets/x86/64"
    profiles = requests.get(f"{base}/profiles.json").json()
    kernel = profiles["linux_kernel"]
    kmods = f"{base}/kmods/{kernel['version']}-{kernel['release']}-{kernel['vermagic']}"
    index = requests.get(f"{kmods}/index.json").json()
    assert index["version"] == 2
    assert index["architecture"] == "x86_64"
    assert any(name.startswith("kmod-e1000") for name in index["packages"])
    feed = requests.get(
        f"{upstream.url}/releases/25.12.0/packages/x86_64/base/index.json"
    )
    assert feed.json()["packages"]["apk-mbedtls"]


def test_conditional_requests_get_304(upstream):
    url = f"{upstream.url}/.versions.json"
    first = requests.get(url)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert requests.get(url, headers={"If-None-Match": etag}).status_code == 304
    since = requests.get(url, headers={"If-Modified-Since": modified})
    assert since.status_code == 304
    assert (url.removeprefix(upstream.url), 304) in {
        (path, status) for _, path, status in upstream.request_log
    }


def run_make(directory, *args):
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(directory), *args],
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def ath79_builder(upstream_tree, tmp_path_factory):
    """The generated 23.05.4 ath79 ImageBuilder, unpacked, its feeds pointed at the
    tree on disk as one uses a release ImageBuilder offline."""
    target = upstream_tree / "releases/23.05.4/targets/ath79/generic"
    archive = next(target.glob("openwrt-imagebuilder-*.tar.xz"))
    dest = tmp_path_factory.mktemp("ath79")
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    builder = next(dest.iterdir())
    conf = builder / "repositories.conf"
    conf.write_text(conf.read_text().replace(PUBLIC_URL, f"file:{upstream_tree}"))
    return builder


def test_make_info_has_the_real_format(ath79_builder):
    result = run_make(ath79_builder, "info")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        'Current Target: "ath79/generic"',
        'Current Architecture: "mips_24kc"',
        'Current Revision: "r24012-d8dd03c46f"',
    ]
    assert lines[3].startswith("Default Packages: base-files ")
    assert lines[4:6] == ["Available Profiles:", ""]
    block = lines[lines.index("tplink_archer-c7-v5:") :][:5]
    assert block[1] == "    TP-Link Archer C7 v5"
    assert block[2].startswith("    Packages: ") and "kmod-ath10k-ct" in block[2]
    assert block[3] == "    hasImageMetadata: 1"
    assert block[4].startswith("    SupportedDevices: tplink,archer-c7-v5")


def test_manifest_resolves_real_dependencies(ath79_builder):
    result = run_make(
        ath79_builder, "manifest", "PROFILE=tplink_archer-c7-v5", "PACKAGES=htop -ppp"
    )
    assert result.returncode == 0, result.stderr
    manifest = dict(line.split(" - ") for line in result.stdout.splitlines())
    assert "htop" in manifest and "libncurses6" in manifest  # htop's dependency
    assert "ppp" not in manifest
    assert "kmod-ath10k-ct" in manifest  # a device package


def test_manifest_errors_like_opkg(ath79_builder):
    unknown = run_make(
        ath79_builder, "manifest", "PROFILE=tplink_archer-c7-v5", "PACKAGES=nope"
    )
    assert unknown.returncode != 0
    assert " * opkg_install_cmd: Cannot install package nope." in unknown.stderr
    conflict = run_make(
        ath79_builder,
        "manifest",
        "PROFILE=tplink_archer-c7-v5",
        "PACKAGES=dnsmasq-full",
    )
    assert conflict.returncode != 0
    assert "conflict" in conflict.stderr and "dnsmasq" in conflict.stderr


def test_val_kernel_build_dir(ath79_builder):
    result = run_make(ath79_builder, "val.KERNEL_BUILD_DIR")
    assert result.stdout.strip().endswith(
        "build_dir/target-mips_24kc_musl/linux-ath79_generic"
    )


def test_generation_is_deterministic(upstream_tree, tmp_path):
    again = generate(tmp_path / "again")
    for relative in (
        ".versions.json",
        "releases/23.05.4/targets/ath79/generic/sha256sums",
        "releases/25.12.0/targets/x86/64/sha256sums",
        "snapshots/packages/x86_64/base/packages.adb",
    ):
        assert (again / relative).read_bytes() == (
            upstream_tree / relative
        ).read_bytes()


def test_the_tree_is_generated_again_only_when_what_makes_it_changes(tmp_path):
    """The suite reuses a generated tree while its fingerprint matches."""
    package = tmp_path / "offline_upstream"
    shutil.copytree(Path(tree.__file__).parent, package)
    before = tree.fingerprint(package)
    with (package / "demo.py").open("a") as demo:
        demo.write("# the demo changed\n")
    assert tree.fingerprint(package) == before
    with (package / "packages.py").open("a") as generator:
        generator.write("# the generator changed\n")
    assert tree.fingerprint(package) != before
