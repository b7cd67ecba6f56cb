"""Export: everything held about one member as JSON, from the service, the API and the admin,
with each higher layer's sections registered without loyalty importing them."""

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.serializers.json import DjangoJSONEncoder
from django.urls import reverse

from learning.services.labels import label_decision
from loyalty.exceptions import MemberNotFoundError, PermissionDeniedError
from loyalty.models import AuditRecord, SyntheticTruth
from loyalty.services.erasure import erase_member
from loyalty.services.export import (
    export_member,
    export_member_by_external_id,
    export_sections,
    register_export_section,
)
from loyalty.services.members import create_member
from reviews.models import Review
from reviews.selectors.policy import current_policy
from reviews.services.decisions import override_prediction
from reviews.services.reason_codes import seed_reason_codes
from tests.factories import EventFactory, ModelVersionFactory, PredictionFactory

pytestmark = pytest.mark.django_db

EXPECTED_SECTIONS = (
    "format",
    "exported_at",
    "member",
    "events",
    "audit_records",
    "synthetic_truth",
    "erasure_tombstone",
    "predictions",
    "reviews",
    "decisions",
    "blind_answers",
    "review_audit_records",
    "labeled_examples",
)
ROUTED_AT = datetime(2026, 1, 2, 9, 0, tzinfo=UTC)


