"""The earlier API generations (2017, 2019, 2020), as thin layers over the same
request validation, hashing, queue, worker and store as ``/api/v1``."""

from __future__ import annotations

from flask import Flask

from asu.api.legacy import api2017, api2019, api2020, catalogue, upgrade_check


def register(app: Flask) -> None:
    """Add every earlier generation's blueprint to ``app``."""
    for module in (api2017, api2019, api2020, catalogue, upgrade_check):
        app.register_blueprint(module.bp)
