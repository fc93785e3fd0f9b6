"""The 2020 generation: ``POST /api/build`` and ``GET /api/build/<hash>``.

Requests carry ``version``, ``profile`` (a board name) and ``packages``; the target
is found from the profile when the client does not send it. Answers: the
``/api/v1`` result plus ``buildlog`` (``bin_dir/buildlog.txt`` exists) with 200,
and a string ``status`` (``queued``, ``started``, ``failed``) with 202 and 500.
Errors are 400 and 422 with ``detail``.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from asu.api import errors
from asu.api.legacy import common
from asu.build_request import RequestError

bp = Blueprint("api_2020", __name__, url_prefix="/api")


@bp.errorhandler(RequestError)
def refused(error: RequestError):
    return errors.refusal(
        error, lambda _status, detail: {"status": "error", "detail": detail}
    )


def _answer(job):
    job_state = common.state(job)
    body = {"request_hash": job_state.request_hash, "status": job_state.status}
    if job_state.status == "finished":
        result = job_state.result
        has_log = common.config().store_path / result["bin_dir"] / "buildlog.txt"
        return jsonify(result | {"buildlog": has_log.is_file()})
    if job_state.status == "failed":
        response = jsonify(body | {"detail": job_state.detail, "log": job_state.log})
        response.status_code = 500
        return response
    if job_state.status == "queued":
        body["queue_position"] = job_state.queue_position
    else:
        body["imagebuilder_status"] = job_state.stage
    response = jsonify(body)
    response.status_code = 202
    return response


@bp.post("/build")
def build():
    """Queue (or find) the build of ``version``, ``profile`` and ``packages``."""
    v1_body = common.normalise(common.json_body(), {})
    return _answer(common.submit(v1_body, target_optional=True))


@bp.get("/build/<request_hash>")
def poll(request_hash: str):
    """The state of a build by its hash."""
    return _answer(common.job_by_hash(request_hash))
