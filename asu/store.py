"""Serving finished builds: ``GET``/``HEAD /store/<bin_dir>/<file>``.

Only plain files inside the store are served, with their true ``Content-Length``
and a content type; a path that leaves the store, or a link, is a 404.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from pathlib import Path

from flask import Blueprint, current_app, send_file
from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join

bp = Blueprint("store", __name__)

#: Content types of the files a build writes, beyond what mimetypes knows.
CONTENT_TYPES = {
    ".bin": "application/octet-stream",
    ".img": "application/octet-stream",
    ".itb": "application/octet-stream",
    ".manifest": "text/plain; charset=utf-8",
    ".sig": "text/plain; charset=utf-8",
    ".buildinfo": "text/plain; charset=utf-8",
}


def _content_type(name: str) -> str:
    if Path(name).name == "sha256sums":
        return "text/plain; charset=utf-8"
    suffix = Path(name).suffix
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    guessed, encoding = mimetypes.guess_type(name)
    if encoding == "gzip":
        return "application/gzip"
    return guessed or "application/octet-stream"


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
    return send_file(path, mimetype=_content_type(path), conditional=True, etag=True)


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
