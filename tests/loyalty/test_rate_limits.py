"""Login lockout (django-axes) with its audit records and admin unlock; throttles on the API and
the what-if page, answering 429 with Retry-After.

Each test sets its own low limits with the `settings` fixture and starts from an empty cache;
the suite's settings keep every other test far below any limit.
"""

import pytest
from axes.models import AccessAttempt
from django.core.cache import cache
from django.urls import reverse

from loyalty.models import AuditRecord
from tests.conftest import TEST_PASSWORD
from tests.tokens import token_client

WRONG_PASSWORD = "not-the-password"
LOCKOUT_MESSAGE = "This account is locked after too many failed logins."


@pytest.fixture
def lockout(settings):
    """django-axes on (the suite turns it off: the test client's login passes no request),
    three failures to a lockout of one hour."""
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = 1.0


@pytest.fixture
def low_rates(settings):
    """Fresh counts, and rates low enough to reach in a test."""
    cache.clear()
    settings.THROTTLE_RATES = {
        "anon": "2/minute",
        "user": "3/minute",
        "events_batch": "1/minute",
        "what_if": "1/minute",
    }
    yield
    cache.clear()


def _log_in(client, username: str, password: str):
    return client.post(reverse("login"), {"username": username, "password": password})


def _records(kind: str) -> list[AuditRecord]:
    return list(AuditRecord.objects.filter(kind=kind).order_by("pk"))


# --- Login lockout ----------------------------------------------------------------------------


def test_repeated_failed_logins_lock_the_account_once_and_audit_it(client, make_user, lockout):
    analyst = make_user("analyst")

    answers = [_log_in(client, analyst.username, WRONG_PASSWORD) for _ in range(3)]
    with_the_right_password = _log_in(client, analyst.username, TEST_PASSWORD)
    one_more_failure = _log_in(client, analyst.username, WRONG_PASSWORD)

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert LOCKOUT_MESSAGE in answers[2].content.decode()
    assert answers[2]["Retry-After"] == "3600"
    assert with_the_right_password.status_code == 429
    assert "_auth_user_id" not in client.session
    assert one_more_failure.status_code == 429
    [record] = _records(AuditRecord.Kind.LOGIN_LOCKOUT)
    assert (record.actor, record.subject) == (None, f"auth.user:{analyst.pk}")
    assert record.details == {"known_account": True, "failures": 3, "cool_off_hours": 1.0}


def test_a_lockout_of_an_unknown_username_keeps_the_name_out_of_the_trail(client, db, lockout):
    # A "username" that matches no account may be a password typed in the wrong box.
    typed = "hunter2-typed-in-the-username-box"

    for _ in range(3):
        _log_in(client, typed, WRONG_PASSWORD)

    [record] = _records(AuditRecord.Kind.LOGIN_LOCKOUT)
    assert (record.subject, record.details) == (
        "",
        {"known_account": False, "failures": 3, "cool_off_hours": 1.0},
    )
    assert typed not in str(record.details)


def test_a_lockout_is_per_username_and_address(client, make_user, lockout):
    analyst = make_user("analyst")
    for _ in range(3):
        _log_in(client, analyst.username, WRONG_PASSWORD)

    elsewhere = client.post(
        reverse("login"),
        {"username": analyst.username, "password": TEST_PASSWORD},
        REMOTE_ADDR="203.0.113.9",
    )

    assert elsewhere.status_code == 302


def test_an_admin_unlocks_an_account_with_the_admin_action_and_it_is_audited(
    client, make_user, lockout
):
    analyst = make_user("analyst")
    admin = make_user("admin")
    for _ in range(3):
        _log_in(client, analyst.username, WRONG_PASSWORD)
    attempt = AccessAttempt.objects.get(username=analyst.username)
    staff = type(client)()
    staff.force_login(admin)

    response = staff.post(
        reverse("admin:axes_accessattempt_changelist"),
        {"action": "unlock", "_selected_action": [attempt.pk]},
    )

    assert response.status_code == 302
    assert AccessAttempt.objects.filter(username=analyst.username).exists() is False
    [record] = _records(AuditRecord.Kind.LOGIN_UNLOCK)
    assert (record.actor, record.actor_name, record.subject, record.details) == (
        admin,
        admin.username,
        f"auth.user:{analyst.pk}",
        {"known_account": True, "attempts_cleared": 1},
    )
    assert _log_in(client, analyst.username, TEST_PASSWORD).status_code == 302


