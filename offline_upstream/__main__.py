"""``python -m offline_upstream generate DIR`` and ``... serve DIR``."""

from __future__ import annotations

import time
from pathlib import Path

import click

from offline_upstream.server import UpstreamServer
from offline_upstream.tree import SNAPSHOT_VERSION_CODE, generate, signing_key


@click.group()
def main() -> None:
    """The offline upstream: a stand-in for the OpenWrt downloads server."""


@main.command("generate")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option(
    "--snapshot-version-code", default=SNAPSHOT_VERSION_CODE, show_default=True
)
def generate_command(dest: Path, snapshot_version_code: str) -> None:
    """Write the downloads tree to DEST (replacing it at once)."""
    started = time.monotonic()
    generate(dest, snapshot_version_code)
    elapsed = time.monotonic() - started
    click.echo(f"offline upstream written to {dest} in {elapsed:.1f} s")


@main.command("serve")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--port", default=0, type=int, help="0 picks a free port.")
def serve_command(root: Path, port: int) -> None:
    """Serve ROOT over HTTP on 127.0.0.1 until interrupted."""
    server = UpstreamServer(root, port, quiet=False)
    click.echo(f"offline upstream at {server.url}", err=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


@main.command("public-key")
def public_key_command() -> None:
    """Print the offline upstream's usign public key (base64 line)."""
    click.echo(signing_key().public_key.to_text().splitlines()[-1])


if __name__ == "__main__":
    main()
