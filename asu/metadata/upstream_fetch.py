"""Fetching from an upstream with conditional requests.

Each URL's ``ETag`` and ``Last-Modified`` are kept in Redis (``redis_keys.validators``)
and written in the same transaction as what was learned from the answer, so the
next pass asks "changed since?" and an unchanged upstream answers 304 without a
body. Data and validators can therefore never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
import requests

from asu import redis_keys, upstream

_ABSENT = (404, 410)


@dataclass(frozen=True)
class Fetched:
    """An answer: the body, or None when upstream said 304 (not modified)."""

    url: str
    content: bytes | None
    validator: str

    @property
    def changed(self) -> bool:
        return self.content is not None


class Fetcher:
    """GETs for one distribution's upstream, conditional where it has validators."""

    def __init__(self, connection: redis.Redis, distro: str) -> None:
        self.key = redis_keys.validators(distro)
        self.http = upstream.session()
        self.validators = {
            url.decode(): value.decode()
            for url, value in connection.hgetall(self.key).items()
        }

    def get(self, url: str, conditional: bool = True) -> Fetched | None:
        """The answer for ``url``; None when upstream does not have it.

        Raises :class:`upstream.UpstreamError` when upstream cannot be reached or
        answers anything but 200, 304 or 404/410.
        """
        known = self.validators.get(url, "") if conditional else ""
        try:
            response = self.http.get(
                url, headers=_conditions(known), timeout=upstream.TIMEOUT
            )
        except requests.RequestException as error:
            raise upstream.UpstreamError(f"cannot reach {url}: {error}") from None
        if response.status_code == 304 and known:
            return Fetched(url, None, known)
        if response.status_code in _ABSENT:
            return None
        if response.status_code != 200:
            raise upstream.UpstreamError(f"{url} answered {response.status_code}")
        return Fetched(url, response.content, _validator(response))

    def remember(self, pipe: redis.client.Pipeline, *answers: Fetched | None) -> None:
        """Queue on ``pipe`` the validators of ``answers``, for the next pass."""
        fresh = {a.url: a.validator for a in answers if a is not None and a.validator}
        if fresh:
            pipe.hset(self.key, mapping=fresh)
            self.validators.update(fresh)


def _validator(response: requests.Response) -> str:
    etag = response.headers.get("ETag", "")
    modified = response.headers.get("Last-Modified", "")
    return f"{etag}\n{modified}" if etag or modified else ""


def _conditions(validator: str) -> dict[str, str]:
    etag, _, modified = validator.partition("\n")
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    return headers
