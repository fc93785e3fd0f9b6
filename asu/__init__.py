"""asu: the attended sysupgrade server, firmware on demand for OpenWrt."""

from asu.app import create_app

__version__ = "0.1.0"

__all__ = ["__version__", "create_app"]
