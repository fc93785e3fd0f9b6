"""JSON answers for every error: a ``status`` and a ``detail``, never a traceback."""

from __future__ import annotations

import logging

import redis
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from asu.build_request import RequestError

log = logging.getLogger(__name__)

#: Seconds a client should wait before retrying when the backend is down.
BACKEND_RETRY_AFTER = 30


def error_response(status: int, detail: str, headers: dict | None = None, **extra):
    """The JSON body every API error carries, with its HTTP status."""
    response = jsonify({"status": status, "detail": detail, **extra})
    response.status_code = status
    response.headers.update(headers or {})
    return response


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
        return error_response(error.status, error.detail, error.headers)

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
