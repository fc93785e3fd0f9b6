"""The server's configuration: built-in defaults, then ``config.yml``, then ``ASU_*``.

Every top-level key ``some_key`` can be set in the environment as ``ASU_SOME_KEY``:
lists comma-separated, booleans ``true``/``false``, numbers as digits, durations as
``90``, ``30s``, ``15m``, ``1h`` or ``7d``. The result is one typed, frozen object.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: OpenWrt's published usign keys for 21.02, 22.03, 23.05 (and snapshots) and 24.10.
OPENWRT_KEYS = (
    "RWQviwuY4IMGvwLfs6842A0m4EZU1IjczTxKMSk3BQP8DAQLHBwdQiaU",
    "RWRNAX5vHtXWFmt+n5di7XX8rTu0w+c8X7Ihv4oCyD6tzsUwmH0A6kO0",
    "RWS1BD5w+adc3j2Hqg9+b66CvLR7NlHbsj7wjNVj0XGt/othDgIAOJS+",
    "RWTTEMbygz6X95lKDAulctZy3aj15823THXfyrfXgwGbxZlXBd2brNcw",
)

#: OpenWrt's published apk key (PEM) for snapshots; add the keys of apk releases
#: (``openwrt-25.12.pem`` of the openwrt-keyring package) in ``upstream_apk_keys``.
OPENWRT_APK_KEYS = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqDM0+yparYvbHosRPBhvT5Z3MEXz\n"
    "AFYrTnqJrnURywsKpD+ZKCLjPluvoHe/FABIvIuHLvICALA3IMjhm0Z0cA==\n"
    "-----END PUBLIC KEY-----\n",
)

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


#: Seconds. A plain ``int`` at run time (it goes to Redis as it is); as a field's
#: type it says the setting is read from ``90``, ``30s``, ``15m``, ``1h``, ``7d``
#: or ``2w`` (:func:`parse_duration`).
Duration = typing.NewType("Duration", int)


def parse_duration(value: Any) -> Duration:
    """Seconds from ``90``, ``30s``, ``15m``, ``1h``, ``7d`` or ``2w``."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int):
        return Duration(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (use 90, 30s, 15m, 1h or 7d)")
    return Duration(int(match[1]) * _UNIT_SECONDS[match[2]])


@dataclass(frozen=True)
class Config:
    """Every setting of the server; field names are the ``config.yml`` keys."""

    redis_url: str = ""
    upstream_url: str = "https://downloads.openwrt.org"
    upstream_keys: tuple[str, ...] = OPENWRT_KEYS
    upstream_apk_keys: tuple[str, ...] = OPENWRT_APK_KEYS
    public_path: Path = Path("public")
    cache_path: Path = Path("cache")
    port: int = 8000
    listen: str = "127.0.0.1"
    workers: int = 0
    janitor_interval: Duration = Duration(600)
    worker_stop_grace: Duration = Duration(10)
    server_contact: str = "info@openwrt.org"
    allow_defaults: bool = True
    max_defaults_length: int = 20480
    max_custom_rootfs_size_mb: int = 1024
    max_pending_jobs: int = 200
    build_ttl: Duration = Duration(7 * 86400)
    build_defaults_ttl: Duration = Duration(3600)
    build_failure_ttl: Duration = Duration(3600)
    job_timeout: Duration = Duration(600)
    build_memory_mb: int = 4096
    build_processes: int = 512
    build_disk_mb: int = 8192
    imagebuilder_ttl: Duration = Duration(2 * 86400)
    max_package_cache_mb: int = 10240
    branches: dict = field(default_factory=dict)
    distributions: dict = field(default_factory=dict)
    repository_allow_list: tuple[str, ...] = ()
    max_request_bytes: int = 256 * 1024
    max_builds_per_client: int = 50
    client_builds_window: Duration = Duration(3600)
    max_client_builds_in_flight: int = 4
    trusted_proxies: int = 0
    worker_heartbeat_interval: Duration = Duration(30)

    @property
    def store_path(self) -> Path:
        """Where finished builds are kept and served from (``/store/``)."""
        return self.public_path / "store"

    @property
    def package_cache_path(self) -> Path:
        """Where the package files builds fetched are kept (``package_cache``)."""
        return self.cache_path / "packages"

    @property
    def json_path(self) -> Path:
        """Where the static ``/json/v1`` tree is written."""
        return self.public_path / "json" / "v1"


def environ_for(settings: Mapping[str, Any]) -> dict[str, str]:
    """The environment giving a process started from here ``settings``: this
    process's environment without its ``ASU_*`` variables, and one ``ASU_*``
    variable a setting (lists comma-separated, mappings as JSON, which YAML reads)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASU_")}
    for key, value in settings.items():
        if isinstance(value, list | tuple):
            value = ",".join(map(str, value))
        elif isinstance(value, Mapping):
            value = json.dumps(value)
        env[f"ASU_{key.upper()}"] = str(value)
    return env


def _convert(key: str, annotation: Any, value: Any) -> Any:
    """Turn a YAML or environment value into the type the field declares."""
    origin = typing.get_origin(annotation)
    try:
        if annotation is bool:
            return _to_bool(value)
        if annotation is int:
            if isinstance(value, bool):
                raise ValueError("a number is needed")
            return int(value)
        if annotation is Duration:
            return parse_duration(value)
        if annotation is Path:
            return Path(value)
        if annotation is str:
            return "" if value is None else str(value)
        if origin is tuple:
            items = value.split(",") if isinstance(value, str) else list(value or ())
            return tuple(str(item).strip() for item in items if str(item).strip())
        if annotation is dict:
            return _to_dict(value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"config key {key!r}: {error}") from None
    raise ConfigError(f"config key {key!r}: unsupported type {annotation!r}")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r} (use true or false)")


def _to_dict(value: Any) -> dict:
    if isinstance(value, str):
        value = yaml.safe_load(value) if value.strip() else {}
    if not isinstance(value, Mapping):
        raise ValueError("a mapping is needed")
    return dict(value)


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config)}


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return data


def load_config(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the configuration from defaults, the YAML file, ``ASU_*`` and overrides.

    The file is ``$ASU_CONFIG`` when set, else ``config.yml`` in the working
    directory when it exists. ``overrides`` (from ``create_app(config=...)``) win.
    """
    environ = os.environ if environ is None else environ
    types_by_key = _field_types()
    raw: dict[str, Any] = {}

    config_file = environ.get("ASU_CONFIG")
    if config_file:
        raw.update(_read_yaml(Path(config_file)))
    elif Path("config.yml").is_file():
        raw.update(_read_yaml(Path("config.yml")))

    for key in types_by_key:
        env_value = environ.get(f"ASU_{key.upper()}")
        if env_value is not None:
            raw[key] = env_value
    raw.update(overrides or {})

    unknown = sorted(set(raw) - set(types_by_key))
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
    values = {key: _convert(key, types_by_key[key], raw[key]) for key in raw}
    return Config(**values)
