"""The trimmed real data the offline upstream is generated from (``data/``)."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from offline_upstream.model import SIZE_SCALE, ImageType, Package, Profile

DATA_DIR = Path(__file__).parent / "data"


@dataclass(frozen=True)
class World:
    """The packages, kernel and limits of one release for the targets it builds."""

    version: str
    package_format: str
    version_code: str
    source_date_epoch: int
    linux_kernel: dict
    rootfs_partsize_mb: dict[str, int]
    kernel_size: dict[str, int]  # bytes of each target's kernel image
    image_size_kb: dict[str, dict[str, int]]
    feeds: dict[str, dict[str, Package]]
    targets: dict[str, dict[str, Package]]

    def image_size(self, target: str, profile: str) -> int:
        """The profile's flash limit in scaled bytes, 0 when it has none."""
        sizes = self.image_size_kb.get(target, {})
        kib = sizes.get(profile, sizes.get("default", 0))
        return kib * 1024 // SIZE_SCALE


def _read(name: str) -> dict:
    with gzip.open(DATA_DIR / name, "rt", encoding="utf-8") as handle:
        return json.load(handle)


def _package(name: str, data: dict) -> Package:
    return Package(
        name=name,
        version=data["version"],
        depends=tuple(data.get("depends", ())),
        provides=tuple(data.get("provides", ())),
        conflicts=tuple(data.get("conflicts", ())),
        section=data.get("section", "base"),
        installed_size=int(data.get("installed_size", 0)),
        abi_version=data.get("abi_version", ""),
        description=data.get("description", ""),
    )


def _packages(entries: dict[str, dict]) -> dict[str, Package]:
    return {name: _package(name, data) for name, data in sorted(entries.items())}


@cache
def load_world(version: str) -> World:
    """The package world of ``version`` (``23.05.4``, ``24.10.4``, ``25.12.0``)."""
    data = _read(f"world-{version}.json.gz")
    return World(
        version=data["version"],
        package_format=data["package_format"],
        version_code=data["version_code"],
        source_date_epoch=int(data["source_date_epoch"]),
        linux_kernel=data["linux_kernel"],
        rootfs_partsize_mb=data.get("rootfs_partsize_mb", {}),
        kernel_size=data.get("kernel_size", {}),
        image_size_kb=data.get("image_size_kb", {}),
        feeds={feed: _packages(pkgs) for feed, pkgs in sorted(data["feeds"].items())},
        targets={t: _packages(pkgs) for t, pkgs in sorted(data["targets"].items())},
    )


@cache
def load_profiles(version: str) -> dict[str, dict]:
    """``{"target/subtarget": profiles.json}`` of ``version`` as upstream wrote it."""
    return _read(f"profiles-{version}.json.gz")


def profile_models(profiles_json: dict, world: World) -> tuple[Profile, ...]:
    """The profiles of one target's ``profiles.json`` as the ImageBuilder sees them."""
    target = profiles_json["target"]
    return tuple(
        Profile(
            id=profile_id,
            titles=tuple(entry.get("titles", ())),
            device_packages=tuple(entry.get("device_packages", ())),
            supported_devices=tuple(entry.get("supported_devices", ())),
            images=tuple(
                ImageType(type=image["type"], filesystem=image.get("filesystem", ""))
                for image in entry.get("images", ())
            ),
            image_size=world.image_size(target, profile_id),
        )
        for profile_id, entry in sorted(profiles_json["profiles"].items())
    )
