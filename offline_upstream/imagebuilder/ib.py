#!/usr/bin/env python3
"""The offline upstream's ImageBuilder, behind the same make targets as OpenWrt's.

The Makefile runs ``ib.py <target>``; paths arrive in the environment (TOPDIR,
BUILD_DIR, KERNEL_BUILD_DIR, BIN_DIR, DL_DIR), as do the variables given to make
(PROFILE, PACKAGES, FILES, EXTRA_IMAGE_NAME, ROOTFS_PARTSIZE, STRIP_ABI, PACKAGE).

What the ImageBuilder knows of its release and target is in include/ib-info.json;
what a user may change (filesystems, rootfs partition size) is read from .config.
Packages come from the feeds in repositories.conf (opkg) or repositories (apk),
http(s) URLs as upstream publishes them or ``file:`` paths (absolute, or relative
to TOPDIR). Like opkg with ``option check_signature``, each opkg index is used only
when its ``Packages.sig`` is a usign signature by a key in ``keys/``. apk's binary
``packages.adb`` and v3 packages are read with adb.py (the server's asu/adb.py,
copied beside this file), an index only when signed by a PEM key in ``keys/``
(apk_keys.py), each package checked against the identity its index
gives it.

Python 3 standard library only: this runs with the system python3 of a build
sandbox, apart from the project that generated it. It needs mksquashfs, and
mke2fs plus debugfs (e2fsprogs) when ext4 images are enabled.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import adb  # scripts/adb.py, beside this file
import apk_keys  # scripts/apk_keys.py, beside this file

#: opkg's exit status for a failed install (make reports "Error 255"), apk's is 1
RESOLVE_EXIT = {"opkg": 255, "apk": 1}
#: what the ImageBuilder adds to the target's default packages itself
PACKAGE_MANAGER = {"opkg": "opkg", "apk": "apk-mbedtls"}
#: Where apk keeps the installed packages' scripts, one tar for all.
APK_SCRIPTS = "lib/apk/db/scripts.tar"
#: .config symbol of each root filesystem this ImageBuilder can build
FILESYSTEM_SYMBOLS = {"squashfs": "SQUASHFS", "ext4": "EXT4FS"}
DISK_TYPES = ("combined", "combined-efi", "sdcard", "emmc")
#: images that carry fwtool metadata, so their sha256 differs from sha256_unsigned
METADATA_TYPES = ("sysupgrade", "combined", "combined-efi")
FWIMAGE_MAGIC = 0x46577830  # "FWx0", fwtool's trailer magic
FWIMAGE_INFO = 1
MIB = 1024 * 1024
SECTOR = 512
#: 1 KiB blocks: at SIZE_SCALE, 4 KiB per small file would not fit a partition
EXT4_BLOCK = 1024


class Failure(Exception):
    """Ends the run: ``lines`` go to ``stream``, the process exits with ``code``."""

    def __init__(self, lines: list[str], code: int = 1, stream=None) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines
        self.code = code
        self.stream = stream


# -- context ------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """The ImageBuilder directory, its knowledge and the make variables of this run."""

    topdir: Path
    info: dict
    config: dict[str, str]

    @property
    def package_format(self) -> str:
        return self.info["package_format"]

    def path(self, variable: str) -> Path:
        """A directory the Makefile exported, relative ones taken from TOPDIR."""
        return self.topdir / os.environ[variable]

    @property
    def kdir_tmp(self) -> Path:
        """Where images are assembled; the server removes it between builds."""
        return self.path("KERNEL_BUILD_DIR") / "tmp"

    def profile(self, profile_id: str) -> dict | None:
        return next((p for p in self.info["profiles"] if p["id"] == profile_id), None)

    def default_packages(self) -> list[str]:
        """The target's defaults plus the package manager the ImageBuilder adds."""
        defaults = list(self.info["default_packages"])
        manager = PACKAGE_MANAGER[self.package_format]
        return defaults if manager in defaults else [*defaults, manager]

    def filesystem_enabled(self, filesystem: str) -> bool:
        symbol = FILESYSTEM_SYMBOLS.get(filesystem)
        return bool(symbol) and self.config.get(f"CONFIG_TARGET_ROOTFS_{symbol}") == "y"

    def rootfs_limit(self) -> int:
        """The rootfs partition in (scaled) bytes, 0 when the target has none."""
        if "CONFIG_TARGET_ROOTFS_PARTSIZE" not in self.config:
            return 0
        megabytes = (
            variable("ROOTFS_PARTSIZE") or self.config["CONFIG_TARGET_ROOTFS_PARTSIZE"]
        )
        if not megabytes.isdigit():
            raise Failure(
                [f"ROOTFS_PARTSIZE must be a number of MB, not {megabytes!r}"]
            )
        return int(megabytes) * MIB // self.info["size_scale"]

    def kernel_partition(self) -> int:
        megabytes = int(self.config.get("CONFIG_TARGET_KERNEL_PARTSIZE", "16"))
        return megabytes * MIB // self.info["size_scale"]


def variable(name: str) -> str:
    """A make variable of this run ("" when unset)."""
    return os.environ.get(name, "").strip()


def load_context() -> Context:
    topdir = Path(os.environ.get("TOPDIR") or Path(__file__).resolve().parent.parent)
    info = json.loads((topdir / "include" / "ib-info.json").read_text())
    return Context(topdir=topdir, info=info, config=read_config(topdir / ".config"))


def read_config(path: Path) -> dict[str, str]:
    """``.config`` as ``{symbol: value}``; ``# X is not set`` gives ``"n"``."""
    config: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            config[line[2:].split()[0]] = "n"
        elif line.startswith("CONFIG_") and "=" in line:
            symbol, value = line.split("=", 1)
            config[symbol] = value.strip('"')
    return config


# -- package indexes ----------------------------------------------------------------


@dataclass
class Candidate:
    """One package a feed offers."""

    name: str
    version: str
    arch: str = "all"
    depends: list[list[str]] = field(default_factory=list)  # alternatives per entry
    provides: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    abi_version: str = ""
    installed_size: int = 0
    description: str = ""
    location: str = ""  # URL or path of the package file
    sha256: str = ""
    identity: bytes = b""  # apk: what the index says the package's ADB block hashes to
    provide_versions: dict[str, str] = field(default_factory=dict)  # apk: name=version

    @property
    def label(self) -> str:
        return f"{self.name}-{self.version}"

    def names(self) -> set[str]:
        return {self.name, *self.provides}


