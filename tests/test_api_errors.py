"""What the API fuzz test (tests/test_api_fuzz.py) found: an address under /api/ that matches
no route answered Django's HTML 404 page, and the webhook-endpoint operations left the 401 and
403 they give out of the schema."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from tests.tokens import token_client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path", ["/api/reviews/not-a-number/", "/api/reviews/1/approve/extra/", "/api/nothing/"]
)
def test_an_api_address_without_a_route_answers_json_404(make_user, path):
    client = token_client(make_user("analyst"))

    response = client.get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_a_page_address_without_a_route_still_answers_the_html_404_page(client, make_user):
    client.force_login(make_user("analyst"))

    response = client.get("/reviews/not-a-number/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def _documented_statuses(operation_id: str) -> set[str]:
    schema = json.loads(Client().get(reverse("api-schema"), {"format": "json"}).content)
    for methods in schema["paths"].values():
        for operation in methods.values():
            if isinstance(operation, dict) and operation.get("operationId") == operation_id:
                return set(operation["responses"])
    raise AssertionError(f"no operation {operation_id}")


@pytest.mark.parametrize(
    "operation_id",
    ["webhook_endpoints_list", "webhook_endpoints_update", "webhook_endpoints_rotate_secret"],
)
def test_webhook_endpoint_operations_document_their_401_and_403(operation_id):
    assert {"401", "403"} <= _documented_statuses(operation_id)


def test_an_analyst_listing_webhook_endpoints_gets_the_documented_403(make_user):
    response = token_client(make_user("analyst")).get(reverse("integrations-api:endpoint-list"))

    assert response.status_code == 403
    assert "403" in _documented_statuses("webhook_endpoints_list")
