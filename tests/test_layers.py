"""How the parts depend on each other, checked on the code itself.

The layering (README, "How the code is laid out"): the core (the modules directly
in ``asu/``) imports no wing; ``metadata`` imports only the core; ``queue`` the
core and ``metadata``; ``worker`` the core and ``metadata``, never Flask; ``api``
everything but the worker; ``local`` (processes on this machine) only the core.
Only ``api`` speaks HTTP: the other parts refuse a request with an exception that
says why, and ``asu.api.errors`` alone gives it a status.
``asu.app`` and ``asu.cli`` wire the wings together. The web process never loads
the build pipeline, and the server never imports the offline upstream (a stand-in
for tests, ``make demo`` and bench, not shipped in the server's image).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from rq.utils import import_attribute

from asu.queue import build_queue
from asu.worker import build

WINGS = ("metadata", "queue", "worker", "api", "local")
#: The parts each part may import.
ALLOWED = {
    "core": {"core"},
    "metadata": {"core", "metadata"},
    "queue": {"core", "metadata", "queue"},
    "worker": {"core", "metadata", "worker"},
    "api": {"core", "metadata", "queue", "api"},
    "local": {"core", "local"},
}
#: The application factory and its commands: they wire every part together.
WIRING = {"asu.app", "asu.cli"}

#: What a command run with ``flask --app asu`` needs of Flask.
COMMANDS = {"flask", "flask.current_app", "flask.cli", "flask.cli.with_appcontext"}

#: What only a worker needs: ``make``, the sandbox, ImageBuilders and feeds.
PIPELINE = {
    "asu.worker.build",
    "asu.worker.sandbox",
    "asu.worker.imagebuilder",
    "asu.worker.feeds",
    "asu.worker.cgroups",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    """The part a module of ``asu`` belongs to: a wing, or the core."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in WINGS else "core"


def imported_modules(path: Path) -> set[str]:
    """The modules a source file imports, by their full names (``from asu.api
    import v1`` imports ``asu.api.v1``)."""
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


SOURCES = sorted((REPO / "asu").rglob("*.py"))


def test_every_module_has_a_part():
    modules = {module_name(path) for path in SOURCES}
    assert {part_of(module) for module in modules} == {"core", *WINGS}
    assert modules >= WIRING


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_each_part_imports_only_the_parts_below_it(path):
    module = module_name(path)
    if module in WIRING or module == "asu":  # the package hands out create_app
        return
    part = part_of(module)
    ours = {name for name in imported_modules(path) if name.split(".")[0] == "asu"}
    wrong = {
        name for name in ours if name in WIRING or part_of(name) not in ALLOWED[part]
    }
    assert wrong == set(), f"{module} ({part}) may import only {ALLOWED[part]}"
    flask = {n for n in imported_modules(path) if n.split(".")[0] == "flask"}
    if part == "worker":
        assert flask == set(), f"{module} is the worker's: no Flask"
    if part != "api":
        # HTTP is the api's: elsewhere Flask only runs commands (``flask.cli``).
        assert flask <= COMMANDS, f"{module} speaks HTTP: only asu.api may"
        assert not {n for n in imported_modules(path) if n.startswith("werkzeug")}


WEB_PROCESS = """
import json, sys
from asu import create_app
app = create_app({"redis_url": "redis://127.0.0.1:1/0"})
assert app.test_client().get("/api/v1/openapi.json").status_code == 200
print(json.dumps(sorted(sys.modules)))
"""


def test_the_web_process_never_loads_the_build_pipeline(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", WEB_PROCESS],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    loaded = set(json.loads(done.stdout))
    assert "asu.queue.build_queue" in loaded
    assert not loaded & PIPELINE
    # It enqueues the pipeline by name; the name is the function a worker runs.
    assert import_attribute(build_queue.BUILD) is build.build


def test_the_server_never_imports_the_offline_upstream():
    importing = {
        module_name(path)
        for path in SOURCES
        for name in imported_modules(path)
        if name.split(".")[0] == "offline_upstream"
    }
    assert importing == set()
    assert not (REPO / "asu" / "offline").exists()
