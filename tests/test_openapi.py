"""The OpenAPI 3.1 document of the API (``/api/v1/openapi.json``): valid, made of
the server's own rules, covering every route; and the running server, asked with
requests generated from it (schemathesis: what the document allows, and what it
does not), answers none with a 5xx, none outside the document, and none late."""

from __future__ import annotations

import re

import pytest
import requests
import schemathesis
from conftest import serving
from schemathesis.checks import max_response_time, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from asu import build_request as rules
from asu.api import openapi
from asu.config import Config

#: Seconds an answer may take; more is a hang.
ANSWER_WITHIN = 5


def test_the_document_is_valid_openapi_3_1(client):
    document = client.get("/api/v1/openapi.json").json
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document).validate()


def test_its_rules_are_the_servers(client):
    schema = openapi.document(Config())["components"]["schemas"]["BuildRequest"]
    fields = schema["properties"]
    assert fields["version"]["pattern"] == f"^(?:{rules.VERSION.pattern[1:-1]})$"
    assert fields["packages"]["maxItems"] == rules.MAX_PACKAGES
    assert fields["filesystem"]["enum"][:-2] == list(rules.FILESYSTEMS)
    assert schema["required"] == ["version", "target", "profile"]
    # Limits that are settings come from the server's configuration.
    served = openapi.document(Config(max_defaults_length=100, allow_defaults=False))
    defaults = served["components"]["schemas"]["BuildRequest"]["properties"]["defaults"]
    assert defaults["maxLength"] == 100 and "refused" in defaults["description"]


@pytest.mark.parametrize(
    ("entry", "accepted"),
    [
        ("htop", True),
        ("+luci", True),
        ("-ppp", True),
        ("nftables=1.1.6-r1", True),
        ("-ppp=1.0", False),
        ("$(id)", False),
        ("Luci", False),
        ("htop\n", False),
    ],
)
def test_a_package_entry_is_what_the_checks_take(entry, accepted):
    """The document's pattern for ``packages`` and the parser agree."""
    pattern = openapi.build_request_schema(Config())["properties"]["packages"]
    assert bool(re.fullmatch(pattern["items"]["pattern"], entry)) is accepted
    body = {"version": "23.05.4", "target": "x86/64", "profile": "generic"}
    try:
        rules.parse_build_request(body | {"packages": [entry]}, Config())
    except rules.RequestError:
        assert not accepted
    else:
        assert accepted


def test_every_route_of_api_v1_is_described(app):
    described = set(openapi.document(Config())["paths"])
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        if path.startswith("/api/v1/"):
            assert path in described, f"{path} is not in the document"


def test_the_page_renders_the_document(live_server, chromium):
    driver, _ = chromium
    driver.get(f"{live_server}/api")
    driver.implicitly_wait(30)  # the page renders what it fetched
    body = driver.find_element("css selector", "#post-api-v1-build")
    assert "POST /api/v1/build" in body.text.replace("\n", " ")
    fields = body.find_element("css selector", "table.fields").text
    assert "version required" in fields and rules.VERSION.pattern[1:-1] in fields
    assert "422" in body.find_element("css selector", "dl.answers").text


# -- requests generated from the document, against the running server -----------


@pytest.fixture(scope="module")
def served(loaded) -> str:
    """The janitor-loaded app over HTTP (no worker: builds wait in the queue)."""
    with serving(loaded) as url:
        yield url


def _generated_from() -> schemathesis.BaseSchema:
    """The document as the module's server publishes it (checked below), read by
    schemathesis, which makes requests both within it and outside it."""
    schema = schemathesis.openapi.from_dict(openapi.document(Config()))
    schema.config.update(request_timeout=ANSWER_WITHIN)
    schema.config.checks.update(max_response_time=ANSWER_WITHIN)
    schema.config.generation.update(deterministic=True, max_examples=25)
    return schema


schema = _generated_from()


def test_the_server_publishes_that_document(served):
    published = requests.get(f"{served}/api/v1/openapi.json", timeout=10).json()
    assert published == schema.raw_schema


@schema.parametrize()  # drawn as the suite's hypothesis profile says (conftest)
def test_generated_requests_get_documented_answers(case, served):
    case.call_and_validate(
        base_url=served,
        allow_redirects=False,
        timeout=ANSWER_WITHIN,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
            negative_data_rejection,
            max_response_time,
        ],
    )
