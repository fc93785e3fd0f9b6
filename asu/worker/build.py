"""The worker's job: turn one build request into signed images in the store.

1. Get the ImageBuilder (fetched, verified and unpacked once per machine); the
   sandbox shows it copy-on-write, so the build changes only its own scratch space.
2. ``make info`` (revision, ``version_code`` check, default and device packages),
   the package list (``diff_packages`` removals), the feeds and the packages the
   build may need fetched by the worker (:mod:`asu.worker.feeds`), ``make manifest``
   only to check ``packages_versions`` before building, then ``make image`` with
   ``defaults`` as ``FILES``, ``ROOTFS_PARTSIZE``, the filesystem and
   ``EXTRA_IMAGE_NAME``; the image's manifest is the one ``make image`` writes.
   Every ``make`` runs in the sandbox, without a network.
3. Hash and sign the images, move ``BIN_DIR`` to ``store/<hash>/`` by an atomic
   rename, and return the result.

Progress goes to the job's meta for pollers; a failure raises :class:`BuildError`
whose detail says what to change, with the failing step's output.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rq import get_current_job
from rq.job import Job

from asu import (
    answers,
    build_runs,
    cached_builds,
    distributions,
    image_index,
    stats,
    upstream,
)
from asu.build_request import BuildRequest
from asu.config import Config, load_config
from asu.formats import apk_index, usign
from asu.formats.package_versions import compare
from asu.package_cache import PackageCache
from asu.signing import server_key
from asu.stages import STAGES
from asu.times import iso_utc
from asu.worker import feeds, imagebuilder, publish, sandbox
from asu.worker.make_output import Info, parse_info, parse_manifest

log = logging.getLogger(__name__)

DEFAULTS_PATH = "etc/uci-defaults/99-asu-defaults"
#: Where the sandbox sees the feeds the worker fetched.
FEEDS_DIR = "/feeds"
#: The build's commands and output, kept beside the images.
BUILDLOG = "buildlog.txt"
FILESYSTEM_OPTIONS = {
    "squashfs": "CONFIG_TARGET_ROOTFS_SQUASHFS",
    "ext4": "CONFIG_TARGET_ROOTFS_EXT4FS",
    "ubifs": "CONFIG_TARGET_ROOTFS_UBIFS",
    "jffs2": "CONFIG_TARGET_ROOTFS_JFFS2",
}
#: What a ``make`` variable may hold. The request's fields were checked already;
#: this keeps anything ``make`` or a shell would expand (``$``, backticks,
#: quotes, ``;``, newlines) off the command line should a check ever miss.
MAKE_VALUE = re.compile(r"[A-Za-z0-9_.,+/ -]*", re.ASCII)
#: How the C library and Python word a full disk.
DISK_FULL = os.strerror(errno.ENOSPC)
DISK_FULL_DETAIL = (
    "Error: the build server ran out of disk space; nothing was stored, retry later"
)
#: Below this much free space the server's disk counts as full.
DISK_NEARLY_FULL = 64 << 20
SPACE_LIMIT_DETAIL = (
    "Error: the build ran out of space in its sandbox (/tmp or /dev/shm); "
    "remove packages or ask the server's operator"
)
#: The kind and detail of a build stopped by one of its sandbox's limits.
LIMIT_ERRORS = {
    "time": ("timeout", "Error: the build took too long and was stopped"),
    "disk": (
        "disk_limit",
        "Error: the build wrote more than the server allows one build and was "
        "stopped; remove packages or ask the server's operator",
    ),
    "processes": (
        "processes",
        "Error: the build started more processes than the server allows and was "
        "stopped",
    ),
    "memory": (
        "memory",
        "Error: the build used more memory than the server allows one build and "
        "was stopped",
    ),
}


class BuildError(Exception):
    """A build that failed; ``detail`` starts with ``Error:`` and says what to do.

    ``kind`` names the failure for statistics and for the earlier API generations'
    status codes: ``imagebuilder``, ``version_code``, ``profile``,
    ``unknown_package``, ``conflict``, ``packages_versions``, ``too_big``,
    ``timeout``, ``memory``, ``processes``, ``disk_limit``, ``no_image``,
    ``disk_full``, ``repositories``, ``download`` or ``build``.
    """

    def __init__(
        self, detail: str, stdout: str = "", stderr: str = "", kind: str = "build"
    ):
        super().__init__(detail)
        self.detail = detail
        self.stdout = stdout
        self.stderr = stderr
        self.kind = kind


@dataclass
class Run:
    """One build in progress: its request, config, scratch space and log (the
    RQ job that runs it, ``rq_job`` here, only carries its progress and answer).

    The scratch directory holds ``job/`` (the sandbox's writable ``/job``: ``bin``,
    ``files``), ``changes/`` (what the build changes of the ImageBuilder, which it
    sees at ``/job/imagebuilder``) and ``feeds/`` (the feeds the worker fetched,
    read-only at ``/feeds``).
    """

    request: BuildRequest
    config: Config
    distribution: distributions.Distribution
    scratch: Path
    #: the unpacked ImageBuilder, shared by every build of its version and target
    source: Path
    report: Callable[[str], None]
    log: list[str]
    #: the feeds the worker serves the ImageBuilder
    mirrored: list[feeds.Mirrored] = field(default_factory=list)
    #: packages the build may need that could not be fetched
    missing: list[feeds.Missing] = field(default_factory=list)

    @property
    def layout(self) -> sandbox.Layout:
        overlay = sandbox.Overlay("imagebuilder", self.source, self.scratch / "changes")
        return sandbox.Layout(
            self.scratch / "job", overlay, ((FEEDS_DIR, self.scratch / "feeds"),)
        )

    @property
    def changes(self) -> Path:
        """Where files the worker puts into the ImageBuilder go (the overlay's
        upper layer): the shared tree itself is never written."""
        return self.layout.overlay.upper

    @staticmethod
    def inside(name: str) -> str:
        """The path of ``job/name`` as the sandboxed ``make`` sees it."""
        return f"{sandbox.JOB_DIR}/{name}"

    def make(self, target: str, **variables: str) -> sandbox.Result:
        """Run ``make <target> VAR=value ...`` in the sandbox; keep a log line."""
        command = ["make", "--no-print-directory", target]
        command += [_make_variable(key, value) for key, value in variables.items()]
        self.log.append(" ".join(command))
        config = self.config
        limits = sandbox.Limits(
            timeout=config.job_timeout,
            memory_bytes=config.build_memory_mb << 20,
            processes=config.build_processes,
            disk_bytes=config.build_disk_mb << 20,
        )
        result = sandbox.run(command, self.layout, "imagebuilder", limits)
        if result.limit:
            kind, detail = LIMIT_ERRORS[result.limit]
            raise BuildError(detail, *_out(result), kind=kind)
        if result.returncode != 0 and DISK_FULL in result.stdout + result.stderr:
            if _disk_nearly_full(self.scratch):
                raise BuildError(DISK_FULL_DETAIL, *_out(result), kind="disk_full")
            raise BuildError(SPACE_LIMIT_DETAIL, *_out(result), kind="disk_limit")
        return result


def _make_variable(key: str, value: str) -> str:
    if not MAKE_VALUE.fullmatch(value):
        raise BuildError(
            f"Error: refusing to run make with {key}={value[:80]!r}: it holds "
            "characters make or a shell would interpret"
        )
    return f"{key}={value}"


@contextmanager
def _disk_full_fails_the_build() -> Iterator[None]:
    """A full disk is a failed build that says so, not an interrupted job."""
    try:
        yield
    except OSError as error:
        if error.errno != errno.ENOSPC and DISK_FULL not in str(error):
            raise
        raise BuildError(DISK_FULL_DETAIL, kind="disk_full") from None


class StageClock:
    """How long each stage of a build took, for the log and the job's meta."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._current = ""
        self._since = time.monotonic()

    def enter(self, stage: str) -> None:
        now = time.monotonic()
        if self._current:
            spent = self.seconds.get(self._current, 0.0) + now - self._since
            self.seconds[self._current] = round(spent, 3)
        self._current, self._since = stage, now

    def stop(self) -> dict[str, float]:
        self.enter("")
        return self.seconds

    def summary(self) -> str:
        return ", ".join(
            f"{stage} {spent:.1f}" for stage, spent in self.seconds.items()
        )


