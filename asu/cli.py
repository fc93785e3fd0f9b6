"""Commands an operator runs: ``flask --app asu <command>``."""

from __future__ import annotations

import logging
import os

import click
from flask import current_app
from flask.cli import with_appcontext
from rq import Worker

from asu import build_runs, job_store
from asu.local.parent_death import die_with_parent
from asu.queue.build_queue import get_queue


class BuildWorker(Worker):
    """RQ's worker, whose work horse (the process running a build) dies with it.

    RQ puts the horse in a process group of its own, so a worker SIGKILLed, or
    stopped by its supervisor's death, would otherwise leave its build running
    unseen; this way the build ends and its job counts as interrupted.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.worker_pid = os.getpid()

    def main_work_horse(self, job, queue) -> None:
        die_with_parent(self.worker_pid)
        os.environ[build_runs.WORK_HORSE] = "1"
        super().main_work_horse(job, queue)


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--name", default=None, help="Worker name (default: RQ's own).")
@with_appcontext
def worker_command(burst: bool, name: str | None) -> None:
    """Run one RQ worker that builds images."""
    _log_builds()
    connection = current_app.extensions["redis"]
    worker = BuildWorker(
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
    from asu.metadata.commands import janitor_group
    from asu.queue.cleanup import cleanup_command

    app.cli.add_command(worker_command)
    app.cli.add_command(cleanup_command)
    app.cli.add_command(janitor_group)
