"""The real OpenWrt 24.10.4 x86/64 ImageBuilder and its real feeds, from
``../shared/real-imagebuilder/``: where they are, the keys to trust, and a skip (or,
under CI, a failure) when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
REAL = SHARED / "real-imagebuilder"
DOWNLOADS = REAL / "downloads"
VERSION = "24.10.4"
TARGET_DIR = f"releases/{VERSION}/targets/x86/64"
#: The slice's sha256sums are signed by its own stand-in key; the feeds by
#: OpenWrt's 24.10 release key.
OPENWRT_24_10_KEY = "RWTTEMbygz6X95lKDAulctZy3aj15823THXfyrfXgwGbxZlXBd2brNcw"
#: The packages of ``generic`` the slice lacks: requests must remove them.
UNAVAILABLE = ("kmod-drm-i915",)
GENERIC = {"version": VERSION, "target": "x86/64", "profile": "generic"}


def slice_key() -> str:
    """The key of the slice's ``sha256sums.sig`` (a stand-in, not OpenWrt's)."""
    return (REAL / "key.pub").read_text().splitlines()[-1]


def require() -> None:
    """Skip unless the real slice is there; with ``ASU_REQUIRE_SHARED`` (CI) fail."""
    shared("real-imagebuilder/downloads")


def shared(relative: str) -> Path:
    """``../shared/<relative>``; skip when it is absent, fail under CI
    (``ASU_REQUIRE_SHARED``)."""
    path = SHARED / relative
    if path.exists():
        return path
    reason = f"the real artifacts are not at {path}"
    if os.environ.get("ASU_REQUIRE_SHARED"):
        pytest.fail(f"{reason}, and CI requires it")
    pytest.skip(reason)
