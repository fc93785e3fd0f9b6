"""Reading the downloads server: where things are and fetching them."""

from __future__ import annotations

import requests

#: Seconds to wait for the upstream to connect and to send the next bytes.
TIMEOUT = (10, 60)


class UpstreamError(RuntimeError):
    """The upstream did not give what was asked; the message says what and why."""


def release_path(version: str) -> str:
    """``snapshots`` for SNAPSHOT, ``releases/<version>`` otherwise."""
    return "snapshots" if version == "SNAPSHOT" else f"releases/{version}"


def target_path(version: str, target: str) -> str:
    """The directory of one target of one version, below the upstream root."""
    return f"{release_path(version)}/targets/{target}"


def session() -> requests.Session:
    """A session with a recognisable User-Agent."""
    http = requests.Session()
    http.headers["User-Agent"] = "asu (attended sysupgrade server)"
    return http


def get(http: requests.Session, address: str, stream: bool = False):
    """GET ``address``; raise :class:`UpstreamError` unless it answers 200."""
    try:
        response = http.get(address, timeout=TIMEOUT, stream=stream)
    except requests.RequestException as error:
        raise UpstreamError(f"cannot reach {address}: {error}") from None
    if response.status_code != 200:
        response.close()
        raise UpstreamError(f"{address} answered {response.status_code}")
    return response
