"""The web page people open: build an image (``/``), see statistics (``/stats``)
and read the API (``/api``).

Plain HTML from templates, one stylesheet and a little JavaScript; the pages get
all their data from the JSON API (``/api/v1/…``), as any other client does.
"""

from __future__ import annotations

from flask import Blueprint, render_template

import asu

bp = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)


@bp.get("/")
def index():
    """The build form, its progress and its result."""
    return render_template("index.html", version=asu.__version__)


@bp.get("/stats")
def statistics():
    """Charts of builds, the cache and what people build."""
    return render_template("stats.html", version=asu.__version__)


@bp.get("/api")
def api():
    """The OpenAPI document (``/api/v1/openapi.json``) as a page people read."""
    return render_template("api.html", version=asu.__version__)
