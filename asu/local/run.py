"""``make run``: the production shape on one machine, in the foreground.

gunicorn serving the app on ``listen``:``port``, ``workers`` RQ workers (one per
core when 0), the janitor updating every ``janitor_interval``, all against
``redis_url``; when that is unset, a private ``redis-server`` keeping its data
under ``var/run/redis/``. Every process logs to our stdout. SIGINT or SIGTERM
stops them all in reverse order: the web server, the janitor, the workers (which
get ``worker_stop_grace`` to finish the builds they are on), Redis. So does any of
them ending on its own (with status 1), so that systemd or a container engine
restarts the lot. Each dies with us should we be SIGKILLed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from asu.config import Config, load_config
from asu.local.services import (
    ProcessGroup,
    flask_command,
    gunicorn_command,
    http_ok,
    redis_password,
    start_redis,
    without_password,
)

REDIS_DIR = Path("var") / "run" / "redis"
#: gunicorn processes, unless ``WEB_CONCURRENCY`` says otherwise (gunicorn's name).
WEB_WORKERS = 2


def worker_count(config: Config) -> int:
    """``workers`` from the configuration, or the number of cores."""
    return config.workers if config.workers > 0 else os.cpu_count() or 1


def _bring_up(group: ProcessGroup) -> None:
    config = load_config()
    env = dict(os.environ)
    if not config.redis_url:
        redis_proc, env["ASU_REDIS_URL"] = start_redis(
            REDIS_DIR, persistent=True, password=redis_password(REDIS_DIR)
        )
        group.adopt("redis-server", redis_proc)
    redis_url = env.get("ASU_REDIS_URL") or config.redis_url
    print(f"redis: {without_password(redis_url)}", flush=True)

    workers = {
        f"worker-{number}": flask_command("worker")
        for number in range(1, worker_count(config) + 1)
    }
    group.start_together(workers, env, grace=config.worker_stop_grace)
    interval = str(config.janitor_interval)
    group.start(
        "janitor", flask_command("janitor", "update", "--interval", interval), env
    )

    bind = f"{config.listen}:{config.port}"
    web_workers = int(os.environ.get("WEB_CONCURRENCY", WEB_WORKERS))
    web = group.start("web", gunicorn_command(bind, workers=web_workers), env)
    url = f"http://{bind}"
    group.wait_until(lambda: http_ok(f"{url}/api/v1/health"), f"web on {url}", web)
    print(f"asu is serving on {url}", flush=True)


def run() -> int:
    """Start everything, serve until a signal, stop everything."""
    group = ProcessGroup()
    status = group.run(lambda: _bring_up(group), watch=True)
    print("asu stopped", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(run())
