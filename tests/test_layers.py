"""How the parts depend on each other, checked on the code itself: the web process
never loads the build pipeline, and the server never imports the offline upstream
(a stand-in for tests, ``make demo`` and bench, not shipped in the server's image)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

from conftest import REPO
from rq.utils import import_attribute

from asu import build, build_queue

#: What only a worker needs: ``make``, the sandbox, ImageBuilders and feeds.
PIPELINE = {"asu.build", "asu.sandbox", "asu.imagebuilder", "asu.feeds", "asu.cgroups"}

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
    assert "asu.build_queue" in loaded
    assert not loaded & PIPELINE
    # It enqueues the pipeline by name; the name is the function a worker runs.
    assert import_attribute(build_queue.BUILD) is build.build


def imported_modules(path) -> set[str]:
    """The modules a source file imports, by their full names."""
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_server_never_imports_the_offline_upstream():
    importing = {
        str(path.relative_to(REPO))
        for path in (REPO / "asu").rglob("*.py")
        if any(
            name.split(".")[0] == "offline_upstream" for name in imported_modules(path)
        )
    }
    assert importing == set()
    assert not (REPO / "asu" / "offline").exists()
