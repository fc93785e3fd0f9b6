"""The static ``/json/v1`` tree clients read (CONTRACT.md §2), written atomically.

```
overview.json, branches.json, latest.json
<path>/overview.json                                 every profile (2020 selectors)
<path>/targets/<target>/<subtarget>/<profile>.json   one per profile and alias
<path>/targets/<target>/<subtarget>/index.json       {architecture, packages}
<path>/packages/<arch>-index.json                    {package: version} of the feeds
```

``<path>`` is the branch's path with the version filled in (``releases/23.05.4``,
``snapshots``). Each file is written to a temporary name and renamed, so a reader
never sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asu.metadata.lookup import FALLBACK

#: The one file name in a target directory that is not a profile.
TARGET_INDEX = "index.json"


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` by a rename, creating directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, separators=(",", ":"))
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def profile_document(profiles_json: dict, profile_id: str) -> dict:
    """One profile as ``<profile>.json`` has it: the target's metadata merged
    with the profile, plus ``id``, ``build_at`` and an integer ``metadata_version``."""
    top = {key: value for key, value in profiles_json.items() if key != "profiles"}
    epoch = int(profiles_json.get("source_date_epoch") or 0)
    return (
        top
        | profiles_json["profiles"][profile_id]
        | {
            "id": profile_id,
            "build_at": datetime.fromtimestamp(epoch, UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "metadata_version": int(profiles_json.get("metadata_version") or 1),
            "arch_packages": profiles_json["arch_packages"],
            "target": profiles_json["target"],
        }
    )


def version_overview(
    branch: str, version: str, image_url: str, profiles_by_target: Mapping[str, dict]
) -> dict:
    """``<path>/overview.json``, which the firmware selectors of 2020 to 2023
    read: every profile of the version with its titles, and where its images are
    (``image_url`` keeps ``{target}`` for the selector to fill in)."""
    return {
        "branch": branch,
        "release": version,
        "image_url": image_url,
        "profiles": [
            {"id": profile_id, "target": target, "titles": profile.get("titles", [])}
            for target, profiles_json in sorted(profiles_by_target.items())
            for profile_id, profile in profiles_json.get("profiles", {}).items()
        ],
    }


class JsonTree:
    """The ``/json/v1`` tree of one distribution below ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write_target(
        self,
        version_path: str,
        target: str,
        profiles_json: dict,
        names: Mapping[str, str],
        packages: Mapping[str, str],
    ) -> None:
        """A target's profile files (ids and aliases) and its ``index.json``;
        files of profiles that are gone are removed."""
        directory = self.root / version_path / "targets" / target
        documents = {
            profile_id: profile_document(profiles_json, profile_id)
            for profile_id in profiles_json.get("profiles", {})
        }
        written = {TARGET_INDEX}
        for name, profile_id in names.items():
            if name in (FALLBACK, TARGET_INDEX.removesuffix(".json")):
                continue
            write_json(directory / f"{name}.json", documents[profile_id])
            written.add(f"{name}.json")
        write_json(
            directory / TARGET_INDEX,
            {
                "architecture": profiles_json["arch_packages"],
                "packages": dict(sorted(packages.items())),
            },
        )
        for stale in directory.glob("*.json"):
            if stale.name not in written:
                stale.unlink(missing_ok=True)

    def remove_target(self, version_path: str, target: str) -> None:
        """Drop the files of a target upstream no longer lists."""
        directory = self.root / version_path / "targets" / target
        for path in directory.glob("*.json"):
            path.unlink(missing_ok=True)

    def write_version_overview(self, version_path: str, document: dict) -> None:
        """``<path>/overview.json`` of one version."""
        write_json(self.root / version_path / "overview.json", document)

    def has_version_overview(self, version_path: str) -> bool:
        return (self.root / version_path / "overview.json").is_file()

    def write_feeds(
        self, version_path: str, arch: str, packages: Mapping[str, str]
    ) -> None:
        """``packages/<arch>-index.json``: every feed's packages together."""
        path = self.root / version_path / "packages" / f"{arch}-index.json"
        write_json(path, dict(packages))

    def write_overview(self, published: list[dict], latest: list[str], extra: dict):
        """``branches.json``, ``latest.json`` and ``overview.json``."""
        write_json(self.root / "branches.json", published)
        write_json(self.root / "latest.json", {"latest": latest})
        write_json(
            self.root / "overview.json",
            {
                "latest": latest,
                "branches": {branch["name"]: branch for branch in published},
            }
            | extra,
        )
