"""The audit log page: admin only, filters, keyset pages of 100, readable details."""

from datetime import UTC, datetime, timedelta
from unittest.mock import patch

import pytest
from django.urls import reverse

from loyalty.models import AuditRecord
from loyalty.services.audit import record_audit
from reviews.selectors.audit import detail_lines
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db

URL = reverse("reviews:audit_log")


@pytest.fixture
def admin_client(client, make_user):
    client.login(username=make_user("admin", username="alice").username, password=TEST_PASSWORD)
    return client


@pytest.fixture(autouse=True)
def _setup_records(admin_client, make_user):
    """Creating the test users records role changes. The trail is append-only (the database
    refuses deletes), so the tests leave these out of what they compare instead."""
    make_user("analyst", username="alicia")
    return set(AuditRecord.objects.values_list("pk", flat=True))


def _record(kind, subject, *, actor=None, at=None, details=None) -> AuditRecord:
    if at is None:
        return record_audit(kind=kind, actor=actor, subject=subject, details=details)
    # The time is the database row's own (auto_now_add) and can never be changed afterwards:
    # a record from the past is written with the clock set back.
    with patch("django.utils.timezone.now", return_value=at):
        return record_audit(kind=kind, actor=actor, subject=subject, details=details)


@pytest.fixture
def _subjects(_setup_records):
    def subjects(response) -> list[str]:
        return [
            row.record.subject
            for row in response.context["rows"]
            if row.record.pk not in _setup_records
        ]

    return subjects


def test_records_are_listed_newest_first(admin_client, _subjects):
    _record("import", "file:a.csv", at=datetime(2026, 1, 1, tzinfo=UTC))
    _record("erasure", "member:M1", at=datetime(2026, 1, 3, tzinfo=UTC))
    _record("consent_change", "member:M2", at=datetime(2026, 1, 2, tzinfo=UTC))

    response = admin_client.get(URL)

    assert response.status_code == 200
    assert _subjects(response) == ["member:M1", "member:M2", "file:a.csv"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"kind": "policy_change"}, ["policy:churn:v2"]),
        ({"actor": "ALI"}, ["policy:churn:v2", "review:7"]),
        ({"subject": "member"}, ["member:M9"]),
        ({"date_from": "2026-02-02"}, ["policy:churn:v2"]),
        ({"date_to": "2026-02-01"}, ["review:7", "member:M9"]),
        ({"date_from": "2026-02-01", "date_to": "2026-02-01", "actor": "alicia"}, ["review:7"]),
    ],
)
def test_filters_narrow_the_records(admin_client, django_user_model, query, expected, _subjects):
    alice = django_user_model.objects.get(username="alicia")
    _record("erasure", "member:M9", at=datetime(2026, 1, 31, 12, tzinfo=UTC))
    _record("decision", "review:7", actor=alice, at=datetime(2026, 2, 1, 9, tzinfo=UTC))
    _record("policy_change", "policy:churn:v2", actor=alice, at=datetime(2026, 2, 3, tzinfo=UTC))

    response = admin_client.get(URL, query)

    assert _subjects(response) == expected


def test_pages_hold_100_records_and_continue_where_the_last_one_ended(admin_client, _subjects):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(103):
        # Two records per moment: the id breaks the tie, newest id first.
        _record("import", f"file:{n:03d}", at=start + timedelta(minutes=n // 2))

    first = admin_client.get(URL, {"kind": "import"})
    second = admin_client.get(f"{URL}?{first.context['next_query']}")

    assert _subjects(first) == [f"file:{n:03d}" for n in range(102, 2, -1)]
    assert "kind=import" in first.context["next_query"]
    assert _subjects(second) == ["file:002", "file:001", "file:000"]
    assert second.context["next_query"] == ""


def test_a_broken_page_link_says_so_and_shows_the_newest(admin_client, _subjects):
    _record("import", "file:a.csv")

    response = admin_client.get(URL, {"after": "yesterday_x"})

    assert _subjects(response) == ["file:a.csv"]
    assert "That page link is not valid" in response.content.decode()


def test_details_read_as_key_value_lines():
    details = {
        "reason": "Q3 audit",
        "before": {"auto_approve_confidence": 0.9, "sla_hours": 48, "segment_overrides": {}},
        "after": {
            "auto_approve_confidence": 0.95,
            "sla_hours": 48,
            "segment_overrides": {"gold": {"auto_approve_confidence": 0.99}},
        },
        "moves": {"auto → analyst": 12},
        "churn_label": True,
        "action": None,
    }

    assert detail_lines(details) == [
        ("auto_approve_confidence", "0.9 → 0.95"),
        ("segment_overrides", "— → gold: auto_approve_confidence: 0.99"),
        ("reason", "Q3 audit"),
        ("moves.auto → analyst", "12"),
        ("churn_label", "yes"),
        ("action", "—"),
    ]


def test_the_page_shows_details_and_policy_changes_readably(admin_client):
    _record(
        "policy_change",
        "policy:churn:v2",
        details={
            "reason": "Q3",
            "before": {"expert_confidence": 0.5},
            "after": {"expert_confidence": 0.6},
        },
    )

    page = admin_client.get(URL).content.decode()

    assert "<dt>expert_confidence</dt><dd>0.5 → 0.6</dd>" in page
    assert "Policy Change" in page


def test_only_holders_of_view_auditrecord_may_read(client, make_user):
    client.login(username=make_user("expert").username, password=TEST_PASSWORD)

    assert client.get(URL).status_code == 403
