"""The upgrade check: is there a newer version, which installed packages would be
upgraded from which version to which, and what the new image would contain.

A device sends its distribution, version, target and installed packages with
their versions. The answer names the newest release (or the same version when
none is newer), every package whose version in the new version is higher (with
renames between the versions applied), and the full package list for the new
image; nothing newer at all is a 204 with the check's hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from asu import package_changes, redis_keys
from asu.branches import version_key
from asu.build_request import (
    DISTRO,
    PACKAGE,
    PACKAGE_VERSION,
    TARGET,
    VERSION,
    RequestError,
    matching,
)
from asu.config import Config
from asu.formats.package_versions import compare
from asu.metadata import lookup, records

MAX_INSTALLED = 1000


@dataclass(frozen=True)
class UpgradeCheck:
    """What a device says about itself."""

    distro: str
    version: str
    target: str
    installed: dict[str, str] = field(default_factory=dict)
    profile: str = ""

    @property
    def hash(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Upgrade:
    """The answer: the version to go to, package upgrades, the new package list."""

    version: str
    upgrades: dict[str, list[str]]  # {package: [new version, current version]}
    packages: list[str]
    version_changed: bool = False

    @property
    def anything_new(self) -> bool:
        return bool(self.upgrades) or self.version_changed


def parse_check(
    body: Mapping[str, Any], installed_key: str = "installed"
) -> UpgradeCheck:
    """Check a device's upgrade check: ``distro``, ``version``, ``target`` and the
    installed packages under ``installed_key`` (2019 ``installed``, 2017
    ``packages``), each ``{package: version}``."""
    installed = body.get(installed_key) or {}
    if not isinstance(installed, Mapping) or len(installed) > MAX_INSTALLED:
        raise RequestError(f"{installed_key} must be an object {{package: version}}")
    for name, version in installed.items():
        if (
            not PACKAGE.fullmatch(name)
            or not isinstance(version, str)
            or not PACKAGE_VERSION.fullmatch(version)
        ):
            raise RequestError(f"{installed_key}: {str(name)[:60]!r} is not valid")
    return UpgradeCheck(
        distro=matching(body, "distro", DISTRO, default="openwrt"),
        version=matching(body, "version", VERSION, required=True),
        target=matching(body, "target", TARGET, required=True),
        installed=dict(installed),
    )


def newest_release(current: str, releases: list[str]) -> str:
    """The version a device on ``current`` should go to.

    Snapshots follow their branch (only package upgrades); a release goes to the
    newest release that sorts after it.
    """
    if "SNAPSHOT" in current:
        return current
    newer = [v for v in releases if "SNAPSHOT" not in v]
    newer = [v for v in newer if version_key(v) > version_key(current)]
    return max(newer, key=version_key) if newer else current


def plan(
    check: UpgradeCheck,
    new_version: str,
    available: Mapping[str, str],
    revisions: tuple[int, int],
    package_format: str,
) -> Upgrade:
    """Compare what is installed with what ``new_version`` offers.

    ``available`` is ``{package: version}`` of the new version's target and feeds;
    ``revisions`` the (current, new) revision numbers the renames are taken from.
    Versions of one package compare in the new version's order (``package_format``);
    a package that replaces another (``opkg`` by ``apk-mbedtls``) is an upgrade
    whenever its version differs, as the two numberings have nothing in common.
    """
    renamed = package_changes.apply(
        list(check.installed), *revisions, check.target, check.profile
    )
    current_of = _current_versions(check, revisions)
    upgrades = {}
    for name in renamed:
        new, current = available.get(name), current_of.get(name)
        if not new:
            continue
        if current is None:
            upgrades[name] = [new, ""]
        elif name not in check.installed:  # another package took its place
            if new != current:
                upgrades[name] = [new, current]
        elif compare(new, current, package_format) > 0:
            upgrades[name] = [new, current]
    return Upgrade(
        version=new_version,
        upgrades=upgrades,
        packages=renamed,
        version_changed=new_version != check.version,
    )


def _current_versions(
    check: UpgradeCheck, revisions: tuple[int, int]
) -> dict[str, str]:
    """Installed versions by their new names: a renamed package keeps its old
    version; packages the new version adds have none."""
    added = set(package_changes.apply([], *revisions, check.target, check.profile))
    current = {}
    for name, version in check.installed.items():
        renamed = package_changes.apply([name], *revisions, check.target, check.profile)
        for new_name in renamed:
            if new_name not in added:
                current[new_name] = version
    return current


def _branch_of(branches: list[dict], version: str) -> dict | None:
    return next((b for b in branches if version in b.get("versions", ())), None)


def _revision(connection: redis.Redis, distro: str, branch: dict, version: str) -> int:
    """Where a version stands on the main branch, for package changes: a release
    at its branch's branch-off, a snapshot at its own revision."""
    if branch.get("snapshot"):
        value = connection.hget(redis_keys.version_info(distro, version), "revision")
        return int(value) if value else 0
    return int(branch.get("branch_off_rev", 0))


def check(connection: redis.Redis, config: Config, device: UpgradeCheck) -> Upgrade:
    """The upgrade for ``device`` from what the janitor loaded; a 400 naming the
    field it does not know."""
    distro = device.distro
    branches = records.stored_json(connection, redis_keys.branches(distro))
    if not branches:
        raise RequestError(f"distro: unknown distribution {distro}")
    current = _branch_of(branches, device.version)
    if current is None:
        raise RequestError(f"version: unknown version {device.version} of {distro}")
    enabled = [v for b in branches if b.get("enabled") for v in b["versions"]]
    new_version = newest_release(device.version, enabled)
    new_branch = _branch_of(branches, new_version) or current
    arch = connection.hget(
        redis_keys.target_info(distro, new_version, device.target), "arch"
    )
    if arch is None:
        raise RequestError(
            f"target: unknown target {device.target} for version {new_version}"
        )
    feeds = lookup.distribution(config, distro).feeds
    available = records.feeds_of(connection, distro, new_version, arch.decode(), feeds)
    target_packages = connection.hgetall(
        redis_keys.target_packages(distro, new_version, device.target)
    )
    available |= {k.decode(): v.decode() for k, v in target_packages.items()}
    index = records.version_index_name(connection, distro, new_version)
    revisions = (
        _revision(connection, distro, current, device.version),
        _revision(connection, distro, new_branch, new_version),
    )
    package_format = "opkg" if index.startswith("Packages") else "apk"
    return plan(device, new_version, available, revisions, package_format)
