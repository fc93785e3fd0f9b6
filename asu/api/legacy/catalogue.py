"""The 2019 generation's read endpoints: ``/api/distros``, ``/api/versions``,
``/api/models`` and ``/api/packages_image`` (``/api/versions`` also answers the
2020 clients that read it to find a newer version)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from asu import redis_keys
from asu.api import app_redis, errors
from asu.api.legacy import common
from asu.branches import version_key
from asu.build_request import TARGET, VERSION, RequestError
from asu.distributions import distributions
from asu.metadata import devices, records

bp = Blueprint("catalogue", __name__, url_prefix="/api")

MAX_MODELS = 100


@bp.errorhandler(RequestError)
def refused(error: RequestError):
    return errors.refusal(error, lambda _status, detail: {"error": detail})


def _branches(distro: str) -> list[dict]:
    return records.stored_json(app_redis(), redis_keys.branches(distro)) or []


def _versions(distro: str) -> list[dict]:
    found = []
    for branch in _branches(distro):
        if not branch.get("enabled"):
            continue
        for version in branch["versions"]:
            found.append(
                {
                    "distro": distro,
                    "name": version,
                    "branch": branch["name"],
                    "snapshot": branch["snapshot"],
                    "release_date": branch.get("release_date", ""),
                }
            )
    return sorted(found, key=lambda v: version_key(v["name"]), reverse=True)


@bp.get("/distros")
def distros():
    """Every distribution with its newest release."""
    answer = []
    for name in distributions(common.config()):
        releases = [v["name"] for v in _versions(name) if not v["snapshot"]]
        answer.append({"name": name, "latest": releases[0] if releases else ""})
    return jsonify(answer)


@bp.get("/versions")
def versions():
    """Every version, newest first (of one distribution with ``?distro=``)."""
    wanted = request.args.get("distro", "").lower()
    names = [wanted] if wanted else list(distributions(common.config()))
    return jsonify([v for name in names for v in _versions(name)])


def _argument(name: str, pattern=None) -> str:
    value = request.args.get(name, "")
    if not value or (pattern is not None and not pattern.fullmatch(value)):
        raise RequestError(f"query parameter {name} is missing or not valid")
    return value


@bp.get("/models")
def models():
    """Devices of a version whose model contains ``model_search``."""
    version = _argument("version", VERSION)
    search = _argument("model_search").lower()
    found = [
        {"target": d["target"], "profile": d["id"], "model": title, "names": d["names"]}
        for d in devices.device_list(app_redis(), common.config(), version)
        for title in d["titles"]
        if search in title.lower()
    ]
    return jsonify(found[:MAX_MODELS])


@bp.get("/packages_image")
def packages_image():
    """The packages an image of this device gets by default."""
    version = _argument("version", VERSION)
    target = _argument("target", TARGET)
    profile = _argument("profile").replace(",", "_")
    found = devices.device(app_redis(), common.config(), version, target, profile)
    if found is None:
        raise errors.Refused(f"unknown device {target} {profile} in {version}", 404)
    return jsonify(found["packages"])