class Index:
    """Every package of the configured feeds; the first feed to offer a name wins."""

    def __init__(self, candidates: list[Candidate]) -> None:
        self.by_name: dict[str, Candidate] = {}
        self.providers: dict[str, list[Candidate]] = {}
        for candidate in candidates:
            if candidate.name in self.by_name:
                continue
            self.by_name[candidate.name] = candidate
            for name in candidate.provides:
                self.providers.setdefault(name, []).append(candidate)

    def offers(self, name: str) -> bool:
        return name in self.by_name or name in self.providers

    def offers_version(self, name: str, version: str) -> bool:
        """Whether a package is ``name`` at ``version``, or provides it so."""
        own = self.by_name.get(name)
        if own is not None and own.version == version:
            return True
        providers = self.providers.get(name, [])
        return any(p.provide_versions.get(name) == version for p in providers)


def load_index(ctx: Context) -> Index:
    loader = load_opkg_feed if ctx.package_format == "opkg" else load_apk_feed
    candidates = []
    for source in repositories(ctx):
        candidates += loader(ctx, source)
    return Index(candidates)


@dataclass(frozen=True)
class Source:
    """A feed line: ``src/gz`` feeds publish ``Packages.gz``, ``src`` ones
    ``Packages``; apk feeds name their ``packages.adb``."""

    name: str
    url: str
    gzipped: bool = False


def repositories(ctx: Context) -> list[Source]:
    """The feeds of repositories.conf (``src[/gz] name url``) or of repositories
    (apk: one URL a line), in their order."""
    if ctx.package_format == "opkg":
        return [
            Source(words[1], words[2], words[0] == "src/gz")
            for words in (line.split() for line in opkg_conf(ctx))
            if words[:1] in (["src"], ["src/gz"]) and len(words) >= 3
        ]
    lines = (ctx.topdir / "repositories").read_text().splitlines()
    return [
        Source(line.strip(), line.strip())
        for line in lines
        if line.strip() and line[0] != "#"
    ]


def opkg_conf(ctx: Context) -> list[str]:
    return (ctx.topdir / "repositories.conf").read_text().splitlines()


def fetch(ctx: Context, url: str) -> bytes:
    """The bytes at an http(s) URL, a ``file:`` URL or a path relative to TOPDIR."""
    if url.startswith(("http://", "https://")):
        with urllib.request.urlopen(url, timeout=120) as response:
            return response.read()
    path = url.removeprefix("file:")
    if path.startswith("//"):
        path = path[2:]
    return (ctx.topdir / path).read_bytes()


def fetch_index(ctx: Context, url: str) -> bytes | None:
    """An index, or None with a warning when the feed does not have it. opkg
    announces every download, local ones too."""
    if ctx.package_format == "opkg" or url.startswith(("http://", "https://")):
        print(f"Downloading {url}", file=sys.stderr)
    try:
        return fetch(ctx, url)
    except OSError as error:
        print(f"WARNING: cannot read {url}: {error}", file=sys.stderr)
        return None


def load_opkg_feed(ctx: Context, source: Source) -> list[Candidate]:
    """A feed's ``Packages`` (or ``Packages.gz``) as candidates; none when its
    signature is required and fails, as opkg drops such a list."""
    name = "Packages.gz" if source.gzipped else "Packages"
    data = fetch_index(ctx, f"{source.url}/{name}")
    if data is None:
        return []
    try:
        text = (gzip.decompress(data) if source.gzipped else data).decode()
    except (OSError, EOFError, UnicodeDecodeError):
        print(f"WARNING: {source.url}/{name} is corrupt", file=sys.stderr)
        return []
    lists = ctx.path("DL_DIR") / source.name
    print(f"Updated list of available packages in {lists}", file=sys.stderr)
    if "option check_signature" in opkg_conf(ctx) and not signed_by_a_key(
        ctx, text.encode(), f"{source.url}/Packages.sig"
    ):
        return []
    accepted = {"all", "noarch", ctx.info["arch"]}
    candidates = [
        opkg_candidate(fields, source.url) for fields in control_paragraphs(text)
    ]
    return [c for c in candidates if c.arch in accepted]


def signed_by_a_key(ctx: Context, data: bytes, signature_url: str) -> bool:
    """Whether the usign signature at ``signature_url`` is by a key in keys/."""
    signature = fetch_index(ctx, signature_url)
    keys = {}
    for path in sorted((ctx.topdir / "keys").glob("*")):
        raw = usign_payload(path.read_text(), 42)
        if raw:
            keys[raw[2:10]] = raw[10:]
    raw = usign_payload((signature or b"").decode(errors="replace"), 74)
    if raw and raw[2:10] in keys and ed25519_verify(keys[raw[2:10]], data, raw[10:]):
        print("Signature check passed.", file=sys.stderr)
        return True
    print("Signature check failed.", file=sys.stderr)
    print("Remove wrong Signature file.", file=sys.stderr)
    return False


def usign_payload(text: str, size: int) -> bytes:
    """The decoded base64 line of a usign key or signature file, or b"" when it
    is not one (``Ed``, 8-byte key id, then the key or signature)."""
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        raw = base64.b64decode(lines[-1], validate=True)
    except (IndexError, ValueError):
        return b""
    return raw if len(raw) == size and raw[:2] == b"Ed" else b""


# -- Ed25519 verification (RFC 8032), enough for usign -------------------------------

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _point_add(p: tuple, q: tuple) -> tuple:
    """Sum of two points in extended coordinates (X, Y, Z, T)."""
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = 2 * t1 * t2 * _D % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _point_multiply(scalar: int, point: tuple) -> tuple:
    result = (0, 1, 1, 0)
    while scalar:
        if scalar & 1:
            result = _point_add(result, point)
        point = _point_add(point, point)
        scalar >>= 1
    return result


