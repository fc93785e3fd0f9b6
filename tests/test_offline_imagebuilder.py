"""The offline upstream's ImageBuilder, driven with the real ``make`` the way the
server drives OpenWrt's: a small hand-made package world, two ImageBuilders (opkg
on an x86-like target with a rootfs partition, apk on an ath79-like target with a
flash limit), and the package files and indexes behind them."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import io
import json
import shutil
import subprocess
import tarfile
import threading
import zlib
from functools import partial
from pathlib import Path

import pytest

from asu.formats import adb
from offline_upstream import adb_writer
from offline_upstream.imagebuilder_writer import write_imagebuilder
from offline_upstream.model import (
    SIZE_SCALE,
    ImageBuilderInfo,
    ImageType,
    Package,
    Profile,
)
from offline_upstream.packages import (
    apk_index,
    apk_info,
    build_package_file,
    index_json,
    package_filename,
    packages_index,
    write_feed,
)
from offline_upstream.tree import signing_key

MB = 1024 * 1024
VERSION_CODE = "r28959-29397011cc"
EPOCH = 1760891865


def pkg(name: str, version: str = "1.0-r1", **fields) -> Package:
    return Package(name=name, version=version, **fields)


WORLD = [
    pkg(
        "base-files",
        "1665~29397011cc",
        depends=("libc", "netifd"),
        installed_size=64_000,
    ),
    pkg("libc", "1.2.5-r4", installed_size=3_200_000),
    pkg("netifd", depends=("libc", "libubox20240329"), installed_size=160_000),
    pkg(
        "libubox20240329",
        "2025.07.23~49056d17-r1",
        depends=("libc",),
        provides=("libubox",),
        abi_version="20240329",
        installed_size=64_000,
    ),
    pkg("kernel", "6.6.110~484466e2-r1"),
    pkg("opkg", "2024.10.16~38eccbb1-r1", depends=("libc",), installed_size=64_000),
    pkg("apk-mbedtls", "3.0.5-r2", depends=("libc",), installed_size=64_000),
    pkg("htop", "3.4.1-r1", depends=("libc", "libncurses6"), installed_size=64_000),
    pkg("libncurses6", "6.4-r2", depends=("libc", "terminfo | terminfo-full")),
    pkg("terminfo", "6.4-r2", installed_size=6_400),
    pkg("terminfo-full", "6.4-r2", installed_size=640_000),
    pkg(
        "nftables-json",
        "1.1.1-r1",
        provides=("nftables",),
        conflicts=("nftables-nojson",),
    ),
    pkg(
        "nftables-nojson",
        "1.1.1-r1",
        provides=("nftables",),
        conflicts=("nftables-json",),
    ),
    pkg("kmod-e1000", "6.6.110-r1", depends=("kernel",), installed_size=64_000),
    pkg("kmod-drm-i915", "6.6.110-r1", depends=("kernel",), installed_size=64_000),
    pkg("kmod-ath9k", "6.6.110-r1", depends=("kernel",), installed_size=64_000),
    pkg("broken", depends=("libc", "libmissing")),
    pkg("bigpkg", installed_size=200 * MB),
]

X86_PROFILE = Profile(
    id="generic",
    titles=({"vendor": "Generic", "model": "x86/64"},),
    device_packages=("kmod-e1000", "kmod-drm-i915"),
    images=(
        ImageType("combined", "ext4"),
        ImageType("combined", "squashfs"),
        ImageType("rootfs", "ext4"),
        ImageType("combined-efi", "squashfs"),
        ImageType("rootfs", "squashfs"),
    ),
)

ATH79_PROFILE = Profile(
    id="tplink_archer-c7-v5",
    titles=({"model": "Archer C7", "variant": "v5", "vendor": "TP-Link"},),
    device_packages=("kmod-ath9k",),
    supported_devices=("tplink,archer-c7-v5", "archer-c7-v5"),
    images=(
        ImageType("kernel", "initramfs"),
        ImageType("factory", "squashfs"),
        ImageType("sysupgrade", "squashfs"),
    ),
    image_size=15424 * 1024 // 64,
)

X86_INFO = ImageBuilderInfo(
    version="24.10.4",
    version_code=VERSION_CODE,
    target="x86/64",
    arch="x86_64",
    package_format="opkg",
    default_packages=("base-files", "libc", "nftables"),
    profiles=(X86_PROFILE,),
    source_date_epoch=EPOCH,
    linux_kernel={"release": "1", "vermagic": "484466e2", "version": "6.6.110"},
    rootfs_partsize_mb=104,
    filesystems=("squashfs", "ext4"),
)

ATH79_INFO = ImageBuilderInfo(
    version="25.12.0",
    version_code="r32802-f505120278",
    target="ath79/generic",
    arch="mips_24kc",
    package_format="apk",
    default_packages=("base-files", "libc", "nftables"),
    profiles=(ATH79_PROFILE,),
    source_date_epoch=EPOCH,
)


def make(ib: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-C", str(ib), "--no-print-directory", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def x86(tmp_path_factory) -> Path:
    ib = tmp_path_factory.mktemp("ib") / "openwrt-imagebuilder-24.10.4-x86-64"
    write_imagebuilder(ib, X86_INFO, WORLD, signing_key())
    return ib


@pytest.fixture(scope="module")
def ath79(tmp_path_factory) -> Path:
    ib = tmp_path_factory.mktemp("ib") / "openwrt-imagebuilder-25.12.0-ath79-generic"
    write_imagebuilder(ib, ATH79_INFO, WORLD, signing_key())
    return ib


def server_build(ib: Path, work: Path) -> tuple[Path, subprocess.CompletedProcess]:
    """An x86 build with a ``defaults`` script in FILES, as the server asks for it."""
    script = work / "files" / "etc" / "uci-defaults" / "99-asu-defaults"
    script.parent.mkdir(parents=True)
    script.write_text("uci set system.@system[0].hostname=asu\n")
    script.chmod(0o700)
    bin_dir = work / "bin"
    result = make(
        ib,
        "image",
        "PROFILE=generic",
        "PACKAGES=htop -kmod-drm-i915",
        "EXTRA_IMAGE_NAME=abc",
        f"FILES={work / 'files'}",
        f"BIN_DIR={bin_dir}",
    )
    return bin_dir, result


@pytest.fixture(scope="module")
def x86_build(x86, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    return server_build(x86, tmp_path_factory.mktemp("x86-build"))


@pytest.fixture(scope="module")
def ath79_build(ath79, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    bin_dir = tmp_path_factory.mktemp("ath79-build") / "bin"
    result = make(
        ath79,
        "image",
        "PROFILE=tplink_archer-c7-v5",
        "PACKAGES=htop",
        f"BIN_DIR={bin_dir}",
    )
    return bin_dir, result


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def gunzip(data: bytes) -> bytes:
    """Decompress a gzip'd image, ignoring fwtool metadata appended to it."""
    return zlib.decompressobj(31).decompress(data)


