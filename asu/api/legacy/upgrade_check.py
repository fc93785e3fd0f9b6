"""The upgrade checks of the 2019 (``/api/upgrade-check``) and 2017
(``update-request``) generations: is there something newer for this device?

200 with ``version``, ``upgrades`` ({package: [new, current]}) and ``packages``
(the list for the new image); 204 when nothing is newer, with the check's hash in
``X-Request-Hash`` (a 204 carries no body).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from asu.api import app_redis, errors
from asu.api.legacy import common
from asu.build_request import RequestError
from asu.metadata import upgrades

bp = Blueprint("upgrade_check", __name__)


@bp.errorhandler(RequestError)
def refused(error: RequestError):
    return errors.refusal(
        error, lambda status, detail: {"status": status, "error": detail}
    )


def _answer(installed_key: str, **extra) -> Response:
    body = dict(common.json_body())
    body["distro"] = common.distro_name(body.get("distro", "openwrt"))
    body["target"] = common.target_of(body)
    device = upgrades.parse_check(body, installed_key)
    upgrade = upgrades.check(app_redis(), common.config(), device)
    if not upgrade.anything_new:
        response = Response(status=204)
        response.headers["X-Request-Hash"] = device.hash
        return response
    return jsonify(
        {
            "version": upgrade.version,
            "upgrades": upgrade.upgrades,
            "packages": upgrade.packages,
            "request_hash": device.hash,
            **extra,
        }
    )


@bp.post("/api/upgrade-check")
def upgrade_check():
    """2019: ``installed`` {package: version}."""
    return _answer("installed")


@bp.post("/update-request")
@bp.post("/api/update-request")
def update_request():
    """2017: ``packages`` {package: version}, ``target`` + ``subtarget``."""
    return _answer("packages", status=200)
