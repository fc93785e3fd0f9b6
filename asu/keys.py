"""Every Redis key the server uses, named in one place."""

from __future__ import annotations

PREFIX = "asu"


def targets(distro: str, version: str) -> str:
    """JSON ``{target: package arch}`` of one version (``.targets.json``)."""
    return f"{PREFIX}:meta:{distro}:{version}:targets"


def profiles(distro: str, version: str, target: str) -> str:
    """JSON ``profiles.json`` of one target of one version."""
    return f"{PREFIX}:meta:{distro}:{version}:{target}:profiles"
