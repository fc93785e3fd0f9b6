"""The distributions the server knows, each with its upstream, keys and branches.

OpenWrt is built from the top-level keys ``upstream_url``, ``upstream_keys``,
``upstream_apk_keys`` and ``branches``. The ``distributions`` key adds others beside
it (or overrides parts of ``openwrt``)::

    distributions:
      lime:
        upstream_url: https://mirror.example.org/lime
        upstream_keys: [RWS...]
        upstream_apk_keys: ["-----BEGIN PUBLIC KEY-----\n..."]
        branches: {"24.10": {"enabled": true}}
        feeds: [base, packages, luci]
        public_url: https://downloads.example.org

``public_url`` is the address the distribution's ImageBuilders name their feeds by
(OpenWrt's: ``https://downloads.openwrt.org``); the worker fetches those feeds from
``upstream_url`` instead.

A branch's settings (``branches.<name>``) override what the janitor derives from
upstream's ``.versions.json``: ``enabled``, ``snapshot``, ``versions``, ``path``,
``path_packages``, ``git_branch``, ``branch_off_rev``, ``release_date``,
``package_changes`` and ``extra_keys`` (more usign keys trusted for that branch).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from asu.build_request import DISTRO, VERSION
from asu.config import Config, ConfigError
from asu.formats.apk_index import is_apk_key

DEFAULT_DISTRO = "openwrt"
#: Where OpenWrt publishes: its ImageBuilders name their feeds by this address.
OPENWRT_PUBLIC_URL = "https://downloads.openwrt.org"
DEFAULT_FEEDS = ("base", "packages", "luci", "routing", "telephony")
FEED = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$", re.ASCII)

#: Facts about OpenWrt's release branches that ``.versions.json`` does not carry.
OPENWRT_BRANCHES: dict[str, dict[str, Any]] = {
    "21.02": {"branch_off_rev": 15812, "release_date": "2021-09-04"},
    "22.03": {"branch_off_rev": 19160, "release_date": "2022-09-06"},
    "23.05": {"branch_off_rev": 23069, "release_date": "2023-10-13"},
    "24.10": {"branch_off_rev": 27990, "release_date": "2025-02-04"},
}

_SETTING_TYPES: dict[str, type | tuple[type, ...]] = {
    "enabled": bool,
    "snapshot": bool,
    "versions": list,
    "path": str,
    "path_packages": str,
    "git_branch": str,
    "branch_off_rev": int,
    "release_date": str,
    "package_changes": list,
    "extra_keys": list,
}
_DISTRIBUTION_KEYS = {
    "upstream_url",
    "upstream_keys",
    "upstream_apk_keys",
    "branches",
    "feeds",
    "public_url",
}


@dataclass(frozen=True)
class Distribution:
    """One distribution: where its upstream is, whom to trust, what to load."""

    name: str
    upstream_url: str
    upstream_keys: tuple[str, ...]
    branches: Mapping[str, Mapping[str, Any]]
    feeds: tuple[str, ...] = DEFAULT_FEEDS
    #: the address its ImageBuilders name their feeds by (its upstream when unset)
    public_url: str = ""
    #: PEM public keys trusted for apk indexes (``packages.adb``)
    apk_keys: tuple[str, ...] = ()

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` on this distribution's upstream."""
        return f"{self.upstream_url.rstrip('/')}/{path.lstrip('/')}"

    def public_urls(self) -> tuple[str, ...]:
        """The addresses that mean this distribution's upstream in a feed URL:
        its public address (over https and http) and ``upstream_url`` itself."""
        public = self.public_url or self.upstream_url
        _, _, rest = public.partition("://")
        return (f"https://{rest}", f"http://{rest}", self.upstream_url)

    @property
    def json_prefix(self) -> str:
        """Where its ``/json/v1`` files live: the root for OpenWrt, else below it."""
        return "" if self.name == DEFAULT_DISTRO else f"distros/{self.name}"


