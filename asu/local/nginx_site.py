"""The project's nginx site (``misc/nginx/asu.conf.template``) run on this machine,
in front of a local app: what the tests and ``make bench`` put behind nginx."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from string import Template

from asu.local.services import free_port, port_open, spawn, wait_until

TEMPLATE = Path(__file__).resolve().parents[2] / "misc/nginx/asu.conf.template"


class NginxUnavailable(RuntimeError):
    """nginx is not installed; the message says which package gives it."""


def binary() -> str:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(found, os.X_OK):
        raise NginxUnavailable("nginx is not installed (Debian package nginx-light)")
    return found


def site(app: str, public_path: Path, cache: Path, port: int) -> str:
    """The site for the app at ``app`` (``host:port``), serving ``public_path``,
    its answers' cache in ``cache``."""
    return Template(TEMPLATE.read_text()).safe_substitute(
        ASU_APP=app,
        ASU_PUBLIC_PATH=str(public_path.resolve()),
        ASU_NGINX_CACHE=str(cache.resolve()),
        NGINX_PORT=str(port),
    )


def start(app: str, public_path: Path, prefix: Path) -> tuple[subprocess.Popen, str]:
    """nginx with the site in front of ``app``, its files in ``prefix``; the
    process and the base URL. Refuses to start a configuration ``nginx -t``
    refuses."""
    port = free_port()
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "asu.conf").write_text(site(app, public_path, prefix / "cache", port))
    user = "user root;" if os.geteuid() == 0 else ""
    (prefix / "nginx.conf").write_text(
        f"{user}\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n"
        "events {}\nhttp {\n  include /etc/nginx/mime.types;\n"
        f"  access_log off;\n  client_body_temp_path {prefix}/body;\n"
        f"  proxy_temp_path {prefix}/proxy;\n  include {prefix}/asu.conf;\n}}\n"
    )
    command = [binary(), "-p", str(prefix), "-c", str(prefix / "nginx.conf")]
    command += ["-e", str(prefix / "error.log")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True)
    if checked.returncode != 0:
        raise RuntimeError(f"nginx refuses the site: {checked.stderr}")
    proc = spawn([*command, "-g", "daemon off;"], log_path=prefix / "output.log")
    wait_until(lambda: port_open(port), "nginx", proc)
    return proc, f"http://127.0.0.1:{port}"