@stats.counted_build
def build(request: dict) -> dict:
    """The RQ job: build the image ``request`` asks for and return the result.

    A run whose job was replaced meanwhile (:mod:`asu.build_runs`) stops and
    writes nothing more; in a work horse it exits cleanly, the one way RQ leaves
    the job, now the new one's, alone.
    """
    rq_job = get_current_job()
    try:
        return _attempt(request, rq_job)
    except build_runs.Superseded as superseded:
        log.warning("%s: this run stops and its result is dropped", superseded)
        if os.environ.get(build_runs.WORK_HORSE):
            os._exit(0)
        raise


def _attempt(request: dict, rq_job: Job | None) -> dict:
    config = load_config()
    build_request = BuildRequest.from_dict(request)
    clock = StageClock()
    if rq_job is not None:
        seconds = rq_job.timeout or config.job_timeout
        token = build_runs.claim(rq_job.connection, rq_job.id, seconds)

    def still_ours() -> None:
        if rq_job is not None:
            build_runs.check(rq_job.connection, rq_job.id, token)

    def report(stage: str) -> None:
        clock.enter(stage)
        if rq_job is None:
            return
        still_ours()
        rq_job.meta["imagebuilder_status"] = STAGES[stage]
        rq_job.meta["stage"] = stage
        rq_job.meta.setdefault("started_at", time.time())
        rq_job.save_meta()

    report("init")
    try:
        with _disk_full_fails_the_build():
            result = _build(build_request, config, report, rq_job)
    except BuildError as error:
        clock.stop()
        log.info(
            "build %s failed (%s); seconds per stage: %s",
            build_request.hash,
            error.kind,
            clock.summary(),
        )
        if rq_job is not None:
            still_ours()
            _record_failure(rq_job, error, clock, config)
        raise
    clock.stop()
    log.info("built %s; seconds per stage: %s", build_request.hash, clock.summary())
    if rq_job is not None:
        still_ours()
        _record_result(rq_job, result, clock, config, build_request)
    return result


