"""The 2019 generation: ``/api/upgrade-request``, ``/api/build-request``,
``/api/image/<image_hash>`` and ``/api/manifest/<manifest_hash>``.

Its own status codes: 200 done, 202 in progress (``X-Imagebuilder-Status``,
``X-Build-Queue-Position``), 400 bad request, 409 package conflict, 413 image too
big, 420 ``defaults`` too big, 422 unknown package, 500 build failed (see
``log``), 501 no sysupgrade image, 503 overload. Errors carry ``error``.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from asu import image_index
from asu.api import app_redis, errors
from asu.api.legacy import common
from asu.build_request import RequestError, utf8_size

bp = Blueprint("api_2019", __name__, url_prefix="/api")

#: ``defaults`` limit of this generation, answered with 420.
MAX_DEFAULTS_BYTES = 10 * 1024
#: Build failures with a status of their own; the rest is 500.
FAILURE_STATUS = {
    "conflict": 409,
    "too_big": 413,
    "unknown_package": 422,
    "no_image": 501,
}
#: The refusals with a status of their own; the rest is 400.
OWN_REFUSALS = {413, 420, 422, 429, 503}
#: The progress words clients of this generation know.
PROGRESS = {
    "queued": "queue",
    "init": "initialize",
    "download_imagebuilder": "initialize",
}


def _error(status: int, message: str, **extra):
    response = jsonify({"error": message, **extra})
    response.status_code = status
    return response


@bp.errorhandler(RequestError)
def refused(error: RequestError):
    response = errors.refusal(error, lambda _status, detail: {"error": detail})
    if response.status_code not in OWN_REFUSALS:
        response.status_code = 400
    return response


def _answer(job):
    job_state = common.state(job)
    if job_state.status in ("queued", "started"):
        word = PROGRESS.get(job_state.stage or job_state.status, "building")
        response = jsonify({"request_hash": job_state.request_hash})
        response.status_code = 202
        response.headers["X-Imagebuilder-Status"] = word
        if job_state.status == "queued":
            response.headers["X-Build-Queue-Position"] = str(job_state.queue_position)
        return response
    if job_state.status == "failed":
        status = FAILURE_STATUS.get(job_state.error_kind, 500)
        return _error(
            status,
            job_state.detail,
            log=job_state.log,
            request_hash=job_state.request_hash,
        )
    result = job_state.result
    image = common.sysupgrade_image(result)
    if image is None:
        return _error(501, "the build made no sysupgrade image for this device")
    return jsonify(
        {
            "files": common.store_url(result),
            "sysupgrade": image["name"],
            "log": common.store_url(result, "buildlog.txt"),
            "image_hash": image["sha256"],
            "manifest_hash": image_index.manifest_hash(result["manifest"]),
            "request_hash": job_state.request_hash,
        }
    )


def _defaults(body) -> dict:
    """``defaults`` if any; over this generation's 10 kB it is a 420."""
    defaults = body.get("defaults")
    if isinstance(defaults, str) and utf8_size(defaults) > MAX_DEFAULTS_BYTES:
        raise errors.Refused(f"defaults exceed {MAX_DEFAULTS_BYTES} bytes", 420)
    return {"defaults": defaults} if defaults else {}


@bp.post("/upgrade-request")
def upgrade_request():
    """Build the image a device asks for to upgrade to ``version``."""
    body = common.json_body()
    return _answer(common.submit(common.normalise(body, {})))


@bp.post("/build-request")
def build_request():
    """Like an upgrade request, with an optional ``defaults`` script."""
    body = common.json_body()
    return _answer(common.submit(common.normalise(body, _defaults(body))))


@bp.get("/upgrade-request/<request_hash>")
@bp.get("/build-request/<request_hash>")
def poll(request_hash: str):
    """The state of a request by its hash, without validating again."""
    return _answer(common.job_by_hash(request_hash))


@bp.get("/image/<image_hash>")
def image(image_hash: str):
    """What is known about an image, by its sha256."""
    request_hash = image_index.request_hash_of_image(app_redis(), image_hash)
    if request_hash is None:
        return _error(404, f"no image {image_hash[:80]}")
    job_state = common.state(common.job_by_hash(request_hash))
    if job_state.result is None:
        return _error(404, f"no image {image_hash[:80]}")
    result = job_state.result
    (found,) = [i for i in result["images"] if i["sha256"] == image_hash]
    return jsonify(
        {
            **found,
            "image_hash": image_hash,
            "request_hash": request_hash,
            "manifest_hash": image_index.manifest_hash(result["manifest"]),
            "distro": result["request"]["distro"],
            "version": result["version_number"],
            "revision": result["version_code"],
            "target": result["target"],
            "profile": result["id"],
            "build_at": result["build_at"],
            "url": common.store_url(result, found["name"]),
        }
    )


@bp.get("/manifest/<manifest_hash>")
def manifest(manifest_hash: str):
    """The packages and versions of a manifest, by its sha256."""
    packages = image_index.manifest(app_redis(), manifest_hash)
    if packages is None:
        return _error(404, f"no manifest {manifest_hash[:80]}")
    return jsonify(packages)
