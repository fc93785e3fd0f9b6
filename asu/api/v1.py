"""The current API generation, ``/api/v1``: builds and health."""

from __future__ import annotations

import redis
from flask import Blueprint, Response, current_app, jsonify, request
from rq import Worker

import asu
from asu import answers
from asu.api import app_redis, openapi, request_body
from asu.build_request import (
    REQUEST_HASH,
    TARGET,
    VERSION,
    RequestError,
    parse_build_request,
)
from asu.distributions import DEFAULT_DISTRO
from asu.metadata import lookup
from asu.queue import admission, build_queue
from asu.queue.build_queue import Answer

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")


def _respond(answer: Answer) -> Response:
    response = jsonify(answer.body)
    response.status_code = answer.status
    response.headers.update(answer.headers)
    return response


def _send(kept: answers.Kept) -> Response:
    """A finished build's answer, its bytes as the worker wrote them."""
    response = Response(kept.body, kept.status, mimetype="application/json")
    response.headers.update(kept.headers)
    return response


@bp.post("/build")
def build_post():
    """Validate, hash and queue a build, or answer from the cache."""
    config = current_app.config["ASU"]
    connection = app_redis()
    parsed = parse_build_request(
        request_body.json_object(request), config, request.headers.get("User-Agent", "")
    )
    resolved = lookup.resolve(connection, config, parsed)
    kept = answers.hit(connection, resolved.hash, resolved.client)
    if kept is not None:
        return _send(kept)
    job = admission.accept(connection, config, resolved, request.remote_addr)
    return _respond(build_queue.answer(job))


@bp.route("/build/<request_hash>", methods=["GET", "HEAD"])
def build_get(request_hash: str):
    """The state of a build by its hash, without validating again."""
    connection = app_redis()
    if REQUEST_HASH.fullmatch(request_hash):
        kept = answers.kept(connection, request_hash)
        if kept is not None:
            return _send(kept)
    return _respond(build_queue.answer(build_queue.polled(connection, request_hash)))


@bp.get("/revision/<version>/<target>/<subtarget>")
def revision(version: str, target: str, subtarget: str):
    """The revision a version's target is at: ``{"revision": "r28427-6df0e3d02a"}``."""
    name = f"{target}/{subtarget}"
    config = current_app.config["ASU"]
    if not VERSION.fullmatch(version):
        raise RequestError(f"version: unknown version {version[:40]!r}")
    if not TARGET.fullmatch(name):
        raise RequestError(f"target: unknown target {name[:80]!r}")
    found = lookup.revision(app_redis(), config, DEFAULT_DISTRO, version, name)
    if found is None:
        lookup.target_profiles(app_redis(), config, DEFAULT_DISTRO, version, name)
        raise RequestError(f"target: no revision published for {version} {name}")
    return {"revision": found}


@bp.get("/health")
def health():
    """Redis reachable, workers seen, server version; 503 when Redis is down."""
    try:
        workers = Worker.count(connection=app_redis())
    except redis.RedisError as error:
        body = {"status": 503, "redis": False, "detail": f"Redis unreachable: {error}"}
        return body | {"version": asu.__version__}, 503
    return {
        "status": 200,
        "redis": True,
        "workers": workers,
        "version": asu.__version__,
    }


@bp.get("/openapi.json")
def openapi_document():
    """This API described in OpenAPI 3.1, with this server's limits."""
    return openapi.document(current_app.config["ASU"])