def _record_failure(rq_job: Job, error: BuildError, clock: StageClock, config: Config):
    """What a client is told of the failed build, kept as long as the failure."""
    rq_job.meta.update(
        detail=error.detail,
        stdout=error.stdout,
        stderr=error.stderr,
        error_kind=error.kind,
        stage_seconds=clock.seconds,
    )
    rq_job.save_meta()
    ttl = rq_job.failure_ttl or config.build_failure_ttl
    answer = answers.failed(rq_job.id, rq_job.meta)
    answers.keep(rq_job.connection, rq_job.id, answer, ttl)


def _record_result(
    rq_job: Job, result: dict, clock: StageClock, config: Config, request: BuildRequest
) -> None:
    """The stage times, the answer every later client gets and, unless the
    request carried a first-boot script, its images' checksums."""
    rq_job.meta["stage_seconds"] = clock.seconds
    rq_job.save_meta()
    ttl = rq_job.result_ttl or config.build_ttl
    answers.keep(rq_job.connection, rq_job.id, answers.done(result), ttl)
    image_index.record(rq_job.connection, result, ttl, findable=not request.defaults)


def _build(request: BuildRequest, config: Config, report, rq_job: Job | None) -> dict:
    distribution = distributions.get(config, request.distro)
    if distribution is None:
        raise BuildError(f"Error: unknown distribution {request.distro}", kind="build")
    wanted = imagebuilder.Source(distribution, request.version, request.target)
    try:
        source = imagebuilder.prepare(config, upstream.session(), wanted, report)
    except imagebuilder.ImageBuilderError as error:
        raise BuildError(f"Error: {error}", kind="imagebuilder") from None
    jobs_dir = config.cache_path / "jobs"
    jobs_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=jobs_dir, prefix=request.hash[:16]) as tmp:
        report("prepare_imagebuilder")
        run = Run(request, config, distribution, Path(tmp), source, report, log=[])
        return _run_pipeline(run, rq_job)


def _run_pipeline(run: Run, rq_job: Job | None) -> dict:
    request = run.request
    _write_files(run)
    _choose_filesystem(run)
    run.layout.prepare()

    run.report("make_info")
    info = _make_info(run)
    packages = _package_list(request, info)

    run.report("fetch_packages")
    _serve_feeds(run, info, packages)
    run.layout.prepare()

    if request.packages_versions:
        run.report("make_manifest")
        _check_versions(run, packages)

    run.report("make_image")
    bin_dir = run.scratch / "job" / "bin"
    variables = {
        "PROFILE": request.profile,
        "PACKAGES": " ".join(packages),
        "BIN_DIR": run.inside("bin"),
        "EXTRA_IMAGE_NAME": _packages_hash(packages)[:12],
    }
    if request.defaults:
        variables["FILES"] = run.inside("files")
    if request.rootfs_size_mb:
        variables["ROOTFS_PARTSIZE"] = str(request.rootfs_size_mb)
    result = run.make("image", **variables)
    _check_image(result, run)
    publish.drop_non_regular(bin_dir)
    (bin_dir / BUILDLOG).write_text(_build_log(run, result))

    run.report("sign_images")
    profiles = _read_profiles(bin_dir, request, result)
    (profile,) = profiles["profiles"].values()
    manifest = _read_manifest(bin_dir, profile, run, result)
    try:
        images = publish.hash_and_sign(
            bin_dir, profile["images"], server_key(run.config)
        )
    except publish.PublishError as error:
        raise BuildError(f"Error: {error}", *_out(result), kind="no_image") from None

    run.report("store_images")
    publish.move_to_store(bin_dir, run.config.store_path / request.hash)
    cached_builds.remember(rq_job, request, run.config)
    return _result(request, profiles, images, manifest, result, run, info, rq_job)


