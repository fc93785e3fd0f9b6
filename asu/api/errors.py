"""JSON answers for every error: a ``status`` and a ``detail``, never a traceback.

The one place that turns why a request was refused into an HTTP status: the
other parts raise a :class:`RequestError` that says why, the API generations
answer in their own shapes with :func:`status_of` and :func:`headers_of`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from asu.build_request import RequestError
from asu.metadata.package_validation import UnknownPackages
from asu.queue.build_queue import QueueFull, UnknownBuild
from asu.queue.limits import OverLimit

log = logging.getLogger(__name__)

#: Seconds a client should wait before retrying when the backend is down.
BACKEND_RETRY_AFTER = 30


class Refused(RequestError):
    """A refusal the HTTP side makes itself, with the status it answers."""

    def __init__(self, detail: str, status: int):
        super().__init__(detail)
        self.status = status


#: The status of each kind of refusal; any other :class:`RequestError` is a 400.
STATUSES: dict[type[RequestError], int] = {
    UnknownBuild: 404,
    UnknownPackages: 422,
    OverLimit: 429,
    QueueFull: 503,
}


def status_of(error: RequestError) -> int:
    """The HTTP status that says why ``error`` refused the request."""
    if isinstance(error, Refused):
        return error.status
    return next(
        (status for kind, status in STATUSES.items() if isinstance(error, kind)), 400
    )


def headers_of(error: RequestError) -> dict[str, str]:
    """``Retry-After`` when retrying can succeed; the unknown packages named."""
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, UnknownPackages):
        headers["X-Unknown-Package"] = ", ".join(error.names)
    return headers


def _answer(body: dict, status: int, headers: dict | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def error_response(status: int, detail: str, headers: dict | None = None, **extra):
    """The JSON body every API error carries, with its HTTP status."""
    return _answer({"status": status, "detail": detail, **extra}, status, headers)


def refusal(error: RequestError, body: Callable[[int, str], dict]) -> Response:
    """The answer refusing a request: ``body(status, detail)``, the shape of the
    API generation that refuses it, with the status and headers saying why."""
    status = status_of(error)
    return _answer(body(status, error.detail), status, headers_of(error))


def register(app: Flask) -> None:
    """Install the handlers that turn exceptions into JSON answers."""

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        headers = {
            name: value
            for name, value in error.get_headers()
            if name.lower() != "content-type"
        }
        return error_response(
            error.code or 500, error.description or error.name, headers
        )

    @app.errorhandler(RequestError)
    def refused(error: RequestError):
        return error_response(status_of(error), error.detail, headers_of(error))

    @app.errorhandler(redis.RedisError)
    def backend_down(error: redis.RedisError):
        log.error("Redis unavailable: %s", error)
        return error_response(
            503,
            "the build backend (Redis) is unavailable, retry later",
            {"Retry-After": str(BACKEND_RETRY_AFTER)},
        )

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal server error")
