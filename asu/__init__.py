"""asu: the attended sysupgrade server, firmware on demand for OpenWrt."""

__version__ = "0.1.0"

__all__ = ["__version__", "create_app"]


def __getattr__(name: str):
    """``create_app``, imported on first use: importing the package loads no Flask
    (``make run``'s supervisor and the offline upstream serve no app)."""
    if name == "create_app":
        from asu.app import create_app

        return create_app
    raise AttributeError(f"module 'asu' has no attribute {name!r}")
