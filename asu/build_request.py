"""A build request: parsed, checked against strict patterns, normalised and hashed.

Every API generation turns what its clients send into a :class:`BuildRequest` here,
so that nothing a client sends reaches a shell, a ``make`` variable or a file path
unchecked, and so that identical requests get the same hash whichever API they
came through.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from asu.config import Config
from asu.formats.apk_index import is_apk_key
from asu.formats.usign import PublicKey, UsignError


class RequestError(Exception):
    """A request the server refuses, with a ``detail`` naming what to change.

    The parts that refuse requests subclass it to say why (an unknown package, a
    full queue); ``asu.api.errors`` alone turns each into an HTTP status.
    ``retry_after`` is the seconds after which the same request may succeed.
    """

    def __init__(self, detail: str, retry_after: int | None = None):
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


VERSION = re.compile(
    r"^(?:[0-9]{2}\.[0-9]{2}(?:\.[0-9]{1,3}(?:-rc[0-9]{1,2})?|-SNAPSHOT)|SNAPSHOT)$"
)
#: One half of ``target/subtarget``.
TARGET_PART = r"[a-z0-9][a-z0-9_-]{0,31}"
TARGET = re.compile(rf"^{TARGET_PART}/{TARGET_PART}$", re.ASCII)
PROFILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_,.+-]{0,99}$", re.ASCII)
PACKAGE = re.compile(r"^[a-z0-9][a-z0-9_.+-]{0,127}$", re.ASCII)
PACKAGE_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+~:-]{0,99}$", re.ASCII)
VERSION_CODE = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9_.+~-]{0,63})?$", re.ASCII)
DISTRO = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$", re.ASCII)
CLIENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+~:/@ -]{0,99}$", re.ASCII)
REPOSITORY_NAME = re.compile(r"^(?!\.{1,2}$)[\w.-]{1,64}$", re.ASCII)
REPOSITORY_URL = re.compile(r"^https?://[A-Za-z0-9._~:/%+-]{1,500}$", re.ASCII)
ESCAPING_URL_PATH = re.compile(r"(?:^|/)\.{1,2}(?:/|$)|//|%2e|%2f|%5c", re.IGNORECASE)
#: The full SHA-256 naming a build (``request_hash``, ``bin_dir``).
REQUEST_HASH = re.compile(r"^[0-9a-f]{64}$", re.ASCII)
REPOSITORY_KEY = re.compile(r"^[A-Za-z0-9+/]{40,120}={0,2}$", re.ASCII)
#: ``auc (0.3.2)``: a name, a space and the version in parentheses.
AGENT_WITH_VERSION = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9_.+-]{0,49}) \(([A-Za-z0-9][A-Za-z0-9_.+~-]{0,48})\)",
    re.ASCII,
)

FILESYSTEMS = ("squashfs", "ext4", "ubifs", "jffs2")
REPOSITORIES_MODES = ("append", "replace")
MAX_PACKAGES = 500
#: More digits than any size a server allows.
MAX_SIZE_DIGITS = 9
MAX_REPOSITORIES = 16
#: a PEM RSA key of 4096 bits is about 800 bytes
MAX_PEM_KEY = 2000


@dataclass(frozen=True)
class BuildRequest:
    """A checked, normalised request; ``hash`` identifies the image it asks for."""

    version: str
    target: str
    profile: str
    distro: str = "openwrt"
    packages: tuple[str, ...] = ()
    packages_versions: dict[str, str] = field(default_factory=dict)
    diff_packages: bool = False
    defaults: str = ""
    rootfs_size_mb: int | None = None
    filesystem: str = ""
    version_code: str = ""
    repositories: dict[str, str] = field(default_factory=dict)
    repository_keys: tuple[str, ...] = ()
    repositories_mode: str = "replace"
    client: str = ""

    @property
    def hash(self) -> str:
        """The full SHA-256 of every field that changes the image."""
        return hashlib.sha256(_canonical(self.hashed_fields())).hexdigest()

    def hashed_fields(self) -> dict[str, Any]:
        """What identifies the image: the package set sorted and without repeats."""
        fields = asdict(self)
        del fields["client"]
        fields["packages"] = sorted(set(self.packages))
        fields["repository_keys"] = sorted(set(self.repository_keys))
        return fields

    def as_dict(self) -> dict[str, Any]:
        """The normalised request, as a job carries it."""
        data = asdict(self)
        data["packages"] = list(self.packages)
        data["repository_keys"] = list(self.repository_keys)
        return data

    def echo(self) -> dict[str, Any]:
        """The normalised request as echoed back to clients in ``request``: a
        text field the client left out is null, not an empty string (``owut``
        tests ``request.defaults`` and shows ``request.version_code``)."""
        return {
            key: None if key in _ABSENT_WHEN_EMPTY and not value else value
            for key, value in self.as_dict().items()
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BuildRequest:
        """A request back from :meth:`as_dict` (as a job carries it)."""
        return cls(
            **data
            | {
                "packages": tuple(data.get("packages", ())),
                "repository_keys": tuple(data.get("repository_keys", ())),
            }
        )

    def with_profile(self, profile: str) -> BuildRequest:
        """The same request for the profile an alias resolved to."""
        return replace(self, profile=profile)

    def with_target(self, target: str) -> BuildRequest:
        """The same request for the target its profile was found in."""
        return replace(self, target=target)


#: Text fields whose empty value means the client did not send them.
_ABSENT_WHEN_EMPTY = frozenset({"defaults", "filesystem", "version_code", "client"})


def _canonical(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def parse_build_request(
    body: Any, config: Config, user_agent: str = "", *, target_optional: bool = False
) -> BuildRequest:
    """Check ``body`` (decoded JSON) field by field; raise :class:`RequestError`.

    Every field is checked here, before anything looks a value up, whichever API
    generation it came through. Fields the server does not know are ignored:
    clients add fields over time. With ``target_optional`` (2020 clients send
    none) a missing target stays empty, for :func:`asu.metadata.lookup.resolve` to find
    from the profile.
    """
    if not isinstance(body, Mapping):
        raise RequestError("the request body must be a JSON object")

    packages_versions = _packages_versions(body.get("packages_versions"))
    packages = (
        tuple(packages_versions)
        if packages_versions
        else _packages(body.get("packages"), "packages")
    )
    return BuildRequest(
        distro=matching(body, "distro", DISTRO, default="openwrt"),
        version=matching(body, "version", VERSION, required=True),
        target=matching(body, "target", TARGET, required=not target_optional),
        profile=_profile(body.get("profile")),
        packages=packages,
        packages_versions=packages_versions,
        diff_packages=_boolean(body, "diff_packages"),
        defaults=_defaults(body.get("defaults"), config),
        rootfs_size_mb=_rootfs_size(body.get("rootfs_size_mb"), config),
        filesystem=_filesystem(body.get("filesystem")),
        version_code=matching(body, "version_code", VERSION_CODE, default=""),
        repositories=_repositories(body.get("repositories"), config),
        repository_keys=_repository_keys(body.get("repository_keys")),
        repositories_mode=_repositories_mode(body.get("repositories_mode")),
        client=_client(body.get("client"), user_agent),
    )


def _show(value: Any, limit: int = 60) -> str:
    """A value quoted for an error message, shortened and without control bytes."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def matching(
    body: Mapping, key: str, pattern: re.Pattern, required=False, default=""
) -> str:
    """``body[key]`` when it is a string that fits ``pattern``, else a 400."""
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise RequestError(f"{key} is required")
        return default
    if not isinstance(value, str):
        raise RequestError(f"{key} must be a string, not {type(value).__name__}")
    if not pattern.fullmatch(value):
        raise RequestError(f"{key} {_show(value)} is not valid")
    return value


