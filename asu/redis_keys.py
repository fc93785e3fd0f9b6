"""Every Redis key the server uses, named in one place."""

from __future__ import annotations

PREFIX = "asu"


def targets(distro: str, version: str) -> str:
    """JSON ``{target: package arch}`` of one version (``.targets.json``)."""
    return f"{PREFIX}:meta:{distro}:{version}:targets"


def profiles(distro: str, version: str, target: str) -> str:
    """JSON ``profiles.json`` of one target of one version."""
    return f"{PREFIX}:meta:{distro}:{version}:{target}:profiles"


# -- what the janitor loads (replaced atomically, one target at a time) ----------------


def target_info(distro: str, version: str, target: str) -> str:
    """Hash: ``revision``, ``arch``, ``indexed`` and ``complete`` (0/1),
    ``source_date_epoch``.

    Its presence means the janitor has loaded the target."""
    return f"{PREFIX}:meta:{distro}:{version}:{target}:info"


def profile_names(distro: str, version: str, target: str) -> str:
    """Hash ``{name a client may send: profile id}``: ids, board names, aliases."""
    return f"{PREFIX}:meta:{distro}:{version}:{target}:profile_names"


def target_packages(distro: str, version: str, target: str) -> str:
    """Hash ``{package: version}`` of the target's own index and its kmods."""
    return f"{PREFIX}:pkgs:{distro}:{version}:target:{target}"


def target_provides(distro: str, version: str, target: str) -> str:
    """Set of names the target's packages provide (virtual and ABI names)."""
    return f"{PREFIX}:pkgs:{distro}:{version}:target:{target}:provides"


def target_versions(distro: str, version: str, target: str) -> str:
    """Hash ``{name: versions}`` (space-separated): what ``name=version`` the target's
    apk packages answer to, as themselves or as versioned provides."""
    return f"{PREFIX}:pkgs:{distro}:{version}:target:{target}:versions"


def target_virtual(distro: str, version: str, target: str) -> str:
    """Hash ``{name: providers}`` (space-separated): names the target's apk
    packages provide only virtually, so apk asks for one provider by name."""
    return f"{PREFIX}:pkgs:{distro}:{version}:target:{target}:virtual"


def feed_packages(distro: str, version: str, arch: str, feed: str) -> str:
    """Hash ``{package: version}`` of one feed for one package architecture."""
    return f"{PREFIX}:pkgs:{distro}:{version}:feed:{arch}:{feed}"


def feed_provides(distro: str, version: str, arch: str, feed: str) -> str:
    """Set of names one feed's packages provide."""
    return f"{PREFIX}:pkgs:{distro}:{version}:feed:{arch}:{feed}:provides"


def feed_versions(distro: str, version: str, arch: str, feed: str) -> str:
    """Hash ``{name: versions}`` of one feed, as :func:`target_versions`."""
    return f"{PREFIX}:pkgs:{distro}:{version}:feed:{arch}:{feed}:versions"


def feed_virtual(distro: str, version: str, arch: str, feed: str) -> str:
    """Hash ``{name: providers}`` of one feed, as :func:`target_virtual`."""
    return f"{PREFIX}:pkgs:{distro}:{version}:feed:{arch}:{feed}:virtual"


def feed_arches(distro: str, version: str) -> str:
    """Set of the package architectures whose feeds the janitor has loaded."""
    return f"{PREFIX}:meta:{distro}:{version}:feed_arches"


def version_info(distro: str, version: str) -> str:
    """Hash: ``index`` (the index file name that version uses), ``revision``
    (lowest revision number of its targets), ``source_date_epoch`` (earliest)."""
    return f"{PREFIX}:meta:{distro}:{version}:info"


def upstream_versions(distro: str) -> str:
    """JSON ``.versions.json`` of a distribution's upstream, as last fetched."""
    return f"{PREFIX}:meta:{distro}:versions"


def branches(distro: str) -> str:
    """JSON list of the branch objects ``branches.json`` publishes."""
    return f"{PREFIX}:meta:{distro}:branches"


def validators(distro: str) -> str:
    """Hash ``{upstream URL: ETag and Last-Modified}`` for conditional requests."""
    return f"{PREFIX}:janitor:{distro}:validators"


def janitor_lock(distro: str) -> str:
    """Held while a janitor pass over a distribution runs."""
    return f"{PREFIX}:janitor:{distro}:lock"


def builds(distro: str, version: str, target: str) -> str:
    """Set of request hashes of finished builds of one version and target."""
    return f"{PREFIX}:builds:{distro}:{version}:{target}"


def answer(request_hash: str) -> str:
    """String: a finished build's answer, ``<status> <expires>\\n<JSON body>``
    (:mod:`asu.answers`)."""
    return f"{PREFIX}:answer:{request_hash}"


def build_run(request_hash: str) -> str:
    """String: the run of a build that may publish it, set by the worker that
    starts it and deleted when its job is replaced (:mod:`asu.build_runs`)."""
    return f"{PREFIX}:run:{request_hash}"


def image(image_hash: str) -> str:
    """The request hash of the build that made the image with this sha256."""
    return f"{PREFIX}:image:{image_hash}"


def manifest(manifest_hash: str) -> str:
    """JSON manifest ``{package: version}`` with this sha256 (image_index)."""
    return f"{PREFIX}:manifest:{manifest_hash}"


# -- statistics (asu.stats) ------------------------------------------------------------


def stats_totals() -> str:
    """Hash of counters since the start: requests by outcome, builds by result."""
    return f"{PREFIX}:stats:totals"


def stats_day(day: str) -> str:
    """Hash of the same counters for one UTC day (``YYYY-MM-DD``); expires."""
    return f"{PREFIX}:stats:day:{day}"


def stats_failures() -> str:
    """Hash ``{error kind: failed builds}``."""
    return f"{PREFIX}:stats:failures"


def stats_histogram(name: str) -> str:
    """Hash of one duration histogram: a count per bucket bound, ``sum``, ``count``."""
    return f"{PREFIX}:stats:histogram:{name}"


def stats_top(name: str) -> str:
    """Sorted set ``{member: count}``: versions, targets, profiles, clients, …"""
    return f"{PREFIX}:stats:top:{name}"


# -- the web page (asu.metadata.devices) -----------------------------------------------


def web_devices(distro: str, version: str) -> str:
    """JSON list of one version's devices, reduced for the page's search."""
    return f"{PREFIX}:web:{distro}:{version}:devices"


# -- limits (asu.queue.limits) ---------------------------------------------------------


def client_builds(client: str) -> str:
    """Counter of the new builds one client asked for in the current window."""
    return f"{PREFIX}:limit:builds:{client}"


def client_in_flight(client: str) -> str:
    """Sorted set of the request hashes one client's new builds run under, scored
    by when each was admitted; finished ones leave it at the client's next one."""
    return f"{PREFIX}:limit:in_flight:{client}"
