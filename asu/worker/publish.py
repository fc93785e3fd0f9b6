"""Publishing a finished ``BIN_DIR``: nothing but plain files, every image hashed
and signed with the server's key, then moved into the store in one rename."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from asu.formats.usign import SecretKey
from asu.signing import sign_file


class PublishError(Exception):
    """What the ImageBuilder wrote cannot be published as it says."""


def drop_non_regular(directory: Path) -> None:
    """Delete what the sandbox left that is not a plain file or directory.

    A symlink in ``BIN_DIR`` could otherwise make the worker read, sign and publish
    a file the sandbox itself could not see.
    """
    for root, dirs, files in os.walk(directory):
        for name in [*dirs, *files]:
            path = Path(root, name)
            mode = path.lstat().st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                path.unlink()
                if name in dirs:
                    dirs.remove(name)


def hash_and_sign(bin_dir: Path, images: list[dict], key: SecretKey) -> list[dict]:
    """``images`` (as ``profiles.json`` lists them) with the sha256 and size of the
    exact bytes served; each image and ``sha256sums`` get a ``.sig``."""
    signed = []
    for image in images:
        path = bin_dir / image["name"]
        if path.name != image["name"] or not path.is_file():
            raise PublishError(f"the ImageBuilder listed a missing image {path.name}")
        data = path.read_bytes()
        sign_file(path, key)
        signed.append(
            image | {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        )
    sums = bin_dir / "sha256sums"
    if sums.is_file():
        sign_file(sums, key)
    return signed


def move_to_store(bin_dir: Path, dest: Path) -> None:
    """Move the finished ``BIN_DIR`` into the store in one rename.

    It is staged beside ``dest`` first: by a rename when the store is on the same
    filesystem, else by a copy, so that ``dest`` only ever appears whole.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        _stage(bin_dir, staged)
    except OSError:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    os.chmod(staged, 0o755)
    if dest.exists():
        old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old."))
        os.replace(dest, old / "previous")
        os.replace(staged, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, dest)


def _stage(bin_dir: Path, staged: Path) -> None:
    """Fill the empty directory ``staged`` with ``bin_dir``'s files."""
    try:
        os.replace(bin_dir, staged)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        shutil.copytree(bin_dir, staged, dirs_exist_ok=True)
