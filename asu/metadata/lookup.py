"""What upstream publishes about a version: its targets, profiles and revisions.

Only what the janitor loaded into Redis: a request never makes the server ask
upstream (a version or target the janitor has not loaded is unknown), so no client
can make it fetch, wait or fill Redis on its behalf. Where the janitor has loaded a
target, profile names are looked up in its small ``profile_names`` hash instead of
parsing the whole ``profiles.json``.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

import redis

from asu import distributions, redis_keys
from asu.build_request import PROFILE, BuildRequest, RequestError
from asu.config import Config
from asu.distributions import Distribution

#: The ``profile_names`` field naming the profile every other name maps to.
FALLBACK = "*"


def _loaded_json(connection: redis.Redis, key: str) -> Any | None:
    """What the janitor stored at ``key``, or None."""
    stored = connection.get(key)
    return json.loads(stored) if stored is not None else None


def distribution(config: Config, name: str) -> Distribution:
    """The configured distribution ``name``; a 400 naming ``distro`` when there
    is none."""
    found = distributions.get(config, name)
    if found is None:
        known = ", ".join(distributions.distributions(config))
        raise RequestError(
            f"distro: unknown distribution {name} (this server has {known})"
        )
    return found


def versions_json(connection: redis.Redis, config: Config, distro: str):
    """Upstream's ``.versions.json`` as the janitor keeps it, or None."""
    distribution(config, distro)
    return _loaded_json(connection, redis_keys.upstream_versions(distro))


def targets(connection: redis.Redis, config: Config, distro: str, version: str):
    """``{target: arch}`` of ``version``, or None when the janitor has not loaded
    such a version."""
    distribution(config, distro)
    return _loaded_json(connection, redis_keys.targets(distro, version))


def profiles(
    connection: redis.Redis, config: Config, distro: str, version: str, target: str
):
    """The ``profiles.json`` of ``version``/``target`` the janitor loaded, or None."""
    distribution(config, distro)
    return _loaded_json(connection, redis_keys.profiles(distro, version, target))


def profile_names(profiles_json: dict) -> dict[str, str]:
    """Every name a client may send for a profile, with the profile id it means.

    Ids first, then each ``supported_devices`` entry as sent (``tplink,archer-c7-v5``)
    and with ``,`` as ``_``; the first profile listing an alias keeps it. A target
    whose only profile is ``generic`` maps every other name to it (``*``).
    """
    available = profiles_json.get("profiles", {})
    names = {pid: pid for pid in available if PROFILE.fullmatch(pid)}
    for profile_id in sorted(available):
        for alias in available[profile_id].get("supported_devices", ()):
            for name in (alias, alias.replace(",", "_")):
                if PROFILE.fullmatch(name):
                    names.setdefault(name, profile_id)
    if list(available) == ["generic"]:
        names[FALLBACK] = "generic"
    return names


def resolve_profile(requested: str, profiles_json: dict) -> str | None:
    """The profile id ``requested`` names: an id, a board name, or an alias."""
    names = profile_names(profiles_json)
    for candidate in (requested, requested.replace(",", "_"), FALLBACK):
        if candidate in names:
            return names[candidate]
    return None


def _loaded_profile(
    connection: redis.Redis, request: BuildRequest
) -> tuple[bool, str | None]:
    """(loaded, profile id) from the janitor's ``profile_names`` hash."""
    key = redis_keys.profile_names(request.distro, request.version, request.target)
    candidates = (request.profile, request.profile.replace(",", "_"), FALLBACK)
    with connection.pipeline(transaction=False) as pipe:
        pipe.exists(key)
        pipe.hmget(key, candidates)
        exists, found = pipe.execute()
    profile = next((value.decode() for value in found if value is not None), None)
    return bool(exists), profile


