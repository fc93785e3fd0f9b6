"""A distribution's branches: which versions to load, and what ``branches.json`` says.

Upstream's ``.versions.json`` names the releases (``versions_list``, and an
``upcoming_version``); each belongs to the branch of its first two numbers
(``23.05.4`` → ``23.05``), and ``SNAPSHOT`` is a branch of its own. The
distribution's branch settings override what is derived, and may add versions
(``24.10-SNAPSHOT``) or whole branches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asu import package_changes
from asu.build_request import VERSION
from asu.distributions import Distribution

SNAPSHOT = "SNAPSHOT"
_NUMBERS = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:-rc(\d+))?(-SNAPSHOT)?$")


@dataclass(frozen=True)
class VersionFacts:
    """What the janitor learned about one loaded version."""

    targets: dict[str, str]  # {target: package arch}
    revision: int  # the lowest revision number of its targets
    source_date_epoch: int  # when its earliest target was built


@dataclass
class Branch:
    """One branch: its settings and versions, newest first."""

    name: str
    versions: list[str]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.settings.get("enabled", True))

    @property
    def snapshot(self) -> bool:
        return bool(self.settings.get("snapshot", self.name == SNAPSHOT))

    @property
    def path(self) -> str:
        """Below the upstream root, with ``{version}`` for the version."""
        default = "snapshots" if self.name == SNAPSHOT else "releases/{version}"
        return self.settings.get("path", default)

    def version_path(self, version: str) -> str:
        return self.path.replace("{version}", version)

    def publish(self, learned: dict[str, VersionFacts]) -> dict[str, Any]:
        """The branch object of ``branches.json``, from the versions loaded."""
        loaded = [v for v in self.versions if v in learned] if self.enabled else []
        facts = [learned[v] for v in loaded]
        branch_off_rev = self.settings.get(
            "branch_off_rev", self._first_revision(facts)
        )
        return {
            "name": self.name,
            "enabled": self.enabled,
            "snapshot": self.snapshot,
            "versions": loaded if self.enabled else list(self.versions),
            "path": self.path,
            "path_packages": self.settings.get(
                "path_packages",
                "snapshots/packages"
                if self.name == SNAPSHOT
                else "releases/packages-{branch}",
            ),
            "targets": dict(sorted(facts[0].targets.items())) if facts else {},
            "branch_off_rev": branch_off_rev,
            "git_branch": self.settings.get(
                "git_branch",
                "main" if self.name == SNAPSHOT else f"openwrt-{self.name}",
            ),
            "release_date": self.settings.get("release_date", _first_date(facts)),
            "package_changes": self.settings.get(
                "package_changes",
                package_changes.for_branch(branch_off_rev, self.snapshot),
            ),
        }

    def _first_revision(self, facts: list[VersionFacts]) -> int:
        if self.name == SNAPSHOT:
            return 0
        return min((f.revision for f in facts if f.revision), default=0)


def branch_name(version: str) -> str:
    """``23.05`` for ``23.05.4``, ``23.05.0-rc1`` and ``23.05-SNAPSHOT``."""
    match = _NUMBERS.match(version)
    return f"{match[1]}.{match[2]}" if match else SNAPSHOT


def version_key(version: str) -> tuple[int, ...]:
    """Sorts versions oldest first: rc before final, the branch snapshot last."""
    match = _NUMBERS.match(version)
    if not match:
        return (1 << 30,)
    major, minor, patch, rc, snapshot = match.groups()
    return (
        int(major),
        int(minor),
        1 if snapshot else 0,
        int(patch or 0),
        0 if rc else 1,
        int(rc or 0),
    )


def is_release(version: str) -> bool:
    """A final release: not a release candidate, not a snapshot."""
    match = _NUMBERS.match(version)
    return bool(match) and not match[4] and not match[5] and match[3] is not None


def plan(versions_json: dict, distribution: Distribution) -> list[Branch]:
    """The branches of ``distribution``, newest first, ``SNAPSHOT`` last."""
    listed = [*versions_json.get("versions_list", ())]
    listed.append(versions_json.get("upcoming_version") or "")
    versions: dict[str, set[str]] = {SNAPSHOT: {SNAPSHOT}}
    for version in listed:
        if isinstance(version, str) and VERSION.fullmatch(version):
            versions.setdefault(branch_name(version), set()).add(version)
    for name, settings in distribution.branches.items():
        if "versions" in settings:
            versions[name] = set(settings["versions"])
    names = sorted(
        (n for n in versions if n != SNAPSHOT), key=version_key, reverse=True
    ) + [SNAPSHOT]
    return [
        Branch(
            name,
            sorted(versions[name], key=version_key, reverse=True),
            dict(distribution.branches.get(name, {})),
        )
        for name in names
        if versions[name]
    ]


def latest(published: list[dict]) -> list[str]:
    """The newest final release of each enabled release branch, newest first."""
    newest = []
    for branch in published:
        if branch["enabled"] and not branch["snapshot"]:
            releases = [v for v in branch["versions"] if is_release(v)]
            if releases:
                newest.append(max(releases, key=version_key))
    return sorted(newest, key=version_key, reverse=True)


def _first_date(facts: list[VersionFacts]) -> str:
    epochs = [f.source_date_epoch for f in facts if f.source_date_epoch]
    if not epochs:
        return ""
    return datetime.fromtimestamp(min(epochs), UTC).strftime("%Y-%m-%d")
