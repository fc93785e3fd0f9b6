"""ImageBuilder archives that are hostile or broken: members that leave the cache,
links pointing out, device files, truncated and corrupted downloads, missing,
wrong and foreign signatures. Each is refused with a clear ``detail`` and nothing
is written outside the cache: first the unpacking alone, for ``.tar.xz`` and
``.tar.zst``, then through a real worker."""

from __future__ import annotations

import os
import tarfile
import uuid
from pathlib import Path

import pytest
from clients import wait_for
from upstreams import (
    ATH79,
    FaultyUpstream,
    archive_of,
    compress,
    copy_tree,
    member,
    repack,
    replace_file,
    resign,
    tar_of,
)

from asu.formats.usign import SecretKey
from asu.worker.imagebuilder import ImageBuilderError, unpack
from offline_upstream.server import UpstreamServer
from offline_upstream.tree import sign_directory

KINDS = ("xz", "zst")
C7_PROFILE = {"profile": "tplink,archer-c7-v5"}


def directory(name: str) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, type=tarfile.DIRTYPE, mode=0o755)


def symlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, type=tarfile.SYMTYPE, linkname=target)


def hardlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, type=tarfile.LNKTYPE, linkname=target)


def imagebuilder(tmp_path: Path, extra=()) -> bytes:
    """A tar of a minimal ImageBuilder (``ib/Makefile``) followed by ``extra``."""
    top = tmp_path / "source" / "ib"
    top.mkdir(parents=True)
    (top / "Makefile").write_text("image:\n\t@true\n")
    return tar_of(top, extra)


def unpack_archive(tmp_path: Path, kind: str, tar: bytes) -> Path:
    archive = tmp_path / f"ib.tar.{kind}"
    archive.write_bytes(compress(tar, kind))
    (tmp_path / "cache").mkdir()
    return unpack(archive, kind, tmp_path / "cache" / "tree")


def escaped(tmp_path: Path) -> list[Path]:
    """Files the archive's members aimed at, wherever they landed."""
    found = list(tmp_path.rglob("escaped*"))
    return found + [Path(p) for p in ("/escaped", "/tmp/escaped") if os.path.lexists(p)]


