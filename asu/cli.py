"""Commands an operator runs: ``flask --app asu <command>``."""

from __future__ import annotations

import logging

import click
from flask import current_app
from flask.cli import with_appcontext
from rq import Worker

from asu import job_store
from asu.build_queue import get_queue


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--name", default=None, help="Worker name (default: RQ's own).")
@with_appcontext
def worker_command(burst: bool, name: str | None) -> None:
    """Run one RQ worker that builds images."""
    _log_builds()
    connection = current_app.extensions["redis"]
    worker = Worker(
        [get_queue(connection)],
        connection=connection,
        name=name,
        serializer=job_store.SERIALIZER,
        job_monitoring_interval=current_app.config["ASU"].worker_heartbeat_interval,
    )
    worker.work(burst=burst, logging_level="INFO")


def _log_builds() -> None:
    """The build pipeline's own lines (stage times, failures) beside RQ's."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S")
    )
    logger = logging.getLogger("asu")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def register(app) -> None:
    """Add the commands to the app's ``flask`` CLI."""
    from asu.cleanup import cleanup_command
    from asu.janitor_cli import janitor_group

    app.cli.add_command(worker_command)
    app.cli.add_command(cleanup_command)
    app.cli.add_command(janitor_group)
