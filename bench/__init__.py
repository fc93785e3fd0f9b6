"""Benchmarks: ``python -m bench`` runs every module here and prints its table.

Each module has ``run() -> str``: it starts what it measures itself (the stand-in
upstream, a private Redis, workers) and returns a small table of numbers measured
in that one run, with the ratios that matter.
"""
