"""Managing webhook endpoints: made, changed, re-keyed, deleted by admins; each change in the
audit trail (never the secret). A new or rotated secret is returned once and kept encrypted."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from integrations import secrets
from integrations.exceptions import EndpointNotFound, InvalidEndpoint
from integrations.models import WebhookEndpoint
from integrations.targets import TargetRefused, check_url_form
from loyalty.exceptions import require_permission
from loyalty.outbox import EVENT_TYPES
from loyalty.services.config_audit import record_config_change, snapshot

MANAGE_PERMISSION = "integrations.change_webhookendpoint"
URL_MAX_LENGTH = WebhookEndpoint._meta.get_field("url").max_length


@dataclass(frozen=True)
class EndpointWithSecret:
    """An endpoint and its signing secret in clear: shown to the admin once, never again."""

    endpoint: WebhookEndpoint
    secret: str


def clean_url(url: str) -> str:
    url = (url or "").strip()
    if len(url) > URL_MAX_LENGTH:
        raise InvalidEndpoint(f"The URL is longer than {URL_MAX_LENGTH} characters.")
    try:
        check_url_form(url)
    except TargetRefused as error:
        raise InvalidEndpoint(str(error)) from error  # never echo the URL: it may hold a password
    return url


def clean_event_types(event_types) -> list[str]:
    """The subscribed types, known ones only, sorted; empty means every type."""
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        raise InvalidEndpoint(
            f"Unknown event types: {', '.join(unknown)}. Known: {', '.join(EVENT_TYPES)}.",
            event_types=unknown,
        )
    return sorted(set(event_types))


@transaction.atomic
def create_endpoint(
    *, actor: AbstractBaseUser | None, url: str, description: str = "", event_types=()
) -> EndpointWithSecret:
    require_permission(actor, MANAGE_PERMISSION)
    secret = secrets.new_secret()
    endpoint = WebhookEndpoint.objects.create(
        url=clean_url(url),
        description=description.strip()[:200],
        event_types=clean_event_types(event_types),
        secret_encrypted=secrets.encrypt(secret),
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    record_config_change(actor=actor, before=None, after=snapshot(endpoint))
    return EndpointWithSecret(endpoint=endpoint, secret=secret)


@transaction.atomic
def update_endpoint(
    *,
    actor: AbstractBaseUser | None,
    endpoint_id: int,
    url: str | None = None,
    description: str | None = None,
    event_types=None,
    is_enabled: bool | None = None,
) -> WebhookEndpoint:
    """Change what is given; re-enabling clears the failure record, so the endpoint gets a
    fresh grace period."""
    require_permission(actor, MANAGE_PERMISSION)
    endpoint = _locked(endpoint_id)
    before = snapshot(endpoint)
    if url is not None:
        endpoint.url = clean_url(url)
    if description is not None:
        endpoint.description = description.strip()[:200]
    if event_types is not None:
        endpoint.event_types = clean_event_types(event_types)
    if is_enabled is not None and is_enabled != endpoint.is_enabled:
        endpoint.is_enabled = is_enabled
        endpoint.disabled_reason = "" if is_enabled else "Disabled by an admin."
        if is_enabled:
            endpoint.failing_since = None
    endpoint.save()
    record_config_change(actor=actor, before=before, after=snapshot(endpoint))
    return endpoint


@transaction.atomic
def rotate_secret(
    *, actor: AbstractBaseUser | None, endpoint_id: int, overlap: timedelta | None = None
) -> EndpointWithSecret:
    """A new secret signs from now on; the current one keeps signing beside it for `overlap`
    (WEBHOOK_SECRET_ROTATION_OVERLAP_HOURS by default), so a receiver can switch in its own
    time. Rotating again during the overlap drops the oldest secret at once."""
    require_permission(actor, MANAGE_PERMISSION)
    endpoint = _locked(endpoint_id)
    before = snapshot(endpoint)
    overlap = overlap if overlap is not None else _default_overlap()
    secret = secrets.new_secret()
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_expires_at = timezone.now() + overlap
    endpoint.secret_encrypted = secrets.encrypt(secret)
    endpoint.save()
    record_config_change(actor=actor, before=before, after=snapshot(endpoint))
    return EndpointWithSecret(endpoint=endpoint, secret=secret)


@transaction.atomic
def delete_endpoint(*, actor: AbstractBaseUser | None, endpoint_id: int) -> None:
    """Delete the endpoint and its delivery log (the events stay in the outbox)."""
    require_permission(actor, MANAGE_PERMISSION)
    endpoint = _locked(endpoint_id)
    before = snapshot(endpoint)
    endpoint.delete()
    record_config_change(actor=actor, before=before, after=None)


def signing_secrets(endpoint: WebhookEndpoint, *, now: datetime) -> list[str]:
    """The secrets that sign a message now: the current one, and the previous one while its
    overlap lasts."""
    keys = [secrets.decrypt(endpoint.secret_encrypted)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted and expires is not None and now < expires:
        keys.append(secrets.decrypt(endpoint.previous_secret_encrypted))
    return keys


def _locked(endpoint_id: int) -> WebhookEndpoint:
    try:
        return WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
    except WebhookEndpoint.DoesNotExist as error:
        raise EndpointNotFound("No such webhook endpoint.", endpoint_id=endpoint_id) from error


def default_overlap_hours() -> float:
    return settings.WEBHOOK_SECRET_ROTATION_OVERLAP_HOURS


def _default_overlap() -> timedelta:
    return timedelta(hours=default_overlap_hours())