def distributions(config: Config) -> dict[str, Distribution]:
    """Every configured distribution by name, OpenWrt first."""
    openwrt = {
        "upstream_url": config.upstream_url,
        "upstream_keys": config.upstream_keys,
        "upstream_apk_keys": config.upstream_apk_keys,
        "branches": _merge(OPENWRT_BRANCHES, config.branches),
        "public_url": OPENWRT_PUBLIC_URL,
    }
    raw = {DEFAULT_DISTRO: openwrt} | {
        name: settings
        for name, settings in config.distributions.items()
        if name != DEFAULT_DISTRO
    }
    if DEFAULT_DISTRO in config.distributions:
        raw[DEFAULT_DISTRO] = openwrt | _mapping(
            config.distributions[DEFAULT_DISTRO], "distributions.openwrt"
        )
    return {name: _distribution(name, settings) for name, settings in raw.items()}


def get(config: Config, name: str) -> Distribution | None:
    """The distribution called ``name``, or None when it is not configured."""
    return distributions(config).get(name)


def _merge(facts: Mapping[str, Mapping], overrides: Mapping) -> dict:
    merged = {name: dict(settings) for name, settings in facts.items()}
    for name, settings in _mapping(overrides, "branches").items():
        merged[str(name)] = merged.get(str(name), {}) | _mapping(
            settings, f"branches.{name}"
        )
    return merged


def _mapping(value: Any, where: str) -> Mapping:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"config key {where!r}: a mapping is needed")
    return value


def _distribution(name: str, settings: Any) -> Distribution:
    where = f"distributions.{name}"
    settings = _mapping(settings, where)
    if not DISTRO.fullmatch(str(name)):
        raise ConfigError(f"config key {where!r}: not a valid distribution name")
    unknown = sorted(set(settings) - _DISTRIBUTION_KEYS)
    if unknown:
        raise ConfigError(f"config key {where!r}: unknown key(s) {', '.join(unknown)}")
    url = settings.get("upstream_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"config key {where!r}: upstream_url must be an http(s) URL")
    keys = _strings(settings.get("upstream_keys"), f"{where}.upstream_keys")
    if not keys:
        raise ConfigError(f"config key {where!r}: upstream_keys must list a key")
    apk_keys = _strings(settings.get("upstream_apk_keys", ()), f"{where}.apk_keys")
    if not all(is_apk_key(key) for key in apk_keys):
        raise ConfigError(
            f"config key {where!r}: upstream_apk_keys must be PEM public keys"
        )
    feeds = _strings(settings.get("feeds", DEFAULT_FEEDS), f"{where}.feeds")
    if not all(FEED.fullmatch(feed) for feed in feeds):
        raise ConfigError(f"config key {where!r}: feeds must be plain names")
    branches = {
        str(branch): _branch_settings(values, f"{where}.branches.{branch}")
        for branch, values in _mapping(settings.get("branches"), where).items()
    }
    public = settings.get("public_url", "")
    if public and not (isinstance(public, str) and public.startswith("http")):
        raise ConfigError(f"config key {where!r}: public_url must be an http(s) URL")
    return Distribution(name, url, keys, branches, feeds, public, apk_keys)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple):
        raise ConfigError(f"config key {where!r}: a list is needed")
    return tuple(str(item).strip() for item in value if str(item).strip())


def _branch_settings(values: Any, where: str) -> dict[str, Any]:
    values = dict(_mapping(values, where))
    for key, value in values.items():
        expected = _SETTING_TYPES.get(key)
        if expected is None:
            raise ConfigError(f"config key {where!r}: unknown setting {key!r}")
        if not isinstance(value, expected) or (
            expected is int and isinstance(value, bool)
        ):
            raise ConfigError(f"config key {where}.{key}: wrong type")
    for version in values.get("versions", ()):
        if not isinstance(version, str) or not VERSION.fullmatch(version):
            raise ConfigError(f"config key {where}.versions: {version!r} is invalid")
    for key in ("path", "path_packages"):
        if ".." in values.get(key, "").split("/"):
            raise ConfigError(f"config key {where}.{key}: must stay below the root")
    return values
