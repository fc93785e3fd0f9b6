"""The HTTP API described for machines: an OpenAPI 3.1 document of ``/api/v1``
and the ``/json/v1`` files (CONTRACT.md sections 1 and 2).

Built from the rules the server applies, not written beside them: every pattern,
choice and size limit of a build request comes from :mod:`asu.build_request`, the
progress words from :mod:`asu.worker.build`, and the limits that are settings (the
largest first-boot script, ``rootfs_size_mb``, the request body) from the
server's configuration, so that the document and the checks cannot drift apart.
"""

from __future__ import annotations

import re
from typing import Any

import asu
from asu import build_request as rules
from asu.config import Config
from asu.stages import STAGES

JSON = "application/json"
Schema = dict[str, Any]


def _inner(pattern: re.Pattern) -> str:
    """A compiled ``^…$`` pattern without its anchors, to build others from."""
    return pattern.pattern.removeprefix("^").removesuffix("$")


def _text(pattern: re.Pattern | str, optional: bool = False, **extra) -> Schema:
    """A string matching ``pattern`` whole; ``optional``: or empty, or null (the
    server takes both as not sent)."""
    inner = pattern if isinstance(pattern, str) else _inner(pattern)
    if not optional:
        return {"type": "string", "pattern": f"^(?:{inner})$", **extra}
    return {"type": ["string", "null"], "pattern": f"^(?:{inner})?$", **extra}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: dict[str, Schema], optional: dict[str, Schema] | None = None):
    """An object with these fields; others may be there too."""
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }


def _choice(values, optional: bool = True) -> Schema:
    return {"enum": [*values, *(["", None] if optional else [])]}


def package_entry() -> str:
    """A ``packages`` entry: ``name``, ``name=version`` (apk) or ``-name`` (a
    removal), with an optional leading ``+``."""
    name, version = _inner(rules.PACKAGE), _inner(rules.PACKAGE_VERSION)
    return rf"\+?(?:-{name}|{name}(?:={version})?)"


def build_request_schema(config: Config) -> Schema:
    """The body of ``POST /api/v1/build``."""
    usign_key = _text(rules.REPOSITORY_KEY)
    pem_key = {
        "type": "string",
        "pattern": "^-----BEGIN PUBLIC KEY-----",
        "maxLength": rules.MAX_PEM_KEY,
    }
    return {
        **_object(
            {
                "version": _text(rules.VERSION),
                "target": _text(rules.TARGET),
                "profile": _text(rules.PROFILE),
            },
            {
                "packages": {
                    "type": ["array", "null"],
                    "items": _text(package_entry()),
                    "maxItems": rules.MAX_PACKAGES,
                },
                "packages_versions": {
                    "type": ["object", "null"],
                    "propertyNames": _text(rf"\+?{_inner(rules.PACKAGE)}"),
                    "additionalProperties": _text(rules.PACKAGE_VERSION),
                    "maxProperties": rules.MAX_PACKAGES,
                },
                "diff_packages": {"type": ["boolean", "null"]},
                "defaults": {
                    "type": ["string", "null"],
                    "maxLength": config.max_defaults_length,
                    "description": "first-boot script, at most "
                    f"{config.max_defaults_length} bytes of UTF-8"
                    + ("" if config.allow_defaults else " (refused here)"),
                },
                "rootfs_size_mb": {
                    "anyOf": [
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": config.max_custom_rootfs_size_mb,
                        },
                        {"type": "string", "pattern": r"^\s*[0-9]*\s*$"},
                        {"type": "null"},
                    ]
                },
                "filesystem": _choice(rules.FILESYSTEMS),
                "version_code": _text(rules.VERSION_CODE, optional=True),
                "distro": _text(rules.DISTRO, optional=True),
                "client": _text(rules.CLIENT, optional=True),
                "repositories": {
                    "type": ["object", "null"],
                    "propertyNames": _text(rules.REPOSITORY_NAME),
                    "additionalProperties": _text(rules.REPOSITORY_URL),
                    "maxProperties": rules.MAX_REPOSITORIES,
                    "description": "feeds below a prefix of repository_allow_list: "
                    + (", ".join(config.repository_allow_list) or "none"),
                },
                "repository_keys": {
                    "type": ["array", "null"],
                    "items": {"anyOf": [usign_key, pem_key]},
                    "maxItems": rules.MAX_REPOSITORIES,
                },
                "repositories_mode": _choice(rules.REPOSITORIES_MODES),
            },
        ),
        "description": "Fields not listed are ignored.",
    }


