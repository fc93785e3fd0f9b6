"""Serving finished builds: ``GET``/``HEAD /store/<bin_dir>/<file>``.

Only plain files inside the store are served, with their true ``Content-Length``
and a content type from a short allow-list (anything else is an octet stream, and
``nosniff`` keeps browsers from guessing: an ``.html`` or ``.svg`` a build wrote
is never active content on the API's origin); a path that leaves the store, or a
link, is a 404.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from flask import Blueprint, current_app, send_file
from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join

bp = Blueprint("store", __name__)

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


def _content_type(name: str) -> str:
    if Path(name).name == "sha256sums":
        return TEXT
    return CONTENT_TYPES.get(Path(name).suffix, OCTET_STREAM)


@bp.route("/store/<path:filename>", methods=["GET", "HEAD"])
def store_file(filename: str):
    """One file of a finished build."""
    store = str(current_app.config["ASU"].store_path.resolve())
    path = safe_join(store, filename)
    if path is None or _being_written(filename) or _has_link(store, path):
        raise NotFound("no such file in the store")
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        raise NotFound("no such file in the store") from None
    if not stat.S_ISREG(mode):
        raise NotFound("no such file in the store")
    response = send_file(
        path, mimetype=_content_type(path), conditional=True, etag=True
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _being_written(filename: str) -> bool:
    """Whether ``filename`` is in a build still being moved into the store: those
    are staged in ``.<hash>.*`` and appear under ``<hash>`` in one rename."""
    return filename.lstrip("/").startswith(".")


def _has_link(store: str, path: str) -> bool:
    """Whether any part of ``path`` below ``store`` is a symbolic link."""
    current = Path(store)
    for part in Path(path).relative_to(store).parts:
        current = current / part
        if current.is_symlink():
            return True
    return False
