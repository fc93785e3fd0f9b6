"""The janitor: what upstream publishes, into Redis and the static ``/json/v1`` tree.

One pass over every configured distribution:

1. ``.versions.json`` names the branches and versions to load (:mod:`asu.branches`).
2. For each version ``.targets.json``; for each target ``sha256sums`` and its
   signature, checked with the distribution's keys. Only when those changed:
   ``profiles.json`` (checked against ``sha256sums``), the target's package index
   and its ``kmods/<kernel>-<release>-<vermagic>/`` index.
3. Each architecture's feeds (``packages/<arch>/<feed>/``).

Indexes are loaded only when signed by the distribution: opkg's ``Packages`` with
a usign ``Packages.sig``, apk's ``packages.adb`` with its signature block checked
against the apk keys (``index.json`` only where a directory has no
``packages.adb``). A feed that fails the check is skipped with a warning.
4. ``branches.json``, ``latest.json`` and ``overview.json``, and each version's
   ``<path>/overview.json`` when one of its targets changed.

``init`` (``force``) fetches everything; ``update`` asks conditionally, so an
unchanged upstream answers each request with a 304 and nothing is rewritten. A
target whose revision changed has its cached builds dropped.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
from redis.exceptions import LockError
from redis.lock import Lock

import asu
from asu import branches, cached_builds, redis_keys, upstream
from asu.build_request import TARGET
from asu.config import Config
from asu.distributions import Distribution, distributions
from asu.formats import apk_index, package_index, usign
from asu.formats.adb import AdbError
from asu.formats.package_index import INDEX_FILES, PackageIndex
from asu.metadata import lookup, records
from asu.metadata.json_tree import JsonTree, version_overview
from asu.metadata.records import TargetState
from asu.metadata.upstream_fetch import Fetched, Fetcher
from asu.package_changes import revision_number
from asu.signing import public_key_line

#: Seconds the lock of a pass outlives its last step: a pass renews it at every
#: step, so a janitor that died (or lost its network) holds up others this long.
LOCK_SECONDS = 300
ARCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$", re.ASCII)
_KERNEL_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+~-]{0,63}$", re.ASCII)


class Report(Protocol):
    """Where a pass says what it does: a progress bar, or log lines."""

    def items(self, items: Sequence[str], label: str) -> Iterable[str]: ...

    def line(self, message: str) -> None: ...

    def detail(self, message: str) -> None: ...


@dataclass
class Summary:
    """What one pass did."""

    targets_loaded: int = 0
    feeds_loaded: int = 0
    #: package indexes left out for a missing or bad signature
    feeds_skipped: int = 0
    builds_dropped: int = 0
    warnings: int = 0
    failed: list[str] = field(default_factory=list)


class TargetError(ValueError):
    """A target upstream publishes in a way that cannot be used."""


class UnsignedIndex(upstream.UpstreamError):
    """A package index without a valid signature: it is left out, not its target."""


class LostLock(Exception):
    """The lock of the pass expired and another janitor took it: stop writing."""


def run(connection: redis.Redis, config: Config, force: bool, report: Report):
    """One pass over every distribution; returns the :class:`Summary`.

    One janitor at a time per distribution, wherever it runs: a pass holds a lock
    in Redis, renewed at each of its steps and expiring :data:`LOCK_SECONDS` after
    the last one; a janitor that finds it taken skips the distribution.
    """
    summary = Summary()
    for distribution in distributions(config).values():
        lock = connection.lock(
            redis_keys.janitor_lock(distribution.name), timeout=LOCK_SECONDS
        )
        if not lock.acquire(blocking=False):
            report.line(f"{distribution.name}: another janitor pass runs, skipped")
            continue
        try:
            _Pass(connection, config, distribution, force, report, summary, lock).sync()
        except (upstream.UpstreamError, LostLock) as error:
            summary.failed.append(distribution.name)
            report.line(f"{distribution.name}: failed: {error}")
        finally:
            with contextlib.suppress(LockError):
                lock.release()
    return summary


def overview_extra(config: Config, distribution: Distribution) -> dict[str, Any]:
    """What ``overview.json`` says besides the branches: upstream and server."""
    return {
        "upstream_url": distribution.upstream_url,
        "server": {
            "version": asu.__version__,
            "contact": config.server_contact,
            "allow_defaults": config.allow_defaults,
            "max_custom_rootfs_size_mb": config.max_custom_rootfs_size_mb,
            "max_defaults_length": config.max_defaults_length,
            "repository_allow_list": list(config.repository_allow_list),
            "public_key": public_key_line(config),
        },
    }


@dataclass
class _Version:
    """One version within a pass."""

    name: str
    path: str
    trusted_keys: tuple[str, ...]
    index_name: str  # the index file its package directories have, once known


class _Pass:
    """One pass over one distribution."""

    def __init__(
        self,
        connection: redis.Redis,
        config: Config,
        distribution: Distribution,
        force: bool,
        report: Report,
        summary: Summary,
        lock: Lock,
    ) -> None:
        self.connection = connection
        self.lock = lock
        self.config = config
        self.distribution = distribution
        self.distro = distribution.name
        self.force = force
        self.report = report
        self.summary = summary
        self.fetcher = Fetcher(connection, distribution.name)
        self.apk_keys = apk_index.load_keys(distribution.apk_keys)
        self.tree = JsonTree(config.json_path / distribution.json_prefix)

    def sync(self) -> None:
        plan = branches.plan(self._versions_json(), self.distribution)
        learned = {
            version: facts
            for branch in plan
            if branch.enabled
            for version in branch.versions
            if (facts := self._sync_version(branch, version)) is not None
        }
        published = [
            branch.publish(learned)
            for branch in plan
            if not branch.enabled or any(v in learned for v in branch.versions)
        ]
        self._hold()
        self.connection.set(redis_keys.branches(self.distro), json.dumps(published))
        self.tree.write_overview(
            published,
            branches.latest(published),
            overview_extra(self.config, self.distribution),
        )

    def _versions_json(self) -> dict:
        key = redis_keys.upstream_versions(self.distro)
        versions_json, answer = self._document(".versions.json", key)
        if answer is not None:
            self._save(lambda pipe: pipe.set(key, answer.content), answer)
        if not isinstance(versions_json, dict):
            self.report.line(f"{self.distro}: no .versions.json upstream")
            return {}
        return versions_json

    # -- fetching -----------------------------------------------------------------

    def _fetch(self, path: str, conditional: bool = True) -> Fetched | None:
        return self.fetcher.get(
            self.distribution.url(path), conditional and not self.force
        )

    def _require(self, path: str) -> bytes:
        answer = self._fetch(path, conditional=False)
        if answer is None:
            raise TargetError(f"{path} is missing upstream")
        return answer.content

    def _document(self, path: str, key: str) -> tuple[Any, Fetched | None]:
        """The JSON at ``path``: fetched when changed, else as stored at ``key``.

        Returns the data and the answer to remember (None when nothing is new).
        """
        answer = self._fetch(path)
        if answer is not None and not answer.changed:
            stored = records.stored_json(self.connection, key)
            if stored is not None:
                return stored, None
            answer = self._fetch(path, conditional=False)
        if answer is None:
            return None, None
        try:
            return json.loads(answer.content), answer
        except ValueError:
            raise upstream.UpstreamError(f"{answer.url} is not JSON") from None

    def _hold(self) -> None:
        """Renew the lock of the pass before writing; LostLock when it is gone."""
        try:
            self.lock.reacquire()
        except LockError:
            raise LostLock(
                f"its lock expired ({LOCK_SECONDS} s without a step) and another "
                "janitor took it; stopped"
            ) from None

    def _save(self, queue, *answers: Fetched | None) -> None:
        """Run ``queue(pipe)`` and remember ``answers`` in one transaction."""
        self._hold()
        with records.transaction(self.connection) as pipe:
            queue(pipe)
            self.fetcher.remember(pipe, *answers)
            pipe.execute()

    def _warn(self, message: str) -> None:
        self.summary.warnings += 1
        self.report.line(f"warning: {message}")

    # -- versions -----------------------------------------------------------------

    def _sync_version(self, branch: branches.Branch, version: str):
        path = branch.version_path(version)
        key = redis_keys.targets(self.distro, version)
        previous = records.stored_json(self.connection, key) or {}
        targets, answer = self._document(f"{path}/.targets.json", key)
        if not isinstance(targets, dict):
            self.report.line(f"{self.distro} {version}: not published upstream")
            return None
        targets = self._usable_targets(version, targets)
        context = _Version(
            version,
            path,
            self.distribution.upstream_keys
            + tuple(branch.settings.get("extra_keys", ())),
            records.version_index_name(self.connection, self.distro, version),
        )
        states = records.target_states(self.connection, self.distro, version, targets)
        before = dict(states)
        for target in self.report.items(sorted(targets), f"{self.distro} {version}"):
            states[target] = self._sync_target(context, target, states[target])
        gone = set(previous) - set(targets)
        self._remove_targets(context, gone)
        changed = gone or any(states[t] is not before[t] for t in targets)
        if changed or self.force or not self.tree.has_version_overview(path):
            self._write_version_overview(branch, context, targets)
        loaded = [state for state in states.values() if state is not None]
        if context.index_name:
            for arch in sorted({s.arch for s in loaded if s.indexed}):
                self._sync_feeds(context, arch)
        facts = _version_facts(targets, loaded)
        info = {
            "index": context.index_name,
            "revision": str(facts.revision),
            "source_date_epoch": str(facts.source_date_epoch),
        }
        self._save(
            lambda pipe: records.save_version(
                pipe, self.distro, version, targets, info
            ),
            answer,
        )
        return facts

    def _write_version_overview(
        self, branch: branches.Branch, context: _Version, targets: dict[str, str]
    ) -> None:
        """``<path>/overview.json`` from the ``profiles.json`` of every loaded
        target of the version."""
        names = sorted(targets)
        with self.connection.pipeline(transaction=False) as pipe:
            for target in names:
                pipe.get(redis_keys.profiles(self.distro, context.name, target))
            stored = pipe.execute()
        profiles = {
            target: document
            for target, raw in zip(names, stored, strict=True)
            if raw is not None and isinstance(document := json.loads(raw), dict)
        }
        image_url = self.distribution.url(f"{context.path}/targets/{{target}}")
        self.tree.write_version_overview(
            context.path,
            version_overview(branch.name, context.name, image_url, profiles),
        )

    def _usable_targets(self, version: str, targets: dict) -> dict[str, str]:
        usable = {
            target: arch
            for target, arch in targets.items()
            if TARGET.fullmatch(target)
            and isinstance(arch, str)
            and ARCH.fullmatch(arch)
        }
        for target in sorted(set(targets) - set(usable)):
            self._warn(f"{version}: ignored target {target!r}: not a valid name")
        return usable

    def _remove_targets(self, context: _Version, gone: set[str]) -> None:
        for target in sorted(gone):
            self._save(
                lambda pipe, target=target: records.delete_target(
                    pipe, self.distro, context.name, target
                )
            )
            self.tree.remove_target(context.path, target)
            self.report.line(f"{self.distro} {context.name}: {target} is gone")

    # -- targets ------------------------------------------------------------------

    def _sync_target(
        self, context: _Version, target: str, state: TargetState | None
    ) -> TargetState | None:
        base = f"{context.path}/targets/{target}"
        self._hold()
        try:
            sums = self._fetch(f"{base}/sha256sums", conditional=state is not None)
            if sums is None:
                raise TargetError("no sha256sums upstream")
            if not sums.changed:
                return state
            new_state = self._load_target(context, target, base, sums)
        except (upstream.UpstreamError, usign.UsignError, ValueError) as error:
            self._warn(f"{self.distro} {context.name} {target}: {error}")
            return state
        self.summary.targets_loaded += 1
        self.report.detail(
            f"{self.distro} {context.name} {target}: loaded {new_state.revision}"
        )
        if state is not None and state.revision != new_state.revision:
            self._drop_builds(context, target, state.revision, new_state.revision)
        return new_state

    def _load_target(
        self, context: _Version, target: str, base: str, sums: Fetched
    ) -> TargetState:
        signature = self._require(f"{base}/sha256sums.sig")
        usign.verify(sums.content, signature.decode(), context.trusted_keys)
        raw = self._require(f"{base}/profiles.json")
        _check_listed(sums.content, "profiles.json", raw)
        profiles_json = _target_profiles(json.loads(raw), target)
        index, complete = self._target_index(context, base, profiles_json)
        state = TargetState(
            revision=str(profiles_json.get("version_code", "")),
            arch=str(profiles_json.get("arch_packages", "")),
            indexed=index is not None or not complete,
            source_date_epoch=int(profiles_json.get("source_date_epoch") or 0),
            complete=complete,
        )
        index = index or PackageIndex()
        names = lookup.profile_names(profiles_json)
        self.tree.write_target(
            context.path, target, profiles_json, names, index.packages
        )
        self._save(
            lambda pipe: records.save_target(
                pipe, self.distro, context.name, target, raw, names, index, state
            ),
            sums,
        )
        return state

    def _target_index(
        self, context: _Version, base: str, profiles_json: dict
    ) -> tuple[PackageIndex | None, bool]:
        """The target's packages with its kmods (None when it has no index), and
        whether that is all of them: an index left out for its signature makes
        the target's package list incomplete, so requests are not refused on it."""
        try:
            index = self._package_index(context, f"{base}/packages")
        except UnsignedIndex as error:
            self._skip(error)
            return None, False
        kernel = profiles_json.get("linux_kernel") or {}
        parts = [str(kernel.get(k, "")) for k in ("version", "release", "vermagic")]
        if index is None or not all(_KERNEL_PART.fullmatch(p) for p in parts):
            return index, True
        try:
            kmods = self._package_index(context, f"{base}/kmods/{'-'.join(parts)}")
        except UnsignedIndex as error:
            self._skip(error)
            return index, False
        if kmods is not None:
            index.update(kmods)
        return index, True

    def _skip(self, error: UnsignedIndex) -> None:
        self.summary.feeds_skipped += 1
        self._warn(f"{self.distro}: skipped {error}")

    def _package_index(self, context: _Version, directory: str) -> PackageIndex | None:
        """The index in ``directory``, looking for the file name the version uses."""
        for name in _index_files(context.index_name):
            answer = self._fetch(f"{directory}/{name}", conditional=False)
            if answer is not None:
                context.index_name = context.index_name or name
                return self._read_index(directory, name, answer.content)
        return None

    def _read_index(self, directory: str, name: str, content: bytes) -> PackageIndex:
        """The index ``name`` of ``directory``, once its signature checked out."""
        if name != "packages.adb":
            self._check_signature(directory, name, content)
            return package_index.parse(name, content)
        try:
            index = apk_index.read_index(content, self.apk_keys)
        except (AdbError, apk_index.SignatureError) as error:
            raise UnsignedIndex(f"{directory}/{name}: {error}") from None
        return apk_index.package_index(index)

    def _check_signature(self, directory: str, name: str, content: bytes) -> None:
        """opkg indexes carry a usign signature of the uncompressed ``Packages``,
        by one of the distribution's keys; apk's ``index.json`` carries none."""
        if not name.startswith("Packages"):
            return
        try:
            text = gzip.decompress(content) if name.endswith(".gz") else content
        except (OSError, EOFError):
            raise upstream.UpstreamError(f"{directory}/{name} is corrupt") from None
        signed = self._fetch(f"{directory}/Packages.sig", conditional=False)
        if signed is None:
            raise UnsignedIndex(f"{directory}/Packages.sig is missing")
        try:
            usign.verify(
                text,
                signed.content.decode(errors="replace"),
                self.distribution.upstream_keys,
            )
        except usign.UsignError as error:
            raise UnsignedIndex(f"{directory}/{name}: {error}") from None

    def _drop_builds(self, context: _Version, target: str, old: str, new: str) -> None:
        dropped = cached_builds.forget_other_revisions(
            self.connection, self.config, self.distro, context.name, target, new
        )
        self.summary.builds_dropped += dropped
        self.report.line(
            f"{self.distro} {context.name} {target}: revision {old} -> {new}, "
            f"{dropped} cached build(s) dropped"
        )

    # -- feeds --------------------------------------------------------------------

    def _sync_feeds(self, context: _Version, arch: str) -> None:
        """Every feed of ``arch``; then its ``<arch>-index.json`` when one changed."""
        changed = False
        complete = True
        for feed in self.distribution.feeds:
            directory = f"{context.path}/packages/{arch}/{feed}"
            try:
                changed |= self._sync_feed(context, arch, feed, directory)
            except UnsignedIndex as error:
                complete = False
                self._skip(error)
            except (upstream.UpstreamError, ValueError) as error:
                complete = False
                self._warn(f"{self.distro} {context.name} {arch} {feed}: {error}")
        self._hold()
        # Only while every feed of the arch is loaded are unknown names refused.
        loaded = redis_keys.feed_arches(self.distro, context.name)
        if complete:
            self.connection.sadd(loaded, arch)
        else:
            self.connection.srem(loaded, arch)
        if changed or self.force:
            packages = records.feeds_of(
                self.connection,
                self.distro,
                context.name,
                arch,
                self.distribution.feeds,
            )
            self.tree.write_feeds(context.path, arch, packages)

    def _sync_feed(
        self, context: _Version, arch: str, feed: str, directory: str
    ) -> bool:
        """Load one feed if it changed; whether it did."""
        for name in _index_files(context.index_name):
            answer = self._fetch(f"{directory}/{name}")
            if answer is not None:
                break
        else:
            self.report.detail(f"{self.distro} {context.name}: no feed {feed} ({arch})")
            return False
        if not answer.changed:
            return False
        index = self._read_index(directory, name, answer.content)
        self._save(
            lambda pipe: records.save_feed(
                pipe, self.distro, context.name, arch, feed, index
            ),
            answer,
        )
        self.summary.feeds_loaded += 1
        return True


