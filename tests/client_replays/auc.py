"""``auc``, the attended sysupgrade CLI (openwrt/packages ``utils/auc/src/auc.c``,
0.3.2)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from client_replays import ClientError, Device, Outcome, Session, sha256

#: ``"<argv[0]> (<AUC_VERSION>)"``
AGENT = "auc (0.3.2)"
#: auc asks again every 2 s (``retry_delay``).
INTERVAL = 2.0

#: Packages auc leaves out of ``packages_versions``.
BUILTIN = ("libc", "librt", "libpthread", "kernel")


def verrevcmp(val: str, ref: str) -> int:
    """dpkg's version comparison, as auc has it."""

    def order(char: str) -> int:
        if char == "~":
            return -1
        if char.isdigit() or not char:
            return 0
        return ord(char) if char.isalpha() else ord(char) + 256

    i = j = 0
    while i < len(val) or j < len(ref):
        while (i < len(val) and not val[i].isdigit()) or (
            j < len(ref) and not ref[j].isdigit()
        ):
            a, b = order(val[i : i + 1]), order(ref[j : j + 1])
            if a != b:
                return a - b
            i, j = i + 1, j + 1
        number_a = re.match(r"\d*", val[i:])[0]
        number_b = re.match(r"\d*", ref[j:])[0]
        i, j = i + len(number_a), j + len(number_b)
        if int(number_a or 0) != int(number_b or 0):
            return int(number_a or 0) - int(number_b or 0)
    return 0


@dataclass
class _Branch:
    name: str
    version: str
    path: str
    arch: str
    snapshot: bool
    version_code: str = ""
    version_number: str = ""


def replay(base: str, device: Device) -> Outcome:
    """``auc -y``: branches.json, the board's ``<profile>.json`` of each version,
    the target's ``index.json`` and the arch's ``<arch>-index.json``; then POST
    ``packages_versions``, poll the hash every 2 s, download and check the
    ``Content-Length`` and sha256."""
    outcome = Outcome("auc")
    session = Session(base, AGENT, outcome)
    board = "generic" if device.x86 else device.board_name
    branch = _select(_branches(session, device, board), device.version)
    if verrevcmp(device.revision, branch.version_code) >= 0:
        raise ClientError(f"auc: nothing to update from {device.revision}")
    available = _packages(session, branch, device.target)
    outcome.request = {
        "version": branch.version,
        "version_code": branch.version_code,
        "target": device.target,
        "profile": board.replace(",", "_"),
        "diff_packages": True,
        "packages_versions": {
            name: available[name]
            for name in device.top_level
            if name not in BUILTIN and name in available
        },
    }
    answer = session("POST", "/api/v1/build", json=outcome.request)
    while answer.status_code in (201, 202):
        request_hash = answer.json()["request_hash"]
        time.sleep(INTERVAL)
        answer = session("GET", f"/api/v1/build/{request_hash}")
    if answer.status_code == 422:
        unknown = answer.headers["X-Unknown-Package"]
        raise ClientError(f"auc: unknown package '{unknown}' requested.")
    if answer.status_code != 200:
        raise ClientError(f"auc: {answer.status_code} {answer.json().get('detail')}")
    result = answer.json()
    download = session("GET", outcome.chose(result, _image(result["images"], device)))
    outcome.data = download.content
    if len(outcome.data) != int(download.headers.get("Content-Length", 0)):
        raise ClientError("auc: file size mismatch")
    if sha256(outcome.data) != outcome.image["sha256"]:
        raise ClientError("auc: sha256 mismatch")
    return outcome


def _branches(session: Session, device: Device, board: str) -> list[_Branch]:
    """request_branches(only_active): each version of the device's branch whose
    board file checks out (metadata_version 1, target and arch match)."""
    answer = session("GET", "/json/v1/branches.json")
    data = answer.json()
    found = []
    for branch in data.values() if isinstance(data, dict) else data:
        needed = ("name", "path", "path_packages", "versions", "targets")
        if not branch.get("enabled") or not all(k in branch for k in needed):
            continue
        if not device.version.startswith(branch["name"]):
            continue
        arch = branch["targets"].get(device.target)
        if arch is None:
            continue
        for version in branch["versions"]:
            candidate = _Branch(
                branch["name"],
                version,
                branch["path"].replace("{version}", version),
                arch,
                "snapshot" in version.lower(),
            )
            url = f"/json/v1/{candidate.path}/targets/{device.target}/{board}.json"
            if _board(session, url.replace(",", "_"), candidate, device):
                found.append(candidate)
    return found


def _board(session, url: str, branch: _Branch, device: Device) -> bool:
    answer = session("GET", url)
    if answer.status_code != 200:
        return False
    board = answer.json()
    if type(board.get("metadata_version")) is not int or board["metadata_version"] != 1:
        return False
    if board.get("target") != device.target or board.get("arch_packages") != (
        branch.arch
    ):
        return False
    if not isinstance(board.get("images"), list):
        return False
    branch.version_code = board.get("version_code", "")
    branch.version_number = board.get("version_number", "")
    return True


def _select(branches: list[_Branch], running: str) -> _Branch:
    """select_branch: a snapshot stays on its snapshot, a release takes the
    newest release of its branch (``-rc`` sorting before the release)."""
    chosen = None
    for branch in branches:
        if not running.lower().startswith(branch.name.lower()):
            continue
        if "snapshot" in running.lower():
            if branch.snapshot:
                return branch
        elif not branch.snapshot and (
            chosen is None
            or verrevcmp(
                chosen.version.replace("-rc", "~"), branch.version.replace("-rc", "~")
            )
            < 0
        ):
            chosen = branch
    if chosen is None:
        raise ClientError(f"auc: no branch for {running}")
    return chosen


def _packages(session: Session, branch: _Branch, target: str) -> dict:
    """request_packages: the target's index (its architecture must match), then
    the arch's feeds; a name already known keeps its first version."""
    index = session("GET", f"/json/v1/{branch.path}/targets/{target}/index.json")
    if index.json().get("architecture") != branch.arch:
        raise ClientError("auc: the target index is for another architecture")
    feeds = session("GET", f"/json/v1/{branch.path}/packages/{branch.arch}-index.json")
    return feeds.json() | index.json()["packages"]


def _image(images: list[dict], device: Device) -> dict:
    """select_image: sysupgrade, else combined(-efi), of the device's filesystem,
    falling back to squashfs."""
    combined = "combined-efi" if device.efi else "combined"
    for filesystem in dict.fromkeys((device.rootfs_type, "squashfs")):
        for kind in ("sysupgrade", combined):
            for image in images:
                if image.get("filesystem") == filesystem and image["type"] == kind:
                    return image
    raise ClientError("auc: no image to upgrade with")