def squashfs_listing(image: bytes, tmp_path: Path) -> set[str]:
    path = tmp_path / "rootfs.squashfs"
    path.write_bytes(image)
    listing = subprocess.run(
        ["unsquashfs", "-l", "-d", "", str(path)], capture_output=True, text=True
    )
    assert listing.returncode == 0, listing.stderr
    return {line.strip().lstrip("/") for line in listing.stdout.splitlines()}


def squashfs_file(image: bytes, member: str, tmp_path: Path) -> str:
    path = tmp_path / "rootfs.squashfs"
    path.write_bytes(image)
    result = subprocess.run(
        ["unsquashfs", "-cat", str(path), member], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


# -- package files and indexes --------------------------------------------------------


def test_ipk_is_deterministic_and_laid_out_like_opkg_build():
    htop = WORLD[7]
    data = build_package_file(htop, "opkg", EPOCH)
    assert data == build_package_file(htop, "opkg", EPOCH)
    assert data[4:8] == b"\0\0\0\0"  # gzip header without a time
    with tarfile.open(fileobj=io.BytesIO(data)) as outer:
        assert outer.getnames() == [
            "./debian-binary",
            "./data.tar.gz",
            "./control.tar.gz",
        ]
        assert all(m.mtime == EPOCH and m.uid == 0 for m in outer.getmembers())
        part = {m.name: outer.extractfile(m).read() for m in outer.getmembers()}
    assert part["./debian-binary"] == b"2.0\n"
    with tarfile.open(fileobj=io.BytesIO(part["./control.tar.gz"])) as control:
        text = control.extractfile("./control").read().decode()
    assert text.splitlines() == [
        "Package: htop",
        "Version: 3.4.1-r1",
        "Depends: libc, libncurses6",
        "Section: base",
        "Architecture: all",
        "Installed-Size: 64000",
        "Description:  htop",
    ]
    with tarfile.open(fileobj=io.BytesIO(part["./data.tar.gz"])) as payload:
        names = payload.getnames()
        content = payload.extractfile("./usr/share/pkg/htop").read()
    assert names == [
        ".",
        "./usr",
        "./usr/share",
        "./usr/share/pkg",
        "./usr/share/pkg/htop",
    ]
    assert len(content) == htop.payload_size == 64_000 * 0.65 // SIZE_SCALE
    assert len(zlib.compress(content, 9)) > len(content)  # incompressible


def test_apk_is_a_v3_package_and_base_files_ships_release_files():
    base_files = WORLD[0]
    data = build_package_file(base_files, "apk", EPOCH)
    container = adb.parse(data, adb.SCHEMA_PACKAGE)
    package = adb.read_package(container)
    files = {entry.path for entry, _ in adb.package_contents(container, package)}
    assert data[:4] == b"ADBd"
    assert {"etc/openwrt_release", "etc/openwrt_version"} <= files
    assert ("etc/uci-defaults", 0o755) in package.directories
    assert package.info.name == "base-files"
    assert [str(d) for d in package.info.depends] == ["libc", "netifd"]
    nojson = adb.read_package(adb.parse(build_package_file(WORLD[12], "apk", EPOCH)))
    assert [str(d) for d in nojson.info.provides] == ["nftables=1.1.1-r1"]
    assert "!nftables-json" in [str(d) for d in nojson.info.depends]
    libubox = apk_info(WORLD[3])
    assert [str(d) for d in libubox.provides] == ["libubox"]  # the plain name
    assert libubox.provider_priority == 10
    assert libubox.tags == ("openwrt:abiversion=20240329",)


def test_indexes():
    libubox = WORLD[3]
    entries = [(libubox, build_package_file(libubox, "opkg", EPOCH))]
    paragraph = packages_index(entries, "opkg")
    fields = [line.split(":")[0] for line in paragraph.splitlines() if line]
    assert fields == [
        "Package", "Version", "Depends", "Provides", "Section", "ABIVersion",
        "Architecture", "Installed-Size", "Filename", "Size", "SHA256sum",
        "Description",
    ]  # fmt: skip
    assert f"SHA256sum: {hashlib.sha256(entries[0][1]).hexdigest()}\n" in paragraph
    assert package_filename(libubox, "opkg") == (
        "libubox20240329_2025.07.23~49056d17-r1_all.ipk"
    )
    assert (
        package_filename(libubox, "apk") == "libubox20240329-2025.07.23~49056d17-r1.apk"
    )
    assert index_json([libubox], "opkg", "x86_64") == {
        "architecture": "x86_64",
        "packages": {"libubox20240329": "2025.07.23~49056d17-r1"},
    }
    assert index_json([libubox], "apk", "x86_64") == {
        "version": 2,
        "architecture": "x86_64",
        "packages": {"libubox": "2025.07.23~49056d17-r1"},
    }
    package_file = build_package_file(libubox, "apk", EPOCH)
    index = adb.read_index(adb.parse(apk_index([(libubox, package_file)])))
    [entry] = index.packages
    assert entry.hashes == adb.parse(package_file).identity
    assert entry.file_size == len(package_file)
    assert entry.filename() == package_filename(libubox, "apk")


def test_write_feed(tmp_path):
    write_feed(tmp_path / "opkg", WORLD[:3], "opkg", "x86_64", EPOCH)
    write_feed(tmp_path / "apk", WORLD[:3], "apk", "x86_64", EPOCH)
    assert sorted(p.name for p in (tmp_path / "opkg").iterdir()) == [
        "Packages",
        "Packages.gz",
        "base-files_1665~29397011cc_all.ipk",
        "index.json",
        "libc_1.2.5-r4_all.ipk",
        "netifd_1.0-r1_all.ipk",
    ]
    packages = (tmp_path / "opkg" / "Packages").read_bytes()
    gzipped = (tmp_path / "opkg" / "Packages.gz").read_bytes()
    assert gzip.decompress(gzipped) == packages
    assert "packages.adb" in {p.name for p in (tmp_path / "apk").iterdir()}


# -- make info, val, help ------------------------------------------------------------


def test_info_prints_the_real_format(x86):
    result = make(x86, "info")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        'Current Target: "x86/64"',
        'Current Architecture: "x86_64"',
        f'Current Revision: "{VERSION_CODE}"',
        "Default Packages: base-files libc nftables opkg",
        "Available Profiles:",
        "",
        "generic:",
        "    Generic x86/64",
        "    Packages: kmod-e1000 kmod-drm-i915",
        "    hasImageMetadata: 0",
    ]


