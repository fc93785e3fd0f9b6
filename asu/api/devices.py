"""Versions and devices for the web page's form: ``/api/v1/versions``,
``/api/v1/devices/<version>`` (every device, for searching by model name) and
``/api/v1/devices/<version>/<target>/<subtarget>/<profile>`` (one device and the
packages its image has by default)."""

from __future__ import annotations

import re

from flask import Blueprint, current_app, jsonify

from asu.api import app_redis
from asu.build_request import PROFILE, TARGET, VERSION, RequestError
from asu.distributions import DEFAULT_DISTRO
from asu.metadata import devices, lookup

bp = Blueprint("api_devices", __name__, url_prefix="/api/v1")


def _check(pattern: re.Pattern, value: str, what: str) -> None:
    """400 for a name that cannot exist, before anything is looked up."""
    if not pattern.fullmatch(value):
        raise RequestError(f"{what}: no such {what} {value[:80]!r}")


@bp.get("/versions")
def versions():
    """The versions a build can be asked for."""
    config = current_app.config["ASU"]
    return jsonify(devices.versions(app_redis(), config))


@bp.get("/devices/<version>")
def device_list(version: str):
    """Every device of ``version`` with its titles and board names."""
    _check(VERSION, version, "version")
    found = devices.device_list(app_redis(), current_app.config["ASU"], version)
    if not found:
        raise RequestError(f"version: no devices known for version {version}")
    return jsonify(found)


@bp.get("/devices/<version>/<target>/<subtarget>/<profile>")
def device(version: str, target: str, subtarget: str, profile: str):
    """One device and the packages its image has by default."""
    target = f"{target}/{subtarget}"
    _check(VERSION, version, "version")
    _check(TARGET, target, "target")
    _check(PROFILE, profile, "profile")
    config = current_app.config["ASU"]
    lookup.target_profiles(app_redis(), config, DEFAULT_DISTRO, version, target)
    found = devices.device(app_redis(), config, version, target, profile)
    if found is None:
        raise RequestError(f"profile: no device {profile} of {target} in {version}")
    return found
