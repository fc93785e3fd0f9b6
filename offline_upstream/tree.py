"""Write the offline upstream: a downloads tree laid out like the real one.

```
.versions.json
keys/<key id>                                   the usign test key that signs everything
keys/offline-upstream.pem                       the apk test key that signs packages.adb
releases/<version>/.targets.json                {target: package arch}
releases/<version>/.overview.json               the firmware selector: release, profiles
releases/<version>/targets/<t>/<s>/profiles.json, sha256sums, sha256sums.sig
releases/<version>/targets/<t>/<s>/openwrt-imagebuilder-….tar.xz|.tar.zst
releases/<version>/targets/<t>/<s>/packages/    the target's own packages
releases/<version>/targets/<t>/<s>/kmods/<kernel>-<release>-<vermagic>/  (24.10 on)
releases/<version>/packages/<arch>/<feed>/      base, packages, luci, routing, ...
snapshots/…                                     the same for SNAPSHOT
```

Every target of a release gets its real ``profiles.json``; the targets the data has
packages for also get feeds, package files and an ImageBuilder. The same inputs give
the same bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import lzma
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from asu.formats import adb
from asu.formats.usign import SecretKey
from offline_upstream import adb_writer
from offline_upstream.imagebuilder_writer import write_imagebuilder
from offline_upstream.model import ImageBuilderInfo, Package
from offline_upstream.packages import write_feed
from offline_upstream.worlds import World, load_profiles, load_world, profile_models

#: Where OpenWrt publishes; the ImageBuilders name their feeds by this address.
PUBLIC_URL = "https://downloads.openwrt.org"
#: The revision the offline SNAPSHOT is at unless a test moves it on.
SNAPSHOT_VERSION_CODE = "r33010-5a6c8e1f0b"

#: Written at the top of the tree: the :func:`fingerprint` it was generated with.
FINGERPRINT_FILE = ".generator"
#: Targets whose ImageBuilder can write ext4 images besides squashfs.
EXT4_TARGETS = ("x86/64",)

_SIGNING_SEED = hashlib.sha256(b"asu offline upstream test key").digest()


def signing_key() -> SecretKey:
    """The offline upstream's usign key: a fixed test key, never a real one."""
    return SecretKey.from_seed(_SIGNING_SEED)


@dataclass(frozen=True)
class Release:
    """One version the offline upstream publishes, and the data it is made from."""

    version: str  # "23.05.4", "SNAPSHOT"
    data: str  # the world and profiles it is generated from
    archive: str  # ImageBuilder compression: "xz" (up to 23.05) or "zst"
    version_code: str = ""  # overrides the data's (snapshots move on)

    @property
    def path(self) -> str:
        """Where the release lives below the upstream root."""
        if self.version == "SNAPSHOT":
            return "snapshots"
        return f"releases/{self.version}"

    @property
    def dist_prefix(self) -> str:
        """File name prefix of its images: ``openwrt-23.05.4`` or ``openwrt``."""
        return "openwrt" if self.version == "SNAPSHOT" else f"openwrt-{self.version}"


def releases(snapshot_version_code: str = SNAPSHOT_VERSION_CODE) -> tuple[Release, ...]:
    """Every release of the offline upstream, oldest first."""
    return (
        Release("23.05.4", "23.05.4", "xz"),
        Release("24.10.4", "24.10.4", "zst"),
        Release("25.12.0", "25.12.0", "zst"),
        Release("SNAPSHOT", "25.12.0", "zst", snapshot_version_code),
    )


def versions_json(all_releases: tuple[Release, ...]) -> dict:
    """``.versions.json``: what the upstream calls stable, oldstable and upcoming."""
    numbered = [r.version for r in all_releases if r.version != "SNAPSHOT"]
    return {
        "stable_version": numbered[-1] if numbered else "",
        "oldstable_version": numbered[-2] if len(numbered) > 1 else "",
        "upcoming_version": "",
        "versions_list": list(reversed(numbered)),
    }


#: The package's modules that play no part in what the tree holds.
NOT_GENERATING = {"__main__.py", "demo.py", "server.py"}


