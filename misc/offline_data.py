#!/usr/bin/env python3
"""Extract the data the offline upstream is generated from.

Reads the real upstream samples (``/work/shared/openwrt-samples`` layout, see its
README) and the hand-written facts in ``misc/offline_data_supplement.json``, and
writes into ``offline_upstream/data/``:

* ``profiles-<release>.json.gz``: ``{"<target>/<subtarget>": <profiles.json>}``
* ``world-<release>.json.gz``: the trimmed package world of each release

Everything is written deterministically (sorted keys, gzip mtime 0), so running it
twice gives identical bytes. Only the standard library is used.

Usage: ``python3 misc/offline_data.py [SAMPLES_DIR] [--out DIR]``
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import re
import struct
import sys
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SAMPLES = REPO.parent / "shared" / "openwrt-samples"
DEFAULT_OUT = REPO / "asu" / "offline" / "data"
SUPPLEMENT = Path(__file__).resolve().parent / "offline_data_supplement.json"

WORLD_TARGETS = ("ath79/generic", "ramips/mt7621", "mediatek/filogic", "x86/64")
FEEDS = ("base", "packages", "luci", "routing", "telephony")
RELEASES = ("23.05.4", "24.10.4", "25.12.0")
#: which real sample data a release may borrow package structure from, nearest first
DONOR_ORDER = {
    "23.05.4": ("23.05.2", "24.10.4", "25.12.0"),
    "24.10.4": ("24.10.4", "25.12.0", "23.05.2"),
    "25.12.0": ("25.12.0", "24.10.4", "23.05.2"),
}
DESCRIPTION_MAX = 72


class DataError(Exception):
    """The samples and the supplement do not add up to a consistent world."""


# --------------------------------------------------------------------------- #
# small helpers
# --------------------------------------------------------------------------- #


def dep_name(entry: str) -> str:
    """``"kernel (=5.15-1-abc)"`` or apk's ``"ucode 2022.03.22 5"`` -> ``"kernel"``."""
    entry = entry.strip()
    entry = re.split(r"[\s(<>=~]", entry, maxsplit=1)[0]
    return entry


def split_list(value: str) -> list[str]:
    """A control-file list (``a, b (>= 1), c | d``) without version constraints."""
    out = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        alts = [dep_name(a) for a in item.split("|")]
        alts = [a for a in alts if a]
        if alts:
            out.append(" | ".join(alts))
    return out


def short_description(text: str) -> str:
    text = " ".join((text or "").split())
    if len(text) <= DESCRIPTION_MAX:
        return text
    cut = text[:DESCRIPTION_MAX].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "..."


def canonical(name: str, abi: str) -> str:
    """The ABI-less name of a library: ``libubox20230523`` -> ``libubox``."""
    if abi and name.endswith(abi) and len(name) > len(abi):
        base = name[: -len(abi)]
        if base.endswith("-") and base[-2:-1].isdigit():
            base = base[:-1]
        return base
    return name


def make_pkg(**fields) -> dict:
    pkg = {
        "version": "",
        "depends": [],
        "provides": [],
        "conflicts": [],
        "section": "",
        "installed_size": 0,
        "abi_version": "",
        "description": "",
        "feed": "",
    }
    pkg.update({k: v for k, v in fields.items() if v is not None})
    return pkg


# --------------------------------------------------------------------------- #
# sample readers
# --------------------------------------------------------------------------- #


def parse_control_index(text: str, feed: str) -> dict[str, dict]:
    """Parse an opkg ``Packages`` index into package dicts."""
    packages: dict[str, dict] = {}
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line.strip()
                continue
            if ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        if "Package" not in fields:
            continue
        name = fields["Package"]
        packages[name] = make_pkg(
            version=fields.get("Version", ""),
            depends=split_list(fields.get("Depends", "")),
            provides=split_list(fields.get("Provides", "")),
            conflicts=split_list(fields.get("Conflicts", "")),
            section=fields.get("Section", ""),
            installed_size=int(fields.get("Installed-Size", "0") or 0),
            abi_version=fields.get("ABIVersion", ""),
            description=short_description(fields.get("Description", "")),
            feed=feed,
        )
    return packages


