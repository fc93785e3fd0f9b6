"""Finding a build by what the earlier API generations name: an image's sha256
(``image_hash``) or the sha256 of its manifest (``manifest_hash``).

The worker records both when a build finishes, for as long as the build's result
is kept; full SHA-256 values only, so that no two builds can share a name. A build
with a ``defaults`` script (Wi-Fi keys, passwords) is not findable by its images'
checksums, which people post publicly: only its request hash, which only whoever
sent it holds, leads to it.
"""

from __future__ import annotations

import hashlib
import json

from redis import Redis

from asu import redis_keys


def manifest_hash(manifest: dict[str, str]) -> str:
    """The sha256 of a manifest's ``name version`` lines, sorted."""
    text = "".join(f"{name} {manifest[name]}\n" for name in sorted(manifest))
    return hashlib.sha256(text.encode()).hexdigest()


def record(connection: Redis, result: dict, ttl: int, findable: bool = True) -> None:
    """Index a finished build's manifest, and its images unless not ``findable``,
    for ``ttl`` seconds."""
    with connection.pipeline() as pipe:
        for image in result["images"] if findable else ():
            pipe.set(redis_keys.image(image["sha256"]), result["request_hash"], ex=ttl)
        manifest = result["manifest"]
        pipe.set(
            redis_keys.manifest(manifest_hash(manifest)), json.dumps(manifest), ex=ttl
        )
        pipe.execute()


def request_hash_of_image(connection: Redis, image_hash: str) -> str | None:
    """The request hash of the build that produced the image, if still kept."""
    value = connection.get(redis_keys.image(image_hash))
    return value.decode() if value else None


def manifest(connection: Redis, digest: str) -> dict[str, str] | None:
    """The manifest with this hash, if a kept build has it."""
    value = connection.get(redis_keys.manifest(digest))
    return json.loads(value) if value else None