def test_deleting_the_attempts_in_the_admin_is_an_audited_unlock(client, make_user, lockout):
    analyst = make_user("analyst")
    admin = make_user("admin")
    for _ in range(3):
        _log_in(client, analyst.username, WRONG_PASSWORD)
    attempt = AccessAttempt.objects.get(username=analyst.username)
    staff = type(client)()
    staff.force_login(admin)

    response = staff.post(
        reverse("admin:axes_accessattempt_delete", args=[attempt.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert AccessAttempt.objects.count() == 0
    [record] = _records(AuditRecord.Kind.LOGIN_UNLOCK)
    assert (record.actor, record.subject) == (admin, f"auth.user:{analyst.pk}")


def test_an_analyst_may_not_unlock_accounts(client, make_user, lockout):
    analyst = make_user("analyst")
    for _ in range(3):
        _log_in(client, "someone", WRONG_PASSWORD)
    attempt = AccessAttempt.objects.get()
    client.force_login(analyst)

    response = client.post(
        reverse("admin:axes_accessattempt_changelist"),
        {"action": "unlock", "_selected_action": [attempt.pk]},
    )

    assert response.status_code == 302  # to the admin's login page: analysts are not staff
    assert AccessAttempt.objects.count() == 1
    assert _records(AuditRecord.Kind.LOGIN_UNLOCK) == []


# --- Throttles --------------------------------------------------------------------------------


def test_the_api_answers_429_with_retry_after_past_the_users_rate(make_user, low_rates):
    analyst = token_client(make_user("analyst"))
    other = token_client(make_user("expert"))
    url = reverse("api:member-list")

    statuses = [analyst.get(url).status_code for _ in range(3)]
    refused = analyst.get(url)

    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["detail"].startswith("Request was throttled.")
    assert other.get(url).status_code == 200  # per user


def test_anonymous_requests_are_counted_per_address_whatever_they_forward(client, db, low_rates):
    url = reverse("api-schema")

    first = client.get(url)
    second = client.get(url, HTTP_X_FORWARDED_FOR="198.51.100.1")
    forged = client.get(url, HTTP_X_FORWARDED_FOR="198.51.100.2")
    from_elsewhere = client.get(url, REMOTE_ADDR="203.0.113.9")

    assert (first.status_code, second.status_code, forged.status_code) == (200, 200, 429)
    assert 1 <= int(forged["Retry-After"]) <= 60
    assert from_elsewhere.status_code == 200


def test_the_events_batch_has_a_rate_of_its_own(make_user, low_rates):
    integrator = token_client(make_user("integrator"))
    url = reverse("api:event-batch")

    first = integrator.post(url, {"events": []}, format="json")
    second = integrator.post(url, {"events": []}, format="json")

    assert first.status_code == 400  # an empty batch: refused, but it counted
    assert second.status_code == 429
    assert int(second["Retry-After"]) >= 1


def test_the_what_if_page_answers_429_past_its_rate_without_running(client, make_user, low_rates):
    client.force_login(make_user("analyst"))
    url = reverse("reviews:what_if", args=[987654])

    first = client.post(url, {}, HTTP_HX_REQUEST="true")
    second = client.post(url, {}, HTTP_HX_REQUEST="true")

    assert first.status_code == 404  # the view ran: no such review
    assert second.status_code == 429  # it did not run this time
    assert 1 <= int(second["Retry-After"]) <= 60
    assert "Too many requests; try again in" in second.content.decode()