def fingerprint(package: Path = Path(__file__).parent) -> str:
    """A hash of everything the tree is generated from: the code of ``package``,
    its ImageBuilder and data (not what only serves it or runs the demo)."""
    files = {
        str(path.relative_to(package)): path
        for path in sorted(package.rglob("*"))
        if path.is_file()
        and "__pycache__" not in path.parts
        and (path.parent != package or path.name not in NOT_GENERATING)
    }
    files["asu/formats/adb.py"] = Path(adb.__file__)  # copied into each ImageBuilder
    digest = hashlib.sha256()
    for name, path in files.items():
        digest.update(name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def is_current(dest: Path) -> bool:
    """Whether ``dest`` holds a tree generated by this very generator."""
    try:
        return (Path(dest) / FINGERPRINT_FILE).read_text() == fingerprint()
    except OSError:
        return False


def generate(
    dest: Path,
    snapshot_version_code: str = SNAPSHOT_VERSION_CODE,
    only: Collection[str] = (),
    key: SecretKey | None = None,
) -> Path:
    """Write the whole tree to ``dest``, replacing what was there at once.

    ``only`` (versions) writes a smaller tree of just those releases, and ``key``
    signs it instead of the test key: a second distribution, or an upstream that
    moved on, for tests.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    key = key or signing_key()
    all_releases = tuple(
        r for r in releases(snapshot_version_code) if not only or r.version in only
    )
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        _write_json(work / ".versions.json", versions_json(all_releases))
        public = key.public_key
        (work / "keys").mkdir()
        (work / "keys" / public.key_id_hex).write_text(
            public.to_text(comment="offline upstream test key")
        )
        (work / "keys" / adb_writer.KEY_FILE).write_text(
            adb_writer.signing_key().public_pem()
        )
        for release in all_releases:
            _write_release(work / release.path, release, key)
        (work / FINGERPRINT_FILE).write_text(fingerprint())
        _swap_into_place(work, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def _swap_into_place(work: Path, dest: Path) -> None:
    """Replace ``dest`` by ``work`` so that readers never see half a tree."""
    if not dest.exists():
        os.replace(work, dest)
        return
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(dest, old)
    os.replace(work, dest)
    shutil.rmtree(old, ignore_errors=True)


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=None, separators=(",", ":")))


def _write_release(root: Path, release: Release, key: SecretKey) -> None:
    world = _release_world(release)
    all_profiles = {
        target: _rebrand(profiles, release, world)
        for target, profiles in load_profiles(release.data).items()
    }
    _write_json(
        root / ".targets.json",
        {target: p["arch_packages"] for target, p in sorted(all_profiles.items())},
    )
    _write_json(root / ".overview.json", overview_json(release, all_profiles))
    for target, profiles in sorted(all_profiles.items()):
        target_dir = root / "targets" / target
        _write_json(target_dir / "profiles.json", profiles)
        if target in world.targets:
            _write_buildable_target(target_dir, release, world, profiles, key)
        sign_directory(target_dir, key)
    for arch in sorted({all_profiles[t]["arch_packages"] for t in world.targets}):
        for feed, packages in world.feeds.items():
            feed_dir = root / "packages" / arch / feed
            _write_feed(feed_dir, _for_arch(packages.values(), arch), world, arch, key)


def overview_json(release: Release, all_profiles: dict[str, dict]) -> dict:
    """``.overview.json`` as the downloads server publishes it for the firmware
    selector: the release and every profile of every target, with its titles."""
    return {
        "release": release.version,
        "profiles": [
            {"id": profile_id, "titles": profile["titles"], "target": target}
            for target, profiles in sorted(all_profiles.items())
            for profile_id, profile in profiles["profiles"].items()
        ],
    }


def _release_world(release: Release) -> World:
    world = load_world(release.data)
    if release.version_code:
        world = dataclasses.replace(world, version_code=release.version_code)
    return world


def _rebrand(profiles: dict, release: Release, world: World) -> dict:
    """The data's ``profiles.json`` as this release publishes it."""
    if release.version == profiles["version_number"]:
        return profiles
    old_prefix = f"openwrt-{profiles['version_number']}-"
    new_prefix = f"{release.dist_prefix}-"
    text = json.dumps(profiles).replace(f'"{old_prefix}', f'"{new_prefix}')
    rebranded = json.loads(text)
    rebranded["version_number"] = release.version
    rebranded["version_code"] = world.version_code
    return rebranded


def _for_arch(packages, arch: str) -> list[Package]:
    return [dataclasses.replace(package, arch=arch) for package in packages]


def _write_feed(
    directory: Path, packages: list[Package], world: World, arch: str, key: SecretKey
) -> None:
    """A feed with its index signed, as upstream signs every package index (an
    apk index carries its signature inside)."""
    write_feed(directory, packages, world.package_format, arch, world.source_date_epoch)
    if world.package_format == "opkg":
        _sign_file(directory / "Packages", key)


def _kmods_dir(world: World) -> str:
    kernel = world.linux_kernel
    return f"{kernel['version']}-{kernel['release']}-{kernel['vermagic']}"


def _separate_kmods(world: World) -> bool:
    """Releases from 24.10 on publish kernel modules in ``kmods/<kernel>/``."""
    major, minor = (int(part) for part in world.version.split(".")[:2])
    return (major, minor) >= (24, 10)


def _write_buildable_target(
    target_dir: Path, release: Release, world: World, profiles: dict, key: SecretKey
) -> None:
    arch = profiles["arch_packages"]
    target_packages = _for_arch(world.targets[profiles["target"]].values(), arch)
    if _separate_kmods(world):
        kmods = [p for p in target_packages if p.name.startswith("kmod-")]
        others = [p for p in target_packages if not p.name.startswith("kmod-")]
        kmods_dir = target_dir / "kmods" / _kmods_dir(world)
        _write_feed(kmods_dir, kmods, world, arch, key)
        _write_feed(target_dir / "packages", others, world, arch, key)
    else:
        _write_feed(target_dir / "packages", target_packages, world, arch, key)

    info = ImageBuilderInfo(
        version=release.version,
        version_code=world.version_code,
        target=profiles["target"],
        arch=arch,
        package_format=world.package_format,
        default_packages=tuple(profiles["default_packages"]),
        profiles=profile_models(profiles, world),
        source_date_epoch=world.source_date_epoch,
        linux_kernel=profiles.get("linux_kernel") or world.linux_kernel,
        rootfs_partsize_mb=world.rootfs_partsize_mb.get(profiles["target"], 0),
        kernel_size=world.kernel_size[profiles["target"]],
        filesystems=("squashfs", "ext4")
        if profiles["target"] in EXT4_TARGETS
        else ("squashfs",),
        feeds=_feed_urls(release, world, profiles),
    )
    name = _imagebuilder_name(release, profiles["target"])
    with tempfile.TemporaryDirectory(dir=target_dir) as scratch:
        ib_dir = Path(scratch) / name
        write_imagebuilder(ib_dir, info, [], key)
        archive = _tar(ib_dir, world.source_date_epoch)
    suffix = ".tar.xz" if release.archive == "xz" else ".tar.zst"
    (target_dir / f"{name}{suffix}").write_bytes(compress(archive, release.archive))


def _feed_urls(release: Release, world: World, profiles: dict) -> dict[str, str]:
    """The feeds a release ImageBuilder names, at upstream's public address, in
    upstream's order: the target's packages, base, its kmods, then the others."""
    root = f"{PUBLIC_URL}/{release.path}"
    target = f"{root}/targets/{profiles['target']}"
    packages = f"{root}/packages/{profiles['arch_packages']}"
    urls = {"core": f"{target}/packages", "base": f"{packages}/base"}
    if _separate_kmods(world):
        urls["kmods"] = f"{target}/kmods/{_kmods_dir(world)}"
    return urls | {feed: f"{packages}/{feed}" for feed in world.feeds if feed != "base"}


def _imagebuilder_name(release: Release, target: str) -> str:
    """``openwrt-imagebuilder-23.05.4-ath79-generic.Linux-x86_64``, as upstream."""
    version = "" if release.version == "SNAPSHOT" else f"{release.version}-"
    return f"openwrt-imagebuilder-{version}{target.replace('/', '-')}.Linux-x86_64"


def _tar(directory: Path, mtime: int) -> bytes:
    """A deterministic tar of ``directory`` with the directory as its top member."""
    buffer = io.BytesIO()

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime = mtime
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in [directory, *sorted(directory.rglob("*"))]:
            arcname = str(path.relative_to(directory.parent))
            tar.add(path, arcname=arcname, recursive=False, filter=normalise)
    return buffer.getvalue()


def compress(data: bytes, kind: str) -> bytes:
    """``data`` as an ImageBuilder archive of that ``kind`` (``xz`` or ``zst``)."""
    if kind == "xz":
        return lzma.compress(data, preset=3)
    return subprocess.run(
        ["zstd", "-q", "-3", "-c"], input=data, capture_output=True, check=True
    ).stdout


def sign_directory(directory: Path, key: SecretKey) -> None:
    """Write ``sha256sums`` of the directory's files and its usign ``.sig``."""
    lines = []
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        if path.name.startswith("sha256sums"):
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest} *{path.name}\n")
    (directory / "sha256sums").write_text("".join(lines))
    _sign_file(directory / "sha256sums", key)


def _sign_file(path: Path, key: SecretKey) -> None:
    path.with_name(path.name + ".sig").write_text(key.sign(path.read_bytes()))
