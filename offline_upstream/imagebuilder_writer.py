"""Lays out an unpacked ImageBuilder of the offline upstream.

The layout follows OpenWrt's ImageBuilder where the server can see it::

    Makefile                  make help|info|manifest|image|clean|package_*|val.X
    scripts/ib.py             the program behind the Makefile (stdlib only)
    scripts/adb.py            apk's ADB format, read by ib.py (asu/adb.py)
    scripts/apk_keys.py       apk's signatures, checked by ib.py
    .config                   target, version, enabled root filesystems, partsize
    include/ib-info.json      ImageBuilderInfo: profiles, defaults, kernel, limits
    repositories.conf         opkg feeds (``repositories`` in the apk world)
    keys/<key id>             the usign keys its package manager trusts
    keys/offline-upstream.pem the apk key it trusts for packages.adb (apk world)
    packages/                 the ImageBuilder's own packages and their index
    build_dir/target-<arch>_musl/linux-<board>_<subtarget>/vmlinux
                              the kernel (KERNEL_BUILD_DIR)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

from asu.formats import adb
from asu.formats.usign import SecretKey
from offline_upstream import adb_writer
from offline_upstream.model import SIZE_SCALE, ImageBuilderInfo, Package
from offline_upstream.packages import write_feed

PROGRAM_DIR = Path(__file__).parent / "imagebuilder"
KERNEL_IMAGE = "vmlinux"
#: a real kernel image is 2 to 4 MB
#: the kernel partition of targets with a rootfs partition (x86: 16 MB upstream)
KERNEL_PARTSIZE_MB = 16
#: .config symbol of each root filesystem the .config mentions
FILESYSTEM_SYMBOLS = {"squashfs": "SQUASHFS", "ext4": "EXT4FS"}


def write_imagebuilder(
    dest: Path, info: ImageBuilderInfo, local_packages: list[Package], key: SecretKey
) -> None:
    """Write the ImageBuilder of ``info`` into ``dest`` (created if missing), its
    ``packages/`` holding ``local_packages``, trusting ``key``'s signatures.

    A release ImageBuilder signs its own ``packages/`` index with a key it makes
    on its first build; this one has it signed by ``key`` at once."""
    dest.mkdir(parents=True, exist_ok=True)
    _copy_program(dest)
    (dest / ".config").write_text(config_text(info))
    (dest / "include").mkdir(exist_ok=True)
    (dest / "include" / "ib-info.json").write_text(
        json.dumps(ib_info(info), indent=1, sort_keys=True) + "\n"
    )
    _write_repositories(dest, info)
    write_feed(
        dest / "packages",
        local_packages,
        info.package_format,
        info.arch,
        info.source_date_epoch,
    )
    _trust(dest, info, key)
    kernel_dir = dest / kernel_build_dir(info)
    kernel_dir.mkdir(parents=True, exist_ok=True)
    (kernel_dir / KERNEL_IMAGE).write_bytes(kernel_blob(info))


def _copy_program(dest: Path) -> None:
    shutil.copyfile(PROGRAM_DIR / "Makefile", dest / "Makefile")
    (dest / "scripts").mkdir(exist_ok=True)
    shutil.copyfile(PROGRAM_DIR / "ib.py", dest / "scripts" / "ib.py")
    shutil.copyfile(Path(adb.__file__), dest / "scripts" / "adb.py")
    shutil.copyfile(PROGRAM_DIR / "apk_keys.py", dest / "scripts" / "apk_keys.py")
    (dest / "scripts" / "ib.py").chmod(0o755)


def board_subtarget(info: ImageBuilderInfo) -> tuple[str, str]:
    """``("x86", "64")`` for ``x86/64``."""
    board, _, subtarget = info.target.partition("/")
    return board, subtarget or "generic"


def kernel_build_dir(info: ImageBuilderInfo) -> str:
    """KERNEL_BUILD_DIR relative to the ImageBuilder, as its Makefile computes it."""
    board, subtarget = board_subtarget(info)
    return f"build_dir/target-{info.arch}_musl/linux-{board}_{subtarget}"


def kernel_blob(info: ImageBuilderInfo) -> bytes:
    """The kernel: incompressible bytes that depend on the target and revision."""
    seed = f"kernel\0{info.target}\0{info.version_code}".encode()
    return hashlib.shake_256(seed).digest(info.kernel_size // SIZE_SCALE)


def config_text(info: ImageBuilderInfo) -> str:
    """The ``.config`` the ImageBuilder's Makefile and ib.py read."""
    board, subtarget = board_subtarget(info)
    lines = [
        f"CONFIG_TARGET_{board}=y",
        f"CONFIG_TARGET_{board}_{subtarget}=y",
        f'CONFIG_TARGET_BOARD="{board}"',
        f'CONFIG_TARGET_SUBTARGET="{subtarget}"',
        f'CONFIG_TARGET_ARCH_PACKAGES="{info.arch}"',
        'CONFIG_VERSION_DIST="OpenWrt"',
        f'CONFIG_VERSION_NUMBER="{info.version}"',
        f'CONFIG_VERSION_CODE="{info.version_code}"',
        _flag("CONFIG_USE_APK", info.package_format == "apk"),
    ]
    lines += [
        _flag(f"CONFIG_TARGET_ROOTFS_{symbol}", filesystem in info.filesystems)
        for filesystem, symbol in FILESYSTEM_SYMBOLS.items()
    ]
    if info.rootfs_partsize_mb:
        lines += [
            f"CONFIG_TARGET_KERNEL_PARTSIZE={KERNEL_PARTSIZE_MB}",
            f"CONFIG_TARGET_ROOTFS_PARTSIZE={info.rootfs_partsize_mb}",
        ]
    return "\n".join(lines) + "\n"


def _flag(symbol: str, enabled: bool) -> str:
    return f"{symbol}=y" if enabled else f"# {symbol} is not set"


def ib_info(info: ImageBuilderInfo) -> dict:
    """``include/ib-info.json``: ``info`` plus what ib.py cannot derive itself."""
    return {
        **dataclasses.asdict(info),
        "dist_prefix": info.dist_prefix,
        "size_scale": SIZE_SCALE,
        "kernel_image": KERNEL_IMAGE,
    }


def _trust(dest: Path, info: ImageBuilderInfo, key: SecretKey) -> None:
    """``keys/<key id>``, and the local opkg index signed by that key; in the
    apk world the apk key (``packages.adb`` carries its signature inside)."""
    public = key.public_key
    (dest / "keys").mkdir(exist_ok=True)
    (dest / "keys" / public.key_id_hex).write_text(public.to_text())
    if info.package_format == "apk":
        (dest / "keys" / adb_writer.KEY_FILE).write_text(
            adb_writer.signing_key().public_pem()
        )
    if info.package_format == "opkg":
        index = dest / "packages" / "Packages"
        index.with_name("Packages.sig").write_text(key.sign(index.read_bytes()))


def _write_repositories(dest: Path, info: ImageBuilderInfo) -> None:
    """The feeds, then the ImageBuilder's own ``packages/`` directory."""
    if info.package_format == "opkg":
        lines = ["## Remote package repositories"]
        lines += [f"src/gz openwrt_{name} {url}" for name, url in info.feeds.items()]
        lines += [
            "",
            "## This is the local package repository, do not remove!",
            "src imagebuilder file:packages",
            "",
            "option check_signature",
        ]
        (dest / "repositories.conf").write_text("\n".join(lines) + "\n")
    else:
        lines = [f"{url}/packages.adb" for url in info.feeds.values()]
        lines.append("packages/packages.adb")
        (dest / "repositories").write_text("\n".join(lines) + "\n")