def _index_files(index_name: str) -> tuple[str, ...]:
    """The index files to look for in a directory of a version that uses
    ``index_name`` (any, when not known yet): ``index.json`` stands in for an
    apk directory without ``packages.adb``."""
    if not index_name:
        return INDEX_FILES
    return (index_name, "index.json") if index_name == "packages.adb" else (index_name,)


def _version_facts(
    targets: dict[str, str], loaded: list[TargetState]
) -> branches.VersionFacts:
    """The earliest revision and build time among a version's loaded targets."""
    revisions = [n for s in loaded if (n := revision_number(s.revision))]
    epochs = [s.source_date_epoch for s in loaded if s.source_date_epoch]
    return branches.VersionFacts(
        targets=targets,
        revision=min(revisions, default=0),
        source_date_epoch=min(epochs, default=0),
    )


def _target_profiles(profiles_json: Any, target: str) -> dict:
    """``profiles_json`` when it describes ``target`` usably, else TargetError."""
    if not (
        isinstance(profiles_json, dict)
        and isinstance(profiles_json.get("profiles"), dict)
        and profiles_json.get("target") == target
        and ARCH.fullmatch(str(profiles_json.get("arch_packages", "")))
    ):
        raise TargetError("profiles.json does not describe this target")
    return profiles_json


def _check_listed(sha256sums: bytes, name: str, content: bytes) -> None:
    """Raise unless the signed ``sha256sums`` lists ``name`` with ``content``'s hash."""
    digest = hashlib.sha256(content).hexdigest()
    for line in sha256sums.decode("utf-8", "replace").splitlines():
        listed, _, file_name = line.strip().partition(" ")
        if file_name.lstrip(" *") == name:
            if listed == digest:
                return
            raise TargetError(f"{name} does not match the signed sha256sums")
    raise TargetError(f"{name} is not listed in the signed sha256sums")