HOSTILE = {
    "parent directory": ([member("../escaped", b"x")], "not a plain relative path"),
    "deep parent": ([member("ib/../../../escaped", b"x")], "not a plain relative"),
    "absolute path": ([member("{tmp}/escaped-abs", b"x")], "not a plain relative"),
    "write through a link out": (
        [symlink("ib/out", "../.."), member("ib/out/escaped", b"x")],
        "through the link",
    ),
    "write through an absolute link": (
        [symlink("ib/tmp", "{tmp}"), member("ib/tmp/escaped-abs", b"x")],
        "through the link",
    ),
    "write through a link": (
        [symlink("ib/dir", "."), member("ib/dir/escaped", b"x")],
        "through the link",
    ),
    "file over a link": (
        [symlink("ib/f", "Makefile"), member("ib/f", b"x")],
        "appears twice",
    ),
    "hardlink out": ([hardlink("ib/h", "../escaped")], "not a plain relative"),
    "hardlink to a system file": ([hardlink("ib/h", "/etc/passwd")], "not a plain"),
    "hardlink through a link": (
        [symlink("ib/d", "/etc"), hardlink("ib/h", "ib/d/passwd")],
        "through the link",
    ),
    "character device": (
        [member("ib/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)],
        "device",
    ),
    "block device": (
        [member("ib/sda", type=tarfile.BLKTYPE, devmajor=8, devminor=0)],
        "device",
    ),
    "fifo": ([member("ib/pipe", type=tarfile.FIFOTYPE)], "device, FIFO"),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_members_are_refused(tmp_path, kind, case):
    members, why = HOSTILE[case]
    members = [
        (
            info.replace(
                name=info.name.format(tmp=tmp_path),
                linkname=info.linkname.format(tmp=tmp_path),
            ),
            data,
        )
        for info, data in members
    ]
    with pytest.raises(ImageBuilderError, match="unsafe ImageBuilder archive") as error:
        unpack_archive(tmp_path, kind, imagebuilder(tmp_path, members))
    assert why in str(error.value)
    assert escaped(tmp_path) == []


@pytest.mark.parametrize("kind", KINDS)
def test_links_that_stay_inside_are_kept(tmp_path, kind):
    extra = [
        directory("ib/bin"),
        member("ib/bin/tool", b"#!/bin/sh\n", mode=0o4755),
        symlink("ib/bin/alias", "tool"),
        symlink("ib/staging", "bin/../bin"),
        hardlink("ib/bin/copy", "ib/bin/tool"),
    ]
    top = unpack_archive(tmp_path, kind, imagebuilder(tmp_path, extra))
    assert (top / "bin" / "alias").resolve() == (top / "bin" / "tool").resolve()
    assert (top / "bin" / "copy").stat().st_ino == (top / "bin" / "tool").stat().st_ino
    assert not (top / "bin" / "tool").stat().st_mode & 0o4000, "setuid kept"


@pytest.mark.parametrize("kind", KINDS)
def test_links_pointing_out_are_kept_as_links(tmp_path, kind):
    """A real ImageBuilder links host tools by absolute path
    (``staging_dir/host/bin/gzip -> /usr/bin/gzip``): kept, never followed."""
    extra = [
        directory("ib/staging_dir"),
        symlink("ib/staging_dir/gzip", "/usr/bin/gzip"),
        symlink("ib/staging_dir/up", "../../.."),
    ]
    top = unpack_archive(tmp_path, kind, imagebuilder(tmp_path, extra))
    assert os.readlink(top / "staging_dir" / "gzip") == "/usr/bin/gzip"
    assert os.readlink(top / "staging_dir" / "up") == "../../.."


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_broken_archives_are_refused(tmp_path, kind, damage):
    data = bytearray(compress(imagebuilder(tmp_path), kind))
    if damage == "truncated":
        del data[len(data) // 2 :]
    else:
        for offset in range(len(data) // 3, len(data) // 3 + 64):
            data[offset] ^= 0x5A
    archive = tmp_path / f"ib.tar.{kind}"
    archive.write_bytes(bytes(data))
    with pytest.raises(ImageBuilderError, match="unusable ImageBuilder archive|zstd"):
        unpack(archive, kind, tmp_path / "tree")


# -- through a worker ------------------------------------------------------------------

#: Each broken target of the module's upstream, the request that reaches it and
#: what the failed build's detail says.
CASES = {
    "member outside": (
        "releases/23.05.4/targets/x86/64",
        {"version": "23.05.4", "target": "x86/64", "profile": "generic"},
        "unsafe ImageBuilder archive: '../../../../../escaped' is not a plain",
    ),
    "absolute member": (
        "releases/24.10.4/targets/x86/64",
        {"version": "24.10.4", "target": "x86/64", "profile": "generic"},
        "unsafe ImageBuilder archive",
    ),
    "truncated but signed": (
        "releases/25.12.0/targets/ath79/generic",
        {"version": "25.12.0", "target": "ath79/generic", **C7_PROFILE},
        "unusable ImageBuilder archive",
    ),
    "no signature": (
        "snapshots/targets/x86/64",
        {"version": "SNAPSHOT", "target": "x86/64", "profile": "generic"},
        "cannot fetch the checksums",
    ),
    "wrong signature": (
        ATH79,
        {"version": "23.05.4", "target": "ath79/generic", **C7_PROFILE},
        "failed the signature check",
    ),
    "another key": (
        "releases/24.10.4/targets/ath79/generic",
        {"version": "24.10.4", "target": "ath79/generic", **C7_PROFILE},
        "not trusted",
    ),
}


def break_target(root: Path, case: str, outside: Path) -> None:
    target_dir = root / CASES[case][0]
    if case == "member outside":
        repack(target_dir, extra=[member("../" * 5 + "escaped", b"x")])
    elif case == "absolute member":
        repack(target_dir, extra=[member(str(outside), b"x")])
    elif case == "truncated but signed":
        archive = archive_of(target_dir)
        replace_file(archive, archive.read_bytes()[: archive.stat().st_size // 2])
        resign(target_dir)
    elif case == "no signature":
        (target_dir / "sha256sums.sig").unlink()
    elif case == "wrong signature":
        signature = target_dir / "sha256sums.sig"
        lines = signature.read_text().splitlines()
        replace_file(signature, f"{lines[0]}\n{lines[1][:-8]}AAAAAAA=\n".encode())
    elif case == "another key":
        for name in ("sha256sums", "sha256sums.sig"):
            (target_dir / name).unlink()
        sign_directory(target_dir, SecretKey.from_seed(b"\x02" * 32))


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("outside") / f"escaped-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def broken_upstream(upstream_tree, tmp_path_factory, outside):
    root = copy_tree(upstream_tree, tmp_path_factory.mktemp("broken") / "downloads")
    for case in CASES:
        break_target(root, case, outside)
    server = UpstreamServer(root).start()
    yield server
    server.stop()


@pytest.fixture
def app_config(app_config, broken_upstream):
    return app_config | {"upstream_url": broken_upstream.url}


def assert_nothing_unpacked(cache: Path) -> None:
    assert not list(cache.rglob("Makefile")), "a refused ImageBuilder was kept"
    assert not list(cache.rglob(".ib-*")), "scratch of the download was left"


@pytest.mark.parametrize("case", CASES)
def test_refused_through_a_worker(live_server, worker, app_config, outside, case):
    _, request, detail = CASES[case]
    response = wait_for(live_server, request)
    assert response.status_code == 500
    body = response.json()
    assert body["detail"].startswith("Error:")
    assert detail in body["detail"]
    tmp = Path(app_config["cache_path"]).parent
    assert not outside.exists()
    assert [p for p in tmp.rglob("escaped*")] == []
    assert_nothing_unpacked(Path(app_config["cache_path"]))


class TestTruncatedDownload:
    @pytest.fixture
    def broken_upstream(self, upstream_tree, tmp_path):
        server = FaultyUpstream(upstream_tree, truncate=4096).start()
        yield server
        server.stop()

    def test_a_connection_lost_mid_download(self, live_server, worker, app_config):
        request = {"version": "25.12.0", "target": "x86/64", "profile": "generic"}
        response = wait_for(live_server, request)
        assert response.status_code == 500
        assert "ImageBuilder download failed" in response.json()["detail"]
        assert_nothing_unpacked(Path(app_config["cache_path"]))