def _schemas(config: Config) -> dict[str, Schema]:
    text, integer = {"type": "string"}, {"type": "integer"}
    texts = {"type": "array", "items": text}
    names = {"type": "object", "additionalProperties": text}
    counted = {"type": "array", "items": _object({"name": text, "count": integer})}
    image = _object(
        {"name": text, "type": text, "sha256": _text("[0-9a-f]{64}"), "size": integer},
        {"filesystem": {"type": ["string", "null"]}, "sha256_unsigned": text},
    )
    return {
        "Error": _object({"status": integer, "detail": text}),
        "BuildRequest": build_request_schema(config),
        "Progress": _object(
            {
                "status": {"const": 202},
                "detail": {"enum": ["queued", "started"]},
                "request_hash": _text(rules.REQUEST_HASH),
            },
            {
                "queue_position": {"type": "integer", "minimum": 0},
                "imagebuilder_status": {"enum": sorted(set(STAGES.values()))},
                "stage": {"enum": sorted(STAGES)},
            },
        ),
        "Image": image,
        "Result": _object(
            {
                "status": {"const": 200},
                "detail": {"const": "done"},
                "request_hash": _text(rules.REQUEST_HASH),
                "bin_dir": _text(rules.REQUEST_HASH),
                "images": {"type": "array", "items": _ref("Image"), "minItems": 1},
                "manifest": names,
                "version_number": text,
                "version_code": text,
                "target": _text(rules.TARGET),
                "id": text,
                "titles": {"type": "array"},
                "build_at": text,
                "enqueued_at": text,
                "build_cmd": texts,
                "stdout": text,
                "stderr": text,
                "request": _ref("BuildRequest"),
            },
            {"supported_devices": texts},
        ),
        "Failure": _object(
            {
                "status": {"const": 500},
                "detail": {"type": "string", "pattern": "^Error: "},
                "request_hash": _text(rules.REQUEST_HASH),
                "stdout": text,
                "stderr": text,
            },
            {"error_kind": text},
        ),
        "Health": _object(
            {"status": integer, "redis": {"type": "boolean"}, "version": text},
            {"workers": integer},
        ),
        "Status": _object(
            {
                "version": text,
                "queue_length": integer,
                "workers": integer,
                "workers_busy": integer,
                "janitor_last_run": {"type": ["string", "null"]},
            }
        ),
        "Stats": _object(
            {
                "queue_length": integer,
                "requests": _object(
                    {
                        "total": integer,
                        "hit": integer,
                        "joined": integer,
                        "miss": integer,
                        "hit_ratio": {"type": ["number", "null"]},
                    }
                ),
                "builds": _ref("BuildSummary"),
                "queue_wait_seconds": {"type": "object"},
                "days": {"type": "array"},
                "versions": counted,
                "targets": counted,
                "profiles": counted,
                "clients": counted,
            }
        ),
        "Counted": counted,
        "BuildSummary": _object(
            {
                "succeeded": integer,
                "failed": integer,
                "failures": {"type": "object", "additionalProperties": integer},
                "duration_seconds": {"type": "object"},
                "days": {"type": "array"},
            }
        ),
        "PackageCounts": _object(
            {
                "packages": integer,
                "branches": {"type": "object", "additionalProperties": integer},
            }
        ),
        "Revision": _object({"revision": text}),
        "Device": _object(
            {"target": text, "id": text, "titles": texts, "names": texts}
        ),
        "DeviceDefaults": _object(
            {
                "version": text,
                "version_code": text,
                "target": text,
                "id": text,
                "titles": texts,
                "packages": texts,
                "images": texts,
            }
        ),
        **_json_v1_schemas(text, integer, texts, names),
    }


def _json_v1_schemas(text, integer, texts, names) -> dict[str, Schema]:
    """The ``/json/v1`` files (CONTRACT.md section 2)."""
    change = _object(
        {"revision": integer, "mandatory": {"type": "boolean"}},
        {"source": text, "target": text},
    )
    branch = _object(
        {
            "name": text,
            "enabled": {"type": "boolean"},
            "snapshot": {"type": "boolean"},
            "versions": texts,
            "path": text,
            "path_packages": text,
            "targets": names,
            "branch_off_rev": integer,
            "git_branch": text,
            "release_date": text,
            "package_changes": {"type": "array", "items": change},
        }
    )
    return {
        "Branch": branch,
        "Overview": _object(
            {
                "latest": texts,
                "branches": {"type": "object", "additionalProperties": branch},
                "upstream_url": text,
                "server": _object(
                    {
                        "version": text,
                        "contact": text,
                        "allow_defaults": {"type": "boolean"},
                        "max_custom_rootfs_size_mb": integer,
                        "max_defaults_length": integer,
                        "repository_allow_list": texts,
                        "public_key": text,
                    }
                ),
            }
        ),
        "Latest": _object({"latest": texts}),
        "VersionOverview": _object(
            {
                "branch": text,
                "release": text,
                "image_url": {"type": "string", "pattern": r"/targets/\{target\}$"},
                "profiles": {
                    "type": "array",
                    "items": _object({"id": text, "target": text, "titles": {}}),
                },
            }
        ),
        "ProfileDocument": _object(
            {
                "id": text,
                "target": text,
                "arch_packages": text,
                "build_at": text,
                "metadata_version": {"const": 1},
                "version_code": text,
                "version_number": text,
                "images": {"type": "array", "items": _object({"name": text})},
                "titles": {"type": "array"},
            },
            {"supported_devices": texts, "default_packages": texts},
        ),
        "TargetIndex": _object({"architecture": text, "packages": names}),
        "FeedIndex": names,
    }


