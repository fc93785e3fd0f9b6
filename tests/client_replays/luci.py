"""LuCI's attended sysupgrade view (luci-app-attendedsysupgrade
``view/attendedsysupgrade/overview.js``, with the request and poll classes of
LuCI's ``luci.js``)."""

from __future__ import annotations

import time

from client_replays import (
    ClientError,
    Device,
    Outcome,
    Session,
    revision_count,
    sha256,
)

#: The view polls every 5 s (``poll.add(fn, 5)``).
INTERVAL = 5.0
#: The progress words the view can show; any other crashes its dialog.
STEPS = (
    "init",
    "download_imagebuilder",
    "unpack_imagebuilder",
    "calculate_packages_hash",
    "building_image",
)
#: LuCI runs in the administrator's browser.
AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/140.0"


def _url(url: str) -> str:
    """LuCI's request class appends ``?<milliseconds>`` to every URL."""
    return f"{url}{'&' if '?' in url else '?'}{int(time.time() * 1000)}"


def _branch(version: str) -> str:
    """LuCI's get_branch: ``23.05.0-rc1`` → ``23.05``, ``SNAPSHOT`` → itself."""
    return ".".join(version.replace("-SNAPSHOT", "").split(".")[:2])


def candidate(session: Session, device: Device) -> str:
    """handleCheck: the version to offer, from ``/api/overview`` (releases) or
    ``/api/v1/revision`` (snapshots); none is a ClientError."""
    if device.version.endswith("SNAPSHOT"):
        url = f"/api/v1/revision/{device.version}/{device.target}"
        answer = session("GET", _url(url))
        if not answer.ok:
            raise ClientError(f"LuCI: could not reach API at {answer.url}")
        remote = answer.json()["revision"]
        if revision_count(device.revision) >= revision_count(remote):
            raise ClientError(f"LuCI: no upgrade, {remote} is not newer")
        return device.version
    answer = session("GET", _url("/api/overview"))  # follows the 301
    if not answer.ok:
        raise ClientError(f"LuCI: could not reach API at {answer.url}")
    for remote in answer.json()["latest"]:
        if remote == device.version:
            break
        if _branch(remote) == _branch(device.version):  # not in advanced mode
            return remote
    raise ClientError("LuCI: the device runs the latest firmware version")


def request_body(device: Device, version: str, luci_version: str) -> dict:
    """The body LuCI posts: ``firmware`` with the chosen version and the sorted
    package names (in the order its object spread gives)."""
    return {
        "client": f"luci/{luci_version}",
        "packages": sorted(device.top_level),
        "profile": device.board_name,
        "target": device.target,
        "version": version,
        "diff_packages": True,
        "filesystem": device.rootfs_type,
    }


def replay(base: str, device: Device, repost: bool = False) -> Outcome:
    """Search for an upgrade, request it and poll every 5 s until 200, 400, 422
    or 500, then download the image and compare its sha256 (``handleInstall``).

    The view polls ``GET /api/v1/build/<hash>`` once it has the hash (with an
    empty JSON body, as its request class sends one); ``repost`` re-posts the
    request every 5 s instead, as the view does for its rebuilders and as its
    releases before request hashes did.
    """
    outcome = Outcome("luci-repost" if repost else "luci")
    session = Session(base, AGENT, outcome)
    version = candidate(session, device)
    outcome.request = request_body(
        device, version, device.installed["luci-app-attendedsysupgrade"]
    )
    request_hash = ""
    while True:
        if request_hash and not repost:
            url = _url(f"/api/v1/build/{request_hash}")
            answer = session("GET", url, json={})
        else:
            answer = session("POST", _url("/api/v1/build"), json=outcome.request)
        if answer.status_code != 202:
            break
        body = answer.json()
        request_hash = body["request_hash"]
        if "queue_position" not in body and body["imagebuilder_status"] not in STEPS:
            raise ClientError(f"LuCI's progress dialog cannot show {body}")
        time.sleep(INTERVAL)
    if answer.status_code in (400, 422, 500):
        raise ClientError(f"LuCI: Server response: {answer.json()['detail']}")
    if answer.status_code != 200:
        raise ClientError(f"LuCI keeps polling on a {answer.status_code}")
    result = answer.json()
    url = outcome.chose(result, _image(result["images"], device))
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    outcome.data = session("GET", _url(url), headers=headers).content
    if sha256(outcome.data) != outcome.image["sha256"]:
        raise ClientError("LuCI: Wrong checksum")
    return outcome


def _image(images: list[dict], device: Device) -> dict:
    """selectImage: the device's filesystem; on x86 ``combined-efi`` or
    ``combined``, elsewhere ``sysupgrade`` or ``combined``."""
    if device.x86:
        kinds = ("combined-efi",) if device.efi else ("combined",)
    else:
        kinds = ("sysupgrade", "combined")
    for image in images:
        if image["filesystem"] == device.rootfs_type and image["type"] in kinds:
            return image
    raise ClientError(f"LuCI: no {kinds} image of {device.rootfs_type}")
