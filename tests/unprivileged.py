"""Running the project as ``nobody`` from a suite that runs as root.

The suite's interpreter, its packages and the checkout may all lie below a
directory ``nobody`` cannot enter (Debian's ``/root`` is 0700). :func:`runtime`
gives ``nobody`` its own view: hard-linked copies (plain copies across file
systems) of the interpreter's installation, the virtualenv's packages and the
project, in a directory anyone may read.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

NOBODY = 65534
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Runtime:
    """An interpreter and the environment that lets ``nobody`` run the project."""

    root: Path

    @property
    def python(self) -> str:
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        return str(self.root / "python" / "bin" / version)

    def command(self, *args: str) -> list[str]:
        """``args`` run by this interpreter as ``nobody``, without capabilities."""
        user = str(NOBODY)
        drop = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
        return [*drop, self.python, *args]

    def environ(self, base: dict[str, str]) -> dict[str, str]:
        """``base`` and what finds the copies: the project and its packages, and
        the interpreter's own library (its built-in path is below the original)."""
        return base | {
            "PYTHONPATH": f"{self.root / 'project'}:{self.root / 'site-packages'}",
            "LD_LIBRARY_PATH": str(self.root / "python" / "lib"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def runtime() -> Runtime:
    """A copy of the suite's Python, packages and project that ``nobody`` can use."""
    root = Path(tempfile.mkdtemp(prefix="asu-nobody-"))
    root.chmod(0o755)
    _copy(Path(sys.base_prefix), root / "python")
    _copy(Path(site.getsitepackages()[0]), root / "site-packages")
    shutil.copytree(REPO / "asu", root / "project" / "asu")
    return Runtime(root)


def _copy(source: Path, dest: Path) -> None:
    linked = subprocess.run(["cp", "-al", str(source), str(dest)], capture_output=True)
    if linked.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        subprocess.run(["cp", "-a", str(source), str(dest)], check=True)
    os.chmod(dest, 0o755)
