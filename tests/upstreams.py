"""Offline upstreams with one ImageBuilder changed: hostile, slow or broken.

Each is a hard-linked copy of the session's tree. A file that changes is replaced,
never written through its link, so the session's tree stays as it was; the
target's ``sha256sums`` is then signed again with the offline key, so the server
trusts what the copy serves unless a test breaks that on purpose.
"""

from __future__ import annotations

import functools
import io
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from asu.formats.usign import SecretKey
from asu.worker import imagebuilder
from offline_upstream import adb_writer
from offline_upstream.server import UpstreamServer
from offline_upstream.tree import compress, generate, sign_directory, signing_key

X86 = "releases/25.12.0/targets/x86/64"  # apk world, .tar.zst
ATH79 = "releases/23.05.4/targets/ath79/generic"  # opkg world, .tar.xz

Member = tuple[tarfile.TarInfo, bytes]


def offline_keys() -> dict[str, list[str]]:
    """The configuration that trusts the offline upstream's usign and apk keys."""
    return {
        "upstream_keys": [signing_key().public_key.to_text().splitlines()[-1]],
        "upstream_apk_keys": [adb_writer.signing_key().public_pem()],
    }


def copy_tree(source: Path, dest: Path) -> Path:
    """A copy of ``source`` whose files are hard links to the originals."""
    subprocess.run(["cp", "-al", str(source), str(dest)], check=True)
    return dest


def replace_file(path: Path, data: bytes) -> None:
    """Give ``path`` new contents without writing through its hard link."""
    path.unlink(missing_ok=True)
    path.write_bytes(data)


def resign(target_dir: Path) -> None:
    """``sha256sums`` and its signature written anew for the directory's files."""
    for name in ("sha256sums", "sha256sums.sig"):
        (target_dir / name).unlink(missing_ok=True)
    sign_directory(target_dir, signing_key())


def archive_of(target_dir: Path) -> Path:
    (archive,) = target_dir.glob("openwrt-imagebuilder-*")
    return archive


def kind_of(archive: Path) -> str:
    return "xz" if archive.name.endswith(".tar.xz") else "zst"


def tar_of(top: Path, extra: Iterable[Member] = ()) -> bytes:
    """A tar of the directory ``top`` (as its single top member), then ``extra``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(top, arcname=top.name)
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def member(name: str, data: bytes = b"", **fields) -> Member:
    """A tar member: a file with ``data`` unless ``fields`` say otherwise."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data


def repack(
    target_dir: Path,
    change: Callable[[Path], None] = lambda top: None,
    extra: Iterable[Member] = (),
) -> None:
    """Unpack the target's ImageBuilder, let ``change`` edit it, add ``extra``
    members, pack it with the same compression and sign the directory again."""
    archive = archive_of(target_dir)
    with tempfile.TemporaryDirectory() as scratch:
        top = imagebuilder.unpack(archive, kind_of(archive), Path(scratch) / "tree")
        change(top)
        data = compress(tar_of(top, extra), kind_of(archive))
    replace_file(archive, data)
    resign(target_dir)


def replace_make_target(top: Path, target: str, recipe: Iterable[str]) -> None:
    """Give the ImageBuilder's ``make <target>`` a recipe of its own."""
    makefile = top / "Makefile"
    lines = makefile.read_text().splitlines()
    start = lines.index(f"{target}:")
    end = start + 1
    while end < len(lines) and lines[end].startswith("\t"):
        end += 1
    lines[start + 1 : end] = [f"\t{line}" for line in recipe]
    makefile.write_text("\n".join(lines) + "\n")


class FaultyUpstream(UpstreamServer):
    """An upstream that waits ``delay`` seconds before sending an ImageBuilder
    (any file whose path has ``matching``), and sends only the first ``truncate``
    bytes of it when that is set; ``server`` are :class:`UpstreamServer`'s."""

    def __init__(
        self,
        root: Path,
        delay: float = 0.0,
        truncate: int | None = None,
        matching: str = "openwrt-imagebuilder-",
        **server,
    ):
        super().__init__(root, **server)
        base = self.RequestHandlerClass
        handler = _faulty_handler(base.func, delay, truncate, matching)
        self.RequestHandlerClass = functools.partial(
            handler, *base.args, **base.keywords
        )


def _faulty_handler(
    base: type, delay: float, truncate: int | None, matching: str
) -> type:
    class Faulty(base):
        def copyfile(self, source, outputfile):
            if matching not in self.path:
                return super().copyfile(source, outputfile)
            time.sleep(delay)
            if truncate is None:
                return super().copyfile(source, outputfile)
            outputfile.write(source.read(truncate))
            self.close_connection = True
            return None

    return Faulty


def snapshot_only(directory: Path, version_code: str, key: SecretKey) -> UpstreamServer:
    """A started upstream with just a SNAPSHOT at ``version_code``, signed by ``key``:
    a snapshot that moved on, or another distribution."""
    tree = generate(
        directory / "downloads",
        snapshot_version_code=version_code,
        only=("SNAPSHOT",),
        key=key,
    )
    return UpstreamServer(tree).start()