# -- operations ------------------------------------------------------------------


def _answer(description: str, schema: str | None = None, **headers: str) -> Schema:
    answer: Schema = {"description": description}
    if schema is not None:
        answer["content"] = {JSON: {"schema": _ref(schema)}}
    if headers:
        answer["headers"] = {
            name.replace("_", "-"): {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return answer


def _error(description: str, **headers: str) -> Schema:
    return _answer(description, "Error", **headers)


_BUSY = _error("the queue is full or Redis is down", Retry_After="seconds")
_PROGRESS = _answer(
    "queued or building: ask again",
    "Progress",
    X_Queue_Position="place in the queue (queued)",
    X_Imagebuilder_Status="init, download_imagebuilder, unpack_imagebuilder, "
    "calculate_packages_hash or building_image (started)",
)
_DONE = _answer("built, now or before", "Result", X_Imagebuilder_Status="done")
_FAILED = _answer("the build failed; detail says what to change", "Failure")


def _parameter(name: str, schema: Schema, description: str = "") -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


def _get(summary: str, responses: dict, parameters: list | None = None, tag="") -> dict:
    operation = {"summary": summary, "responses": responses, "tags": [tag or "api"]}
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}


def _build_paths() -> dict[str, Any]:
    hash_parameter = _parameter("request_hash", _text(rules.REQUEST_HASH))
    poll = {
        "parameters": [hash_parameter],
        "responses": {
            "200": _DONE,
            "202": _PROGRESS,
            "404": _error("no build has this hash"),
            "500": _FAILED,
            "503": _BUSY,
        },
        "tags": ["build"],
    }
    return {
        "/api/v1/build": {
            "post": {
                "summary": "Request a build: validated, hashed, queued or answered "
                "from the cache",
                "tags": ["build"],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("BuildRequest")}},
                },
                "responses": {
                    "200": _DONE,
                    "202": _PROGRESS,
                    "400": _error(
                        "a field is not valid, or names a version, target, profile "
                        "or distribution this server does not know: detail names it"
                    ),
                    "413": _error("the body is larger than the server accepts"),
                    "422": _error(
                        "packages no feed has",
                        X_Unknown_Package="the unknown names, comma separated",
                    ),
                    "429": _error(
                        "too many new builds from this client",
                        Retry_After="seconds",
                    ),
                    "500": _FAILED,
                    "503": _BUSY,
                },
            }
        },
        "/api/v1/build/{request_hash}": {
            "get": {"summary": "The state of a build", **poll},
            "head": {"summary": "The state of a build, headers only", **poll},
        },
    }


def _store_paths() -> dict[str, Any]:
    """``/store/<bin_dir>/<file>``: a finished build's files, each image with its
    usign signature as ``<file>.sig``."""
    parameters = [
        _parameter("bin_dir", _text(rules.REQUEST_HASH), "the result's bin_dir"),
        _parameter("file", _text(r"[^/]+"), "an image's name, or with .sig"),
    ]
    download = {
        "parameters": parameters,
        "tags": ["build"],
        "responses": {
            "200": {
                "description": "the file with its true length",
                "headers": {
                    "Content-Length": {"required": True, "schema": {"type": "string"}}
                },
                "content": {"*/*": {}},
            },
            "404": _error("no such file in the store"),
        },
    }
    return {
        "/store/{bin_dir}/{file}": {
            "get": {"summary": "A file of a build", **download},
            "head": {"summary": "A file of a build, headers only", **download},
        }
    }


def _metadata_paths() -> dict[str, Any]:
    version = _parameter("version", _text(rules.VERSION))
    target = _parameter("target", _text(rules.TARGET_PART))
    subtarget = _parameter("subtarget", _text(rules.TARGET_PART))
    profile = _parameter("profile", _text(rules.PROFILE))
    unknown = _error("a version, target or profile the server does not know")
    moved = {"description": "moved", "headers": {"Location": {"schema": {}}}}
    return {
        "/api/v1/revision/{version}/{target}/{subtarget}": _get(
            "The revision a target of a version is at",
            {"200": _answer("the revision", "Revision"), "400": unknown},
            [version, target, subtarget],
        ),
        "/api/v1/overview": _get("Moved to /json/v1/overview.json", {"301": moved}),
        "/api/v1/latest": _get("Moved to /json/v1/latest.json", {"301": moved}),
        "/api/v1/versions": _get(
            "Versions to build for",
            {
                "200": {
                    "description": "versions, newest release first",
                    "content": {JSON: {"schema": {"type": "array", "items": {}}}},
                }
            },
        ),
        "/api/v1/devices/{version}": _get(
            "Every device of a version",
            {
                "200": {
                    "description": "devices",
                    "content": {
                        JSON: {"schema": {"type": "array", "items": _ref("Device")}}
                    },
                },
                "400": unknown,
            },
            [version],
        ),
        "/api/v1/devices/{version}/{target}/{subtarget}/{profile}": _get(
            "One device and its default packages",
            {"200": _answer("the device", "DeviceDefaults"), "400": unknown},
            [version, target, subtarget, profile],
        ),
    }


