"""The Flask application factory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
from flask import Flask
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from asu.config import Config, load_config

#: The Redis every process uses when ``redis_url`` is not configured.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def create_app(config: Config | Mapping[str, Any] | None = None) -> Flask:
    """Create the server: configuration, one Redis pool, blueprints and commands.

    ``config`` is a ready :class:`Config` or a mapping of keys that override the
    file and the environment.
    """
    if not isinstance(config, Config):
        config = load_config(overrides=config)

    app = Flask(__name__)
    app.config["ASU"] = config
    app.json.sort_keys = False
    app.config["MAX_CONTENT_LENGTH"] = config.max_request_bytes
    app.wsgi_app = _collapse_leading_slashes(app.wsgi_app)
    if config.trusted_proxies:
        # The client is the address the nearest trusted proxy saw, never one the
        # client wrote into X-Forwarded-For itself.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.trusted_proxies)
    app.extensions["redis"] = redis.Redis.from_url(
        config.redis_url or DEFAULT_REDIS_URL,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
    )
    CORS(
        app,
        methods=["GET", "HEAD", "POST", "OPTIONS"],
        allow_headers=["Content-Type"],
        send_wildcard=True,
        expose_headers=[
            "X-Queue-Position",
            "X-Imagebuilder-Status",
            "Retry-After",
            "X-Unknown-Package",
        ],
    )

    from asu import cli
    from asu.api import errors, files, legacy, v1

    errors.register(app)
    cli.register(app)
    app.register_blueprint(v1.bp)
    app.register_blueprint(files.bp)
    legacy.register(app)
    _register_operations(app)
    return app


def _register_operations(app: Flask) -> None:
    """Statistics, metrics, the device catalogue and the web page."""
    from asu.api import devices, metrics, stats, web

    for blueprint in (stats.bp, devices.bp, metrics.bp, web.bp):
        app.register_blueprint(blueprint)


def _collapse_leading_slashes(wsgi_app):
    """Serve ``//api/...`` (a server URL with a trailing slash) as ``/api/...``."""

    def middleware(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("//"):
            environ["PATH_INFO"] = "/" + path.lstrip("/")
        return wsgi_app(environ, start_response)

    return middleware
