"""Files served as they lie on disk: finished builds (``GET``/``HEAD
/store/<bin_dir>/<file>``) and the ``/json`` tree the janitor writes, with the
older URLs that point into it (``/api/v1/overview`` and friends answer 301).

Only regular files inside their root are served, with their true
``Content-Length``; a path that leaves the root or passes through a symbolic link
is a 404 (neither the store nor the tree holds links). The tree is JSON; the
store sends a content type from a short allow-list (anything else is an octet
stream, and ``nosniff`` keeps browsers from guessing: an ``.html`` or ``.svg`` a
build wrote is never active content on the API's origin).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from flask import Blueprint, current_app, redirect, send_file
from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join

bp = Blueprint("files", __name__)

TEXT = "text/plain; charset=utf-8"
#: The only content types the store sends, by suffix; all else is an octet stream.
CONTENT_TYPES = {
    ".manifest": TEXT,
    ".sig": TEXT,
    ".buildinfo": TEXT,
    ".txt": TEXT,
    ".json": "application/json",
    ".gz": "application/gzip",
}
OCTET_STREAM = "application/octet-stream"


@bp.route("/store/<path:filename>", methods=["GET", "HEAD"])
def store_file(filename: str):
    """One file of a finished build."""
    if _being_written(filename):
        raise NotFound("no such file in the store")
    path = _regular_file(current_app.config["ASU"].store_path, filename)
    response = send_file(
        path, mimetype=_content_type(path), conditional=True, etag=True
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.route("/json/<path:filename>", methods=["GET", "HEAD"])
def json_file(filename: str):
    """One file of the ``/json`` tree."""
    path = _regular_file(current_app.config["ASU"].public_path / "json", filename)
    return send_file(path, mimetype="application/json", conditional=True, etag=True)


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


def _regular_file(root: Path, filename: str) -> str:
    """The path of ``filename`` below ``root`` if it is a regular file reached
    without a link; else a 404."""
    resolved = str(root.resolve())
    path = safe_join(resolved, filename)
    if path is None or _has_link(resolved, path):
        raise NotFound("no such file")
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        raise NotFound("no such file") from None
    if not stat.S_ISREG(mode):
        raise NotFound("no such file")
    return path


def _being_written(filename: str) -> bool:
    """Whether ``filename`` is in a build still being moved into the store: those
    are staged in ``.<hash>.*`` and appear under ``<hash>`` in one rename."""
    return filename.lstrip("/").startswith(".")


def _has_link(root: str, path: str) -> bool:
    """Whether any part of ``path`` below ``root`` is a symbolic link."""
    current = Path(root)
    for part in Path(path).relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            return True
    return False


def _content_type(name: str) -> str:
    if Path(name).name == "sha256sums":
        return TEXT
    return CONTENT_TYPES.get(Path(name).suffix, OCTET_STREAM)
