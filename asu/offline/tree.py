"""Write the offline upstream: a downloads tree laid out like the real one.

```
.versions.json
keys/<key id>                                   the test key that signs everything
releases/<version>/.targets.json                {target: package arch}
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

from asu.offline.imagebuilder_writer import write_imagebuilder
from asu.offline.model import ImageBuilderInfo, Package
from asu.offline.packages import write_feed
from asu.offline.worlds import World, load_profiles, load_world, profile_models
from asu.usign import SecretKey

#: The revision the offline SNAPSHOT is at unless a test moves it on.
SNAPSHOT_VERSION_CODE = "r33010-5a6c8e1f0b"

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
        for release in all_releases:
            _write_release(work / release.path, release, key)
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
    for target, profiles in sorted(all_profiles.items()):
        target_dir = root / "targets" / target
        _write_json(target_dir / "profiles.json", profiles)
        if target in world.targets:
            _write_buildable_target(target_dir, release, world, profiles)
        _sign_directory(target_dir, key)
    for arch in sorted({all_profiles[t]["arch_packages"] for t in world.targets}):
        for feed, packages in world.feeds.items():
            feed_dir = root / "packages" / arch / feed
            _write_feed(feed_dir, _for_arch(packages.values(), arch), world, arch)
            _sign_file(feed_dir / _index_name(world), key)


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


def _write_feed(directory: Path, packages: list[Package], world: World, arch: str):
    write_feed(directory, packages, world.package_format, arch, world.source_date_epoch)


def _index_name(world: World) -> str:
    return "Packages" if world.package_format == "opkg" else "packages.adb"


def _kmods_dir(world: World) -> str:
    kernel = world.linux_kernel
    return f"{kernel['version']}-{kernel['release']}-{kernel['vermagic']}"


def _separate_kmods(world: World) -> bool:
    """Releases from 24.10 on publish kernel modules in ``kmods/<kernel>/``."""
    major, minor = (int(part) for part in world.version.split(".")[:2])
    return (major, minor) >= (24, 10)


def _write_buildable_target(
    target_dir: Path, release: Release, world: World, profiles: dict
) -> None:
    arch = profiles["arch_packages"]
    target_packages = _for_arch(world.targets[profiles["target"]].values(), arch)
    if _separate_kmods(world):
        kmods = [p for p in target_packages if p.name.startswith("kmod-")]
        others = [p for p in target_packages if not p.name.startswith("kmod-")]
        _write_feed(target_dir / "kmods" / _kmods_dir(world), kmods, world, arch)
        _write_feed(target_dir / "packages", others, world, arch)
    else:
        _write_feed(target_dir / "packages", target_packages, world, arch)

    feed_packages = [p for feed in world.feeds.values() for p in feed.values()]
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
    )
    name = _imagebuilder_name(release, profiles["target"])
    with tempfile.TemporaryDirectory(dir=target_dir) as scratch:
        ib_dir = Path(scratch) / name
        local = target_packages + _for_arch(feed_packages, arch)
        write_imagebuilder(ib_dir, info, local)
        archive = _tar(ib_dir, world.source_date_epoch)
    suffix = ".tar.xz" if release.archive == "xz" else ".tar.zst"
    (target_dir / f"{name}{suffix}").write_bytes(_compress(archive, release.archive))


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


def _compress(data: bytes, kind: str) -> bytes:
    if kind == "xz":
        return lzma.compress(data, preset=3)
    return subprocess.run(
        ["zstd", "-q", "-3", "-c"], input=data, capture_output=True, check=True
    ).stdout


def _sign_directory(directory: Path, key: SecretKey) -> None:
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