def _suggest(name: str, known) -> str:
    """Up to three close names among those starting alike (the vendor): a typo
    there is rare, and comparing with every profile would make each refusal of
    a target with hundreds of them cost milliseconds."""
    same_start = [other for other in known if other[:3] == name[:3]]
    close = difflib.get_close_matches(name, same_start, n=3, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else ""


def resolve(
    connection: redis.Redis, config: Config, request: BuildRequest
) -> BuildRequest:
    """Check distribution, version, target and profile; return the request with
    the profile id it resolves to, or raise a 400 naming the field that is unknown
    (clients act on a 400 and show its detail; a 404 would leave them polling). A
    request without a target gets the one its profile is found in.

    A target the janitor loaded costs one round trip to Redis.
    """
    distribution(config, request.distro)
    if not request.target:
        request = _with_found_target(connection, config, request)
    loaded, profile = _loaded_profile(connection, request)
    if profile is not None:
        return request.with_profile(profile)
    if loaded:
        # Every name a client may send is a key of the loaded hash: suggest from
        # those rather than parse the whole profiles.json for a refusal.
        key = redis_keys.profile_names(request.distro, request.version, request.target)
        known = [name.decode() for name in connection.hkeys(key)]
    else:
        profiles_json = target_profiles(
            connection, config, request.distro, request.version, request.target
        )
        profile = resolve_profile(request.profile, profiles_json)
        known = list(profiles_json["profiles"])
    if profile is None:
        raise RequestError(
            f"profile: unknown profile {request.profile} for {request.target}"
            + _suggest(request.profile.replace(",", "_"), known)
        )
    return request.with_profile(profile)


def _with_found_target(
    connection: redis.Redis, config: Config, request: BuildRequest
) -> BuildRequest:
    """``request`` with the target one of whose profiles it names; 400 when none."""
    found = find_target(
        connection, config, request.distro, request.version, request.profile
    )
    if found is None:
        raise RequestError(
            f"target is required: no target of version {request.version} "
            f"has a profile {request.profile}"
        )
    return request.with_target(found)


def target_profiles(
    connection: redis.Redis, config: Config, distro: str, version: str, target: str
) -> dict:
    """The ``profiles.json`` of a loaded target, or a 400 naming ``version`` or
    ``target``, whichever the janitor has not loaded."""
    known_targets = targets(connection, config, distro, version)
    if known_targets is None:
        raise RequestError(f"version: unknown version {version}")
    if target not in known_targets:
        raise RequestError(
            f"target: unknown target {target} for version {version}"
            + _suggest(target, known_targets)
        )
    profiles_json = profiles(connection, config, distro, version, target)
    if profiles_json is None:
        raise RequestError(f"target: no profiles published for {version} {target}")
    return profiles_json


def find_target(
    connection: redis.Redis, config: Config, distro: str, version: str, profile: str
) -> str | None:
    """The target one of whose profiles ``profile`` names (for clients that send
    no target), or None. Targets with a ``profile_names`` hash are asked in one
    round trip; the others by their stored ``profiles.json``."""
    known = sorted(targets(connection, config, distro, version) or {})
    candidates = (profile, profile.replace(",", "_"))
    with connection.pipeline(transaction=False) as pipe:
        for target in known:
            pipe.exists(redis_keys.profile_names(distro, version, target))
            pipe.hmget(redis_keys.profile_names(distro, version, target), candidates)
        answers = pipe.execute()
    loaded = dict(
        zip(known, zip(answers[::2], answers[1::2], strict=True), strict=True)
    )
    for target, (exists, found) in loaded.items():
        if any(found):
            return target
        if not exists:
            profiles_json = profiles(connection, config, distro, version, target)
            names = profile_names(profiles_json or {})
            if any(name in names for name in candidates):
                return target
    return None


def revision(
    connection: redis.Redis, config: Config, distro: str, version: str, target: str
) -> str | None:
    """The revision (``version_code``) ``version``/``target`` is at, or None."""
    loaded = connection.hget(
        redis_keys.target_info(distro, version, target), "revision"
    )
    if loaded is not None:
        return loaded.decode()
    known_targets = targets(connection, config, distro, version)
    if not known_targets or target not in known_targets:
        return None
    profiles_json = profiles(connection, config, distro, version, target)
    return (profiles_json or {}).get("version_code") or None