def test_info_of_the_apk_world(ath79):
    lines = make(ath79, "info").stdout.splitlines()
    assert lines[3] == "Default Packages: base-files libc nftables apk-mbedtls"
    assert lines[6:] == [
        "tplink_archer-c7-v5:",
        "    TP-Link Archer C7 v5",
        "    Packages: kmod-ath9k",
        "    hasImageMetadata: 1",
        "    SupportedDevices: tplink,archer-c7-v5 archer-c7-v5",
    ]


def test_val_prints_make_variables(x86):
    kernel_dir = make(x86, "val.KERNEL_BUILD_DIR").stdout.strip()
    assert kernel_dir == f"{x86}/build_dir/target-x86_64_musl/linux-x86_64"
    kernel_size = X86_INFO.kernel_size // SIZE_SCALE
    assert (Path(kernel_dir) / "vmlinux").stat().st_size == kernel_size
    assert make(x86, "val.TOPDIR").stdout.strip() == str(x86)
    assert make(x86, "val.BIN_DIR").stdout.strip() == f"{x86}/bin/targets/x86/64"
    assert make(x86, "val.BIN_DIR", "BIN_DIR=/elsewhere").stdout.strip() == "/elsewhere"


def test_help_is_the_default_target(x86):
    result = make(x86)
    assert result.returncode == 0
    assert "manifest" in result.stdout and "image" in result.stdout


