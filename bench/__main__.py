"""Run every benchmark module of the package and print their tables."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import bench


def main() -> int:
    for module_info in pkgutil.iter_modules(bench.__path__):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bench.{module_info.name}")
        started = time.monotonic()
        table = module.run()
        print(f"== bench.{module_info.name} ({time.monotonic() - started:.0f} s)")
        print(table, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
