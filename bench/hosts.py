"""Builds per minute with 1, 2 and 4 RQ workers spread over two build machines,
and what the queue itself costs per build.

The several-machine shape of the README on network namespaces
(:mod:`asu.local.machines`): the server (Redis with a password, gunicorn, the janitor,
the stand-in upstream, 25.12.0 alone) and two build machines. After one build on
each machine has unpacked its ImageBuilder, each layout (1 worker on one machine,
1 on each, 2 on each) builds ``BUILDS`` different requests (x86/64, each with a
``defaults`` script of its own), all posted at once through the API.

From RQ's timestamps and the stage times each build records: the wall time from
the first enqueue to the last end, the mean time a job ran, how much of it was
the ImageBuilder's ``make`` and how much the job's own work around it, the wait of
the first job (dequeue latency) and the queue's own time per build: the gap from
the end of one job to the start of the next on the same worker. Needs root
(``ip netns``); elsewhere it says why and measures nothing. Run alone with
``python -m bench.hosts``.
"""

from __future__ import annotations

import itertools
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import requests
from rq.job import Job, JobStatus

from asu import job_store
from asu.local import netns
from asu.local.machines import Site
from asu.local.netns import SERVER_ADDRESS, Host, Network
from offline_upstream import adb_writer
from offline_upstream.server import UpstreamServer
from offline_upstream.tree import generate, signing_key

VERSION = "25.12.0"
BODY = {"version": VERSION, "target": "x86/64", "profile": "generic"}
#: Builds per layout: a multiple of every worker count.
BUILDS = 12
#: Workers on the first and the second build machine, by worker count.
LAYOUTS = {1: (1, 0), 2: (1, 1), 4: (2, 2)}
_DONE = {JobStatus.FINISHED, JobStatus.FAILED}
#: The stages of a build that are the ImageBuilder's ``make``.
MAKE_STAGES = {"make_info", "make_manifest", "make_image"}


def run() -> str:
    reason = netns.unavailable()
    if reason:
        return f"not measured: {reason}"
    with (
        tempfile.TemporaryDirectory(prefix="asu-bench-hosts-") as scratch,
        Network() as network,
    ):
        return _run(Path(scratch), network)


def _run(scratch: Path, network: Network) -> str:
    tree = generate(scratch / "upstream", only=(VERSION,))
    with network.server.entered():
        upstream = UpstreamServer(tree, host=SERVER_ADDRESS).start()
    settings = {
        "upstream_url": upstream.url,
        "upstream_keys": [signing_key().public_key.to_text().splitlines()[-1]],
        "upstream_apk_keys": [adb_writer.signing_key().public_pem()],
        # One client posts every build at once.
        "max_client_builds_in_flight": 0,
    }
    site = Site(network, scratch / "site", settings)
    try:
        site.start_server()
        machines = [network.add_host("build-a"), network.add_host("build-b")]
        with network.server.entered():
            _warm_up(site, machines)
            rows = [
                _layout(site, machines, workers, placed)
                for workers, placed in LAYOUTS.items()
            ]
    finally:
        upstream.stop()
    return _table(rows)


def _warm_up(site: Site, machines: list[Host]) -> None:
    """One build on each machine: each unpacks its ImageBuilder once."""
    for machine in machines:
        site.start_workers(machine, 1)
    _build_all(site, [BODY | {"defaults": f"echo warm {n}\n"} for n in (1, 2)])
    for machine in machines:
        machine.kill_all()


def _layout(site: Site, machines: list[Host], workers: int, placed) -> dict:
    for machine, count in zip(machines, placed, strict=True):
        if count:
            site.start_workers(machine, count)
    bodies = [
        BODY | {"defaults": f"echo {workers} workers, build {n}\n"}
        for n in range(BUILDS)
    ]
    jobs = _build_all(site, bodies)
    for machine in machines:
        machine.kill_all()
    failed = [job for job in jobs if job.get_status() != JobStatus.FINISHED]
    if failed:
        raise RuntimeError(f"{len(failed)} build(s) failed: {failed[0].exc_info}")
    first = min(job.enqueued_at for job in jobs)
    wall = (max(job.ended_at for job in jobs) - first).total_seconds()
    return {
        "workers": workers,
        "placed": "+".join(str(count) for count in placed if count),
        "wall": wall,
        "job": statistics.mean(_seconds(job.started_at, job.ended_at) for job in jobs),
        "make": statistics.mean(_make_seconds(job) for job in jobs),
        "first_wait": min(_seconds(first, job.started_at) for job in jobs),
        "gap": statistics.mean(_gaps(jobs)),
    }


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


def _make_seconds(job: Job) -> float:
    """The seconds the build spent in ``make`` (its stages, as it recorded them)."""
    stages = job.meta.get("stage_seconds", {})
    return sum(seconds for stage, seconds in stages.items() if stage in MAKE_STAGES)


def _gaps(jobs: list[Job]) -> list[float]:
    """Seconds from the end of one job to the start of the next on each worker."""
    by_worker: dict[str, list[Job]] = {}
    for job in sorted(jobs, key=lambda job: job.started_at):
        by_worker.setdefault(job.worker_name, []).append(job)
    return [
        _seconds(done.ended_at, following.started_at)
        for ran in by_worker.values()
        for done, following in itertools.pairwise(ran)
    ]


def _build_all(site: Site, bodies: list[dict], timeout: float = 600) -> list[Job]:
    """POST every body at once; the jobs, once all of them ended."""
    hashes = [
        requests.post(f"{site.url}/api/v1/build", json=body, timeout=30).json()[
            "request_hash"
        ]
        for body in bodies
    ]
    connection = site.redis()
    deadline = time.monotonic() + timeout
    while True:
        jobs = Job.fetch_many(hashes, connection, job_store.SERIALIZER)
        if all(job is not None and job.get_status() in _DONE for job in jobs):
            return jobs
        if time.monotonic() > deadline:
            raise RuntimeError(f"the builds did not end within {timeout:.0f} s")
        time.sleep(0.1)


def _table(rows: list[dict]) -> str:
    lines = [
        "workers  machines  builds  wall s  builds/min  job s  make s  "
        "rest ms  first wait ms  gap ms"
    ]
    for row in rows:
        lines.append(
            f"{row['workers']:>7}  {row['placed']:>8}  {BUILDS:>6}  "
            f"{row['wall']:>6.1f}  {BUILDS / row['wall'] * 60:>10.1f}  "
            f"{row['job']:>5.2f}  {row['make']:>6.2f}  "
            f"{(row['job'] - row['make']) * 1000:>7.0f}  "
            f"{row['first_wait'] * 1000:>13.0f}  {row['gap'] * 1000:>6.0f}"
        )
    lines += [
        "job: mean time a job ran; make: of it, in the ImageBuilder's make (info, "
        "image);",
        "rest: the job's own time around make (feeds, sandbox set-up, signing, the "
        "store, Redis);",
        "first wait: enqueue to the first start; gap: the queue's own time per "
        "build, from the end",
        "of one job to the start of the next on the same worker",
    ]
    return "\n".join(lines)


def main() -> int:
    print(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
