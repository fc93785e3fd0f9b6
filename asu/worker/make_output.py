"""Reading what an ImageBuilder prints: ``make info`` and ``make manifest``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_QUOTED = re.compile(r'^Current (Target|Architecture|Revision): "([^"]*)"$')
_MANIFEST_LINE = re.compile(r"^([a-z0-9][a-z0-9_.+-]*)(?: - | )(\S+)$")


@dataclass
class Info:
    """What ``make info`` says about the ImageBuilder and its profiles."""

    target: str = ""
    architecture: str = ""
    revision: str = ""
    default_packages: list[str] = field(default_factory=list)
    profiles: dict[str, list[str]] = field(default_factory=dict)


def parse_info(text: str) -> Info:
    """Parse ``make info``: the header lines, then one block per profile."""
    info = Info()
    profile = None
    for line in text.splitlines():
        quoted = _QUOTED.match(line)
        if quoted:
            setattr(info, quoted[1].lower(), quoted[2])
        elif line.startswith("Default Packages:"):
            info.default_packages = line.split(":", 1)[1].split()
        elif line and not line[0].isspace() and line.endswith(":"):
            if line != "Available Profiles:":
                profile = line[:-1]
                info.profiles[profile] = []
        elif profile and line.strip().startswith("Packages:"):
            info.profiles[profile] = line.split(":", 1)[1].split()
    return info


def parse_manifest(text: str) -> dict[str, str]:
    """``{package: version}`` from opkg (``name - version``) or apk (``name version``)
    manifest lines; other lines (progress, warnings) are skipped."""
    manifest = {}
    for line in text.splitlines():
        match = _MANIFEST_LINE.match(line.strip())
        if match:
            manifest[match[1]] = match[2]
    return manifest