def _point_decode(data: bytes) -> tuple | None:
    y = int.from_bytes(data, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P or (x == 0 and sign):
        return None
    if x & 1 != sign:
        x = _P - x
    return (x, y, 1, x * y % _P)


def _point_encode(point: tuple) -> bytes:
    x, y, z, _ = point
    inverse = pow(z, _P - 2, _P)
    x, y = x * inverse % _P, y * inverse % _P
    return (y | (x & 1) << 255).to_bytes(32, "little")


_BASE = _point_decode((4 * pow(5, _P - 2, _P) % _P).to_bytes(32, "little"))


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``public``'s Ed25519 signature of ``message``."""
    key, r = _point_decode(public), _point_decode(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if key is None or r is None or s >= _L:
        return False
    digest = hashlib.sha512(signature[:32] + public + message).digest()
    h = int.from_bytes(digest, "little") % _L
    left = _point_multiply(s, _BASE)
    right = _point_add(r, _point_multiply(h, key))
    return _point_encode(left) == _point_encode(right)


def control_paragraphs(text: str) -> list[dict[str, str]]:
    """Debian-control paragraphs as dicts; continuation lines join their field."""
    paragraphs = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line[1:]
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        if "Package" in fields:
            paragraphs.append(fields)
    return paragraphs


def split_list(value: str) -> list[str]:
    """``a (>= 1), b`` -> ``["a", "b"]``: names without version constraints."""
    return [item.split("(")[0].strip() for item in value.split(",") if item.strip()]


def opkg_candidate(fields: dict[str, str], url: str) -> Candidate:
    depends = [
        [alt.split("(")[0].strip() for alt in entry.split("|")]
        for entry in fields.get("Depends", "").split(",")
        if entry.strip()
    ]
    return Candidate(
        name=fields["Package"],
        version=fields.get("Version", ""),
        arch=fields.get("Architecture", "all"),
        depends=depends,
        provides=split_list(fields.get("Provides", "")),
        conflicts=split_list(fields.get("Conflicts", "")),
        abi_version=fields.get("ABIVersion", ""),
        installed_size=int(fields.get("Installed-Size", "0") or 0),
        description=fields.get("Description", ""),
        location=f"{url}/{fields.get('Filename', '')}",
        sha256=fields.get("SHA256sum", ""),
    )


def load_apk_feed(ctx: Context, source: Source) -> list[Candidate]:
    """A feed's binary ``packages.adb`` as candidates; an unreadable one is left
    out with a warning, as apk does."""
    url = source.url
    data = fetch_index(ctx, url)
    if data is None:
        return []
    try:
        container = adb.parse(data, adb.SCHEMA_INDEX)
        index = adb.read_index(container)
    except adb.AdbError as error:
        print(f"WARNING: opening {url}: {error}", file=sys.stderr)
        return []
    if not trusted(ctx, container):
        print(f"WARNING: opening {url}: UNTRUSTED signature", file=sys.stderr)
        return []
    base = url.rsplit("/", 1)[0] if "/" in url else "."
    return [apk_candidate(info, base, index.pkgname_spec) for info in index.packages]


def trusted(ctx: Context, container: adb.Container) -> bool:
    """Whether a signature of ``container`` verifies with a key in keys/."""
    keys = apk_trusted_keys(ctx.topdir / "keys")
    for signature in container.signatures:
        key = keys.get(signature.key_id)
        if key is not None and signature.hash_alg in adb.DIGESTS:
            message = container.signed_message(signature)
            if key.verifies(message, signature.signature):
                return True
    return False


@functools.cache
def apk_trusted_keys(directory: Path) -> dict[bytes, apk_keys.PublicKey]:
    """The PEM keys in ``directory`` by apk's key id (other files are skipped)."""
    keys = {}
    for path in sorted(directory.glob("*")) if directory.is_dir() else ():
        try:
            key = apk_keys.PublicKey.from_pem(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        keys[key.key_id] = key
    return keys


def apk_candidate(info: adb.PackageInfo, base: str, pkgname_spec: str) -> Candidate:
    abi = [t.split("=", 1)[1] for t in info.tags if t.startswith("openwrt:abiversion=")]
    return Candidate(
        name=info.name,
        version=info.version,
        arch=info.arch or "all",
        depends=[[dep.name] for dep in info.depends if not dep.conflict],
        provides=[provided.name for provided in info.provides],
        conflicts=[dep.name for dep in info.depends if dep.conflict],
        abi_version=abi[0] if abi else "",
        installed_size=info.installed_size,
        description=info.description,
        location=f"{base}/{info.filename(pkgname_spec)}",
        identity=info.hashes,
        provide_versions={p.name: p.version for p in info.provides if p.version},
    )


# -- dependency resolution ----------------------------------------------------------


@dataclass(frozen=True)
class Missing:
    name: str
    required_by: Candidate | None  # None: asked for directly
    request: str


@dataclass(frozen=True)
class Conflict:
    package: Candidate
    installed: Candidate
    request: str


class Resolver:
    """Chooses the packages to install, the way opkg and apk would.

    Requests are installed in name order, each with its dependencies depth first.
    A name no package has is satisfied by a package providing it: one already
    chosen, else one asked for, else the first by name. Of alternatives
    (``a | b``), one already satisfied wins, else the first a feed offers.
    """

    def __init__(self, index: Index, requests: list[str]) -> None:
        self.index = index
        self.requests = requests
        self.chosen: dict[str, Candidate] = {}
        self.problems: list[Missing | Conflict] = []
        self._request = ""

    def run(self) -> dict[str, Candidate]:
        for request in sorted(set(self.requests)):
            self._request = request
            name, _, version = request.partition("=")
            if version and not self.index.offers_version(name, version):
                self.problems.append(Missing(request, None, request))
                continue
            self._add(name, None)
        return self.chosen

    def _add(self, name: str, parent: Candidate | None) -> None:
        package = self._select(name)
        if package is None:
            self.problems.append(Missing(name, parent, self._request))
            return
        if package.name in self.chosen:
            return
        clash = self._clash(package)
        if clash:
            self.problems.append(Conflict(package, clash, self._request))
            return
        self.chosen[package.name] = package
        for alternatives in package.depends:
            self._add(self._pick(alternatives), package)

    def _satisfier(self, name: str) -> Candidate | None:
        return next((c for c in self.chosen.values() if name in c.names()), None)

    def _select(self, name: str) -> Candidate | None:
        chosen = self._satisfier(name)
        if chosen or name in self.index.by_name:
            return chosen or self.index.by_name[name]
        providers = self.index.providers.get(name, [])
        asked = [p for p in providers if p.name in self.requests]
        ordered = asked or sorted(providers, key=lambda p: p.name)
        return ordered[0] if ordered else None

    def _pick(self, alternatives: list[str]) -> str:
        for name in alternatives:
            if self._satisfier(name):
                return name
        return next((n for n in alternatives if self.index.offers(n)), alternatives[0])

    def _clash(self, package: Candidate) -> Candidate | None:
        for other in self.chosen.values():
            if set(package.conflicts) & other.names():
                return other
            if set(other.conflicts) & package.names():
                return other
        return None


def requested_packages(ctx: Context, profile: dict | None, index: Index) -> list[str]:
    """Defaults, device packages and PACKAGES; ``-name`` drops a name from all of
    them. Like the real ImageBuilder, adds ``kernel`` (when a feed has it)."""
    user = variable("PACKAGES").split()
    removed = {name[1:] for name in user if name.startswith("-")}
    device = profile["device_packages"] if profile else []
    wanted = ctx.default_packages() + list(device) + user
    if index.offers("kernel"):
        wanted.append("kernel")
    return [n for n in dict.fromkeys(wanted) if n not in removed and n[:1] != "-"]


@dataclass(frozen=True)
class Selection:
    """What was asked for by name, and the packages that gives, sorted by name."""

    requests: list[str]
    packages: list[Candidate]


def resolve(ctx: Context, profile: dict | None) -> Selection:
    """Resolve the requested packages; unresolvable requests end the run."""
    index = load_index(ctx)
    requests = requested_packages(ctx, profile, index)
    resolver = Resolver(index, requests)
    chosen = resolver.run()
    if resolver.problems:
        render = opkg_errors if ctx.package_format == "opkg" else apk_errors
        raise Failure(render(resolver.problems), RESOLVE_EXIT[ctx.package_format])
    return Selection(requests, sorted(chosen.values(), key=lambda c: c.name))


def opkg_errors(problems: list[Missing | Conflict]) -> list[str]:
    lines = ["Collected errors:"]
    for problem in problems:
        if isinstance(problem, Conflict):
            lines += [
                " * check_conflicts_for: The following packages conflict with "
                f"{problem.package.name}:",
                f" * check_conflicts_for: \t{problem.installed.name} * ",
            ]
        elif problem.required_by:
            parent = problem.required_by.name
            lines += [
                " * pkg_hash_check_unresolved: cannot find dependency "
                f"{problem.name} for {parent}",
                " * pkg_hash_fetch_best_installation_candidate: Packages for "
                f"{parent} found, but incompatible with the architectures configured",
            ]
        lines.append(f" * opkg_install_cmd: Cannot install package {problem.request}.")
    return lines


def apk_errors(problems: list[Missing | Conflict]) -> list[str]:
    lines = ["ERROR: unable to select packages:"]
    required_by: dict[str, list[str]] = {}
    for problem in problems:
        if isinstance(problem, Conflict):
            lines += [
                f"  {problem.package.label}:",
                f"    conflicts: {problem.installed.label}",
            ]
        else:
            who = problem.required_by.label if problem.required_by else "world"
            required_by.setdefault(problem.name, []).append(f"{who}[{problem.name}]")
    for name, requirers in required_by.items():
        lines += [
            f"  {name} (no such package):",
            f"    required by: {' '.join(requirers)}",
        ]
    return lines


# -- make help, info, manifest, package_(what)depends, clean --------------------------


def cmd_help(ctx: Context) -> None:
    print(
        """\
Available Commands:
	help:	This help text
	info:	Show a list of available target profiles
	clean:	Remove images and temporary build files
	image:	Build an image (see below for more information).
	manifest:	List the packages an image would contain
	package_depends:	Show the dependencies of PACKAGE
	package_whatdepends:	Show the packages that depend on PACKAGE
	val.<VARIABLE>:	Print the value of a make variable

Building images:
	make image PROFILE="<profile>" # override the default target profile
	make image PACKAGES="<pkg1> [<pkg2> [<pkg3> ...]]" # include extra packages
	make image FILES="<path>" # include extra files from <path>
	make image BIN_DIR="<path>" # alternative output directory for the images
	make image EXTRA_IMAGE_NAME="<string>" # add this to the output image filename
	make image ROOTFS_PARTSIZE="<size>" # rootfs partition size in MB (x86 and alike)
	make image DISABLED_SERVICES="<svc1> [<svc2> ...]" # accepted, nothing to disable

Print manifest:
	make manifest PROFILE="<profile>" PACKAGES="<pkg1> [<pkg2> ...]" STRIP_ABI=1"""
    )


def title(profile: dict) -> str:
    """The profile's display name: vendor, model and variant of its first title."""
    first = profile["titles"][0] if profile["titles"] else {}
    if "title" in first:
        return first["title"]
    parts = (first.get(key, "") for key in ("vendor", "model", "variant"))
    return " ".join(part for part in parts if part) or profile["id"]


def has_image_metadata(profile: dict) -> bool:
    return any(image["type"].startswith("sysupgrade") for image in profile["images"])


def cmd_info(ctx: Context) -> None:
    info = ctx.info
    lines = [
        f'Current Target: "{info["target"]}"',
        f'Current Architecture: "{info["arch"]}"',
        f'Current Revision: "{info["version_code"]}"',
        f"Default Packages: {' '.join(ctx.default_packages())}",
        "Available Profiles:",
        "",
    ]
    for profile in info["profiles"]:
        lines += [
            f"{profile['id']}:",
            f"    {title(profile)}",
            f"    Packages: {' '.join(profile['device_packages'])}",
            f"    hasImageMetadata: {int(has_image_metadata(profile))}",
        ]
        if profile["supported_devices"]:
            lines.append(
                f"    SupportedDevices: {' '.join(profile['supported_devices'])}"
            )
    print("\n".join(lines))


def selected_profile(ctx: Context, required: bool) -> dict | None:
    """The PROFILE's data; an unknown one ends the run as _check_profile does."""
    profile_id = variable("PROFILE")
    if not profile_id and not required:
        return None
    profile = ctx.profile(profile_id)
    if profile is None:
        raise Failure(
            [
                f'Profile "{profile_id}" does not exist!',
                'Use "make info" to get a list of available profile names.',
            ],
            stream=sys.stdout,
        )
    return profile


def manifest_lines(
    packages: list[Candidate], separator: str, strip_abi: bool = False
) -> list[str]:
    """``name<separator>version`` lines sorted by name."""
    entries = []
    for package in packages:
        name = package.name
        if strip_abi and package.abi_version:
            name = name.removesuffix(package.abi_version)
        entries.append(f"{name}{separator}{package.version}")
    return sorted(entries)


def cmd_manifest(ctx: Context) -> None:
    """``opkg list-installed`` (``--strip-abi`` with STRIP_ABI) or
    ``apk list --manifest`` of the packages an image would get."""
    selection = resolve(ctx, selected_profile(ctx, required=False))
    if ctx.package_format == "opkg":
        lines = manifest_lines(selection.packages, " - ", bool(variable("STRIP_ABI")))
    else:
        lines = manifest_lines(selection.packages, " ")
    print("\n".join(lines))


def named_package(index: Index) -> Candidate:
    name = variable("PACKAGE")
    if name not in index.by_name:
        raise Failure([f"Unknown package '{name}'"])
    return index.by_name[name]


def cmd_package_depends(ctx: Context) -> None:
    package = named_package(load_index(ctx))
    names = [" | ".join(alternatives) for alternatives in package.depends]
    if ctx.package_format == "opkg":
        print("\n".join([f"{package.name} depends on:", *(f"\t{n}" for n in names)]))
    else:
        print("\n".join([f"{package.label} depends on:", *names, ""]))


def cmd_package_whatdepends(ctx: Context) -> None:
    index = load_index(ctx)
    package = named_package(index)
    users = [
        other
        for other in index.by_name.values()
        if any(package.names() & set(alts) for alts in other.depends)
    ]
    if ctx.package_format == "opkg":
        lines = ["Root set:", f"  {package.name}", "What depends on root set"]
        lines += [f"\t{u.name} {u.version}\tdepends on {package.name}" for u in users]
    else:
        lines = [f"{package.label} is required by:", *(u.label for u in users), ""]
    print("\n".join(lines))


def cmd_clean(ctx: Context) -> None:
    """Remove what builds leave behind, as ``make clean`` does upstream."""
    for directory in (ctx.path("DL_DIR"), ctx.path("BIN_DIR"), ctx.kdir_tmp):
        shutil.rmtree(directory, ignore_errors=True)
    for root in ctx.path("BUILD_DIR").glob("root-*"):
        shutil.rmtree(root, ignore_errors=True)


# -- make image: the root filesystem -------------------------------------------------


def package_file(ctx: Context, package: Candidate) -> bytes:
    """The package file's bytes, downloaded into DL_DIR once, checksum verified."""
    remote = package.location.startswith(("http://", "https://"))
    cached = ctx.path("DL_DIR") / package.location.rsplit("/", 1)[-1]
    if remote and cached.is_file():
        data = cached.read_bytes()
        if not package.sha256 or sha256(data) == package.sha256:
            return data
    data = fetch(ctx, package.location)
    if package.sha256 and sha256(data) != package.sha256:
        raise Failure([f"Checksum mismatch of {package.location}"])
    if remote:
        write_atomically(cached, data)
    return data


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_bytes(data)
    partial.replace(path)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def safe_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Regular files, directories and symlinks that stay inside the root."""
    members = []
    for member in tar.getmembers():
        name = member.name.removeprefix("./")
        parts = Path(name).parts
        if not name or name.startswith("/") or ".." in parts:
            continue
        if member.isfile() or member.isdir() or member.issym():
            member.name = name
            members.append(member)
    return members


def extract(data: bytes, root: Path) -> list[str]:
    """Unpack a gzip'd tar into ``root``; the paths of the files it installed."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = safe_members(tar)
        extra = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}
        tar.extractall(root, members=members, **extra)
    return [m.name for m in members if not m.isdir()]


def ipk_part(data: bytes, member: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = {m.name.removeprefix("./"): m for m in tar.getmembers()}
        return tar.extractfile(names[member]).read()


def install_opkg(ctx: Context, root: Path, selection: Selection) -> None:
    """Unpack each ``.ipk`` and record it as opkg does in usr/lib/opkg."""
    info_dir = root / "usr/lib/opkg/info"
    info_dir.mkdir(parents=True, exist_ok=True)
    status = []
    for package in selection.packages:
        print(f"Installing {package.name} ({package.version}) to root...")
        data = package_file(ctx, package)
        installed = extract(ipk_part(data, "data.tar.gz"), root)
        control_tar = ipk_part(data, "control.tar.gz")
        control = control_file(control_tar)
        (info_dir / f"{package.name}.control").write_text(control)
        postinst = control_member(control_tar, "postinst")
        if postinst is not None:
            (info_dir / f"{package.name}.postinst").write_bytes(postinst)
        (info_dir / f"{package.name}.list").write_text(
            "".join(f"/{path}\n" for path in installed)
        )
        how = "user" if package.name in selection.requests else "ok"
        status.append(opkg_status_entry(ctx, package, control, how))
    (root / "usr/lib/opkg/status").write_text("".join(status))


def control_file(control_tar_gz: bytes) -> str:
    return control_member(control_tar_gz, "control").decode()


def control_member(control_tar_gz: bytes, name: str) -> bytes | None:
    """The file ``name`` of an ``.ipk``'s control part, None when it has none."""
    with tarfile.open(fileobj=io.BytesIO(control_tar_gz), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.removeprefix("./") == name:
                return tar.extractfile(member).read()
    return None


def opkg_status_entry(ctx: Context, package: Candidate, control: str, how: str) -> str:
    fields = control_paragraphs(control)[0]
    keep = ("Package", "Version", "Depends", "Conflicts", "Provides")
    lines = [f"{key}: {fields[key]}" for key in keep if fields.get(key)]
    lines += [
        f"Status: install {how} installed",
        f"Architecture: {package.arch}",
        f"Installed-Time: {ctx.info['source_date_epoch']}",
    ]
    return "\n".join(lines) + "\n\n"


def install_apk(ctx: Context, root: Path, selection: Selection) -> None:
    """Unpack each ``.apk`` and record it in lib/apk/db/installed and etc/apk/world."""
    packages = selection.packages
    database = []
    scripts = {}
    for number, package in enumerate(packages, start=1):
        print(
            f"({number}/{len(packages)}) Installing {package.name} ({package.version})"
        )
        contents, installed = extract_apk(package_file(ctx, package), package, root)
        database.append(apk_database_entry(package, installed))
        for action, text in contents.scripts.items():
            label = f"{package.name}-{package.version}.{package.identity.hex()}"
            scripts[f"{label}.{action}"] = text.encode()
    (root / "lib/apk/db").mkdir(parents=True, exist_ok=True)
    (root / "lib/apk/db/installed").write_text("".join(database))
    write_tar(root / APK_SCRIPTS, scripts)
    (root / "etc/apk").mkdir(parents=True, exist_ok=True)
    world = sorted(set(selection.requests) & {p.name for p in packages})
    (root / "etc/apk/world").write_text("".join(f"{name}\n" for name in world))


def extract_apk(
    data: bytes, package: Candidate, root: Path
) -> tuple[adb.Package, list[str]]:
    """Unpack a v3 ``.apk`` into ``root`` once it proves to be the package its index
    names (identity) and every file matches its hash: its contents (with its
    scripts) and the files it installed."""
    try:
        container = adb.parse(data, adb.SCHEMA_PACKAGE)
        if container.identity[: len(package.identity)] != package.identity:
            raise adb.AdbError("does not match the index (ADB integrity error)")
        contents = adb.read_package(container)
        for directory, mode in contents.directories:
            if directory:
                safe_path(root, directory).mkdir(mode=mode or 0o755, exist_ok=True)
        installed = []
        for entry, content in adb.package_contents(container, contents):
            path = safe_path(root, entry.path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            path.chmod(entry.mode or 0o644)
            installed.append(entry.path)
    except adb.AdbError as error:
        raise Failure([f"ERROR: {package.label}.apk: {error}"]) from None
    return contents, installed


def safe_path(root: Path, relative: str) -> Path:
    """``root``/``relative``, refusing paths that leave the root."""
    parts = Path(relative).parts
    if relative.startswith("/") or ".." in parts:
        raise adb.AdbError(f"{relative}: a path outside the root")
    return root.joinpath(*parts)


def apk_database_entry(package: Candidate, installed: list[str]) -> str:
    lines = [
        f"P:{package.name}",
        f"V:{package.version}",
        f"A:{package.arch}",
        f"I:{package.installed_size}",
        f"T:{package.description}",
    ]
    if package.depends:
        lines.append("D:" + " ".join("|".join(alts) for alts in package.depends))
    if package.provides:
        lines.append("p:" + " ".join(package.provides))
    directories: dict[str, list[str]] = {}
    for path in sorted(installed):
        directory, _, name = path.rpartition("/")
        directories.setdefault(directory, []).append(name)
    for directory, names in directories.items():
        lines += [f"F:{directory}", *(f"R:{name}" for name in names)]
    return "\n".join(lines) + "\n\n"


def write_release_files(ctx: Context, root: Path) -> None:
    """``etc/openwrt_release`` and ``etc/openwrt_version`` with this build's values."""
    info = ctx.info
    version = info["version"]
    revision = info["version_code"]
    release = {
        "DISTRIB_ID": "OpenWrt",
        "DISTRIB_RELEASE": version,
        "DISTRIB_REVISION": revision,
        "DISTRIB_TARGET": info["target"],
        "DISTRIB_ARCH": info["arch"],
        "DISTRIB_DESCRIPTION": f"OpenWrt {version} {revision}",
        "DISTRIB_TAINTS": "",
    }
    (root / "etc").mkdir(exist_ok=True)
    text = "".join(f"{key}='{value}'\n" for key, value in release.items())
    (root / "etc/openwrt_release").write_text(text)
    (root / "etc/openwrt_version").write_text(revision + "\n")


def overlay_files(root: Path) -> None:
    """Copy what the FILES directory holds over the root, keeping modes and
    symlinks (the directory itself is not copied: the root keeps its mode)."""
    files = variable("FILES")
    if not files:
        return
    source = Path(files)
    if not source.is_dir():
        raise Failure([f"FILES directory {files} does not exist"])
    for entry in sorted(source.iterdir()):
        target = root / entry.name
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, target, symlinks=True, dirs_exist_ok=True)
        else:
            target.unlink(missing_ok=True)
            shutil.copy2(entry, target, follow_symlinks=False)


def build_root(ctx: Context, root: Path, selection: Selection) -> None:
    print("Installing packages...")
    installer = install_opkg if ctx.package_format == "opkg" else install_apk
    installer(ctx, root, selection)
    print("Finalizing root filesystem...")
    write_release_files(ctx, root)
    overlay_files(root)
    run_postinst_scripts(root)


def run_postinst_scripts(root: Path) -> None:
    """Run the packages' ``postinst`` scripts in the root, then drop them, as
    OpenWrt's ``prepare_rootfs`` does: with bash, ``IPKG_INSTROOT`` set. apk keeps
    them in ``lib/apk/db/scripts.tar`` (``*.post-install``), taken out to run."""
    shell = shutil.which("bash") or "sh"
    env = os.environ | {"IPKG_INSTROOT": str(root)}
    sys.stdout.flush()
    take_out_apk_scripts(root)
    scripts = [
        *root.glob("usr/lib/opkg/info/*.postinst"),
        *root.glob("lib/apk/db/*.post-install"),
    ]
    for script in sorted(scripts):
        relative = f"./{script.relative_to(root)}"
        status = subprocess.run([shell, relative], cwd=root, env=env).returncode
        if status != 0:
            raise Failure(
                [f"postinst script {relative} has failed with exit code {status}"]
            )
        script.unlink()


def take_out_apk_scripts(root: Path) -> None:
    """Move the ``*.post-install`` scripts out of apk's ``scripts.tar`` beside it;
    the others stay in it."""
    archive = root / APK_SCRIPTS
    if not archive.is_file():
        return
    with tarfile.open(archive) as tar:
        scripts = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    for name, content in scripts.items():
        if name.endswith(".post-install") and "/" not in name:
            (archive.parent / name).write_bytes(content)
    kept = {n: c for n, c in scripts.items() if not n.endswith(".post-install")}
    write_tar(archive, kept)


def write_tar(path: Path, members: dict[str, bytes]) -> None:
    """A plain tar of ``members`` (name: content), as apk keeps its scripts."""
    with tarfile.open(path, "w") as tar:
        for name, content in sorted(members.items()):
            member = tarfile.TarInfo(name)
            member.size = len(content)
            member.mode = 0o755
            tar.addfile(member, io.BytesIO(content))


# -- make image: filesystems ---------------------------------------------------------


def run_tool(command: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode:
        sys.stderr.write(result.stdout + result.stderr)
        raise Failure([f"{command[0]} failed with exit status {result.returncode}"])


def make_squashfs(ctx: Context, root: Path, output: Path) -> None:
    epoch = str(ctx.info["source_date_epoch"])
    run_tool(
        ["mksquashfs", str(root), str(output), "-comp", "xz", "-b", "262144"]
        + ["-noappend", "-all-root", "-no-xattrs", "-quiet", "-no-progress"]
        + ["-mkfs-time", epoch, "-all-time", epoch]
    )


def tree_entries(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


def ext4_needed(root: Path) -> int:
    """A size in bytes that holds ``root`` as ext4 (with 256-byte inodes)."""
    entries = tree_entries(root)
    data_blocks = sum(
        -(-entry.lstat().st_size // EXT4_BLOCK) or 1
        for entry in entries
        if not entry.is_symlink() and entry.is_file()
    )
    directories = sum(
        1 for entry in entries if entry.is_dir() and not entry.is_symlink()
    )
    inode_blocks = -(-(len(entries) + 64) * 256 // EXT4_BLOCK)
    blocks = data_blocks + directories + inode_blocks + 64
    return blocks * EXT4_BLOCK * 5 // 4


def make_ext4(ctx: Context, root: Path, output: Path, size: int) -> None:
    """An ext4 image of ``size`` bytes, made reproducible.

    mke2fs copies owners and inode times from the source tree, so every inode's
    times and owner are set afterwards with debugfs.
    """
    epoch = str(ctx.info["source_date_epoch"])
    seed = ctx.info["version_code"] + variable("PROFILE")
    uuid = str_uuid(hashlib.sha256(seed.encode()).digest()[:16])
    output.unlink(missing_ok=True)
    with output.open("wb") as image:
        image.truncate(size)
    env = {**os.environ, "E2FSPROGS_FAKE_TIME": epoch, "MKE2FS_CONFIG": os.devnull}
    run_tool(
        ["mke2fs", "-q", "-F", "-t", "ext4", "-O", "^has_journal", "-m", "0"]
        + ["-L", "rootfs", "-b", str(EXT4_BLOCK), "-I", "256"]
        + ["-N", str(len(tree_entries(root)) + 64), "-U", uuid]
        + ["-E", f"hash_seed={uuid},root_owner=0:0", "-d", str(root), str(output)],
        env=env,
    )
    commands = output.with_name(output.name + ".debugfs")
    commands.write_text(debugfs_commands(root, epoch))
    run_tool(["debugfs", "-w", "-f", str(commands), str(output)], env=env)
    commands.unlink()


def str_uuid(raw: bytes) -> str:
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:32]}"


def debugfs_commands(root: Path, epoch: str) -> str:
    paths = ["/"] + [f"/{entry.relative_to(root)}" for entry in tree_entries(root)]
    lines = []
    for path in paths:
        quoted = '"' + path.replace('"', '\\"') + '"'
        lines += [
            f"sif {quoted} {field} @{epoch}" for field in ("atime", "mtime", "ctime")
        ]
        lines += [f"sif {quoted} uid 0", f"sif {quoted} gid 0"]
    return "\n".join(lines) + "\n"


# -- make image: images ---------------------------------------------------------------


@dataclass
class Image:
    """One image of the profile, with the bytes before and after fwtool metadata."""

    type: str
    filesystem: str
    name: str
    unsigned: bytes
    data: bytes
    #: False for what the build writes but profiles.json does not list (x86 kernel)
    listed: bool = True


def image_kind(image_type: str) -> str:
    if image_type.startswith("kernel"):
        return "kernel"
    if image_type == "rootfs":
        return "rootfs"
    if image_type in DISK_TYPES:
        return "disk"
    return "firmware"


def image_suffix(ctx: Context, image_type: str) -> str:
    kind = image_kind(image_type)
    if kind == "disk" or (kind == "rootfs" and ctx.rootfs_limit()):
        return ".img.gz"
    return ".bin"


def align(data: bytes, boundary: int) -> bytes:
    return data + b"\0" * (-len(data) % boundary)


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def firmware(ctx: Context, image_type: str, kernel: bytes, rootfs: bytes) -> bytes:
    """Kernel, padded to a (scaled) 64 KiB erase block, then the root filesystem;
    a factory image starts with a vendor-style header."""
    body = align(kernel, max(1, 65536 // ctx.info["size_scale"])) + rootfs
    if image_type.startswith("factory"):
        header = f"OpenWrt stand-in factory image {variable('PROFILE')}\n".encode()
        return align(header, SECTOR) + body
    return body


def disk(ctx: Context, image_type: str, kernel: bytes, rootfs: bytes) -> bytes:
    """A gzip'd disk: MBR, a boot partition holding the kernel, the rootfs partition."""
    boot_start = 2 * SECTOR
    boot_size = len(align(kernel, SECTOR))
    boot_size = max(boot_size, ctx.kernel_partition())
    root_start = boot_start + boot_size
    root_size = ctx.rootfs_limit() or len(align(rootfs, SECTOR))
    boot_type = 0xEF if image_type == "combined-efi" else 0x83
    partitions = [(boot_type, boot_start, boot_size), (0x83, root_start, root_size)]
    signature = zlib.crc32((ctx.info["version_code"] + variable("PROFILE")).encode())
    table = master_boot_record(signature, partitions)
    image = bytearray(root_start + root_size)
    image[: len(table)] = table
    image[boot_start : boot_start + len(kernel)] = kernel
    image[root_start : root_start + len(rootfs)] = rootfs
    return gzip_bytes(bytes(image))


def master_boot_record(signature: int, partitions: list[tuple[int, int, int]]) -> bytes:
    """An MBR with the given (type, start byte, size byte) partitions, first active."""
    record = bytearray(SECTOR)
    struct.pack_into("<I", record, 440, signature)
    for number, (kind, start, size) in enumerate(partitions):
        flag = 0x80 if number == 0 else 0
        entry = struct.pack(
            "<B3sB3sII", flag, b"\xfe\xff\xff", kind, b"\xfe\xff\xff",
            start // SECTOR, size // SECTOR,
        )  # fmt: skip
        record[446 + 16 * number : 462 + 16 * number] = entry
    record[510:512] = b"\x55\xaa"
    return bytes(record)


def append_metadata(ctx: Context, profile: dict, data: bytes) -> bytes:
    """fwtool's metadata: the JSON sysupgrade checks, then a 16-byte trailer."""
    info = ctx.info
    metadata = {
        "metadata_version": "1.1",
        "compat_version": "1.0",
        "supported_devices": list(profile["supported_devices"]),
        "version": {
            "dist": "OpenWrt",
            "version": info["version"],
            "revision": info["version_code"],
            "target": info["target"],
            "board": profile["id"],
        },
    }
    blob = json.dumps(metadata).encode()
    size = len(blob) + 16
    trailer = struct.pack(
        ">IIB3xI", FWIMAGE_MAGIC, zlib.crc32(data + blob), FWIMAGE_INFO, size
    )
    return data + blob + trailer


def too_big(path: Path, size: int, limit: int) -> None:
    print(f"WARNING: Image file {path} is too big: {size} > {limit}", file=sys.stderr)


def build_image(
    ctx: Context, profile: dict, spec: dict, prefix: str, kernel: bytes, rootfs: bytes
) -> Image | None:
    """One image of the profile, or None (with a warning) when it does not fit."""
    image_type, filesystem = spec["type"], spec["filesystem"]
    name = f"{prefix}-{filesystem}-{image_type}{image_suffix(ctx, image_type)}"
    kind = image_kind(image_type)
    partition = ctx.rootfs_limit()
    if kind in ("disk", "rootfs") and partition and len(rootfs) > partition:
        too_big(ctx.kdir_tmp / name, len(rootfs), partition)
        return None
    if kind == "kernel":
        unsigned = kernel
    elif kind == "rootfs":
        unsigned = gzip_bytes(rootfs) if partition else rootfs
    elif kind == "disk":
        unsigned = disk(ctx, image_type, kernel, rootfs)
    else:
        unsigned = firmware(ctx, image_type, kernel, rootfs)
        limit = profile["image_size"]
        if limit and len(unsigned) > limit:
            too_big(ctx.kdir_tmp / name, len(unsigned), limit)
            return None
    signed = image_type.startswith(METADATA_TYPES)
    data = append_metadata(ctx, profile, unsigned) if signed else unsigned
    return Image(image_type, filesystem, name, unsigned, data)


def root_filesystem(
    ctx: Context, filesystem: str, root: Path, prefix: str
) -> bytes | None:
    """The ``filesystem`` image of ``root``, or None when it cannot hold it."""
    output = ctx.kdir_tmp / f"{prefix}-{filesystem}-root"
    if filesystem == "squashfs":
        make_squashfs(ctx, root, output)
        return output.read_bytes()
    needed = ext4_needed(root)
    size = ctx.rootfs_limit() or needed
    if needed > size:
        too_big(output, needed, size)
        return None
    make_ext4(ctx, root, output, size)
    return output.read_bytes()


def buildable(ctx: Context, profile: dict) -> list[dict]:
    """The profile's images this ImageBuilder makes: those of enabled filesystems.

    Like the real one, it does not make initramfs images.
    """
    return [i for i in profile["images"] if ctx.filesystem_enabled(i["filesystem"])]


def build_images(ctx: Context, profile: dict, root: Path, prefix: str) -> list[Image]:
    """Every buildable image of the profile that fits; disk targets (those with a
    rootfs partition) also get the plain ``-kernel.bin``, as x86 does."""
    print("Building images...")
    specs = buildable(ctx, profile)
    kernel_path = ctx.path("KERNEL_BUILD_DIR") / ctx.info["kernel_image"]
    kernel = kernel_path.read_bytes()
    images = []
    for filesystem in dict.fromkeys(spec["filesystem"] for spec in specs):
        rootfs = root_filesystem(ctx, filesystem, root, prefix)
        if rootfs is None:
            continue
        for spec in (s for s in specs if s["filesystem"] == filesystem):
            images.append(build_image(ctx, profile, spec, prefix, kernel, rootfs))
    built = [image for image in images if image]
    if ctx.rootfs_limit():
        name = f"{prefix}-kernel.bin"
        return [*built, Image("kernel", "", name, kernel, kernel, listed=False)]
    return built


def check_images(profile: dict, specs: list[dict], images: list[Image]) -> None:
    """Fail when the sysupgrade (or, on disk targets, combined) image is missing."""
    primary = ("sysupgrade", "combined", "combined-efi")
    wanted = [s for s in specs if s["type"].startswith(primary)]
    made = [i for i in images if i.listed and i.type.startswith(primary)]
    if (wanted and not made) or not any(image.listed for image in images):
        raise Failure([f"ERROR: no image could be built for profile {profile['id']}"])


# -- make image: outputs --------------------------------------------------------------


def image_prefix(ctx: Context, profile: dict) -> str:
    extra = variable("EXTRA_IMAGE_NAME")
    parts = [ctx.info["dist_prefix"], extra, ctx.info["target"].replace("/", "-")]
    return "-".join(part for part in parts if part) + f"-{profile['id']}"


def profiles_json(
    ctx: Context, profile: dict, prefix: str, images: list[Image]
) -> dict:
    """``profiles.json`` as the build writes it into BIN_DIR: this one profile."""
    info = ctx.info
    document = {
        "arch_packages": info["arch"],
        "default_packages": sorted(ctx.default_packages()),
        "metadata_version": 1,
        "profiles": {
            profile["id"]: {
                "device_packages": list(profile["device_packages"]),
                "image_prefix": prefix,
                "images": [image_entry(image) for image in images if image.listed],
                "supported_devices": list(profile["supported_devices"]),
                "titles": list(profile["titles"]),
            }
        },
        "source_date_epoch": info["source_date_epoch"],
        "target": info["target"],
        "version_code": info["version_code"],
        "version_number": info["version"],
    }
    if info.get("linux_kernel"):
        document["linux_kernel"] = info["linux_kernel"]
    return document


def image_entry(image: Image) -> dict:
    return {
        "filesystem": image.filesystem,
        "name": image.name,
        "sha256": sha256(image.data),
        "sha256_unsigned": sha256(image.unsigned),
        "type": image.type,
    }


def write_outputs(
    ctx: Context, profile: dict, prefix: str, images: list[Image], manifest: list[str]
) -> None:
    """Images, ``.manifest``, ``profiles.json`` and ``sha256sums`` into BIN_DIR."""
    bin_dir = ctx.path("BIN_DIR")
    bin_dir.mkdir(parents=True, exist_ok=True)
    for image in images:
        (ctx.kdir_tmp / image.name).write_bytes(image.data)
        shutil.copyfile(ctx.kdir_tmp / image.name, bin_dir / image.name)
    (bin_dir / f"{prefix}.manifest").write_text("".join(f"{m}\n" for m in manifest))
    document = profiles_json(ctx, profile, prefix, images)
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    (bin_dir / "profiles.json").write_text(text)
    print("Calculating checksums...")
    write_sha256sums(bin_dir)


def write_sha256sums(bin_dir: Path) -> None:
    files = sorted(
        p for p in bin_dir.iterdir() if p.is_file() and p.name != "sha256sums"
    )
    lines = [f"{sha256(path.read_bytes())} *{path.name}\n" for path in files]
    (bin_dir / "sha256sums").write_text("".join(lines))


def cmd_image(ctx: Context) -> None:
    """Resolve, install into a fresh root, make the images and write BIN_DIR.

    The image's ``.manifest`` has ``name - version`` lines in both package worlds,
    as upstream's have.
    """
    profile = selected_profile(ctx, required=True)
    selection = resolve(ctx, profile)
    print(f"Building images for {ctx.info['target'].split('/')[0]} - {title(profile)}")
    print(f"Packages: {' '.join(selection.requests)}\n")
    prefix = image_prefix(ctx, profile)
    os.umask(0o022)
    ctx.kdir_tmp.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="root-", dir=ctx.path("BUILD_DIR")))
    root.chmod(0o755)
    try:
        build_root(ctx, root, selection)
        images = build_images(ctx, profile, root, prefix)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if any(image.listed for image in images):
        manifest = manifest_lines(selection.packages, " - ")
        write_outputs(ctx, profile, prefix, images, manifest)
    check_images(profile, buildable(ctx, profile), images)


# -- entry point ---------------------------------------------------------------------

COMMANDS = {
    "help": cmd_help,
    "info": cmd_info,
    "manifest": cmd_manifest,
    "image": cmd_image,
    "clean": cmd_clean,
    "package_depends": cmd_package_depends,
    "package_whatdepends": cmd_package_whatdepends,
}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in COMMANDS:
        print(f"usage: ib.py {{{','.join(COMMANDS)}}}", file=sys.stderr)
        return 2
    try:
        COMMANDS[argv[1]](load_context())
    except Failure as failure:
        stream = failure.stream or sys.stderr
        sys.stdout.flush()
        print("\n".join(failure.lines), file=stream)
        return failure.code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