def _write_files(run: Run) -> None:
    if run.request.defaults:
        path = run.scratch / "job" / "files" / DEFAULTS_PATH
        path.parent.mkdir(parents=True)
        path.write_text(run.request.defaults)


def _serve_feeds(run: Run, info: Info, packages: list[str]) -> None:
    """Fetch the ImageBuilder's feeds and the request's extra feeds, with every
    package the build may install, and point the ImageBuilder at the copies.

    ``replace`` drops upstream's feeds but keeps the ImageBuilder's own
    ``packages/``; the request's keys go where opkg and apk look for them
    (``keys/<key id>``, ``keys/<key id>.pem``).
    """
    request = run.request
    repositories = feeds.imagebuilder_feeds(run.source, run.distribution)
    kind = repositories.package_format
    usable = feeds.usign_keys if kind == "opkg" else feeds.apk_keys
    keys = tuple(usable(request.repository_keys))
    extra = tuple(
        feeds.Feed(name, url, keys, extra=True)
        for name, url in request.repositories.items()
    )
    replaced = request.repositories_mode == "replace" and extra
    upstream_feeds = () if replaced else repositories.feeds
    _check_names(upstream_feeds, extra)
    http = upstream.session()
    try:
        run.mirrored = feeds.mirror(
            http, kind, [*upstream_feeds, *extra], run.scratch / "feeds"
        )
    except feeds.FeedError as error:
        raise BuildError(f"Error: {error}", kind="repositories") from None
    cache = PackageCache(run.config.package_cache_path)
    wanted = _installed(info, request.profile, packages)
    run.missing = feeds.provide(http, cache, run.mirrored, wanted)
    text = feeds.repositories_file(repositories, run.mirrored, FEEDS_DIR)
    (run.changes / feeds.REPOSITORIES[kind]).write_text(text)
    _add_keys(run)


def _check_names(upstream_feeds, extra) -> None:
    taken = {feed.name for feed in upstream_feeds}
    clash = sorted(taken.intersection(feed.name for feed in extra))
    if clash:
        raise BuildError(
            f"Error: repositories: the name {clash[0]} is taken by a feed of the "
            "ImageBuilder; give the extra feed another name",
            kind="repositories",
        )


def _installed(info: Info, profile: str, packages: list[str]) -> list[str]:
    """What ``make image`` asks the package manager for: defaults, the profile's
    packages and the request's, less removals, plus the kernel."""
    removed = {name[1:] for name in packages if name.startswith("-")}
    preset = [*info.default_packages, *info.profiles.get(profile, [])]
    added = [name.lstrip("+") for name in packages if not name.startswith("-")]
    return [n for n in dict.fromkeys([*preset, *added, "kernel"]) if n not in removed]


def _add_keys(run: Run) -> None:
    keys_dir = run.changes / "keys"
    for key in run.request.repository_keys:
        keys_dir.mkdir(exist_ok=True)
        if apk_index.is_apk_key(key):  # apk keeps PEM keys as keys/<name>.pem
            key_id = apk_index.ApkKey.from_text(key).key_id.hex()
            (keys_dir / f"{key_id}.pem").write_text(key)
            continue
        public = usign.PublicKey.from_text(key)
        (keys_dir / public.key_id_hex).write_text(public.to_text())


def _choose_filesystem(run: Run) -> None:
    """Keep only the requested filesystem enabled in the ImageBuilder's .config."""
    wanted = run.request.filesystem
    if not wanted:
        return
    lines = feeds.read_regular(run.source / ".config").splitlines()
    run.changes.mkdir(parents=True, exist_ok=True)
    kept = [
        line
        for line in lines
        if not any(option in line for option in FILESYSTEM_OPTIONS.values())
    ]
    for filesystem, option in FILESYSTEM_OPTIONS.items():
        kept.append(f"{option}=y" if filesystem == wanted else f"# {option} is not set")
    (run.changes / ".config").write_text("\n".join(kept) + "\n")