def read_adb_index(path: Path, feed: str) -> dict[str, dict]:
    """Read an apk v3 ``packages.adb`` index (``ADBd``: raw-deflate compressed).

    Layout: ``ADB.`` + schema, then blocks; the first block holds the ADB tree.
    Values are 32-bit: the top four bits give the type, the rest an offset into the
    block (objects and arrays are ``[count, v1, v2, ...]``, blobs are
    length-prefixed). Fields used: package name, version, description,
    installed-size, depends, provides and the ``openwrt:abiversion=`` tag.
    """
    raw = path.read_bytes()
    if raw[:4] == b"ADBd":
        raw = zlib.decompressobj(-15).decompress(raw[4:])
    if raw[:4] != b"ADB.":
        raise DataError(f"{path}: not an ADB file")
    type_size = struct.unpack_from("<I", raw, 8)[0]
    size = type_size & 0x3FFFFFFF
    blk = raw[12 : 8 + size]

    def val(v):
        kind, off = v >> 28, v & 0x0FFFFFFF
        if kind == 0x0:
            return None
        if kind == 0x1:
            return off
        if kind == 0x2:
            return struct.unpack_from("<I", blk, off)[0]
        if kind == 0x3:
            return struct.unpack_from("<Q", blk, off)[0]
        if kind in (0x8, 0x9, 0xA):
            width = {0x8: 1, 0x9: 2, 0xA: 4}[kind]
            n = int.from_bytes(blk[off : off + width], "little")
            return blk[off + width : off + width + n]
        if kind in (0xD, 0xE):
            n = struct.unpack_from("<I", blk, off)[0]
            return [val(x) for x in struct.unpack_from(f"<{n}I", blk, off)[1:]]
        raise DataError(f"{path}: unknown ADB value type {kind:#x}")

    def text(b):
        return b.decode() if isinstance(b, bytes) else ""

    def field(obj, idx):
        return obj[idx - 1] if obj and len(obj) >= idx else None

    def deps(arr):
        out = []
        for dep in arr or []:
            name = text(field(dep, 1))
            if name:
                out.append(name)
        return out

    root = val(struct.unpack_from("<I", blk, 4)[0])
    packages: dict[str, dict] = {}
    for pkg in field(root, 2) or []:
        name = text(field(pkg, 1))
        abi = ""
        for tag in field(pkg, 21) or []:
            tag = text(tag)
            if tag.startswith("openwrt:abiversion="):
                abi = tag.split("=", 1)[1]
        provides = [p for p in deps(field(pkg, 16)) if p != f"{name}-any"]
        packages[name] = make_pkg(
            version=text(field(pkg, 2)),
            description=short_description(text(field(pkg, 4))),
            installed_size=field(pkg, 12) or 0,
            depends=deps(field(pkg, 15)),
            provides=provides,
            abi_version=abi,
            feed=feed,
        )
    return packages


