"""Moving a finished BIN_DIR into the store: whole or not at all, on the same
filesystem (a rename) and across filesystems (a copy)."""

import os
import tempfile
from pathlib import Path

import pytest

from asu.worker.publish import move_to_store


def bin_dir(parent: Path, text: str) -> Path:
    directory = parent / "bin"
    (directory / "sub").mkdir(parents=True)
    (directory / "image.bin").write_text(text)
    (directory / "sub" / "note.txt").write_text(text)
    return directory


def other_filesystem() -> Path:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tempfile.gettempdir()).st_dev:
        pytest.skip("no second filesystem to move across")
    return shm


@pytest.mark.parametrize("across", [False, True], ids=["rename", "copy"])
def test_the_store_gets_the_whole_directory(tmp_path, across):
    with tempfile.TemporaryDirectory(
        dir=other_filesystem() if across else tmp_path
    ) as source:
        dest = tmp_path / "store" / "hash"
        move_to_store(bin_dir(Path(source), "new"), dest)
        assert (dest / "image.bin").read_text() == "new"
        assert (dest / "sub" / "note.txt").read_text() == "new"
        assert dest.stat().st_mode & 0o777 == 0o755
        assert [p.name for p in dest.parent.iterdir()] == ["hash"], "staging left"


def test_an_older_copy_is_replaced(tmp_path):
    dest = tmp_path / "store" / "hash"
    move_to_store(bin_dir(tmp_path / "a", "old"), dest)
    move_to_store(bin_dir(tmp_path / "b", "new"), dest)
    assert (dest / "image.bin").read_text() == "new"
    assert [p.name for p in dest.parent.iterdir()] == ["hash"]
