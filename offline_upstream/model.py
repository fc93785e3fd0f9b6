"""What the offline upstream is made of: packages, profiles and ImageBuilders.

The offline upstream is a stand-in for the OpenWrt downloads server. It works at a
fixed scale: every package carries a payload of its scaled, packed installed size
bytes and every flash or partition limit is divided by the same number, so an image
that would not fit a real device does not fit here either, while the whole tree
stays small.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Real sizes are divided by this before payloads are written and limits compared.
SIZE_SCALE = 64
#: What xz leaves of the gzip'd package data the indexes count as installed size
#: when it packs a root filesystem; payloads cannot be packed, so they start
#: that much smaller.
ROOTFS_PACKING = 0.65


@dataclass(frozen=True)
class Package:
    """One binary package as an index describes it.

    ``depends`` entries are package names, or alternatives written ``"a | b"``;
    version constraints are not kept.
    """

    name: str
    version: str
    depends: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    section: str = "base"
    installed_size: int = 0
    abi_version: str = ""
    description: str = ""
    arch: str = "all"
    #: The ``postinst`` script of an ``.ipk`` (an ``.apk``'s ``post-install``),
    #: which ``make image`` runs.
    postinst: str = ""

    @property
    def payload_size(self) -> int:
        """Bytes of payload the package file carries: its share of a packed
        root filesystem, scaled."""
        return int(self.installed_size * ROOTFS_PACKING) // SIZE_SCALE


@dataclass(frozen=True)
class ImageType:
    """One image a profile produces, as in ``profiles.json`` ``images``."""

    type: str  # sysupgrade, factory, kernel, combined, combined-efi, rootfs, ...
    filesystem: str  # squashfs, ext4, initramfs, ...


@dataclass(frozen=True)
class Profile:
    """A device profile of one target, with what the ImageBuilder needs to build it."""

    id: str
    titles: tuple[dict, ...]
    device_packages: tuple[str, ...] = ()
    supported_devices: tuple[str, ...] = ()
    images: tuple[ImageType, ...] = ()
    #: flash limit for the sysupgrade image in bytes, already divided by SIZE_SCALE;
    #: 0 when the profile has none (x86 uses the rootfs partition size instead)
    image_size: int = 0


@dataclass(frozen=True)
class ImageBuilderInfo:
    """Everything one ImageBuilder knows about its release and target."""

    version: str  # "23.05.4", "SNAPSHOT"
    version_code: str  # "r24012-d8dd03c46f"
    target: str  # "ath79/generic"
    arch: str  # "mips_24kc"
    package_format: str  # "opkg" or "apk"
    default_packages: tuple[str, ...]
    profiles: tuple[Profile, ...]
    source_date_epoch: int
    linux_kernel: dict | None = None  # {"version", "release", "vermagic"}
    #: default rootfs partition size in MB (x86, armsr); 0 when the target has none
    rootfs_partsize_mb: int = 0
    filesystems: tuple[str, ...] = ("squashfs",)
    #: bytes of the real kernel image (the ImageBuilder's is SIZE_SCALE smaller)
    kernel_size: int = 3 * 1024 * 1024
    #: feed name -> URL, written to repositories.conf / repositories
    feeds: dict[str, str] = field(default_factory=dict)

    @property
    def dist_prefix(self) -> str:
        """``openwrt-23.05.4`` for releases, ``openwrt`` for snapshots."""
        if "SNAPSHOT" in self.version:
            return "openwrt"
        return f"openwrt-{self.version}"
