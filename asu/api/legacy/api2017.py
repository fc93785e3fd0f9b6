"""The 2017 generation: ``image-request``, re-posted until the image is ready.

Answers carry their ``status`` in the body too: 201 while the ImageBuilder is set
up or the request is queued (``queue``), 206 while building, 200 ready with
``url``, ``size`` and ``sha256`` (``url + ".sig"`` is the usign signature), 500
failed (``error``), 503 overload. Served at ``/image-request`` and
``/api/image-request``.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from asu.api import errors
from asu.api.legacy import common
from asu.build_request import RequestError

bp = Blueprint("api_2017", __name__)


def _reply(status: int, **fields):
    response = jsonify({"status": status, **fields})
    response.status_code = status
    return response


@bp.errorhandler(RequestError)
def refused(error: RequestError):
    return errors.refusal(
        error, lambda status, detail: {"status": status, "error": detail}
    )


@bp.post("/image-request")
@bp.post("/api/image-request")
def image_request():
    """Queue the image or say how far it is; the client posts the same again."""
    job = common.submit(common.normalise(common.json_body(), {}))
    job_state = common.state(job)
    if job_state.status == "queued":
        return _reply(201, queue=job_state.queue_position)
    if job_state.status == "started":
        setting_up = job_state.stage in ("init", "download_imagebuilder")
        return _reply(201 if setting_up else 206, queue=0)
    if job_state.status == "failed":
        return _reply(500, error=job_state.detail)
    result = job_state.result
    image = common.sysupgrade_image(result) or result["images"][0]
    url = request.host_url.rstrip("/") + common.store_url(result, image["name"])
    return _reply(
        200,
        url=url,
        size=image["size"],
        sha256=image["sha256"],
        checksum=image["sha256"],
        request_hash=job_state.request_hash,
    )
