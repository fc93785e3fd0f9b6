"""The offline upstream: a stand-in for the OpenWrt downloads server.

It writes a downloads tree from trimmed real data (:mod:`asu.offline.tree`), with a
working ImageBuilder per buildable target, and serves it over HTTP on loopback
(:mod:`asu.offline.server`). ``make demo`` and the tests use it.
"""
