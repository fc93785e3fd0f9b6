"""The HTTP side: /api/v1 and the earlier generations, devices, statistics,
metrics, the store and /json, errors and the web page."""

from __future__ import annotations

import redis
from flask import current_app


def app_redis() -> redis.Redis:
    """The app's Redis client (one connection pool per process)."""
    return current_app.extensions["redis"]
