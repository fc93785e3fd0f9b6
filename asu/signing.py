"""The server's own usign key, which signs every image and ``sha256sums`` it builds.

It is generated on first start under ``cache_path`` and its public half is published
in ``/json/v1/overview.json`` (``server.public_key``).
"""

from __future__ import annotations

import os
from pathlib import Path

from asu.config import Config
from asu.formats.usign import SecretKey, load_or_create_secret_key


def server_key_path(config: Config) -> Path:
    """Where the server's secret key lives; ``.pub`` beside it."""
    return config.cache_path / "keys" / "server.key"


def server_key(config: Config) -> SecretKey:
    """The server's key, created on first use."""
    return load_or_create_secret_key(server_key_path(config))


def public_key_line(config: Config) -> str:
    """The base64 line of the server's public key, as clients configure it."""
    return server_key(config).public_key.to_text().splitlines()[-1]


def sign_file(path: Path, key: SecretKey) -> Path:
    """Write ``<path>.sig``, the usign signature of the file; returns its path."""
    signature = path.with_name(path.name + ".sig")
    temp = signature.with_name(f".{signature.name}.tmp")
    temp.write_text(key.sign(path.read_bytes()))
    os.replace(temp, signature)
    return signature