def _operations_paths() -> dict[str, Any]:
    down = _answer("Redis is down", "Health")
    return {
        "/api/v1/health": _get(
            "Redis reachable, workers seen",
            {"200": _answer("healthy", "Health"), "503": down},
            tag="operations",
        ),
        "/api/v1/status": _get(
            "Queue, workers and the janitor now",
            {"200": _answer("the state", "Status")},
            tag="operations",
        ),
        "/api/v1/stats": _get(
            "Requests, builds and the most built",
            {"200": _answer("statistics", "Stats")},
            tag="operations",
        ),
        **{
            f"/api/v1/stats/{name}": _get(
                summary,
                {"200": _answer(summary, schema)},
                tag="operations",
            )
            for name, summary, schema in (
                ("popular_packages", "Most built extra packages", "Counted"),
                ("popular_targets", "Most built targets", "Counted"),
                ("images", "Builds succeeded and failed", "BuildSummary"),
                ("packages", "How many different extra packages", "PackageCounts"),
            )
        },
        "/api/v1/openapi.json": _get(
            "This document",
            {"200": {"description": "OpenAPI 3.1", "content": {JSON: {}}}},
            tag="operations",
        ),
    }


def _file(summary: str, schema: str | None, parameters: list | None = None) -> dict:
    """A file of the ``/json/v1`` tree."""
    responses = {"200": _answer(summary, schema), "404": _error("no such file (yet)")}
    return _get(summary, responses, parameters, tag="json")


def _json_v1_paths() -> dict[str, Any]:
    version = _parameter("version", _text(rules.VERSION))
    target = _parameter("target", _text(rules.TARGET_PART))
    subtarget = _parameter("subtarget", _text(rules.TARGET_PART))
    profile = _parameter("profile", _text(rules.PROFILE))
    arch = _parameter("arch", _text(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}"))
    paths = {
        "/json/v1/overview.json": ("Branches, latest releases, the server", "Overview"),
        "/json/v1/branches.json": ("The branch objects", None),
        "/json/v1/latest.json": ("The newest release of each branch", "Latest"),
    }
    found = {path: _file(summary, schema) for path, (summary, schema) in paths.items()}
    found["/json/v1/branches.json"]["get"]["responses"]["200"] = {
        "description": "branches",
        "content": {JSON: {"schema": {"type": "array", "items": _ref("Branch")}}},
    }
    for root, first in (("releases/{version}", [version]), ("snapshots", [])):
        base = f"/json/v1/{root}"
        for path, summary, schema, extra in (
            ("overview.json", "Every profile (2020 selectors)", "VersionOverview", []),
            (
                "targets/{target}/{subtarget}/{profile}.json",
                "One profile",
                "ProfileDocument",
                [target, subtarget, profile],
            ),
            (
                "targets/{target}/{subtarget}/index.json",
                "A target's packages",
                "TargetIndex",
                [target, subtarget],
            ),
            ("packages/{arch}-index.json", "The feeds' packages", "FeedIndex", [arch]),
        ):
            found[f"{base}/{path}"] = _file(summary, schema, [*first, *extra])
    return found


def document(config: Config) -> dict[str, Any]:
    """The OpenAPI 3.1 document of this server, with its configured limits."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "asu: firmware on demand for OpenWrt",
            "version": asu.__version__,
            "description": "Every JSON answer of the build API carries status, the "
            "HTTP code, and detail. Every route allows any origin (CORS). Query "
            "strings are ignored; unknown request fields too. Bodies larger than "
            f"{config.max_request_bytes} bytes are refused (413).",
        },
        "tags": [
            {"name": "build", "description": "Build requests and their state"},
            {"name": "api", "description": "What there is to build"},
            {"name": "json", "description": "The files the janitor writes"},
            {"name": "operations", "description": "Health, state and statistics"},
        ],
        "paths": {
            **_build_paths(),
            **_store_paths(),
            **_metadata_paths(),
            **_operations_paths(),
            **_json_v1_paths(),
        },
        "components": {"schemas": _schemas(config)},
    }
