"""Unknown packages are refused before anything is queued (422).

A package is known when the target's index, its kmods or one of the version's
feeds for the target's architecture has it, or when one of their packages
provides it. ``packages_versions`` names are checked too; removals (``-name``) are
not: opkg and apk ignore the removal of a package nothing has, and a device
package upstream stopped building must not block a rebuild. Only targets the
janitor has loaded with a package index are checked, and only while none of
their indexes was skipped for a bad signature: for the rest the build itself
reports unknown packages.
"""

from __future__ import annotations

import redis

from asu import keys, metadata
from asu.build_request import BuildRequest, RequestError
from asu.config import Config


def check_packages(
    connection: redis.Redis, config: Config, request: BuildRequest
) -> None:
    """Raise a 422 :class:`RequestError` naming every unknown package.

    Requests with extra ``repositories`` are not checked: their feeds are unknown
    here, and the build reports what none of the feeds has.
    """
    names = sorted({name for name in request.packages if not name.startswith("-")})
    if not names or request.repositories:
        return
    feeds = metadata.distribution(config, request.distro).feeds
    unknown = unknown_packages(connection, request, feeds, names)
    if unknown:
        listed = ", ".join(unknown)
        raise RequestError(
            f"unknown package(s): {listed}; none of the indexes of "
            f"{request.version} {request.target} has them",
            status=422,
            headers={"X-Unknown-Package": listed},
        )


def unknown_packages(
    connection: redis.Redis,
    request: BuildRequest,
    feeds: tuple[str, ...],
    names: list[str],
) -> list[str]:
    """Those of ``names`` no loaded index knows; none when nothing is loaded."""
    distro, version, target = request.distro, request.version, request.target
    arch, indexed, complete = connection.hmget(
        keys.target_info(distro, version, target), ["arch", "indexed", "complete"]
    )
    if arch is None or indexed != b"1" or complete == b"0":
        return []
    arch = arch.decode()
    indexes = [
        (
            keys.target_packages(distro, version, target),
            keys.target_provides(distro, version, target),
        ),
        *(
            (
                keys.feed_packages(distro, version, arch, feed),
                keys.feed_provides(distro, version, arch, feed),
            )
            for feed in feeds
        ),
    ]
    with connection.pipeline(transaction=False) as pipe:
        pipe.sismember(keys.feed_arches(distro, version), arch)
        for packages, provides in indexes:
            pipe.hmget(packages, names)
            pipe.smismember(provides, names)
        feeds_loaded, *answers = pipe.execute()
    if not feeds_loaded:
        return []  # the feeds are not loaded (yet): do not refuse what they may have
    known: set[str] = set()
    for versions, provided in zip(answers[::2], answers[1::2], strict=True):
        known.update(n for n, v in zip(names, versions, strict=True) if v is not None)
        known.update(n for n, hit in zip(names, provided, strict=True) if hit)
    return [name for name in names if name not in known]
