"""The JSON object a client posts, read without trusting its size, shape or type.

Bodies larger than ``max_request_bytes`` are not read: the app sets Flask's
``MAX_CONTENT_LENGTH`` to it, and reading one is a 413 refusal, which every API
generation answers in its own error shape like any other. Whatever the
``Content-Type`` says, the body is read as JSON: ``curl -d`` sends JSON as a form,
and a body that is not JSON is refused with a 400 that says so. Objects nested
deeper than any request needs are refused before they reach code that recurses.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

from asu.api.errors import Refused
from asu.build_request import RequestError

#: Levels of nesting a request body may have; real requests use two.
MAX_DEPTH = 8


def json_object(request: Request) -> dict[str, Any]:
    """The body of ``request`` as a JSON object, or a 400 (413 when too big)."""
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise Refused(
            f"the request body is larger than the {request.max_content_length} "
            "bytes this server accepts",
            413,
        ) from None
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        kind = request.mimetype or "no Content-Type"
        raise RequestError(
            f"the request body must be a JSON object (got {kind[:60]!r} "
            "that is not valid JSON); send it as application/json"
        ) from None
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    if _deeper_than(body, MAX_DEPTH):
        raise RequestError(f"the request body is nested deeper than {MAX_DEPTH}")
    return body


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists and objects more than ``limit`` levels deep."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
