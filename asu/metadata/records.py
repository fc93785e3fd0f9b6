"""What the janitor keeps in Redis, written one transaction per target or feed.

Every write replaces a whole unit (a target: its ``profiles.json``, profile names,
package index with kmods, provided names, apk versions and virtual names, and info;
a feed: its packages, provided names, apk versions and virtual names) inside
MULTI/EXEC, together with the validators of the upstream answers it came from.
A reader sees the old unit or the new one, never a mix.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import redis

from asu import redis_keys
from asu.formats.package_index import PackageIndex


@dataclass(frozen=True)
class TargetState:
    """What is loaded for one target."""

    revision: str
    arch: str
    #: the target publishes a package index
    indexed: bool
    source_date_epoch: int
    #: every index of it (and of its feeds) was loaded: none was skipped for its
    #: signature, so a name none of them has is unknown
    complete: bool = True

    def as_hash(self) -> dict[str, str]:
        return {
            "revision": self.revision,
            "arch": self.arch,
            "indexed": "1" if self.indexed else "0",
            "complete": "1" if self.complete else "0",
            "source_date_epoch": str(self.source_date_epoch),
        }

    @classmethod
    def from_hash(cls, data: Mapping[bytes, bytes]) -> TargetState | None:
        if not data:
            return None
        text = {key.decode(): value.decode() for key, value in data.items()}
        return cls(
            revision=text.get("revision", ""),
            arch=text.get("arch", ""),
            indexed=text.get("indexed") == "1",
            source_date_epoch=int(text.get("source_date_epoch") or 0),
            complete=text.get("complete") != "0",
        )


def transaction(connection: redis.Redis) -> redis.client.Pipeline:
    """A MULTI/EXEC pipeline to queue one unit's writes on."""
    return connection.pipeline(transaction=True)


def _replace_hash(pipe, key: str, mapping: Mapping[str, str]) -> None:
    pipe.delete(key)
    if mapping:
        pipe.hset(key, mapping=dict(mapping))


def _replace_set(pipe, key: str, members: Iterable[str]) -> None:
    pipe.delete(key)
    members = sorted(members)
    if members:
        pipe.sadd(key, *members)


def _replace_index(pipe, packages, provides, versions, virtual, index) -> None:
    """Queue the replacement of one index's four keys by ``index``."""
    _replace_hash(pipe, packages, index.packages)
    _replace_set(pipe, provides, index.provides)
    _replace_hash(pipe, versions, _joined(index.versions))
    _replace_hash(pipe, virtual, _joined(index.virtual))


def _joined(mapping: Mapping[str, Iterable[str]]) -> dict[str, str]:
    return {name: " ".join(sorted(values)) for name, values in mapping.items()}


def save_target(
    pipe,
    distro: str,
    version: str,
    target: str,
    profiles_json: bytes,
    names: Mapping[str, str],
    index: PackageIndex,
    state: TargetState,
) -> None:
    """Queue the replacement of everything loaded for one target."""
    pipe.set(redis_keys.profiles(distro, version, target), profiles_json)
    _replace_hash(pipe, redis_keys.profile_names(distro, version, target), names)
    _replace_index(pipe, *target_index_keys(distro, version, target), index)
    _replace_hash(
        pipe, redis_keys.target_info(distro, version, target), state.as_hash()
    )


def delete_target(pipe, distro: str, version: str, target: str) -> None:
    """Queue the removal of a target upstream no longer lists."""
    pipe.delete(
        redis_keys.profiles(distro, version, target),
        redis_keys.profile_names(distro, version, target),
        *target_index_keys(distro, version, target),
        redis_keys.target_info(distro, version, target),
    )


def save_feed(
    pipe, distro: str, version: str, arch: str, feed: str, index: PackageIndex
) -> None:
    """Queue the replacement of one feed of one architecture."""
    _replace_index(pipe, *feed_index_keys(distro, version, arch, feed), index)


def target_index_keys(distro: str, version: str, target: str) -> tuple[str, ...]:
    """The keys of a target's index: packages, provides, versions, virtual."""
    return (
        redis_keys.target_packages(distro, version, target),
        redis_keys.target_provides(distro, version, target),
        redis_keys.target_versions(distro, version, target),
        redis_keys.target_virtual(distro, version, target),
    )


def feed_index_keys(distro: str, version: str, arch: str, feed: str) -> tuple[str, ...]:
    """The keys of a feed's index, as :func:`target_index_keys`."""
    return (
        redis_keys.feed_packages(distro, version, arch, feed),
        redis_keys.feed_provides(distro, version, arch, feed),
        redis_keys.feed_versions(distro, version, arch, feed),
        redis_keys.feed_virtual(distro, version, arch, feed),
    )


def save_version(
    pipe, distro: str, version: str, targets: Mapping[str, str], info: Mapping
) -> None:
    """Queue the version's ``{target: arch}`` and its summary (``version_info``)."""
    pipe.set(redis_keys.targets(distro, version), json.dumps(dict(targets)))
    _replace_hash(pipe, redis_keys.version_info(distro, version), info)


def stored_json(connection: redis.Redis, key: str):
    """The JSON kept at ``key``, else None."""
    value = connection.get(key)
    return json.loads(value) if value is not None else None


def target_states(
    connection: redis.Redis, distro: str, version: str, targets: Iterable[str]
) -> dict[str, TargetState | None]:
    """What is loaded for each of ``targets`` (None: nothing)."""
    targets = list(targets)
    with connection.pipeline(transaction=False) as pipe:
        for target in targets:
            pipe.hgetall(redis_keys.target_info(distro, version, target))
        answers = pipe.execute()
    return {t: TargetState.from_hash(a) for t, a in zip(targets, answers, strict=True)}


def version_index_name(connection: redis.Redis, distro: str, version: str) -> str:
    """The index file name the version's package directories use, if known."""
    value = connection.hget(redis_keys.version_info(distro, version), "index")
    return value.decode() if value else ""


def feeds_of(
    connection: redis.Redis, distro: str, version: str, arch: str, feeds: Iterable[str]
) -> dict[str, str]:
    """``{package: version}`` of all ``feeds`` of one architecture together."""
    with connection.pipeline(transaction=False) as pipe:
        for feed in feeds:
            pipe.hgetall(redis_keys.feed_packages(distro, version, arch, feed))
        answers = pipe.execute()
    merged: dict[str, str] = {}
    for answer in answers:
        merged.update((k.decode(), v.decode()) for k, v in answer.items())
    return dict(sorted(merged.items()))