def _make_info(run: Run) -> Info:
    result = run.make("info")
    if result.returncode != 0:
        raise BuildError(
            "Error: the ImageBuilder failed to describe itself (make info)",
            result.stdout,
            result.stderr,
        )
    info = parse_info(result.stdout)
    expected = run.request.version_code
    if expected and info.revision != expected:
        raise BuildError(
            f"Error: the ImageBuilder is at revision {info.revision}, not the "
            f"requested {expected}; request {info.revision} or no version_code",
            result.stdout,
            result.stderr,
            kind="version_code",
        )
    if run.request.profile not in info.profiles:
        raise BuildError(
            f"Error: profile {run.request.profile} is not known to the "
            f"ImageBuilder of {run.request.version} {run.request.target}",
            result.stdout,
            result.stderr,
            kind="profile",
        )
    return info


def _package_list(request: BuildRequest, info: Info) -> list[str]:
    """What to pass as ``PACKAGES``: the request, plus removals for ``diff_packages``.

    With ``diff_packages`` the request is the complete set: every default and device
    package it does not name is removed with ``-name``.
    """
    packages = list(request.packages)
    if request.diff_packages:
        wanted = {name for name in packages if not name.startswith("-")}
        preset = [*info.default_packages, *info.profiles.get(request.profile, [])]
        removals = [f"-{name}" for name in dict.fromkeys(preset) if name not in wanted]
        packages = removals + packages
    return packages


_OPKG_UNKNOWN = re.compile(r"Cannot install package (\S+?)\.?$", re.MULTILINE)
_OPKG_UNFETCHED = re.compile(r"Failed to download (\S+?)\.", re.MULTILINE)
_APK_UNKNOWN = re.compile(r"^\s+(\S+) \(no such package\):", re.MULTILINE)
_CONFLICT = re.compile(r"conflict", re.IGNORECASE)


def _check_versions(run: Run, packages: list[str]) -> None:
    """Fail before ``make image`` when the image would not get the versions
    ``packages_versions`` asks for, by ``make manifest STRIP_ABI=1`` (names as the
    feeds' ``index.json`` and clients have them: ``libgcc``, not ``libgcc1``)."""
    request = run.request
    result = run.make(
        "manifest",
        PROFILE=request.profile,
        PACKAGES=" ".join(packages),
        STRIP_ABI="1",
    )
    if result.returncode != 0:
        failure = _package_failure(result.stderr + result.stdout, run)
        kind, detail = failure or (
            "build",
            "Error: the ImageBuilder could not resolve the packages",
        )
        raise BuildError(detail, *_out(result), kind=kind)
    package_format = feeds.package_format(run.source)
    manifest = _plain_names(parse_manifest(result.stdout), run.mirrored)
    mismatches = [
        f"{name} {manifest.get(name, 'not installed')} instead of {version}"
        for name, version in sorted(request.packages_versions.items())
        if name not in manifest or compare(manifest[name], version, package_format)
    ]
    if mismatches:
        raise BuildError(
            "Error: packages_versions cannot be met, the ImageBuilder has "
            + "; ".join(mismatches)
            + ". Request the versions it has or drop packages_versions",
            *_out(result),
            kind="packages_versions",
        )


def _read_manifest(
    bin_dir: Path, profile: dict, run: Run, result: sandbox.Result
) -> dict[str, str]:
    """The packages in the image, from the ``<image_prefix>.manifest`` that
    ``make image`` writes beside the images."""
    path = bin_dir / f"{profile.get('image_prefix', '')}.manifest"
    if path.parent != bin_dir or not path.is_file():
        raise BuildError(
            f"Error: the ImageBuilder wrote no manifest ({path.name}) for the image",
            *_out(result),
            kind="no_image",
        )
    return _plain_names(parse_manifest(path.read_text()), run.mirrored)


def _plain_names(
    manifest: dict[str, str], mirrored: list[feeds.Mirrored]
) -> dict[str, str]:
    """A manifest with names as ``index.json`` and clients have them: OpenWrt
    names libraries with their ABI version (``libgcc1``), which the feeds'
    indexes say how to remove."""
    plain = {
        entry.name: entry.plain_name for feed in mirrored for entry in feed.entries
    }
    return {plain.get(name, name): version for name, version in manifest.items()}


