"""What the earlier API generations share: turning their request shapes into a
:class:`BuildRequest` and reading a build's state, so that every generation goes
through the same validation, hash, queue, worker and store as ``/api/v1``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app, request
from rq.job import Job

from asu.api import app_redis, request_body
from asu.build_request import parse_build_request
from asu.config import Config
from asu.queue import admission, build_queue

#: Distribution names older clients send, as this server calls them.
DISTRO_ALIASES = {"lede": "openwrt"}


def config() -> Config:
    return current_app.config["ASU"]


def json_body() -> Mapping[str, Any]:
    """The request's JSON object, or a 400 (413 when too big)."""
    return request_body.json_object(request)


def _packages(value: Any) -> Any:
    """Older clients send ``{name: version}`` of installed packages; names count."""
    return list(value) if isinstance(value, Mapping) else value


def distro_name(value: Any) -> Any:
    """The distribution as this server calls it (``LEDE``, ``OpenWrt``: openwrt)."""
    if isinstance(value, str):
        lowered = value.lower()
        return DISTRO_ALIASES.get(lowered, lowered)
    return value


def target_of(body: Mapping[str, Any]) -> Any:
    """``target`` alone (``ath79/generic``) or 2017's ``target`` + ``subtarget``."""
    target, subtarget = body.get("target"), body.get("subtarget")
    if isinstance(target, str) and isinstance(subtarget, str) and "/" not in target:
        return f"{target}/{subtarget}"
    return target


def _profile_of(body: Mapping[str, Any]) -> Any:
    """``profile``, else the ``board`` name older clients send instead; a
    ``profile`` of the wrong type stays, to be refused."""
    profile = body.get("profile")
    return body.get("board") if profile is None or profile == "" else profile


def normalise(body: Mapping[str, Any], fields: Mapping[str, Any]) -> dict:
    """An ``/api/v1``-shaped body from an older one; ``fields`` are added on top.

    Values are moved, never looked up: :func:`submit` checks them all first."""
    return {
        "distro": distro_name(body.get("distro", "openwrt")),
        "version": body.get("version"),
        "target": target_of(body),
        "profile": _profile_of(body),
        "packages": _packages(body.get("packages")),
        "client": body.get("client"),
        **fields,
    }


def submit(v1_body: Mapping[str, Any], target_optional: bool = False) -> Job:
    """Validate, resolve and queue (or find) the build of an older API's request:
    every field is checked, as ``/api/v1`` does, before anything is looked up."""
    agent = request.headers.get("User-Agent", "")
    parsed = parse_build_request(
        v1_body, config(), agent, target_optional=target_optional
    )
    return admission.accept(app_redis(), config(), parsed, request.remote_addr)


def job_by_hash(request_hash: str) -> Job:
    """The job of a hash a client polls with, or a 404."""
    return build_queue.polled(app_redis(), request_hash)


@dataclass
class State:
    """A build's state as every generation needs it."""

    status: str  # "queued", "started", "finished", "failed"
    request_hash: str
    queue_position: int = 0
    stage: str = ""  # the LuCI status while started
    result: dict | None = None  # when finished
    detail: str = ""  # when failed
    error_kind: str = ""
    log: str = ""


def state(job: Job) -> State:
    """Read ``job`` through the same answer ``/api/v1`` gives."""
    answer = build_queue.answer(job)
    body = answer.body
    if answer.status == 200:
        return State("finished", job.id, result=body)
    if answer.status == 500:
        return State(
            "failed",
            job.id,
            detail=body["detail"],
            error_kind=body.get("error_kind", ""),
            log=f"{body.get('stdout', '')}\n{body.get('stderr', '')}".strip(),
        )
    if body["detail"] == "queued":
        return State("queued", job.id, queue_position=body["queue_position"])
    return State("started", job.id, stage=body["imagebuilder_status"])


def sysupgrade_image(result: dict) -> dict | None:
    """The image a running device flashes: sysupgrade, or combined on x86."""
    for kind in ("sysupgrade", "combined", "combined-efi"):
        for image in result["images"]:
            if image["type"] == kind:
                return image
    return None


def store_url(result: dict, name: str = "") -> str:
    """The path of a build's directory (or one of its files) in the store."""
    return f"/store/{result['bin_dir']}/{name}"
