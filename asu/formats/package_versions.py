"""Comparing package versions the way opkg and apk do.

opkg compares like dpkg: ``[epoch:]upstream[-revision]``, where runs of digits
compare as numbers and in other runs ``~`` sorts before everything (even the end
of the string), then letters, then other characters.

apk compares dotted numbers, a letter, suffixes (``_alpha`` < ``_beta`` < ``_pre``
< ``_rc`` < none < ``_cvs`` < ``_svn`` < ``_git`` < ``_hg`` < ``_p``), an optional
``~hash`` (never ordered), then ``-rN``.
"""

from __future__ import annotations

import re

# --------------------------------------------------------------------- opkg


def _order(char: str) -> int:
    """dpkg's weight of one non-digit character."""
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    """dpkg's ``verrevcmp`` of one upstream version or revision."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (
            j < len(b) and not b[j].isdigit()
        ):
            ac = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return -1 if ac < bc else 1
            i, j = i + 1, j + 1
        start_i, start_j = i, j
        while i < len(a) and a[i].isdigit():
            i += 1
        while j < len(b) and b[j].isdigit():
            j += 1
        an, bn = int(a[start_i:i] or 0), int(b[start_j:j] or 0)
        if an != bn:
            return -1 if an < bn else 1
    return 0


def _split_opkg(version: str) -> tuple[int, str, str]:
    epoch, _, rest = version.rpartition(":") if ":" in version else ("0", "", version)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "")
    return int(epoch) if epoch.isdigit() else 0, upstream, revision


def compare_opkg(a: str, b: str) -> int:
    """-1, 0 or 1 as opkg orders versions ``a`` and ``b``."""
    epoch_a, upstream_a, revision_a = _split_opkg(a)
    epoch_b, upstream_b, revision_b = _split_opkg(b)
    if epoch_a != epoch_b:
        return -1 if epoch_a < epoch_b else 1
    return _compare_part(upstream_a, upstream_b) or _compare_part(
        revision_a, revision_b
    )


# ---------------------------------------------------------------------- apk

_APK_SUFFIXES = {
    "alpha": -4,
    "beta": -3,
    "pre": -2,
    "rc": -1,
    "cvs": 1,
    "svn": 2,
    "git": 3,
    "hg": 4,
    "p": 5,
}
_APK = re.compile(
    r"^(?P<numbers>\d+(?:\.\d+)*)(?P<letter>[a-z]?)"
    r"(?P<suffixes>(?:_[a-z]+\d*)*)(?:~[0-9a-f]+)?(?:-r(?P<release>\d+))?$"
)


def _apk_key(version: str) -> tuple | None:
    """A sortable key of an apk version, or None when it is not one."""
    match = _APK.match(version)
    if not match:
        return None
    numbers = tuple(int(n) for n in match["numbers"].split("."))
    suffixes = []
    for suffix in re.findall(r"_([a-z]+)(\d*)", match["suffixes"]):
        suffixes.append((_APK_SUFFIXES.get(suffix[0], 0), int(suffix[1] or 0)))
    suffixes.append((0, 0))  # no (more) suffix sorts between _rc and _cvs
    return numbers, match["letter"], tuple(suffixes), int(match["release"] or 0)


def compare_apk(a: str, b: str) -> int:
    """-1, 0 or 1 as apk orders versions ``a`` and ``b``; versions that are not
    valid apk versions fall back to opkg's order."""
    key_a, key_b = _apk_key(a), _apk_key(b)
    if key_a is None or key_b is None:
        return compare_opkg(a, b)
    numbers_a, numbers_b = key_a[0], key_b[0]
    for x, y in zip(numbers_a, numbers_b, strict=False):
        if x != y:
            return -1 if x < y else 1
    if len(numbers_a) != len(numbers_b):
        return -1 if len(numbers_a) < len(numbers_b) else 1
    rest_a, rest_b = key_a[1:], key_b[1:]
    return (rest_a > rest_b) - (rest_a < rest_b)


def compare(a: str, b: str, package_format: str = "opkg") -> int:
    """-1, 0 or 1: how package version ``a`` orders against ``b``."""
    return compare_apk(a, b) if package_format == "apk" else compare_opkg(a, b)
