"""Serving the static ``/json`` tree the janitor writes, and the older URLs that
point into it (``/api/v1/overview`` and friends answer 301).

Only regular files inside ``public_path/json`` are served, with their true
``Content-Length``; a path that leaves the tree, even through a link, is a 404.
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Blueprint, current_app, redirect, send_file
from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join

bp = Blueprint("json_files", __name__)


@bp.route("/json/<path:filename>", methods=["GET", "HEAD"])
def json_file(filename: str):
    """One file of the ``/json`` tree."""
    root = (current_app.config["ASU"].public_path / "json").resolve()
    path = _regular_file_inside(root, filename)
    return send_file(path, mimetype="application/json", conditional=True, etag=True)


def _regular_file_inside(root: Path, filename: str) -> Path:
    joined = safe_join(str(root), filename)
    if joined is None:
        raise NotFound("no such file")
    real = Path(os.path.realpath(joined))
    if not real.is_relative_to(root) or not real.is_file():
        raise NotFound("no such file")
    return real


@bp.get("/api/v1/overview")
@bp.get("/api/overview")
def overview_moved():
    """The overview of earlier API generations, now a file of the tree."""
    return redirect("/json/v1/overview.json", code=301)


@bp.get("/api/v1/latest")
@bp.get("/api/latest")
def latest_moved():
    """The latest releases of earlier API generations, now a file of the tree."""
    return redirect("/json/v1/latest.json", code=301)