# -- make manifest --------------------------------------------------------------------


def opkg_manifest(ib: Path, *variables: str) -> dict[str, str]:
    result = make(ib, "manifest", *variables)
    assert result.returncode == 0, result.stderr
    return dict(line.split(" - ") for line in result.stdout.splitlines())


def test_manifest_resolves_dependencies_provides_and_removals(x86):
    result = make(x86, "manifest", "PROFILE=generic", "PACKAGES=htop -kmod-drm-i915")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == sorted(lines)
    assert lines == [
        "base-files - 1665~29397011cc",
        "htop - 3.4.1-r1",
        "kernel - 6.6.110~484466e2-r1",
        "kmod-e1000 - 6.6.110-r1",
        "libc - 1.2.5-r4",
        "libncurses6 - 6.4-r2",
        "libubox20240329 - 2025.07.23~49056d17-r1",
        "netifd - 1.0-r1",
        "nftables-json - 1.1.1-r1",  # provides the default "nftables"
        "opkg - 2024.10.16~38eccbb1-r1",
        "terminfo - 6.4-r2",  # the first of "terminfo | terminfo-full"
    ]


def test_manifest_strips_abi_versions_on_request(x86):
    packages = opkg_manifest(x86, "PROFILE=generic", "STRIP_ABI=1")
    assert packages["libubox"] == "2025.07.23~49056d17-r1"
    assert "libubox20240329" not in packages


