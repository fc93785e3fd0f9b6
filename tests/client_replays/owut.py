"""``owut``, the OpenWrt upgrade tool (efahl/owut ``files/owut``, ucode)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

import requests

from client_replays import (
    ClientError,
    Device,
    Outcome,
    Session,
    revision_count,
    sha256,
)

#: ``owut/<VERSION>``, its User-Agent and ``client``.
AGENT = "owut/2025.12.01-r1"
#: The first status after 0.5 s, then every 2 s (``--poll-interval`` 2000 ms).
FIRST, INTERVAL = 0.5, 2.0


@dataclass
class _Plan:
    version: str
    path: str
    platform: str  # the profile id
    arch: str
    rev_code: str
    fstype: str
    sutype: str
    changes: list[dict]


def replay(base: str, device: Device, init_script: str, rootfs_size_mb: int) -> Outcome:
    """``owut download -I <script> -S <size>``: overview.json, upstream's
    ``profiles.json``, the failure list, the package indexes; POST the blob,
    poll with HEAD (a full GET once it is no longer 202), reading the body's
    ``status``; download, compare the sha256 and check the manifest."""
    outcome = Outcome("owut")
    session = Session(base, AGENT, outcome)
    plan = _plan(session, device)
    available = _available(session, plan, device.target)
    top_level = _top_level(device, plan, available)
    changed = [p for p in top_level if device.installed.get(p) != available.get(p)]
    if not changed:
        raise ClientError("owut: There are no changes to download")
    outcome.request = {
        "client": AGENT,
        "target": device.target,
        "profile": plan.platform,
        "version": plan.version,
        "version_code": plan.rev_code,
        "filesystem": plan.fstype,
        "diff_packages": True,
        "packages": top_level,
        "rootfs_size_mb": rootfs_size_mb,
        "defaults": init_script,
    }
    response = _json(session("POST", "/api/v1/build", json=outcome.request))
    status_url = f"/api/v1/build/{response['request_hash']}"
    interval = FIRST
    while response["status"] == 202:
        time.sleep(interval)
        interval = INTERVAL
        response = _status(session, status_url)
    if response["status"] != 200:
        raise ClientError(f"owut: Build failed with status {response['status']}")
    if response["request"]["version_code"] not in ("", None, response["version_code"]):
        raise ClientError("owut: Firmware revision mismatch")
    url = outcome.chose(response, _image(response["images"], plan))
    outcome.data = session("GET", url).content
    if sha256(outcome.data) != outcome.image["sha256"]:
        raise ClientError("owut: sha256 doesn't match")
    _check_manifest(response["manifest"], top_level, available)
    return outcome


def _json(answer: requests.Response) -> dict:
    try:
        return answer.json()
    except ValueError:
        return {"status": answer.status_code, "detail": f"Error: {answer.text}"}


def _status(session: Session, url: str) -> dict:
    """dl_build_status: HEAD first; a 202 is read from its headers."""
    head = session("HEAD", url)
    if head.status_code == 202:
        stage = head.headers.get("X-Imagebuilder-Status")
        return {
            "status": 202,
            "detail": stage or "queued",
            "queue_position": head.headers.get("X-Queue-Position"),
            "imagebuilder_status": stage,
        }
    return _json(session("GET", url))


def _plan(session: Session, device: Device) -> _Plan:
    """collect_overview and collect_platform."""
    overview = session("GET", "/json/v1/overview.json").json()
    upstream = overview["upstream_url"]
    if "SNAPSHOT" in device.version:
        version = device.version
    else:
        branch = overview["branches"][_branch(device.version)]
        version = max((v for v in branch["versions"] if "-SNAPSHOT" not in v), key=_key)
    active = overview["branches"][_branch(version)]
    if version not in active["versions"]:
        raise ClientError(f"owut: version-to {version} is not available")
    path = active["path"].replace("{version}", version)
    url = f"{upstream}/{path}/targets/{device.target}/profiles.json"
    platform = session("GET", url).json()
    profile_id = _profile(device, platform["profiles"])
    profile = platform["profiles"][profile_id]
    fstype = device.rootfs_type
    images = [i for i in profile["images"] if i.get("filesystem") == fstype]
    sutype = "combined" if re.match(r"^(x86|armsr)/", device.target) else "sysupgrade"
    sutype += "-efi" if device.efi else ""
    kinds = sorted({i["type"] for i in images})
    if sutype not in kinds:
        if sutype != "sysupgrade" or len(kinds) != 1:
            raise ClientError(f"owut: sysupgrade type {sutype} is not one of {kinds}")
        sutype = kinds[0]
    arch = platform["arch_packages"]
    failures = (
        "snapshots/faillogs"
        if version == "SNAPSHOT"
        else (f"releases/faillogs-{_branch(version)}")
    )
    session("GET", f"{upstream}/{failures}/{arch}/")  # a 404: no failures
    return _Plan(
        version,
        path,
        profile_id,
        arch,
        platform["version_code"],
        fstype,
        sutype,
        active.get("package_changes", []),
    )


def _branch(version: str) -> str:
    if version == "SNAPSHOT":
        return version
    found = re.search(r"\d+\.\d+", version)
    return found[0] if found else ""


def _key(version: str) -> tuple:
    """Releases in order, a release candidate before its release."""
    numbers = [int(n) for n in re.findall(r"\d+", version)]
    return (*numbers[:3], 0 if "-rc" in version else 1, *numbers[3:])


def _profile(device: Device, profiles: dict) -> str:
    """The board name with its first comma as ``_``, or the profile listing it
    in ``supported_devices``, or ``generic``."""
    platform = device.board_name.replace(",", "_", 1)
    if platform in profiles:
        return platform
    for profile_id, data in profiles.items():
        aliases = data.get("supported_devices", ())
        if platform in (alias.replace(",", "_") for alias in aliases):
            return profile_id
    if "generic" in profiles:
        return "generic"
    raise ClientError(f"owut: Unsupported profile: {platform}")


def _available(session: Session, plan: _Plan, target: str) -> dict:
    """dl_package_versions: the arch's feeds, then the platform's own index."""
    arch = session("GET", f"/json/v1/{plan.path}/packages/{plan.arch}-index.json")
    plat = session("GET", f"/json/v1/{plan.path}/targets/{target}/index.json")
    return arch.json() | plat.json()["packages"]


def _top_level(device: Device, plan: _Plan, available: dict) -> list[str]:
    """The top-level packages after package_changes (a change with only a source
    removes it, with a target replaces it), without kernel and libc."""
    top = {p for p in device.top_level if p not in ("kernel", "libc")}
    to_revision = revision_count(plan.rev_code)
    for change in plan.changes:
        source = change.get("source")
        if change["revision"] > to_revision or source not in top:
            continue
        top.discard(source)
        if change.get("target"):
            top.add(change["target"])
    missing = sorted(p for p in top if p not in available)
    if missing:
        raise ClientError(f"owut: packages missing in target version: {missing}")
    return sorted(top)


def _image(images: list[dict], plan: _Plan) -> dict:
    """select_image: the build's file system and sysupgrade type."""
    for image in images:
        if image.get("filesystem") == plan.fstype and image["type"] == plan.sutype:
            return image
    raise ClientError(f"owut: no image for {plan.fstype} and {plan.sutype}")


def _check_manifest(manifest: dict, top_level: Iterable[str], available: dict) -> None:
    """Every top-level package is in the image at the version the index gave."""
    for package in top_level:
        if manifest.get(package) != available[package]:
            raise ClientError(
                f"owut: Firmware package version mismatch: '{package}', expected "
                f"{available[package]}, but got {manifest.get(package)}"
            )