def read_manifest(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if " - " in line:
            name, _, version = line.partition(" - ")
            out[name.strip()] = version.strip()
    return out


def read_json(path: Path):
    return json.loads(path.read_text())


class Samples:
    """Everything taken from the samples folder."""

    def __init__(self, root: Path):
        self.root = root
        if not (root / "README.md").exists():
            raise DataError(f"{root}: not an openwrt-samples folder")
        rel = root / "downloads" / "releases"
        # 23.05.4: real profiles of all targets
        self.profiles_2305: dict[str, dict] = {}
        for path in sorted((rel / "23.05.4" / "targets").glob("*/*/profiles.json")):
            target = f"{path.parent.parent.name}/{path.parent.name}"
            self.profiles_2305[target] = read_json(path)

        # real package data, per donor release: name -> pkg
        self.real: dict[str, dict[str, dict]] = {}
        # known versions of a release (manifests, index.json): name -> version
        self.versions: dict[str, dict[str, str]] = {r: {} for r in RELEASES}

        # 23.05.2 opkg world (x86/64)
        b2305 = root / "builds" / "openwrt-23.05.2-x86_64-opkg"
        real = {}
        for feed in FEEDS:
            path = b2305 / "packages" / "x86_64" / feed / "Packages"
            if path.exists():
                real.update(parse_control_index(path.read_text(), feed))
        target_index = b2305 / "targets" / "x86" / "64" / "packages" / "Packages"
        real.update(parse_control_index(target_index.read_text(), "target"))
        self.real["23.05.2"] = real

        # 24.10.4: the packages feed, and the ImageBuilder's manifest and metadata
        p2410 = rel / "24.10.4" / "packages" / "x86_64" / "packages" / "Packages.gz"
        self.real["24.10.4"] = parse_control_index(
            gzip.decompress(p2410.read_bytes()).decode(), "packages"
        )
        ib = root / "imagebuilder-24.10.4-x86-64"
        self.versions["24.10.4"].update(read_manifest(ib / "bin_dir-image.manifest"))
        self.versions["24.10.4"].update(read_manifest(ib / "make-manifest.stdout.txt"))
        self.ib_profiles_2410 = read_json(ib / "bin_dir-profiles.json")
        self.ib_info_2410 = (ib / "make-info.txt").read_text()

        # 25.12: base packages.adb, index.json of every feed and the target
        b2512 = root / "builds" / "openwrt-25.12-r32802-x86_64-apk"
        self.real["25.12.0"] = read_adb_index(
            b2512 / "packages" / "x86_64" / "base" / "packages.adb", "base"
        )
        self.index_2512: dict[str, dict[str, str]] = {}
        for feed in FEEDS:
            path = b2512 / "packages" / "x86_64" / feed / "index.json"
            if path.exists():
                self.index_2512[feed] = read_json(path)["packages"]
        tpath = b2512 / "targets" / "x86" / "64" / "packages" / "index.json"
        self.index_2512["target"] = read_json(tpath)["packages"]
        tdir = b2512 / "targets" / "x86" / "64"
        self.versions["25.12.0"].update(
            read_manifest(tdir / "openwrt-x86-64-generic.manifest")
        )
        self.profiles_2512_x86 = read_json(tdir / "profiles.json")


# --------------------------------------------------------------------------- #
# the supplement (hand-written facts)
# --------------------------------------------------------------------------- #


def load_supplement(path: Path) -> dict:
    sup = read_json(path)
    for key in ("releases", "packages", "kmods", "profiles", "image_size_kb"):
        if key not in sup:
            raise DataError(f"{path}: missing {key!r}")
    return sup


# --------------------------------------------------------------------------- #
# building one release's packages
# --------------------------------------------------------------------------- #

ABI_GUESS = re.compile(r"^([a-z].*?)(-?[0-9][0-9.]*)$")


class Release:
    """Resolves the packages of one release by canonical (ABI-less) name.

    A package comes, in this order, from the release's own sample data, from the
    sample data of a neighbouring release (its "donor": names, dependencies,
    provides and sizes, with this release's version and ABI names), or from the
    supplement's hand-written facts, which may also amend a donor's entry.
    """

    def __init__(self, version: str, samples: Samples, sup: dict):
        self.version = version
        self.meta = sup["releases"][version]
        self.fmt = self.meta["package_format"]
        self.samples = samples
        self.sup = sup
        kernel = self.meta["linux_kernel"]
        sep = "-r" if version[:2] >= "24" else "-"
        self.kmod_version = f"{kernel['version']}{sep}{kernel['release']}"
        self.own = {"23.05.4": "23.05.2"}.get(version, version)

        # canonical name -> package, for every sample release
        self.by_canon: dict[str, dict[str, dict]] = {}
        abi_libs: set[str] = set()
        for donor, real in samples.real.items():
            table = self.by_canon.setdefault(donor, {})
            for name, pkg in sorted(real.items()):
                canon = canonical(name, pkg["abi_version"])
                table.setdefault(canon, pkg | {"name": name})
                if canon != name:
                    abi_libs.add(canon)
        self.abi_libs = abi_libs | set(self.meta.get("abi_names", {}))

        # this release's ABI names: canonical -> real name
        self.abi_name: dict[str, str] = {}
        for canon, pkg in self.by_canon.get(self.own, {}).items():
            if pkg["name"] != canon:
                self.abi_name[canon] = pkg["name"]
        for name in samples.versions[version]:
            m = ABI_GUESS.match(name)
            if m and m.group(1) in self.abi_libs:
                self.abi_name.setdefault(m.group(1), name)
        self.abi_name.update(self.meta.get("abi_names", {}))
        # every real name of any release -> canonical
        self.canon_of: dict[str, str] = {}
        for real in samples.real.values():
            for name, pkg in real.items():
                self.canon_of[name] = canonical(name, pkg["abi_version"])
        for canon, name in self.abi_name.items():
            self.canon_of[name] = canon

        # versions known for this release: canonical -> version
        self.known_version: dict[str, str] = {}
        for name, ver in samples.versions[version].items():
            self.known_version[self.canon(name)] = ver
        if version == "25.12.0":
            for index in samples.index_2512.values():
                for name, ver in index.items():
                    self.known_version.setdefault(name, ver)
        for name, ver in self.meta.get("versions", {}).items():
            self.known_version.setdefault(name, ver)

        # virtual name -> canonical providers, from every source
        self.providers: dict[str, list[str]] = {}
        for table in self.by_canon.values():
            for canon, pkg in table.items():
                for prov in pkg["provides"]:
                    self._add_provider(prov, canon)
        for canon, spec in sup["packages"].items():
            for prov in spec.get("provides", []):
                self._add_provider(prov, canon)
        self.cache: dict[str, dict | None] = {}
        self.problems: list[str] = []

    def _add_provider(self, virtual: str, canon: str) -> None:
        virtual = self.canon_of.get(virtual, virtual)
        if virtual == canon:
            return
        lst = self.providers.setdefault(virtual, [])
        if canon not in lst:
            lst.append(canon)

    # -- naming ------------------------------------------------------------ #

    def canon(self, name: str) -> str:
        return self.canon_of.get(name, name)

    def real_name(self, canon_name: str) -> str:
        return self.abi_name.get(canon_name, canon_name)

    def map_dep(self, dep: str) -> str:
        alts = [self.real_name(self.canon(a.strip())) for a in dep.split("|")]
        return " | ".join(alts)

    # -- packages ---------------------------------------------------------- #

    def _spec(self, canon_name: str) -> dict | None:
        spec = self.sup["packages"].get(canon_name)
        if spec is None:
            return None
        spec = dict(spec)
        over = spec.pop("releases", {})
        if self.version in spec.pop("absent", []):
            return {"absent": True}
        spec.update(over.get(self.version, {}))
        return spec

    def package(self, canon_name: str) -> dict | None:
        """One package of this release by canonical name, or None."""
        if canon_name not in self.cache:
            self.cache[canon_name] = self._package(canon_name)
        return self.cache[canon_name]

    def _package(self, canon_name: str) -> dict | None:
        spec = self._spec(canon_name)
        if spec and spec.get("absent"):
            return None
        real_name = self.real_name(canon_name)
        if (
            canon_name in self.abi_libs
            and real_name == canon_name
            and not (spec or {}).get("no_abi")
        ):
            self.problems.append(f"ABI name of {canon_name} unknown")
        own = self.by_canon.get(self.own, {}).get(canon_name)
        if own is not None:
            pkg = copy.deepcopy(own)
            pkg["origin"] = "sample"
            if canon_name in self.known_version:
                pkg["version"] = self.known_version[canon_name]
            elif canon_name.startswith("kmod-") and self.own != self.version:
                pkg["version"] = self.kmod_version
            if spec and spec.get("amend_sample"):
                self._amend(pkg, spec)
            return self._finish(real_name, pkg)

        donor, base = None, None
        for name in DONOR_ORDER[self.version]:
            if name != self.own and canon_name in self.by_canon.get(name, {}):
                donor, base = name, self.by_canon[name][canon_name]
                break
        if spec and "version" in spec:
            version = spec["version"]
        elif canon_name in self.known_version:
            version = self.known_version[canon_name]
        elif canon_name.startswith("kmod-") and (base is not None or spec is not None):
            version = self.kmod_version
        else:
            return None
        if base is None and spec is None:
            return None
        if base is not None:
            pkg = copy.deepcopy(base)
            pkg["depends"] = [self.map_dep(d) for d in base["depends"]]
            pkg["provides"] = [self.map_dep(p) for p in base["provides"]]
            pkg["conflicts"] = [self.map_dep(p) for p in base["conflicts"]]
            pkg["origin"] = f"donor:{donor}"
        else:
            pkg = make_pkg(origin="knowledge")
        pkg["version"] = version
        pkg["abi_version"] = ""
        if real_name != canon_name:
            pkg["abi_version"] = real_name[len(canon_name) :].lstrip("-")
        if spec:
            self._amend(pkg, spec)
            if base is not None:
                pkg["origin"] += "+knowledge"
        return self._finish(real_name, pkg)

    def _amend(self, pkg: dict, spec: dict) -> None:
        for key in ("depends", "provides", "conflicts"):
            if key in spec:
                pkg[key] = [self.map_dep(d) for d in spec[key]]
        for key in ("section", "description", "feed", "abi_version"):
            if key in spec:
                pkg[key] = spec[key]
        if "size" in spec:
            pkg["installed_size"] = compressed_size(spec["size"])

    def _finish(self, real_name: str, pkg: dict) -> dict:
        pkg["name"] = real_name
        if not pkg["section"]:
            # apk indexes carry no section: take it from an opkg sample
            canon = self.canon(real_name)
            for table in self.by_canon.values():
                if table.get(canon, {}).get("section"):
                    pkg["section"] = table[canon]["section"]
                    break
            else:
                pkg["section"] = self.sup["sections"].get(canon) or (
                    "libs"
                    if canon.startswith("lib")
                    else "firmware"
                    if canon.endswith("-firmware")
                    else "base"
                )
        pkg["provides"] = [p for p in pkg["provides"] if p != real_name]
        if self.fmt == "opkg":
            # apk's "-any" virtuals have no meaning for opkg
            pkg["provides"] = [p for p in pkg["provides"] if not p.endswith("-any")]
            pkg["depends"] = [d for d in pkg["depends"] if not d.endswith("-any")]
        canon = self.canon(real_name)
        if canon != real_name and canon not in pkg["provides"]:
            # an ABI-versioned library provides its plain name (opkg and apk alike)
            pkg["provides"].insert(0, canon)
        deps = []
        for dep in pkg["depends"]:
            if dep not in deps and dep != real_name:
                deps.append(dep)
        if real_name.startswith("kmod-"):
            pkg["feed"] = "target"
            deps = ["kernel", *[d for d in deps if d not in ("kernel", "libc")]]
        elif real_name not in NO_LIBC and "libc" not in deps:
            deps = ["libc", *deps]
        pkg["depends"] = deps
        if not pkg.get("feed"):
            raise DataError(f"{self.version}: no feed known for {real_name}")
        if not pkg["installed_size"]:
            pkg["installed_size"] = DEFAULT_SIZE
        return pkg

    def provider_candidates(self, virtual: str) -> list[str]:
        prefer = self.sup.get("virtual_providers", {}).get(virtual, [])
        rest = sorted(self.providers.get(self.canon(virtual), []))
        return [*prefer, *[r for r in rest if r not in prefer]]


NO_LIBC = {"libc", "kernel"}
DEFAULT_SIZE = 4096
#: How much smaller a package's gzip'd data is than its files: OpenWrt's opkg
#: indexes give that compressed size as Installed-Size, the supplement gives sizes
#: of the installed files.
COMPRESSION = 2


def compressed_size(size: int) -> int:
    """The Installed-Size an OpenWrt index would give for ``size`` bytes of files."""
    return size // COMPRESSION


# --------------------------------------------------------------------------- #
# per target resolution
# --------------------------------------------------------------------------- #


class TargetView:
    """The packages one target of one release can install."""

    def __init__(self, rel: Release, target: str):
        self.rel = rel
        self.target = target
        self.cache: dict[str, dict | None] = {}

    def _kernel(self) -> dict:
        k = self.rel.meta["linux_kernel"]
        if self.rel.version[:2] >= "24":
            version = f"{k['version']}~{k['vermagic']}-r{k['release']}"
        else:
            version = f"{k['version']}-{k['release']}-{k['vermagic']}"
        return make_pkg(
            name="kernel",
            version=version,
            section="sys",
            # the kernel package is metadata only: the ImageBuilder carries the
            # kernel image itself (KERNEL_BUILD_DIR)
            installed_size=0,
            description="Linux kernel",
            feed="target",
            origin="derived",
        )

    def get(self, canon_name: str) -> dict | None:
        if canon_name not in self.cache:
            self.cache[canon_name] = self._get(canon_name)
        return self.cache[canon_name]

    def _get(self, canon_name: str) -> dict | None:
        if canon_name == "kernel":
            return self._kernel()
        over = self.rel.sup.get("target_overrides", {}).get(self.target, {})
        kmod = self.rel.sup["kmods"].get(canon_name)
        if kmod is not None:
            if isinstance(kmod, list):
                kmod = {"depends": kmod}
            only = kmod.get("targets")
            if only and self.target not in only:
                return None
            if self.rel.version in kmod.get("absent", []):
                return None
        pkg = self.rel.package(canon_name)
        if kmod is not None:
            pkg = self._kmod(canon_name, pkg, kmod)
        if pkg is not None and canon_name in over:
            pkg = copy.deepcopy(pkg)
            self.rel._amend(pkg, over[canon_name])
            pkg = self.rel._finish(pkg["name"], pkg)
        return pkg

    def _kmod(self, name: str, pkg: dict | None, kmod: dict) -> dict:
        """Apply the supplement's kmod facts (dependencies, sizes)."""
        known = self.rel.known_version
        if pkg is None:
            version = known.get(name) or known.get(kmod.get("version_like", ""))
            pkg = make_pkg(
                version=version or self.rel.kmod_version,
                origin="knowledge",
                feed="target",
            )
        else:
            pkg = copy.deepcopy(pkg)
            if pkg["origin"] == "sample":
                return pkg
            if name not in known and kmod.get("version_like") in known:
                pkg["version"] = known[kmod["version_like"]]
            pkg["origin"] += "+knowledge"
        pkg["section"] = pkg["section"] or "kernel"
        deps = kmod.get("releases_depends", {}).get(
            self.rel.version, kmod.get("depends")
        )
        if deps is not None:
            pkg["depends"] = [self.rel.map_dep(d) for d in deps]
        if "size" in kmod:
            pkg["installed_size"] = compressed_size(kmod["size"])
        for key in ("description", "provides", "conflicts"):
            if key in kmod:
                pkg[key] = kmod[key]
        if not pkg["description"]:
            pkg["description"] = "Kernel module"
        return self.rel._finish(name, pkg)


def provider_index(pkgs: dict[str, dict]) -> dict[str, list[str]]:
    idx: dict[str, list[str]] = {}
    for name, pkg in pkgs.items():
        for prov in pkg["provides"]:
            idx.setdefault(prov, []).append(name)
    return idx


# --------------------------------------------------------------------------- #
# the world of one release
# --------------------------------------------------------------------------- #


class World:
    def __init__(self, rel: Release, profiles: dict[str, dict], extras: list[str]):
        self.rel = rel
        self.profiles = profiles
        self.extras = extras
        self.views = {t: TargetView(rel, t) for t in WORLD_TARGETS}
        self.missing: list[str] = []
        self.feeds: dict[str, dict] = {}
        self.targets: dict[str, dict[str, dict]] = {t: {} for t in WORLD_TARGETS}

    def roots(self, target: str) -> list[str]:
        data = self.profiles[target]
        names = list(data["default_packages"])
        for prof in data["profiles"].values():
            names += [p for p in prof["device_packages"] if not p.startswith("-")]
        return names

    def lookup(self, view: TargetView, name: str) -> dict | None:
        """A package by real, canonical or virtual name."""
        pkg = view.get(self.rel.canon(name))
        if pkg is not None:
            return pkg
        for cand in self.rel.provider_candidates(name):
            pkg = view.get(cand)
            if pkg is not None and name in pkg["provides"]:
                return pkg
        return None

    def close(self, target: str, roots: list[str]) -> None:
        view = self.views[target]
        todo = list(roots)
        seen: set[str] = set()
        have = self.targets[target]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            for alt in [a.strip() for a in name.split("|")]:
                pkg = self.lookup(view, alt)
                if pkg is not None:
                    break
            else:
                self.missing.append(f"{target}: {name}")
                continue
            if pkg["feed"] == "target":
                have[pkg["name"]] = pkg
            else:
                prev = self.feeds.get(pkg["name"])
                if prev is not None and prev["depends"] != pkg["depends"]:
                    raise DataError(
                        f"{self.rel.version}: {pkg['name']} differs between targets"
                    )
                self.feeds[pkg["name"]] = pkg
            todo.extend(pkg["depends"])

    def build(self) -> None:
        extras = []
        for name in self.extras:
            if self.lookup(self.views["x86/64"], name) is not None:
                extras.append(name)
        self.extras_present = extras
        for target in WORLD_TARGETS:
            self.close(target, self.roots(target) + extras)
        # every feed package must be installable on every target
        while True:
            before = (len(self.feeds), sum(len(v) for v in self.targets.values()))
            for target in WORLD_TARGETS:
                self.close(target, sorted(self.feeds))
            after = (len(self.feeds), sum(len(v) for v in self.targets.values()))
            if before == after:
                break
        problems = sorted(set(self.missing)) + sorted(set(self.rel.problems))
        if problems:
            raise DataError(
                f"{self.rel.version}: cannot resolve:\n  " + "\n  ".join(problems)
            )
        self.check()

    def available(self, target: str) -> tuple[set[str], dict[str, list[str]]]:
        pkgs = {**self.feeds, **self.targets[target]}
        return set(pkgs), provider_index(pkgs)

    def check(self) -> None:
        errors = []
        for target in WORLD_TARGETS:
            names, provs = self.available(target)
            pkgs = {**self.feeds, **self.targets[target]}
            for name, pkg in sorted(pkgs.items()):
                for dep in pkg["depends"]:
                    alts = [a.strip() for a in dep.split("|")]
                    if not any(a in names or a in provs for a in alts):
                        errors.append(f"{target}: {name} depends on {dep}: unsatisfied")
            for pname in self.roots(target) + self.extras_present:
                if pname not in names and pname not in provs:
                    errors.append(f"{target}: {pname} is not installable")
        # conflicts that must exist, as upstream has them
        for name, must in self.rel.sup["required_conflicts"].items():
            pkg = self.feeds.get(name)
            if pkg is None:
                if name in self.extras_present:
                    errors.append(f"{name} is an extra but not in the feeds")
                continue
            for other in must:
                if other not in pkg["conflicts"]:
                    errors.append(f"{name} must conflict with {other}")
        # a name is either a feed package or a target package, never both
        for target, pkgs in self.targets.items():
            for name in sorted(set(pkgs) & set(self.feeds)):
                errors.append(f"{target}: {name} is both a feed and a target package")
        if errors:
            raise DataError(f"{self.rel.version}:\n  " + "\n  ".join(errors))

    def as_json(self) -> dict:
        meta = self.rel.meta
        feeds: dict[str, dict] = {f: {} for f in FEEDS}
        for name, pkg in self.feeds.items():
            feeds[pkg["feed"]][name] = export_pkg(pkg)
        targets = {
            t: {n: export_pkg(p) for n, p in sorted(pkgs.items())}
            for t, pkgs in self.targets.items()
        }
        sizes = {}
        release_sizes = self.rel.sup["image_size_kb_release"].get(self.rel.version, {})
        for target in WORLD_TARGETS:
            if target == "x86/64":
                continue
            table = dict(self.rel.sup["image_size_kb"][target])
            table.update(release_sizes.get(target, {}))
            keep = {"default": table["default"]}
            for pid in self.profiles[target]["profiles"]:
                if pid in table:
                    keep[pid] = table[pid]
            sizes[target] = keep
        return {
            "version": self.rel.version,
            "package_format": self.rel.fmt,
            "version_code": meta["version_code"],
            "source_date_epoch": meta["source_date_epoch"],
            "linux_kernel": meta["linux_kernel"],
            "rootfs_partsize_mb": self.rel.sup["rootfs_partsize_mb"],
            "kernel_size": self.rel.sup["kernel_size"],
            "image_size_kb": sizes,
            "feeds": feeds,
            "targets": targets,
        }


def export_pkg(pkg: dict) -> dict:
    out = {"version": pkg["version"]}
    for key in ("depends", "provides", "conflicts"):
        if pkg[key]:
            out[key] = list(pkg[key])
    for key in ("section", "abi_version", "description"):
        if pkg.get(key):
            out[key] = pkg[key]
    out["installed_size"] = int(pkg["installed_size"])
    return out


# --------------------------------------------------------------------------- #
# profiles
# --------------------------------------------------------------------------- #


#: profiles the derived releases must carry (tests and the demo use them)
MUST_KEEP = {
    "ath79/generic": ("tplink_archer-c7-v5", "tplink_archer-c7-v2"),
    "ramips/mt7621": ("xiaomi_mi-router-4a-gigabit",),
    "mediatek/filogic": ("openwrt_one", "bananapi_bpi-r3"),
    "x86/64": ("generic",),
}


def rewrite_names(obj, old: str, new: str):
    """Replace an image prefix everywhere in a profile."""
    if isinstance(obj, dict):
        return {k: rewrite_names(v, old, new) for k, v in obj.items()}
    if isinstance(obj, list):
        return [rewrite_names(v, old, new) for v in obj]
    if isinstance(obj, str):
        return obj.replace(old, new)
    return obj


def derive_profiles(samples: Samples, sup: dict, version: str) -> dict[str, dict]:
    """profiles.json of the four world targets for a later release."""
    meta = sup["releases"][version]
    rules = sup["profiles"][version]
    out = {}
    for target in WORLD_TARGETS:
        src = samples.profiles_2305[target]
        data = {k: copy.deepcopy(v) for k, v in src.items() if k != "profiles"}
        data["version_number"] = version
        data["version_code"] = meta["version_code"]
        data["source_date_epoch"] = meta["source_date_epoch"]
        data["linux_kernel"] = dict(meta["linux_kernel"])
        defaults = [
            p for p in data["default_packages"] if p not in rules["drop_defaults"]
        ]
        for old, new in rules.get("replace_defaults", {}).items():
            defaults = [new if p == old else p for p in defaults]
        defaults += rules.get("add_defaults", {}).get(target, [])
        defaults = [
            p
            for p in defaults
            if p not in rules.get("remove_defaults", {}).get(target, [])
        ]
        data["default_packages"] = sorted(set(defaults))
        keep = sup["profiles"]["keep"].get(target)
        unknown = sorted(set(keep or []) - set(src["profiles"]))
        if unknown:
            raise DataError(f"{target}: no 23.05.4 profile {', '.join(unknown)}")
        profiles = {}
        for pid, prof in sorted(src["profiles"].items()):
            if keep is not None and pid not in keep:
                continue
            prof = rewrite_names(prof, "openwrt-23.05.4-", f"openwrt-{version}-")
            for image in prof.get("images", []):
                image.pop("sha256", None)
                image.pop("sha256_unsigned", None)
            extra = rules.get("add_device_packages", {}).get(target)
            if extra and any(p in prof["device_packages"] for p in extra["if_any"]):
                for p in extra["add"]:
                    if p not in prof["device_packages"]:
                        prof["device_packages"].append(p)
            profiles[pid] = prof
        for pid, prof in sup["profiles"].get("new", {}).get(target, {}).items():
            prof = json.loads(json.dumps(prof).replace("@VERSION@", version))
            profiles[pid] = prof
        data["profiles"] = profiles
        missing = [p for p in MUST_KEEP.get(target, ()) if p not in profiles]
        if missing:
            raise DataError(f"{version} {target}: must keep {', '.join(missing)}")
        out[target] = data
    if version == "24.10.4":
        out["x86/64"] = x86_2410(samples, out["x86/64"])
    if version == "25.12.0":
        out["x86/64"] = x86_2512(samples, version)
    return out


def x86_2410(samples: Samples, derived: dict) -> dict:
    """24.10.4 x86/64: the ImageBuilder's metadata, with the release's image list."""
    ib = samples.ib_profiles_2410
    data = copy.deepcopy(derived)
    for key in (
        "arch_packages",
        "default_packages",
        "linux_kernel",
        "metadata_version",
        "source_date_epoch",
        "target",
        "version_code",
        "version_number",
    ):
        data[key] = copy.deepcopy(ib[key])
    info_defaults = re.search(r"^Default Packages: (.*)$", samples.ib_info_2410, re.M)
    if info_defaults and set(info_defaults.group(1).split()) != set(
        ib["default_packages"]
    ):
        raise DataError("24.10.4 make info and profiles.json disagree on defaults")
    generic = data["profiles"]["generic"]
    generic["device_packages"] = list(ib["profiles"]["generic"]["device_packages"])
    return data


def x86_2512(samples: Samples, version: str) -> dict:
    """25.12 x86/64: the real build's profiles.json, named as the release would."""
    data = copy.deepcopy(samples.profiles_2512_x86)
    old = data["version_number"]
    data["version_number"] = version
    prefix_old = "openwrt-x86-64-"
    prefix_new = f"openwrt-{version}-x86-64-"
    data["profiles"] = rewrite_names(data["profiles"], prefix_old, prefix_new)
    if not old.startswith(version.rsplit(".", 1)[0]):
        raise DataError(f"25.12 sample is {old}, not a 25.12 build")
    return data


# --------------------------------------------------------------------------- #
# output
# --------------------------------------------------------------------------- #


def dump_gz(path: Path, obj) -> int:
    raw = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    data = gzip.compress(raw, compresslevel=9, mtime=0)
    path.write_bytes(data)
    return len(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", nargs="?", default=str(DEFAULT_SAMPLES))
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--supplement", default=str(SUPPLEMENT))
    parser.add_argument(
        "--provenance",
        action="store_true",
        help="also list, per world, where each package's data came from",
    )
    args = parser.parse_args(argv)

    samples = Samples(Path(args.samples))
    sup = load_supplement(Path(args.supplement))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    written = {}
    written["profiles-23.05.4.json.gz"] = dump_gz(
        out / "profiles-23.05.4.json.gz", samples.profiles_2305
    )
    for version in RELEASES:
        rel = Release(version, samples, sup)
        if version == "23.05.4":
            profiles = {t: samples.profiles_2305[t] for t in WORLD_TARGETS}
        else:
            profiles = derive_profiles(samples, sup, version)
            written[f"profiles-{version}.json.gz"] = dump_gz(
                out / f"profiles-{version}.json.gz", profiles
            )
        extras = [
            e for e in sup["extras"] if version not in sup["extras_absent"].get(e, [])
        ]
        world = World(rel, profiles, extras)
        world.build()
        data = world.as_json()
        written[f"world-{version}.json.gz"] = dump_gz(
            out / f"world-{version}.json.gz", data
        )
        report(world, data)
        if args.provenance:
            provenance(world)
    total = 0
    for name, size in sorted(written.items()):
        print(f"{name:32} {size:8d} bytes")
        total += size
    print(f"{'total':32} {total:8d} bytes")
    return 0


def report(world: World, data: dict) -> None:
    origins: dict[str, int] = {}
    for pkg in list(world.feeds.values()) + [
        p for t in world.targets.values() for p in t.values()
    ]:
        key = pkg.get("origin", "?").split(":")[0].split("+")[-1]
        origins[key] = origins.get(key, 0) + 1
    print(f"== world {data['version']} ({data['package_format']})")
    for feed, pkgs in data["feeds"].items():
        print(f"   feed {feed:10} {len(pkgs):4d} packages")
    for target, pkgs in data["targets"].items():
        print(f"   target {target:16} {len(pkgs):4d} packages")
    print("   origin: " + ", ".join(f"{k} {v}" for k, v in sorted(origins.items())))


def provenance(world: World) -> None:
    """Print each package's origin: sample, donor:<release>, knowledge, ..."""
    rows: dict[str, set[str]] = {}
    pkgs = list(world.feeds.values())
    for target_pkgs in world.targets.values():
        pkgs += target_pkgs.values()
    for pkg in pkgs:
        rows.setdefault(pkg.get("origin", "?"), set()).add(pkg["name"])
    for origin, names in sorted(rows.items()):
        print(f"   [{origin}] ({len(names)})")
        print("     " + " ".join(sorted(names)))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DataError as exc:
        print(f"offline_data: {exc}", file=sys.stderr)
        sys.exit(1)