def test_manifest_prefers_the_provider_asked_for(x86):
    packages = opkg_manifest(
        x86, "PROFILE=generic", "PACKAGES=nftables-nojson terminfo-full"
    )
    assert "nftables-nojson" in packages
    assert "nftables-json" not in packages
    assert "terminfo-full" in packages
    assert "terminfo" not in packages


def test_manifest_of_the_apk_world(ath79):
    result = make(ath79, "manifest", "PROFILE=tplink_archer-c7-v5", "PACKAGES=htop")
    assert result.returncode == 0, result.stderr
    assert "htop 3.4.1-r1" in result.stdout.splitlines()
    assert "apk-mbedtls 3.0.5-r2" in result.stdout.splitlines()
    assert "kmod-ath9k 6.6.110-r1" in result.stdout.splitlines()


def test_unknown_package_fails_like_opkg(x86):
    result = make(x86, "manifest", "PROFILE=generic", "PACKAGES=no-such-package")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[:4] == [
        "Downloading file:packages/Packages",
        f"Updated list of available packages in {x86}/dl/imagebuilder",
        "Downloading file:packages/Packages.sig",
        "Signature check passed.",
    ]
    errors = lines.index("Collected errors:")
    assert lines[errors + 1] == (
        " * opkg_install_cmd: Cannot install package no-such-package."
    )


def test_missing_dependency_fails_like_opkg(x86):
    result = make(x86, "manifest", "PROFILE=generic", "PACKAGES=broken")
    assert result.returncode == 2
    assert (
        " * pkg_hash_check_unresolved: cannot find dependency libmissing for broken"
        in (result.stderr.splitlines())
    )
    assert " * opkg_install_cmd: Cannot install package broken." in result.stderr


