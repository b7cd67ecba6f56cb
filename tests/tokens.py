"""API tokens for tests: the one way the suite makes one (the app's own service)."""

from rest_framework.test import APIClient


def api_token(user) -> str:
    """A new API token's key for `user`, as `manage.py drf_create_token` makes it."""
    from loyalty.services.tokens import create_api_token

    return create_api_token(user=user)[1]


def token_header(user) -> str:
    """The Authorization header value of a new token for `user`."""
    return f"Token {api_token(user)}"


def token_client(user) -> APIClient:
    """An API client that sends a new token of `user` with every request."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=token_header(user))
    return client