def _profile(value: Any) -> str:
    if value is None or value == "":
        raise RequestError("profile is required")
    if not isinstance(value, str):
        raise RequestError(f"profile must be a string, not {type(value).__name__}")
    if not PROFILE.fullmatch(value):
        raise RequestError(f"profile {_show(value)} is not valid")
    return value


def _package_name(value: Any, key: str) -> str:
    """A package to add (``name``, or ``name=version`` as apk takes it) or to
    remove (``-name``); a leading ``+`` is dropped."""
    if not isinstance(value, str):
        raise RequestError(f"{key} must list strings, not {type(value).__name__}")
    name = value.removeprefix("+")
    removal = name.startswith("-")
    bare, constrained, version = (name[1:] if removal else name).partition("=")
    if not PACKAGE.fullmatch(bare) or (
        constrained and (removal or not PACKAGE_VERSION.fullmatch(version))
    ):
        raise RequestError(f"{key}: package name {_show(value)} is not valid")
    return name


def _packages(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RequestError(f"{key} must be a list of package names")
    if len(value) > MAX_PACKAGES:
        raise RequestError(f"{key} lists {len(value)} packages, at most {MAX_PACKAGES}")
    names = (_package_name(item, key) for item in value)
    return tuple(dict.fromkeys(names))


def _packages_versions(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RequestError("packages_versions must be an object {package: version}")
    if len(value) > MAX_PACKAGES:
        raise RequestError(f"packages_versions has more than {MAX_PACKAGES} entries")
    result = {}
    for name, version in value.items():
        name = _package_name(name, "packages_versions")
        if name.startswith("-") or "=" in name:
            raise RequestError(f"packages_versions: {_show(name)} is not a plain name")
        if not isinstance(version, str) or not PACKAGE_VERSION.fullmatch(version):
            raise RequestError(
                f"packages_versions: version {_show(version)} of {name} is not valid"
            )
        result[name] = version
    return result


def _boolean(body: Mapping, key: str) -> bool:
    value = body.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RequestError(f"{key} must be true or false")
    return value


def _defaults(value: Any, config: Config) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise RequestError("defaults must be a string (a shell script)")
    if not config.allow_defaults:
        raise RequestError("defaults: this server does not accept first-boot scripts")
    size = utf8_size(value)
    if size > config.max_defaults_length:
        raise RequestError(
            f"defaults is {size} bytes, at most {config.max_defaults_length} allowed"
        )
    if "\x00" in value:
        raise RequestError("defaults must not contain NUL bytes")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError("defaults must be UTF-8 text, not lone surrogates") from None
    return value


def utf8_size(text: str) -> int:
    """Bytes ``text`` takes as UTF-8, lone surrogates (JSON allows them) too."""
    return len(text.encode("utf-8", "surrogatepass"))


def _rootfs_size(value: Any, config: Config) -> int | None:
    if value is None or value == "":
        return None
    limit = config.max_custom_rootfs_size_mb
    out_of_range = RequestError(f"rootfs_size_mb must be between 1 and {limit}")
    if isinstance(value, bool):
        raise RequestError("rootfs_size_mb must be a number of megabytes")
    if isinstance(value, str):
        digits = value.strip()
        if not digits.isascii() or not digits.isdigit():
            raise RequestError(f"rootfs_size_mb {_show(value)} is not a number")
        if len(digits.lstrip("0")) > MAX_SIZE_DIGITS:  # not thousands of digits
            raise out_of_range
        value = int(digits)
    if not isinstance(value, int):
        raise RequestError("rootfs_size_mb must be a number of megabytes")
    if not 1 <= value <= limit:
        raise out_of_range
    return value


def _filesystem(value: Any) -> str:
    if value is None or value == "":
        return ""
    if value not in FILESYSTEMS:
        choices = ", ".join(FILESYSTEMS)
        raise RequestError(f"filesystem {_show(value)} is not one of {choices}")
    return value


def _repositories(value: Any, config: Config) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RequestError("repositories must be an object {name: url}")
    if len(value) > MAX_REPOSITORIES:
        raise RequestError(f"repositories: at most {MAX_REPOSITORIES} feeds")
    result = {}
    for name, url in sorted(value.items()):
        if not isinstance(name, str) or not REPOSITORY_NAME.fullmatch(name):
            raise RequestError(f"repositories: name {_show(name)} is not valid")
        if not isinstance(url, str) or not REPOSITORY_URL.fullmatch(url):
            raise RequestError(f"repositories: URL of {name} is not an http(s) URL")
        url = url.removesuffix("/packages.adb")  # an apk feed: its directory
        if not _feed_allowed(url, config.repository_allow_list):
            raise RequestError(
                f"repositories: {_show(url)} is not on this server's allow-list"
            )
        result[name] = url
    return result


def _feed_allowed(url: str, allow_list: tuple[str, ...]) -> bool:
    """Whether ``url`` lies below an allowed prefix, in whole path segments, with
    nothing a server would resolve to another place (``..``, ``//``, ``%2e``)."""
    if ESCAPING_URL_PATH.search(url.split("://", 1)[1]):
        return False
    return any(
        url == prefix or url.startswith(prefix.rstrip("/") + "/")
        for prefix in allow_list
    )


def _repository_keys(value: Any) -> tuple[str, ...]:
    """usign public keys (opkg feeds) and PEM public keys (apk feeds)."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_REPOSITORIES:
        raise RequestError("repository_keys must be a list of public keys")
    for key in value:
        if not isinstance(key, str) or not (_is_usign_key(key) or _is_pem_key(key)):
            raise RequestError(
                f"repository_keys: {_show(key)} is neither a usign key "
                "nor a PEM public key (apk)"
            )
    return tuple(key.replace("\\n", "\n") for key in value)  # PEM on one line


def _is_pem_key(text: str) -> bool:
    return len(text) <= MAX_PEM_KEY and is_apk_key(text)


def _is_usign_key(text: str) -> bool:
    if not REPOSITORY_KEY.fullmatch(text):
        return False
    try:
        PublicKey.from_text(text)
    except UsignError:
        return False
    return True


def _repositories_mode(value: Any) -> str:
    if value is None or value == "":
        return "replace"
    if value not in REPOSITORIES_MODES:
        raise RequestError("repositories_mode must be append or replace")
    return value


def _client(value: Any, user_agent: str) -> str:
    """``name/version`` for statistics; from ``User-Agent`` when not sent."""
    if isinstance(value, str) and CLIENT.fullmatch(value):
        return value
    if value not in (None, ""):
        raise RequestError(f"client {_show(value)} is not valid (use name/version)")
    return client_from_agent(user_agent)


def client_from_agent(user_agent: str) -> str:
    """The client a ``User-Agent`` names: ``owut/2024.07.01`` as it is, auc's
    ``auc (0.3.2)`` as ``auc/0.3.2``; empty when it names none."""
    parenthesised = AGENT_WITH_VERSION.match(user_agent)
    if parenthesised:
        return f"{parenthesised[1]}/{parenthesised[2]}"
    agent = user_agent.split(" ", 1)[0]
    return agent if CLIENT.fullmatch(agent) else ""
