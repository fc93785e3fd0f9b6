"""Packages renamed, replaced, dropped or added between versions, as data.

Each change holds from a revision of OpenWrt's main branch on (``r18611`` is 18611);
a release branch carries the changes up to its ``branch_off_rev``. ``branches.json``
publishes them as ``{source, target, revision, mandatory}``: with both names
``source`` became ``target``, with only ``source`` it is removed, with only
``target`` it is added. ``mandatory`` says the default package set changed, so the
change is made whatever the device had installed.

A device on an older version asking for a newer one sends what it has installed;
:func:`apply` rewrites that list so the newer version can build it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_REVISION = re.compile(r"^r(\d+)\b")


@dataclass(frozen=True)
class Change:
    """One package change from ``revision`` on."""

    revision: int
    source: str = ""
    target: str = ""
    mandatory: bool = False

    def as_json(self) -> dict:
        """The change as ``branches.json`` carries it; absent names are left out."""
        named = {"source": self.source, "target": self.target}
        return {key: value for key, value in named.items() if value} | {
            "revision": self.revision,
            "mandatory": self.mandatory,
        }

    def apply(self, packages: list[str]) -> list[str]:
        """``packages`` with this change made; ``-name`` removals follow renames."""
        if self.source and self.target:
            renames = {self.source: self.target, f"-{self.source}": f"-{self.target}"}
            return [renames.get(name, name) for name in packages]
        if self.source:
            return [name for name in packages if name.lstrip("-") != self.source]
        if self.mandatory and not {self.target, f"-{self.target}"} & set(packages):
            return [*packages, self.target]
        return packages


@dataclass(frozen=True)
class DeviceChange:
    """A package some profiles of a target need from ``revision`` on."""

    revision: int
    target: str
    add: str
    profiles: frozenset[str] = frozenset()  # empty: every profile of the target

    def concerns(self, target: str, profile: str) -> bool:
        return target == self.target and (not self.profiles or profile in self.profiles)


#: Renames, removals and additions, oldest first.
CHANGES = (
    # 22.03: firewall4 on nftables replaces firewall3 on iptables
    Change(18611, "firewall", "firewall4"),
    Change(18611, "iptables", "iptables-nft"),
    Change(18611, "ip6tables", "ip6tables-nft"),
    Change(18611, "kmod-ipt-offload", "kmod-nft-offload"),
    Change(20282, "kmod-nft-nat6", mandatory=True),  # merged into kmod-nft-nat
    # 23.05: mbedtls instead of wolfssl by default
    Change(21994, "libustream-wolfssl", "libustream-mbedtls"),
    Change(21994, "px5g-wolfssl", "px5g-mbedtls"),
    Change(21994, "wpad-basic-wolfssl", "wpad-basic-mbedtls"),
    Change(25984, "luci-app-diag-core", mandatory=True),
    # 24.10: owut replaces auc; the package manager page replaces the opkg one
    Change(26792, "auc", "owut"),
    Change(27897, "luci-app-opkg", "luci-app-package-manager"),
    # 25.12: apk replaces opkg
    Change(28056, "opkg", "apk-mbedtls", mandatory=True),
)

#: Families of packages renamed by prefix (language packs): (revision, old, new).
PREFIX_CHANGES = ((27897, "luci-i18n-opkg-", "luci-i18n-package-manager-"),)

_RTL8366S_BOARDS = frozenset(
    {
        "buffalo_wzr-hp-g300nh-s",
        "dlink_dir-825-b1",
        "netgear_wndr3700",
        "netgear_wndr3700-v2",
        "netgear_wndr3800",
        "netgear_wndr3800ch",
        "netgear_wndrmac-v1",
        "netgear_wndrmac-v2",
        "trendnet_tew-673gru",
    }
)

#: Kernel modules that became separate packages some profiles need (23.05).
DEVICE_CHANGES = (
    DeviceChange(23069, "mediatek/mt7622", "kmod-mt7622-firmware"),
    DeviceChange(23069, "ath79/generic", "kmod-switch-rtl8366s", _RTL8366S_BOARDS),
    DeviceChange(
        23069,
        "ath79/generic",
        "kmod-switch-rtl8366rb",
        frozenset({"buffalo_wzr-hp-g300nh-rb"}),
    ),
)


def revision_number(version_code: str) -> int:
    """18611 for ``r18611-2cfc26ea7c``; 0 when it names no revision."""
    match = _REVISION.match(version_code or "")
    return int(match[1]) if match else 0


def for_branch(branch_off_rev: int, snapshot: bool) -> list[dict]:
    """The changes a branch publishes: all for snapshots, else up to branch-off."""
    return [
        change.as_json()
        for change in CHANGES
        if snapshot or change.revision <= branch_off_rev
    ]


def apply(
    packages: Sequence[str],
    from_revision: int,
    to_revision: int,
    target: str = "",
    profile: str = "",
) -> list[str]:
    """``packages`` of a device at ``from_revision`` as ``to_revision`` names them.

    Revisions are of the main branch: a release's ``branch_off_rev`` (a point
    release's own revision is later, but the main branch's changes after the
    branch-off never reached it), a snapshot's own revision. Every change after
    ``from_revision`` up to ``to_revision`` is made, including the packages the
    device's profile (``target``, ``profile``) needs from then on.
    """

    def between(revision: int) -> bool:
        return from_revision < revision <= to_revision

    result = list(packages)
    for change in CHANGES:
        if between(change.revision):
            result = change.apply(result)
    for revision, old, new in PREFIX_CHANGES:
        if between(revision):
            result = [_renamed_prefix(name, old, new) for name in result]
    for device in DEVICE_CHANGES:
        if between(device.revision) and device.concerns(target, profile):
            result = Change(device.revision, target=device.add, mandatory=True).apply(
                result
            )
    return _unique(result)


def _renamed_prefix(name: str, old: str, new: str) -> str:
    sign = "-" if name.startswith("-") else ""
    bare = name.removeprefix("-")
    return sign + new + bare[len(old) :] if bare.startswith(old) else name


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))
