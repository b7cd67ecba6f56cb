"""API tokens (django-rest-knox): made by `manage.py drf_create_token`, kept as a digest, refused
once expired; DRF's plaintext tokens were hashed into knox by a migration."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from knox.models import AuthToken
from rest_framework.test import APIClient

from loyalty.models import AuditRecord
from loyalty.services.tokens import create_api_token

MEMBERS = "api:member-list"
# Room for the moments between computing a token's creation time and its expiry.
CLOCK_SLACK = timedelta(minutes=1)


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _create_token(*args: str) -> str:
    out, err = StringIO(), StringIO()
    call_command("drf_create_token", *args, stdout=out, stderr=err)
    return out.getvalue().strip()


def _every_stored_value() -> str:
    return repr(list(AuthToken.objects.values_list()))


def test_drf_create_token_prints_a_key_that_works_and_is_stored_only_as_a_digest(make_user):
    integrator = make_user("integrator")

    key = _create_token(integrator.username)

    assert len(key) == 64
    assert _client(key).get(reverse(MEMBERS)).status_code == 200
    token = AuthToken.objects.get(user=integrator)
    assert key not in _every_stored_value()
    assert token.token_key == key[:15]  # knox finds the row by the key's first characters
    lifetime = token.expiry - token.created
    assert timedelta(days=90) - CLOCK_SLACK <= lifetime <= timedelta(days=90)
    record = AuditRecord.objects.get(kind=AuditRecord.Kind.CONFIG_CHANGE)
    assert record.subject == f"knox.authtoken:{integrator.pk}"
    assert record.details["after"] == {
        "user": integrator.pk,
        "created": token.created.isoformat(),
        "expiry": token.expiry.isoformat(),
    }


def test_each_call_makes_another_token_and_the_earlier_ones_keep_working(make_user):
    integrator = make_user("integrator")

    first, second = _create_token(integrator.username), _create_token(integrator.username)

    assert first != second
    assert [_client(key).get(reverse(MEMBERS)).status_code for key in (first, second)] == [200, 200]


def test_days_sets_the_lifetime_and_zero_means_never(make_user):
    integrator = make_user("integrator")

    _create_token(integrator.username, "--days", "0")

    assert AuthToken.objects.get(user=integrator).expiry is None


def test_an_unknown_username_is_refused(db):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        _create_token("nobody")
    assert AuthToken.objects.count() == 0


def test_an_expired_token_is_refused_and_deleted(make_user):
    integrator = make_user("integrator")
    _, key = create_api_token(user=integrator, ttl=timedelta(seconds=-1))

    response = _client(key).get(reverse(MEMBERS))

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}
    assert AuthToken.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_the_migration_hashes_drf_plaintext_tokens_so_their_keys_keep_working(migrator, make_user):
    integrator = make_user("integrator")
    legacy_key = "0123456789abcdef0123456789abcdef01234567"  # DRF's format: 40 hex digits
    migrator([("loyalty", "0012_audit_kinds_for_logins")])
    with connection.cursor() as cursor:
        # DRF's authtoken table as an installation that used it has it.
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, "
            "user_id integer NOT NULL, created timestamp NULL)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token (key, user_id) VALUES (%s, %s)",
            [legacy_key, integrator.pk],
        )
    try:
        migrator([("loyalty", "0013_hash_drf_tokens_into_knox")])

        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM authtoken_token")
            left = cursor.fetchone()[0]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE authtoken_token")
    # The API below reads members with today's model: the later migrations must have run too.
    migrator(MigrationExecutor(connection).loader.graph.leaf_nodes())

    assert left == 0
    assert legacy_key not in _every_stored_value()
    token = AuthToken.objects.get(user=integrator)
    assert token.expiry is not None
    assert _client(legacy_key).get(reverse(MEMBERS)).status_code == 200