def _json(value):
    """What a value looks like in the export: as Django's encoder writes it."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


@pytest.fixture
def admin(make_user):
    return make_user("admin")


@pytest.fixture
def member(admin, make_user):
    """H-42 with events, an audited creation, a prediction, a decided review and its example."""
    seed_reason_codes()
    member = create_member(
        external_id="H-42",
        actor=admin,
        joined_on=date(2024, 1, 15),
        tier="gold",
        points_balance=900,
        consent_profiling=True,
        age_band="35-44",
        region="north",
        attributes={"income": "50-74K", "home_ownership": "Renter"},
    )
    EventFactory(
        member=member,
        occurred_at=datetime(2025, 3, 2, 10, tzinfo=UTC),
        amount=Decimal("19.99"),
        session_id="S2",
    )
    EventFactory(
        member=member,
        occurred_at=datetime(2025, 3, 1, 10, tzinfo=UTC),
        kind="view",
        amount=None,
        session_id="S1",
    )
    SyntheticTruth.objects.create(
        member=member,
        seed=7,
        cutoff=datetime(2026, 1, 1, tzinfo=UTC),
        horizon_days=90,
        churn_probability=0.31,
        churned=False,
    )
    prediction = PredictionFactory(
        member=member,
        model_version=ModelVersionFactory(features=[{"code": "spend_365"}, {"code": "logins_30"}]),
        feature_values=[812.5, 3.0],
        explanation={"base_value": -1.2, "margin": 0.4, "top": [], "remainder": 1.6},
        spend=812.5,
    )
    review = Review.objects.create(
        prediction=prediction,
        member=member,
        kind="churn",
        route=Review.Route.ANALYST,
        state=Review.State.PENDING,
        route_reason="audit sample (2%)",
        policy=current_policy("churn"),
        priority=0.42,
        tier="gold",
        member_value=812.5,
        risk=0.3,
        confidence=0.8,
        routed_at=ROUTED_AT,
        due_at=ROUTED_AT + timedelta(hours=48),
    )
    decision = override_prediction(
        review_id=review.pk,
        actor=make_user("expert"),
        reason_code="wrong-churn-call",
        churn_label=True,
        comment="Moving abroad.",
    )
    label_decision(decision_id=decision.pk)
    return member


def test_export_holds_everything_about_the_member_in_every_layer(member, admin):
    prediction = member.predictions.get()
    review = member.reviews.get()
    decision = review.decision
    example = decision.labeled_examples.get()

    document = export_member(member_id=member.pk, actor=admin)

    assert tuple(document) == EXPECTED_SECTIONS == export_sections()
    assert document["format"] == 1
    assert document["member"] == {
        "id": member.pk,
        "external_id": "H-42",
        "joined_on": "2024-01-15",
        "tier": "gold",
        "points_balance": 900,
        "consent_profiling": True,
        "consent_marketing": False,
        "consent_changed_at": _json(member.consent_changed_at),
        "age_band": "35-44",
        "region": "north",
        "attributes": {"income": "50-74K", "home_ownership": "Renter"},
        "erased_at": None,
        "created_at": _json(member.created_at),
        "updated_at": _json(member.updated_at),
    }
    assert [
        (event["occurred_at"], event["kind"], event["amount"]) for event in document["events"]
    ] == [
        ("2025-03-01T10:00:00Z", "view", None),
        # Decimals as stored: four places.
        ("2025-03-02T10:00:00Z", "purchase", "19.9900"),
    ]
    assert [(record["kind"], record["details"]) for record in document["audit_records"]] == [
        ("member_change", {"member_id": member.pk, "change": "create"}),
        (
            "consent_change",
            {
                "member_id": member.pk,
                "consent": "profiling",
                "consent_profiling": True,
                "changed_at": member.consent_changed_at.isoformat(),
            },
        ),
    ]
    assert document["synthetic_truth"] == {
        "seed": 7,
        "cutoff": "2026-01-01T00:00:00Z",
        "horizon_days": 90,
        "churn_probability": 0.31,
        "churned": False,
    }
    assert document["erasure_tombstone"] is None
    assert document["predictions"] == [
        {
            "id": prediction.pk,
            "kind": "churn",
            "model_version": prediction.model_version_id,
            "cutoff": "2026-01-01T00:00:00Z",
            "scored_at": _json(prediction.scored_at),
            "score": 0.3,
            "probabilities": None,
            "interval_low": 0.25,
            "interval_high": 0.35,
            "label_set": ["stay"],
            "recommended_action": None,
            "confidence": 0.8,
            "explanation": {"base_value": -1.2, "margin": 0.4, "top": [], "remainder": 1.6},
            "features_seen": {"spend_365": 812.5, "logins_30": 3.0},
            "member_value": 812.5,
        }
    ]
    assert [
        (row["id"], row["state"], row["tier"], row["member_value"]) for row in document["reviews"]
    ] == [(review.pk, "decided", "gold", 812.5)]
    assert document["decisions"] == [
        {
            "id": decision.pk,
            "review": review.pk,
            "verdict": "override",
            "decided_as": "expert",
            "decided_at": _json(decision.decided_at),
            "reason": "wrong-churn-call",
            "comment": "Moving abroad.",
            "churn_label": True,
            "action": None,
        }
    ]
    assert [
        (row["id"], row["churn_label"], row["feature_values"])
        for row in document["labeled_examples"]
    ] == [(example.pk, True, [812.5, 3.0])]
    assert [(row["kind"], row["subject"]) for row in document["review_audit_records"]] == [
        ("decision", f"review:{review.pk}")
    ]
    # Staff identities are the staff's data, not the member's.
    assert "expert-user" not in json.dumps(document)
    assert "admin-user" not in json.dumps(document)


def test_an_export_is_audited_by_pk(member, admin):
    export_member(member_id=member.pk, actor=admin)

    record = AuditRecord.objects.get(kind="export")
    assert (record.actor, record.subject) == (admin, f"member:{member.pk}")
    assert record.details == {
        "member_id": member.pk,
        "rows": {
            "events": 2,
            "audit_records": 2,
            "predictions": 1,
            "reviews": 1,
            "decisions": 1,
            "blind_answers": 0,
            "labeled_examples": 1,
            "review_audit_records": 1,
        },
    }


def test_an_erased_member_exports_what_erasure_kept(member, admin):
    erase_member(member_id=member.pk, actor=admin)

    document = export_member_by_external_id(external_id="H-42", actor=admin)

    member.refresh_from_db()
    assert document["member"]["id"] == member.pk
    assert document["member"]["external_id"] == f"erased-{member.pk}"
    assert (document["member"]["tier"], document["member"]["age_band"]) == ("", "")
    assert document["member"]["attributes"] == {}
    assert (document["events"], document["labeled_examples"], document["synthetic_truth"]) == (
        [],
        [],
        None,
    )
    (prediction,) = document["predictions"]
    assert (prediction["features_seen"], prediction["explanation"], prediction["score"]) == (
        {},
        {},
        0.3,
    )
    (decision,) = document["decisions"]
    assert (decision["verdict"], decision["comment"], decision["churn_label"]) == (
        "override",
        "",
        None,
    )
    assert document["erasure_tombstone"]["lifted_at"] is None
    assert [record["kind"] for record in document["audit_records"]] == [
        "member_change",
        "consent_change",
        "erasure",
    ]


def test_only_those_who_may_erase_may_export_and_nothing_is_audited(member, make_user):
    analyst = make_user("analyst")
    audits = AuditRecord.objects.count()

    with pytest.raises(PermissionDeniedError):
        export_member(member_id=member.pk, actor=analyst)

    assert AuditRecord.objects.count() == audits


def test_an_unknown_member_cannot_be_exported(admin):
    with pytest.raises(MemberNotFoundError):
        export_member_by_external_id(external_id="nobody", actor=admin)

    assert not AuditRecord.objects.filter(kind="export").exists()


def test_a_section_name_is_taken_once():
    def other(member_id: int) -> list:
        return []

    with pytest.raises(ValueError, match="'events' is a section of the loyalty layer"):
        register_export_section("events", other)
    with pytest.raises(ValueError, match="Another function already exports"):
        register_export_section("predictions", other)
    assert export_sections() == EXPECTED_SECTIONS


# --- the API ------------------------------------------------------------------------------------


def test_admin_exports_a_member_through_the_api(member, admin, api_client):
    api_client.force_authenticate(admin)

    response = api_client.get(reverse("api:member-export", args=["H-42"]))

    assert response.status_code == 200
    body = response.json()
    assert tuple(body) == EXPECTED_SECTIONS
    assert body["member"]["external_id"] == "H-42"
    assert len(body["events"]) == 2
    assert AuditRecord.objects.get(kind="export").subject == f"member:{member.pk}"


@pytest.mark.parametrize(("role", "status"), [("integrator", 403), ("analyst", 403), (None, 401)])
def test_the_api_export_is_for_admins_only(member, make_user, api_client, role, status):
    if role:
        api_client.force_authenticate(make_user(role))

    response = api_client.get(reverse("api:member-export", args=["H-42"]))

    assert response.status_code == status
    assert not AuditRecord.objects.filter(kind="export").exists()


def test_the_api_export_of_an_unknown_id_is_404(admin, api_client):
    api_client.force_authenticate(admin)

    response = api_client.get(reverse("api:member-export", args=["nobody"]))

    assert response.status_code == 404
    assert not AuditRecord.objects.filter(kind="export").exists()


# --- the admin action ---------------------------------------------------------------------------


def test_admin_action_downloads_one_members_export(client, member, admin):
    client.force_login(admin)

    response = client.post(
        reverse("admin:loyalty_member_changelist"),
        {"action": "export_selected", "_selected_action": [member.pk]},
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == f'attachment; filename="member-{member.pk}.json"'
    document = json.loads(response.content)
    assert tuple(document) == EXPECTED_SECTIONS
    assert document["member"]["id"] == member.pk


def test_admin_action_keys_several_exports_by_pk(client, member, admin):
    other = create_member(external_id="H-43", actor=admin)
    client.force_login(admin)

    response = client.post(
        reverse("admin:loyalty_member_changelist"),
        {"action": "export_selected", "_selected_action": [member.pk, other.pk]},
    )

    assert response["Content-Disposition"] == 'attachment; filename="members-2.json"'
    documents = json.loads(response.content)
    assert {key: value["member"]["external_id"] for key, value in documents.items()} == {
        str(member.pk): "H-42",
        str(other.pk): "H-43",
    }
    assert AuditRecord.objects.filter(kind="export").count() == 2


def test_admin_action_is_offered_only_to_users_who_may_erase(client, django_user_model):
    clerk = django_user_model.objects.create_user(username="clerk", is_staff=True)
    clerk.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_member", "change_member"])
    )
    client.force_login(clerk)

    response = client.get(reverse("admin:loyalty_member_changelist"))

    assert response.status_code == 200
    assert "export_selected" not in response.content.decode()
