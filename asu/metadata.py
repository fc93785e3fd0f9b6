"""What upstream publishes about a version: its targets and their profiles.

Read through Redis: the janitor fills these keys in bulk; a key it has not filled
is fetched from upstream on first use and kept for a while, so that the first
request for a version works before any janitor run.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

import redis

from asu import keys, upstream
from asu.build_request import BuildRequest, RequestError
from asu.config import Config

#: Seconds a fetched (not janitor-loaded) answer is kept.
FETCHED_TTL = 300


def _cached_json(
    connection: redis.Redis, key: str, config: Config, path: str
) -> Any | None:
    """The JSON at ``key``, else fetched from ``path`` upstream; None if absent."""
    cached = connection.get(key)
    if cached is not None:
        return json.loads(cached) if cached != b"null" else None
    http = upstream.session()
    try:
        data = upstream.get(http, upstream.url(config, path)).json()
    except upstream.UpstreamError:
        data = None
    except ValueError:
        data = None
    connection.set(key, json.dumps(data), ex=FETCHED_TTL)
    return data


def targets(connection: redis.Redis, config: Config, distro: str, version: str):
    """``{target: arch}`` of ``version``, or None when upstream has no such version."""
    path = f"{upstream.release_path(version)}/.targets.json"
    return _cached_json(connection, keys.targets(distro, version), config, path)


def profiles(
    connection: redis.Redis, config: Config, distro: str, version: str, target: str
):
    """The ``profiles.json`` of ``version``/``target``, or None."""
    path = f"{upstream.target_path(version, target)}/profiles.json"
    key = keys.profiles(distro, version, target)
    return _cached_json(connection, key, config, path)


def _suggest(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else ""


def resolve_profile(requested: str, profiles_json: dict) -> str | None:
    """The profile id ``requested`` names: an id, a board name, or an alias."""
    available = profiles_json.get("profiles", {})
    for candidate in (requested, requested.replace(",", "_")):
        if candidate in available:
            return candidate
    for profile_id, entry in available.items():
        if requested in entry.get("supported_devices", ()):
            return profile_id
    if list(available) == ["generic"]:
        return "generic"
    return None


def resolve(
    connection: redis.Redis, config: Config, request: BuildRequest
) -> BuildRequest:
    """Check version, target and profile against upstream; return the request with
    the profile id it resolves to, or raise a 404 naming what is unknown."""
    known_targets = targets(connection, config, request.distro, request.version)
    if known_targets is None:
        raise RequestError(f"unknown version {request.version}", status=404)
    if request.target not in known_targets:
        raise RequestError(
            f"unknown target {request.target} for version {request.version}"
            + _suggest(request.target, known_targets),
            status=404,
        )
    profiles_json = profiles(
        connection, config, request.distro, request.version, request.target
    )
    if profiles_json is None:
        raise RequestError(
            f"no profiles published for {request.version} {request.target}", 404
        )
    profile = resolve_profile(request.profile, profiles_json)
    if profile is None:
        raise RequestError(
            f"unknown profile {request.profile} for {request.target}"
            + _suggest(request.profile.replace(",", "_"), profiles_json["profiles"]),
            status=404,
        )
    return request.with_profile(profile)
