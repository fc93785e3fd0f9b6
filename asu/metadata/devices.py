"""Versions and devices as the web page needs them: what to offer in its form.

Versions come from the janitor's ``overview.json`` when it has written one, else
from upstream's ``.versions.json`` (plus ``SNAPSHOT``). Devices are every profile
of every target of a version, read through :mod:`asu.metadata.lookup`, reduced to what a
search needs and kept in Redis for a while, so a search costs one key.
"""

from __future__ import annotations

import json

import redis

from asu import redis_keys
from asu.config import Config
from asu.distributions import DEFAULT_DISTRO
from asu.metadata import lookup

#: Seconds a version's device list is kept before it is read again.
DEVICE_LIST_TTL = 300


def overview(config: Config) -> dict | None:
    """The janitor's ``overview.json``, or None before its first run."""
    try:
        return json.loads((config.json_path / "overview.json").read_text())
    except (OSError, ValueError):
        return None


def janitor_last_run(config: Config) -> float | None:
    """When the janitor last wrote ``overview.json`` (Unix time), or None."""
    try:
        return (config.json_path / "overview.json").stat().st_mtime
    except OSError:
        return None


def versions(connection: redis.Redis, config: Config) -> list[str]:
    """The versions a build can be asked for, newest release first."""
    published = overview(config)
    if published:
        branches = published.get("branches", {}).values()
        return [v for branch in branches for v in branch.get("versions", ())]
    return _upstream_versions(connection, config)


def _upstream_versions(connection: redis.Redis, config: Config) -> list[str]:
    listed = lookup.versions_json(connection, config, DEFAULT_DISTRO)
    if not isinstance(listed, dict):
        return []
    return [*listed.get("versions_list", ()), "SNAPSHOT"]


def title(entry: dict) -> str:
    """A profile title as people know the device: ``TP-Link Archer C7 v5``."""
    if "title" in entry:
        return entry["title"]
    parts = (entry.get(part, "") for part in ("vendor", "model", "variant"))
    return " ".join(part for part in parts if part)


def device_list(connection: redis.Redis, config: Config, version: str) -> list[dict]:
    """Every device of ``version``: ``target``, ``id``, ``titles``, ``names``."""
    key = redis_keys.web_devices(DEFAULT_DISTRO, version)
    cached = connection.get(key)
    if cached is not None:
        return json.loads(cached)
    found = []
    for target in sorted(_targets(connection, config, version)):
        profiles_json = lookup.profiles(
            connection, config, DEFAULT_DISTRO, version, target
        )
        for profile_id, entry in sorted(
            (profiles_json or {}).get("profiles", {}).items()
        ):
            found.append(
                {
                    "target": target,
                    "id": profile_id,
                    "titles": [title(t) for t in entry.get("titles", ())]
                    or [profile_id],
                    "names": entry.get("supported_devices", []),
                }
            )
    connection.set(key, json.dumps(found), ex=DEVICE_LIST_TTL)
    return found


def _targets(connection: redis.Redis, config: Config, version: str) -> dict:
    return lookup.targets(connection, config, DEFAULT_DISTRO, version) or {}


def device(
    connection: redis.Redis, config: Config, version: str, target: str, profile: str
) -> dict | None:
    """One device with the packages its image has by default, or None."""
    if target not in _targets(connection, config, version):
        return None
    profiles_json = lookup.profiles(connection, config, DEFAULT_DISTRO, version, target)
    entry = (profiles_json or {}).get("profiles", {}).get(profile)
    if entry is None:
        return None
    return {
        "version": version,
        "version_code": profiles_json.get("version_code", ""),
        "target": target,
        "id": profile,
        "titles": [title(t) for t in entry.get("titles", ())] or [profile],
        "packages": default_packages(
            profiles_json.get("default_packages", ()),
            entry.get("device_packages", ()),
        ),
        "images": [image.get("type", "") for image in entry.get("images", ())],
    }


def default_packages(defaults, device_packages) -> list[str]:
    """The packages an image gets unasked: defaults plus the device's own, less
    the defaults the device removes (``-name``)."""
    removed = {name[1:] for name in device_packages if name.startswith("-")}
    wanted = [*defaults, *(n for n in device_packages if not n.startswith("-"))]
    return sorted({name for name in wanted if name not in removed})
