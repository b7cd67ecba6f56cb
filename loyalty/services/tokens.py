"""API tokens (django-rest-knox): made here, shown once, kept as a digest with an expiry."""

from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from knox.models import AuthToken
from knox.settings import knox_settings

from loyalty.services.config_audit import record_config_change, snapshot

_DEFAULT_TTL = object()


@transaction.atomic
def create_api_token(
    *,
    user: AbstractBaseUser,
    actor: AbstractBaseUser | None = None,
    ttl: timedelta | None | object = _DEFAULT_TTL,
) -> tuple[AuthToken, str]:
    """A new token for `user` and its key, the only time the key exists outside the client.
    `ttl` defaults to the REST_KNOX TOKEN_TTL setting (None: never expires). Audited as a
    `config_change` that names the user and the expiry, never the key or its digest."""
    if ttl is _DEFAULT_TTL:
        ttl = knox_settings.TOKEN_TTL
    token, key = AuthToken.objects.create(user=user, expiry=ttl)
    record_config_change(actor=actor, before=None, after=snapshot(token))
    return token, key
