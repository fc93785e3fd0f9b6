"""``flask --app asu janitor init|update``: load upstream metadata.

On a terminal each version shows a progress bar over its targets; otherwise (cron,
systemd, a pipe) every loaded target is a plain log line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Sequence

import click
from flask import current_app
from flask.cli import with_appcontext

from asu.config import ConfigError
from asu.metadata import janitor


class TerminalReport:
    """A progress bar per version; warnings between them."""

    def items(self, items: Sequence[str], label: str) -> Iterator[str]:
        with click.progressbar(items, label=label, item_show_func=_shown) as bar:
            yield from bar

    def line(self, message: str) -> None:
        click.echo(message, err=True)

    def detail(self, message: str) -> None:
        """Shown by the progress bar already."""


class LogReport:
    """Plain, timestamped lines."""

    def items(self, items: Sequence[str], label: str) -> Iterable[str]:
        self.line(f"{label}: {len(items)} targets")
        return items

    def line(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{stamp} janitor: {message}")

    detail = line


def _shown(item: str | None) -> str:
    return item or ""


def _report() -> TerminalReport | LogReport:
    return TerminalReport() if sys.stdout.isatty() else LogReport()


def _one_pass(force: bool) -> janitor.Summary:
    started = time.monotonic()
    report = _report()
    try:
        summary = janitor.run(
            current_app.extensions["redis"], current_app.config["ASU"], force, report
        )
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    report.line(
        f"{summary.targets_loaded} target(s) and {summary.feeds_loaded} feed(s) "
        f"loaded, {summary.feeds_skipped} feed(s) skipped for their signature, "
        f"{summary.builds_dropped} cached build(s) dropped, "
        f"{summary.warnings} warning(s) in {time.monotonic() - started:.1f} s"
    )
    return summary


@click.group("janitor")
def janitor_group() -> None:
    """Load upstream metadata into Redis and write the /json/v1 tree."""


@janitor_group.command("init")
@with_appcontext
def init_command() -> None:
    """Fetch and write everything, whatever was loaded before."""
    summary = _one_pass(force=True)
    if summary.failed:
        raise click.ClickException(f"not loaded: {', '.join(summary.failed)}")


@janitor_group.command("update")
@click.option(
    "--interval",
    type=click.IntRange(min=0),
    default=0,
    help="Seconds between passes; 0 (the default) runs one pass.",
)
@with_appcontext
def update_command(interval: int) -> None:
    """Load what changed upstream, asking with conditional requests."""
    while True:
        summary = _one_pass(force=False)
        if not interval:
            break
        time.sleep(interval)
    if summary.failed:
        raise click.ClickException(f"not loaded: {', '.join(summary.failed)}")
