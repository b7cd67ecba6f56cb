"""Fixtures shared by the loyalty tests."""

import pytest


@pytest.fixture
def client_as(make_user, api_client):
    """An API client that sends the token of a fresh user in the given role."""
    from tests.tokens import token_header

    def as_role(role: str):
        user = make_user(role)
        api_client.credentials(HTTP_AUTHORIZATION=token_header(user))
        api_client.user = user
        return api_client

    return as_role
