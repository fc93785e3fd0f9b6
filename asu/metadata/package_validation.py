"""Unknown packages are refused before anything is queued (422).

A name is known when the target's index, its kmods or one of the version's feeds
for the target's architecture has a package of that name, or a package that
provides it. With apk indexes the check is apk's: ``name=version`` needs a package
or versioned provide of exactly that version, and a name that packages provide
only virtually (no version, no provider priority) passes only when one of them is
asked for by name too. ``packages_versions`` names are checked too; removals
(``-name``) are not: opkg and apk ignore the removal of a package nothing has,
and a device package upstream stopped building must not block a rebuild. Only
targets the janitor has loaded with a package index are checked, and only while
none of their indexes was skipped for a bad signature: for the rest the build
itself reports unknown packages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from asu import redis_keys
from asu.build_request import BuildRequest, RequestError
from asu.config import Config
from asu.formats.package_versions import compare_apk
from asu.metadata import lookup, records


class UnknownPackages(RequestError):
    """Packages none of the loaded indexes of the version and target has."""

    def __init__(self, names: list[str], request: BuildRequest):
        super().__init__(
            f"unknown package(s): {', '.join(names)}; none of the indexes of "
            f"{request.version} {request.target} has them"
        )
        self.names = names


def check_packages(
    connection: redis.Redis, config: Config, request: BuildRequest
) -> None:
    """Raise :class:`UnknownPackages` naming every unknown package.

    Requests with extra ``repositories`` are not checked: their feeds are unknown
    here, and the build reports what none of the feeds has.
    """
    names = sorted({name for name in request.packages if not name.startswith("-")})
    if not names or request.repositories:
        return
    feeds = lookup.distribution(config, request.distro).feeds
    unknown = unknown_packages(connection, request, feeds, names)
    if unknown:
        raise UnknownPackages(unknown, request)


@dataclass
class _Known:
    """What the loaded indexes say about the names asked for."""

    names: set[str] = field(default_factory=set)
    versions: dict[str, set[str]] = field(default_factory=dict)
    providers: dict[str, set[str]] = field(default_factory=dict)

    def add(self, bases: list[str], answers: list) -> None:
        packages, provided, versions, virtual = answers
        for name, version, hit, listed, providers in zip(
            bases, packages, provided, versions, virtual, strict=True
        ):
            if version is not None or hit:
                self.names.add(name)
            if listed:
                self.versions.setdefault(name, set()).update(listed.decode().split())
            if providers:
                self.providers.setdefault(name, set()).update(
                    providers.decode().split()
                )

    def accepts(self, token: str, asked: set[str]) -> bool:
        name, _, version = token.partition("=")
        if version:
            return any(
                compare_apk(version, v) == 0 for v in self.versions.get(name, ())
            )
        return name in self.names or bool(self.providers.get(name, set()) & asked)


def unknown_packages(
    connection: redis.Redis,
    request: BuildRequest,
    feeds: tuple[str, ...],
    names: list[str],
) -> list[str]:
    """Those of ``names`` no loaded index knows; none when nothing is loaded."""
    distro, version, target = request.distro, request.version, request.target
    arch, indexed, complete = connection.hmget(
        redis_keys.target_info(distro, version, target), ["arch", "indexed", "complete"]
    )
    if arch is None or indexed != b"1" or complete == b"0":
        return []
    arch = arch.decode()
    indexes = [
        records.target_index_keys(distro, version, target),
        *(records.feed_index_keys(distro, version, arch, f) for f in feeds),
    ]
    bases = sorted({name.partition("=")[0] for name in names})
    with connection.pipeline(transaction=False) as pipe:
        pipe.sismember(redis_keys.feed_arches(distro, version), arch)
        for packages, provides, versions, virtual in indexes:
            pipe.hmget(packages, bases)
            pipe.smismember(provides, bases)
            pipe.hmget(versions, bases)
            pipe.hmget(virtual, bases)
        feeds_loaded, *answers = pipe.execute()
    if not feeds_loaded:
        return []  # the feeds are not loaded (yet): do not refuse what they may have
    known = _Known()
    for start in range(0, len(answers), 4):
        known.add(bases, answers[start : start + 4])
    asked = set(bases)
    return [name for name in names if not known.accepts(name, asked)]