def _package_failure(output: str, run: Run) -> tuple[str, str] | None:
    """The kind of failure and a detail naming the packages and what to change,
    when the package manager could not install what was asked for."""
    unfetched = _unfetched(output, run.missing)
    if unfetched:
        return "download", (
            f"Error: {unfetched}; the package server lacks them now: retry later, "
            "or remove them from the request"
        )
    unknown = sorted(set(_OPKG_UNKNOWN.findall(output) + _APK_UNKNOWN.findall(output)))
    left_out = [m for m in run.mirrored if m.problem]
    if unknown and left_out:
        feeds_named = "; ".join(f"feed {m.feed.name}: {m.problem}" for m in left_out)
        return "repositories", (
            f"Error: cannot install {', '.join(unknown)}: a feed that may have "
            f"them could not be used ({feeds_named})"
        )
    if _CONFLICT.search(output):
        named = f" ({', '.join(unknown)})" if unknown else ""
        return "conflict", (
            f"Error: the requested packages conflict{named}; remove one of the "
            "conflicting packages (see stderr) from the request"
        )
    if unknown:
        return "unknown_package", (
            f"Error: unknown package(s): {', '.join(unknown)}; remove them or check "
            "their names for this version and target"
        )
    return None


def _unfetched(output: str, missing: list[feeds.Missing]) -> str:
    """What the package manager could not get, with why the worker could not
    fetch it; "" when that is not why the build failed."""
    failed = set(_OPKG_UNFETCHED.findall(output))
    named = [m for m in missing if m.entry.name in failed]
    if not named and not failed:
        return ""
    if not named:
        return f"package(s) {', '.join(sorted(failed))} could not be fetched"
    return "; ".join(
        f"package {m.entry.name} ({m.entry.filename}) could not be fetched from "
        f"feed {m.feed}: {m.reason}"
        for m in named
    )


def _out(result: sandbox.Result) -> tuple[str, str]:
    return result.stdout, result.stderr


def _disk_nearly_full(path: Path) -> bool:
    return shutil.disk_usage(path).free < DISK_NEARLY_FULL


def _check_image(result: sandbox.Result, run: Run) -> None:
    if result.returncode == 0:
        return
    output = result.stderr + result.stdout
    if "is too big" in output:
        raise BuildError(
            "Error: the image is too big for the device: remove packages or, "
            "where the target allows it, raise rootfs_size_mb",
            *_out(result),
            kind="too_big",
        )
    if "no image could be built" in result.stderr:
        raise BuildError(
            "Error: the ImageBuilder builds no image for this device (only kernel "
            "or initramfs images, which need a full build)",
            *_out(result),
            kind="no_image",
        )
    kind, detail = _package_failure(output, run) or (
        "build",
        "Error: make image failed (see stderr)",
    )
    raise BuildError(detail, *_out(result), kind=kind)


def _build_log(run: Run, result: sandbox.Result) -> str:
    commands = "".join(f"$ {command}\n" for command in run.log)
    return f"{commands}\n{result.stdout}\n{result.stderr}"


def _read_profiles(bin_dir: Path, request: BuildRequest, result) -> dict:
    try:
        profiles = json.loads((bin_dir / "profiles.json").read_text())
        profile = profiles["profiles"][request.profile]
    except (OSError, ValueError, KeyError):
        raise BuildError(
            "Error: the ImageBuilder wrote no profiles.json for the profile",
            *_out(result),
            kind="no_image",
        ) from None
    if not profile.get("images"):
        raise BuildError(
            "Error: no firmware image was created", *_out(result), kind="no_image"
        )
    return profiles


def _packages_hash(packages: list[str]) -> str:
    """What tells images of different package lists apart in their names."""
    text = " ".join(sorted(packages))
    return hashlib.sha256(text.encode()).hexdigest()


def _result(request, profiles, images, manifest, result, run, info, rq_job) -> dict:
    ((profile_id, profile),) = profiles["profiles"].items()
    top = {key: value for key, value in profiles.items() if key != "profiles"}
    enqueued = rq_job.enqueued_at if rq_job is not None else None
    return (
        top
        | profile
        | {
            "id": profile_id,
            "request_hash": request.hash,
            "bin_dir": request.hash,
            "images": images,
            "manifest": manifest,
            "build_at": iso_utc(datetime.now(UTC)),
            "enqueued_at": iso_utc(enqueued) if enqueued else "",
            "build_cmd": run.log,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "request": request.echo(),
            "version_code": profiles.get("version_code", info.revision),
            "detail": "done",
            "status": 200,
        }
    )
