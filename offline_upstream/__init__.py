"""The offline upstream: a stand-in for the OpenWrt downloads server.

It writes a downloads tree from trimmed real data (:mod:`offline_upstream.tree`), with a
working ImageBuilder per buildable target, and serves it over HTTP on loopback
(:mod:`offline_upstream.server`). ``make demo`` and the tests use it.
"""
