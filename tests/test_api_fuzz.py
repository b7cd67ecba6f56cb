"""Fuzzing the whole API from its OpenAPI schema (schemathesis), in process through WSGI, as an
analyst, an admin and an integrator, each with an API token: no answer may be a server error,
and every answer must match the schema (status code, content type, headers, body).

The examples per operation are few (FUZZ_EXAMPLES) so that the suite stays within minutes;
`FUZZ_EXAMPLES=200 pytest tests/test_api_fuzz.py` digs deeper. The database holds routed
reviews and a few members so that reads find rows to serialize, not only 404s.
"""

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import EventFactory, MemberFactory
from tests.tokens import api_token

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
SCHEMA_PATH = "/api/schema/"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

pytestmark = pytest.mark.django_db


# Loaded at collection (serving the schema reads no table); schemathesis' lazy fixture loader
# needs a pytest internal (`Node._nodeid`) that pytest 9 no longer has.
schema = schemathesis.openapi.from_wsgi(SCHEMA_PATH, get_wsgi_application())
# The token the next request sends: set per test by `as_role`, read by the auth provider.
_current = {"key": ""}


@schema.auth(refresh_interval=None)
class TokenAuth:
    def get(self, case, context):
        return _current["key"]

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Token {data}"}


@pytest.fixture
def requests_keep_the_test_connection():
    """Django's WSGI handler closes the database connection after each request, which would
    end the test's transaction; Django's test client keeps it open the same way."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture(params=["analyst", "admin", "integrator"])
def as_role(request, make_user, routed, next_action_review, requests_keep_the_test_connection):
    """Rows to read, and a token of a user in the parametrized role for every request."""
    for member in MemberFactory.create_batch(3):
        EventFactory.create_batch(2, member=member)
    _current["key"] = api_token(make_user(request.param))
    yield request.param
    _current["key"] = ""


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_without_server_errors_and_as_its_schema_says(case, as_role):
    case.call_and_validate(checks=CHECKS)