def test_unknown_package_fails_like_apk(ath79):
    result = make(
        ath79, "manifest", "PROFILE=tplink_archer-c7-v5", "PACKAGES=no-such-package"
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[:3] == [
        "ERROR: unable to select packages:",
        "  no-such-package (no such package):",
        "    required by: world[no-such-package]",
    ]


def test_a_versioned_provide_is_selected_like_apk(ath79):
    ok = make(ath79, "manifest", "PACKAGES=nftables=1.1.1-r1 -nftables")
    assert ok.returncode == 0, ok.stderr
    assert "nftables-json 1.1.1-r1" in ok.stdout.splitlines()
    wrong = make(ath79, "manifest", "PACKAGES=nftables=1.0.0-r1")
    assert wrong.returncode == 2
    assert "  nftables=1.0.0-r1 (no such package):" in wrong.stderr.splitlines()


def test_an_index_apk_cannot_trust_is_left_out_like_apk(tmp_path):
    ib = tmp_path / "openwrt-imagebuilder-25.12.0-ath79-generic"
    write_imagebuilder(ib, ATH79_INFO, WORLD, signing_key())
    index = ib / "packages" / "packages.adb"
    packages = adb.read_index(adb.parse(index.read_bytes())).packages
    other = adb_writer.SigningKey.from_seed(b"not the offline upstream")
    index.write_bytes(adb_writer.index_file(packages, other))
    result = make(ib, "manifest", "PROFILE=tplink_archer-c7-v5")
    assert result.returncode == 2
    assert "WARNING: opening packages/packages.adb: UNTRUSTED signature" in (
        result.stderr
    )
    assert "  base-files (no such package):" in result.stderr.splitlines()
    (ib / "keys" / "other.pem").write_text(other.public_pem())
    trusted = make(ib, "manifest", "PROFILE=tplink_archer-c7-v5")
    assert trusted.returncode == 0, trusted.stderr


def test_conflict_fails_like_opkg(x86):
    result = make(x86, "manifest", "PACKAGES=nftables-json nftables-nojson")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[lines.index("Collected errors:") :][:4] == [
        "Collected errors:",
        " * check_conflicts_for: The following packages conflict with nftables-nojson:",
        " * check_conflicts_for: \tnftables-json * ",
        " * opkg_install_cmd: Cannot install package nftables-nojson.",
    ]


def test_conflict_fails_like_apk(ath79):
    result = make(ath79, "manifest", "PACKAGES=nftables-json nftables-nojson")
    assert result.returncode == 2
    assert result.stderr.splitlines()[:3] == [
        "ERROR: unable to select packages:",
        "  nftables-nojson-1.1.1-r1:",
        "    conflicts: nftables-json-1.1.1-r1",
    ]


def test_unknown_profile(x86, tmp_path):
    result = make(x86, "image", "PROFILE=no_such_profile", f"BIN_DIR={tmp_path}")
    assert result.returncode != 0
    assert result.stdout.splitlines() == [
        'Profile "no_such_profile" does not exist!',
        'Use "make info" to get a list of available profile names.',
    ]
    assert "Error 1" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_package_depends_and_whatdepends(x86):
    depends = make(x86, "package_depends", "PACKAGE=libncurses6")
    assert depends.stdout.splitlines() == [
        "libncurses6 depends on:",
        "\tlibc",
        "\tterminfo | terminfo-full",
    ]
    users = make(x86, "package_whatdepends", "PACKAGE=libubox20240329").stdout
    assert "\tnetifd 1.0-r1\tdepends on libubox20240329" in users.splitlines()


# -- make image -----------------------------------------------------------------------


def test_image_writes_what_the_real_one_writes(x86_build):
    bin_dir, result = x86_build
    assert result.returncode == 0, result.stderr
    assert "Building images for x86 - Generic x86/64" in result.stdout
    prefix = "openwrt-24.10.4-abc-x86-64-generic"
    assert sorted(p.name for p in bin_dir.iterdir()) == [
        f"{prefix}-ext4-combined.img.gz",
        f"{prefix}-ext4-rootfs.img.gz",
        f"{prefix}-kernel.bin",
        f"{prefix}-squashfs-combined-efi.img.gz",
        f"{prefix}-squashfs-combined.img.gz",
        f"{prefix}-squashfs-rootfs.img.gz",
        f"{prefix}.manifest",
        "profiles.json",
        "sha256sums",
    ]
    manifest_file = (bin_dir / f"{prefix}.manifest").read_text()
    assert "htop - 3.4.1-r1\n" in manifest_file
    assert "kmod-drm-i915" not in manifest_file


def test_image_profiles_json_matches_the_files(x86_build):
    bin_dir, _ = x86_build
    document = json.loads((bin_dir / "profiles.json").read_text())
    assert document["metadata_version"] == 1
    assert document["target"] == "x86/64"
    assert document["version_code"] == VERSION_CODE
    assert document["linux_kernel"] == X86_INFO.linux_kernel
    assert "opkg" in document["default_packages"]
    profile = document["profiles"]["generic"]
    assert profile["image_prefix"] == "openwrt-24.10.4-abc-x86-64-generic"
    assert profile["device_packages"] == ["kmod-e1000", "kmod-drm-i915"]
    for image in profile["images"]:
        data = (bin_dir / image["name"]).read_bytes()
        assert image["sha256"] == hashlib.sha256(data).hexdigest()
        if image["type"] == "rootfs":
            assert image["sha256_unsigned"] == image["sha256"]
        else:  # combined images carry fwtool metadata
            assert image["sha256_unsigned"] != image["sha256"]
            assert data[-16:-12] == b"FWx0"
    sums = dict(
        reversed(line.split(" *"))
        for line in (bin_dir / "sha256sums").read_text().splitlines()
    )
    assert sums == {
        p.name: sha256(p) for p in bin_dir.iterdir() if p.name != "sha256sums"
    }


def test_image_holds_the_packages_and_the_files_overlay(x86_build, tmp_path):
    bin_dir, _ = x86_build
    rootfs = gunzip(
        (
            bin_dir / "openwrt-24.10.4-abc-x86-64-generic-squashfs-rootfs.img.gz"
        ).read_bytes()
    )
    listing = squashfs_listing(rootfs, tmp_path)
    for name in ("htop", "libncurses6", "terminfo", "kmod-e1000", "base-files", "opkg"):
        assert f"usr/share/pkg/{name}" in listing
    assert "usr/share/pkg/kmod-drm-i915" not in listing
    assert "etc/uci-defaults/99-asu-defaults" in listing
    assert "usr/lib/opkg/info/htop.control" in listing
    status = squashfs_file(rootfs, "usr/lib/opkg/status", tmp_path)
    assert "Package: htop\nVersion: 3.4.1-r1\n" in status
    release = squashfs_file(rootfs, "etc/openwrt_release", tmp_path)
    assert f"DISTRIB_REVISION='{VERSION_CODE}'" in release
    defaults = squashfs_file(rootfs, "etc/uci-defaults/99-asu-defaults", tmp_path)
    assert defaults == "uci set system.@system[0].hostname=asu\n"


def test_combined_image_is_a_disk_with_kernel_and_rootfs(x86_build):
    bin_dir, _ = x86_build
    disk = gunzip(
        (
            bin_dir / "openwrt-24.10.4-abc-x86-64-generic-squashfs-combined.img.gz"
        ).read_bytes()
    )
    assert disk[510:512] == b"\x55\xaa"
    rootfs_start = int.from_bytes(disk[446 + 16 + 8 : 446 + 16 + 12], "little") * 512
    rootfs_sectors = int.from_bytes(disk[446 + 16 + 12 : 446 + 16 + 16], "little")
    assert rootfs_sectors * 512 == 104 * MB // 64
    assert disk[rootfs_start : rootfs_start + 4] == b"hsqs"


def test_apk_image_with_flash_limit(ath79_build, tmp_path):
    bin_dir, result = ath79_build
    assert result.returncode == 0, result.stderr
    prefix = "openwrt-25.12.0-ath79-generic-tplink_archer-c7-v5"
    document = json.loads((bin_dir / "profiles.json").read_text())
    images = {
        i["type"]: i for i in document["profiles"]["tplink_archer-c7-v5"]["images"]
    }
    assert set(images) == {"factory", "sysupgrade"}  # no initramfs from an ImageBuilder
    assert images["sysupgrade"]["name"] == f"{prefix}-squashfs-sysupgrade.bin"
    assert images["sysupgrade"]["sha256"] != images["sysupgrade"]["sha256_unsigned"]
    assert images["factory"]["sha256"] == images["factory"]["sha256_unsigned"]
    sysupgrade = (bin_dir / images["sysupgrade"]["name"]).read_bytes()
    metadata_size = int.from_bytes(sysupgrade[-4:], "big")
    metadata = json.loads(sysupgrade[-metadata_size:-16])
    assert metadata["supported_devices"] == ["tplink,archer-c7-v5", "archer-c7-v5"]
    unsigned = sysupgrade[:-metadata_size]
    assert (
        hashlib.sha256(unsigned).hexdigest() == images["sysupgrade"]["sha256_unsigned"]
    )
    kernel_size = ATH79_INFO.kernel_size // SIZE_SCALE
    listing = squashfs_listing(unsigned[kernel_size:], tmp_path)
    assert {
        "usr/share/pkg/htop",
        "usr/share/pkg/apk-mbedtls",
        "lib/apk/db/installed",
    } <= listing
    manifest_file = (bin_dir / f"{prefix}.manifest").read_text()
    assert (
        "htop - 3.4.1-r1\n" in manifest_file
    )  # upstream's apk manifests use " - " too


def test_too_many_packages_for_the_flash(ath79, tmp_path):
    result = make(
        ath79,
        "image",
        "PROFILE=tplink_archer-c7-v5",
        "PACKAGES=bigpkg",
        f"BIN_DIR={tmp_path}",
    )
    assert result.returncode != 0
    assert "is too big" in result.stderr
    assert not list(tmp_path.glob("*sysupgrade*"))


def test_rootfs_partition_too_small(x86, tmp_path):
    result = make(
        x86, "image", "PROFILE=generic", "ROOTFS_PARTSIZE=1", f"BIN_DIR={tmp_path}"
    )
    assert result.returncode != 0
    assert "is too big" in result.stderr
    assert not list(tmp_path.glob("*combined*"))


def test_too_many_packages_for_the_rootfs_partition(x86, tmp_path):
    result = make(
        x86, "image", "PROFILE=generic", "PACKAGES=bigpkg", f"BIN_DIR={tmp_path}"
    )
    assert result.returncode != 0
    assert "is too big" in result.stderr


def test_filesystems_follow_the_config(x86, tmp_path):
    ib = tmp_path / "ib"
    shutil.copytree(x86, ib, symlinks=True)
    config = ib / ".config"
    text = config.read_text()
    assert "CONFIG_TARGET_ROOTFS_EXT4FS=y\n" in text
    config.write_text(
        text.replace(
            "CONFIG_TARGET_ROOTFS_EXT4FS=y", "# CONFIG_TARGET_ROOTFS_EXT4FS is not set"
        )
    )
    bin_dir = tmp_path / "bin"
    result = make(ib, "image", "PROFILE=generic", f"BIN_DIR={bin_dir}")
    assert result.returncode == 0, result.stderr
    names = [p.name for p in bin_dir.iterdir()]
    assert not [name for name in names if "ext4" in name]
    assert [name for name in names if "squashfs-combined.img.gz" in name]


def test_builds_are_reproducible(x86, x86_build, tmp_path):
    first, _ = x86_build
    second, result = server_build(x86, tmp_path)
    assert result.returncode == 0, result.stderr
    for path in first.iterdir():
        assert (second / path.name).read_bytes() == path.read_bytes(), path.name


def test_clean_removes_what_builds_leave(x86, tmp_path):
    ib = tmp_path / "ib"
    shutil.copytree(x86, ib, symlinks=True)
    kernel_dir = Path(make(ib, "val.KERNEL_BUILD_DIR").stdout.strip())
    assert make(ib, "image", "PROFILE=generic").returncode == 0
    bin_dir = ib / "bin" / "targets" / "x86" / "64"
    assert (bin_dir / "profiles.json").is_file()
    assert (kernel_dir / "tmp").is_dir()
    assert make(ib, "clean").returncode == 0
    assert not bin_dir.exists()
    assert not (kernel_dir / "tmp").exists()
    assert (kernel_dir / "vmlinux").is_file()


# -- feeds over HTTP ------------------------------------------------------------------


@pytest.fixture
def http_feed(tmp_path):
    """A feed of the world served over HTTP on loopback; yields its URL."""
    write_feed(tmp_path / "feed" / "base", WORLD, "opkg", "x86_64", EPOCH)
    index = tmp_path / "feed" / "base" / "Packages"
    index.with_name("Packages.sig").write_text(signing_key().sign(index.read_bytes()))
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=tmp_path / "feed")
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/base"
    server.shutdown()
    server.server_close()


def test_remote_feeds_are_downloaded(http_feed, tmp_path):
    info = dataclasses.replace(X86_INFO, feeds={"base": http_feed})
    local = [p for p in WORLD if p.name.startswith(("kernel", "kmod-"))]
    ib = tmp_path / "ib"
    write_imagebuilder(ib, info, local, signing_key())
    assert (
        f"src/gz openwrt_base {http_feed}\n" in (ib / "repositories.conf").read_text()
    )
    result = make(
        ib, "image", "PROFILE=generic", "PACKAGES=htop", f"BIN_DIR={tmp_path / 'bin'}"
    )
    assert result.returncode == 0, result.stderr
    assert (ib / "dl" / "htop_3.4.1-r1_all.ipk").is_file()
    assert "htop - 3.4.1-r1" in next((tmp_path / "bin").glob("*.manifest")).read_text()
