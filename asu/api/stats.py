"""Statistics and status over HTTP: ``/api/v1/stats…`` and ``/api/v1/status``.

``popular_packages``, ``popular_targets``, ``images`` and ``packages`` are the
names the 2019 server published; each answers JSON read from :mod:`asu.stats`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, current_app, request

import asu
from asu import stats
from asu.api import app_redis
from asu.metadata import devices
from asu.queue import backend_state
from asu.times import iso_utc

bp = Blueprint("api_stats", __name__, url_prefix="/api/v1")

#: The most entries a ``limit`` may ask for.
MAX_LIMIT = 200


def _limit(default: int = 20) -> int:
    value = request.args.get("limit", "")
    return min(int(value), MAX_LIMIT) if value.isdigit() and int(value) else default


@bp.get("/stats")
def summary():
    """Everything at a glance: requests, builds, days, the most asked for."""
    connection = app_redis()
    return {
        "queue_length": backend_state.queue_length(connection),
        "requests": stats.request_summary(connection),
        "builds": stats.build_summary(connection),
        "queue_wait_seconds": stats.histogram(connection, "queue_wait"),
        "days": stats.days(connection),
        "versions": stats.top(connection, "versions", 10),
        "targets": stats.top(connection, "targets", 10),
        "profiles": stats.top(connection, "profiles", 10),
        "clients": stats.top(connection, "clients", 10),
    }


@bp.get("/stats/popular_packages")
def popular_packages():
    """Extra packages built most, over all branches or ``?branch=23.05``."""
    branch = request.args.get("branch", "")
    name = f"packages:{branch}" if branch else "packages"
    return stats.top(app_redis(), name, _limit())


@bp.get("/stats/popular_targets")
def popular_targets():
    """Targets built most."""
    return stats.top(app_redis(), "targets", _limit())


@bp.get("/stats/images")
def images():
    """Builds that succeeded and failed (by kind), their durations, per day."""
    return stats.build_summary(app_redis())


@bp.get("/stats/packages")
def packages():
    """How many different extra packages builds asked for, in all and per branch."""
    return stats.package_counts(app_redis())


@bp.get("/status")
def server_status():
    """The server now: version, queue, workers and the janitor's last run."""
    last_run = devices.janitor_last_run(current_app.config["ASU"])
    return {
        "version": asu.__version__,
        **backend_state.backend(app_redis()),
        "janitor_last_run": (
            iso_utc(datetime.fromtimestamp(last_run, UTC)) if last_run else None
        ),
    }
