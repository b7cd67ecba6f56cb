"""A decision's lineage: every part of its story on the page and in one API call, who may read
it (404 like an unknown id for what the caller may not see, erased members' for everyone),
nothing protected or held back leaking, and the auditors' streamed export (JSON Lines and CSV,
admins only, audited)."""

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from jsonschema import Draft202012Validator

from integrations.lineage import decision_lineage, lineage_decisions, lineages_of
from integrations.models import Delivery
from integrations.services.delivery import fan_out
from integrations.services.endpoints import create_endpoint
from integrations.services.lineage_export import LINEAGE_COLUMNS
from learning.services.labels import label_decision, record_outcomes
from loyalty.models import AuditRecord, OutboxEvent
from loyalty.services.erasure import erase_member
from predictions.ml.features import MAX_LOOKBACK_DAYS
from reviews.models import Decision, Review
from reviews.policy_settings import PolicySettings
from reviews.selectors.policy import current_policy
from reviews.services.decisions import escalate_review, override_prediction
from reviews.services.openings import record_opening
from reviews.services.policy import change_policy
from reviews.services.routing import route_new_predictions
from tests.factories import EventFactory, MemberFactory, ModelVersionFactory, PredictionFactory
from tests.tokens import token_header

pytestmark = pytest.mark.django_db

CUTOFF = datetime(2026, 1, 1, tzinfo=UTC)
FINGERPRINT = "f1" * 32
CHECKSUM = "c3" * 32
# Protected attributes, kept for fairness audits only: never in a lineage.
AGE_BAND, REGION = "55-64", "Lineage-Region-North"
FORMULA_COMMENT = '=HYPERLINK("http://evil.example")'
EXPLANATION = {
    "base_value": -1.0,
    "margin": 0.2,
    "top": [
        {"feature": "days_since_last_purchase", "name": "Days since last purchase",
         "value": 41.0, "contribution": 0.9},
        {"feature": "spend_90", "name": "Spend, last 90 days", "value": 12.5,
         "contribution": 0.25},
    ],
    "remainder": 0.05,
}  # fmt: skip


def _lineage_url(decision_id: int) -> str:
    return reverse("integrations:decision_lineage", kwargs={"decision_id": decision_id})


def _api_url(decision_id: int) -> str:
    return reverse("integrations-api:decision-lineage", kwargs={"decision_id": decision_id})


EXPORT_PAGE = reverse("integrations:export_lineage")
EXPORT_API = reverse("integrations-api:lineage-export")


@pytest.fixture
def story(routed, make_user):
    """One churn decision with every part of a story: a model version with its fingerprint,
    metrics and checksums; a prediction with features and an explanation; the member's events
    inside and outside the window; an analyst who opened and escalated it; an expert who
    opened it and overrode the call (with a comment a spreadsheet would run); its event
    delivered to an endpoint; its labeled example and its observed outcome."""
    analyst = make_user("analyst", username="ana")
    expert = make_user("expert", username="eve")
    version = ModelVersionFactory(
        data_fingerprint=FINGERPRINT,
        artifact_checksums={"churn.ubj": CHECKSUM},
        metrics={"roc_auc": 0.81, "ece": 0.02},
        horizon_days=30,
        features=[
            {"code": "days_since_last_purchase", "name": "Days since last purchase"},
            {"code": "spend_90", "name": "Spend, last 90 days"},
        ],
    )
    member = MemberFactory(external_id="LIN-1", age_band=AGE_BAND, region=REGION)
    window_days = [1, 40, MAX_LOOKBACK_DAYS - 1]  # three events inside the window
    for days in [*window_days, MAX_LOOKBACK_DAYS + 5]:  # and one older than it
        EventFactory(member=member, occurred_at=CUTOFF - timedelta(days=days))
    EventFactory(member=member, occurred_at=CUTOFF + timedelta(days=3))  # after: a purchase
    prediction = PredictionFactory(
        member=member,
        model_version=version,
        confidence=0.8,
        score=0.3,
        feature_values=[41.0, 12.5],
        explanation=EXPLANATION,
    )
    route_new_predictions(kind="churn")
    review = Review.objects.get(prediction=prediction)
    Review.objects.filter(pk=review.pk).update(is_blind=False)  # a blind draw is by id
    assert review.route == Review.Route.ANALYST
    endpoint = create_endpoint(actor=None, url="https://receiver.example.com/hooks").endpoint

    record_opening(review=review, user=analyst)
    escalate_review(
        review_id=review.pk, actor=analyst, reason_code="needs-expert", comment="unsure"
    )
    record_opening(review=review, user=expert)
    decision = override_prediction(
        review_id=review.pk,
        actor=expert,
        reason_code="wrong-churn-call",
        churn_label=True,
        comment=FORMULA_COMMENT,
    )
    fan_out()
    decided_event = OutboxEvent.objects.get(type="decision.created", data__decision_id=decision.pk)
    Delivery.objects.filter(event=decided_event).update(
        status="delivered", attempts=1, last_status_code=200, delivered_at=timezone.now()
    )
    return {
        "decision": decision,
        "review": review,
        "prediction": prediction,
        "version": version,
        "endpoint": endpoint,
        "analyst": analyst,
        "expert": expert,
    }


def _record_outcome():
    """The data clock passes the 30-day horizon: the outcome of the prediction is recorded."""
    return record_outcomes(clock=CUTOFF + timedelta(days=60))


# --- the document -------------------------------------------------------------------------


def test_the_lineage_holds_every_part_of_the_story(story, make_user):
    label_decision(decision_id=story["decision"].pk)
    _record_outcome()

    lineage = decision_lineage(make_user("admin"), decision_id=story["decision"].pk)

    assert lineage["format"] == 1
    assert lineage["member"] == {"external_id": "LIN-1"}
    [prediction] = lineage["predictions"]
    assert prediction["id"] == story["prediction"].pk
    assert prediction["role"] == "decided"
    assert prediction["features"] == {"days_since_last_purchase": 41.0, "spend_90": 12.5}
    assert prediction["explanation"] == EXPLANATION
    assert prediction["events_window"] == {
        "start": "2024-01-02T00:00:00Z",
        "end": "2026-01-01T00:00:00Z",
        "days": MAX_LOOKBACK_DAYS,
        "events": 3,
    }
    model = prediction["model_version"]
    assert (model["id"], model["data_fingerprint"], model["artifact_checksums"]) == (
        story["version"].pk,
        FINGERPRINT,
        {"churn.ubj": CHECKSUM},
    )
    assert model["metrics"] == {"roc_auc": 0.81, "ece": 0.02}
    routing = lineage["routing"]
    policy = current_policy("churn")
    assert routing["policy"]["version"] == policy.version
    assert routing["policy"]["settings"]["audit_sample_rate"] == 0.0
    assert routing["rule"] == "escalated by ana: Needs an expert's judgement"
    assert (routing["route"], routing["state"]) == ("expert", "decided")
    assert [(step["step"], step["who"]) for step in lineage["people"]] == [
        ("opened", "ana"),
        ("escalated", "ana"),
        ("opened", "eve"),
        ("decided", "eve"),
    ]
    assert lineage["escalation"]["by"] == "ana"
    assert lineage["escalation"]["reason_code"] == "needs-expert"
    assert lineage["escalation"]["comment"] == "unsure"
    decision = lineage["decision"]
    assert decision["decision_id"] == story["decision"].pk
    assert (decision["verdict"], decision["churn_call"], decision["reason_code"]) == (
        "override",
        True,
        "wrong-churn-call",
    )
    assert (decision["decided_by"], decision["decided_as"]) == ("eve", "expert")
    assert decision["comment"] == FORMULA_COMMENT
    assert decision["held_out"] is None  # for people, once the horizon has passed
    assert [event["type"] for event in lineage["events_out"]] == [
        "review.escalated",
        "decision.created",
    ]
    [delivery] = lineage["events_out"][1]["deliveries"]
    assert (delivery["status"], delivery["last_status_code"]) == ("delivered", 200)
    assert delivery["endpoint"] == "https://receiver.example.com/hooks"
    [example] = lineage["labeled_examples"]
    assert (example["source"], example["churn_label"], example["treatment"]) == (
        "decision",
        True,
        "relabel",
    )
    assert example["agrees_with_model"] is False
    [outcome] = lineage["outcomes"]
    # A purchase three days after the cutoff: the member stayed, the expert was wrong.
    assert (outcome["source"], outcome["churn_label"], outcome["prediction_id"]) == (
        "outcome",
        False,
        story["prediction"].pk,
    )
    assert [(record["kind"], record["actor"]) for record in lineage["audit_records"]] == [
        ("escalation", "ana"),
        ("decision", "eve"),
    ]


def test_before_anything_is_learned_the_lineage_says_so(story):
    lineage = decision_lineage(story["expert"], decision_id=story["decision"].pk)

    assert (lineage["labeled_examples"], lineage["outcomes"]) == ([], [])


def test_an_automatic_decision_names_the_policy_and_no_person(routed, make_user):
    decision = Decision.objects.get(review=routed["auto"])

    lineage = decision_lineage(make_user("analyst"), decision_id=decision.pk)

    assert lineage["decision"]["decided_as"] == "policy"
    assert lineage["decision"]["decided_by"] is None
    assert [(step["step"], step["who"]) for step in lineage["people"]] == [("decided", None)]
    assert lineage["routing"]["route"] == "auto"
    assert lineage["escalation"] is None


def test_protected_attributes_never_appear(story, make_user):
    for role in ("analyst", "expert", "admin"):
        user = make_user(role, username=f"{role}-protected")
        for decision in lineage_decisions(user):
            text = json.dumps(lineages_of(user, [decision], now=timezone.now()))
            assert AGE_BAND not in text and REGION not in text
            assert "age_band" not in text and "region" not in text


def test_a_held_out_decision_stays_hidden_from_people_until_its_horizon(story, make_user):
    decision = story["decision"]
    Decision.objects.filter(pk=decision.pk).update(held_out=True, holdout_reason="action")
    OutboxEvent.objects.filter(data__decision_id=decision.pk).update(type="decision.held_out")
    expert, admin = story["expert"], make_user("admin")
    decision = lineage_decisions(expert).get(pk=decision.pk)
    horizon = decision.review.prediction.model_version.horizon_days
    now = decision.decided_at + timedelta(days=horizon - 1)

    [before] = lineages_of(expert, [decision], now=now)
    [after] = lineages_of(expert, [decision], now=now + timedelta(days=2))
    [admin_before] = lineages_of(admin, [decision], now=now)

    assert (before["decision"]["held_out"], before["decision"]["holdout_reason"]) == (None, None)
    assert (before["events_out"][1]["type"], before["events_out"][1]["deliveries"]) == (None, None)
    assert (after["decision"]["held_out"], after["decision"]["holdout_reason"]) == (
        True,
        "action",
    )
    assert after["events_out"][1]["type"] == "decision.held_out"
    assert len(after["events_out"][1]["deliveries"]) == 1
    # Admins read every event's type in the delivery log already; the flag waits like the feed.
    assert admin_before["events_out"][1]["type"] == "decision.held_out"
    assert admin_before["decision"]["held_out"] is None


# --- who may read it ----------------------------------------------------------------------


@pytest.mark.parametrize(("role", "status"), [("analyst", 404), ("expert", 200), ("admin", 200)])
def test_the_page_answers_like_the_decision_visibility_rule(client, make_user, story, role, status):
    client.force_login(make_user(role, username=f"{role}-page"))

    response = client.get(_lineage_url(story["decision"].pk))

    assert response.status_code == status


def test_an_analyst_reads_the_lineage_of_what_they_may_see(client, make_user, routed):
    decision = Decision.objects.get(review=routed["auto"])
    client.force_login(make_user("analyst"))

    response = client.get(_lineage_url(decision.pk))

    assert response.status_code == 200
    assert routed["auto"].member.external_id in response.content.decode()


def test_the_page_shows_each_part(client, make_user, story):
    label_decision(decision_id=story["decision"].pk)
    _record_outcome()
    client.force_login(make_user("admin"))

    page = client.get(_lineage_url(story["decision"].pk)).content.decode()

    for text in (
        "LIN-1",
        FINGERPRINT,
        CHECKSUM,
        "Days since last purchase",
        "escalated by ana: Needs an expert&#x27;s judgement",
        "3 events of the member",
        "decision.created",
        "https://receiver.example.com/hooks",
        "churned",  # the expert's call, the decision's example
        "stayed",  # what the member did, the outcome
        "&quot;roc_auc&quot;: 0.81",
    ):
        assert text in page, text
    assert AGE_BAND not in page and REGION not in page


def test_an_unknown_decision_answers_404_like_one_not_visible(client, make_user, story):
    client.force_login(make_user("expert", username="expert-404"))

    response = client.get(_lineage_url(story["decision"].pk + 10_000))

    assert response.status_code == 404


def test_an_erased_members_decision_answers_404_to_everyone(client, api_client, make_user, story):
    erase_member(member_id=story["review"].member_id, actor=None)
    admin = make_user("admin")
    client.force_login(admin)
    api_client.credentials(HTTP_AUTHORIZATION=token_header(admin))

    assert client.get(_lineage_url(story["decision"].pk)).status_code == 404
    assert api_client.get(_api_url(story["decision"].pk)).status_code == 404


@pytest.mark.parametrize(
    ("role", "status"),
    [("analyst", 404), ("expert", 200), ("admin", 200), ("integrator", 403)],
)
def test_the_api_answers_like_the_page(api_client, make_user, story, role, status):
    api_client.credentials(HTTP_AUTHORIZATION=token_header(make_user(role, username=f"{role}-a")))

    response = api_client.get(_api_url(story["decision"].pk))

    assert response.status_code == status


def test_the_api_answer_is_the_document_and_matches_the_schema(api_client, make_user, story):
    label_decision(decision_id=story["decision"].pk)
    _record_outcome()
    admin = make_user("admin")
    api_client.credentials(HTTP_AUTHORIZATION=token_header(admin))

    response = api_client.get(_api_url(story["decision"].pk))

    assert response.status_code == 200
    assert response.json() == decision_lineage(admin, decision_id=story["decision"].pk)
    spec = api_client.get("/api/schema/", {"format": "json"}).json()
    operation = spec["paths"]["/api/decisions/{decision_id}/lineage/"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    validator = Draft202012Validator(
        {**schema, "components": spec["components"]},
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    assert [error.message for error in validator.iter_errors(response.json())] == []


# --- the export ---------------------------------------------------------------------------


def _export_params(file_type: str = "jsonl", *, start: date | None = None) -> dict:
    day = start or timezone.localdate()
    return {"start": str(day), "end": str(day + timedelta(days=1)), "file_type": file_type}


def _body(response) -> str:
    return b"".join(response.streaming_content).decode()


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("admin", username="auditor"))
    return client


def test_the_export_streams_one_lineage_per_line(admin_client, story, routed):
    response = admin_client.get(EXPORT_PAGE, _export_params("jsonl"))

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="decision-lineage-')
    lines = _body(response).splitlines()
    documents = {json.loads(line)["decision_id"]: json.loads(line) for line in lines}
    auto = Decision.objects.get(review=routed["auto"])
    assert set(documents) == {story["decision"].pk, auto.pk}
    sequences = [json.loads(line)["decision"]["sequence"] for line in lines]
    assert sequences == sorted(sequences)
    assert documents[story["decision"].pk]["member"] == {"external_id": "LIN-1"}


def test_the_csv_export_holds_the_flat_part_with_formulas_escaped(admin_client, story):
    label_decision(decision_id=story["decision"].pk)
    _record_outcome()

    response = admin_client.get(EXPORT_PAGE, _export_params("csv"))

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(_body(response))))
    assert list(rows[0]) == list(LINEAGE_COLUMNS)
    [row] = [row for row in rows if row["member_external_id"] == "LIN-1"]
    assert row["comment"] == "'" + FORMULA_COMMENT
    assert (row["data_fingerprint"], row["artifact_checksums"]) == (
        FINGERPRINT,
        f"churn.ubj={CHECKSUM}",
    )
    assert row["people"] == "opened:ana; escalated:ana; opened:eve; decided:eve"
    assert row["events_in_window"] == "3"
    assert (row["events_out"], row["deliveries_delivered"]) == (
        "review.escalated; decision.created",
        "1",
    )
    assert (row["labels"], row["outcomes"]) == ("churn=true", "churn=false")
    assert row["policy_version"] == str(current_policy("churn").version)


def test_a_day_without_decisions_exports_only_the_header(admin_client, story):
    response = admin_client.get(EXPORT_PAGE, _export_params("csv", start=date(2020, 1, 1)))

    assert _body(response).splitlines() == [",".join(LINEAGE_COLUMNS)]


def test_each_export_is_audited(admin_client, story, routed):
    before = AuditRecord.objects.filter(kind="export").count()

    _body(admin_client.get(EXPORT_PAGE, _export_params("csv")))

    assert AuditRecord.objects.filter(kind="export").count() == before + 1
    record = AuditRecord.objects.filter(kind="export").latest("occurred_at", "pk")
    day = timezone.localdate()
    assert (record.actor_name, record.subject) == ("auditor", "decision-lineage")
    assert record.details == {
        "what": "decision lineage",
        "start": str(day),
        "end": str(day + timedelta(days=1)),
        "file_type": "csv",
        "decisions": 2,
    }


@pytest.mark.parametrize("role", ["analyst", "expert", "integrator"])
def test_only_admins_export(client, api_client, make_user, story, role):
    user = make_user(role, username=f"{role}-export")
    client.force_login(user)
    api_client.credentials(HTTP_AUTHORIZATION=token_header(user))
    before = AuditRecord.objects.filter(kind="export").count()

    page = client.get(EXPORT_PAGE, _export_params())
    api = api_client.get(EXPORT_API, _export_params())

    assert (page.status_code, api.status_code) == (403, 403)
    assert AuditRecord.objects.filter(kind="export").count() == before


@pytest.mark.parametrize(
    "params",
    [
        {"start": "2026-03-02", "end": "2026-03-01"},
        {"start": "2026-03-01", "end": "2026-03-01"},
        {"start": "yesterday", "end": "2026-03-01"},
        {"start": "2026-03-01"},
        {"start": "2026-03-01", "end": "2026-03-02", "file_type": "xlsx"},
    ],
)
def test_a_bad_range_is_a_clear_400_and_writes_nothing(
    admin_client, api_client, make_user, story, params
):
    api_client.credentials(HTTP_AUTHORIZATION=token_header(make_user("admin")))
    before = AuditRecord.objects.filter(kind="export").count()

    page = admin_client.get(EXPORT_PAGE, params)
    api = api_client.get(EXPORT_API, params)

    assert (page.status_code, api.status_code) == (400, 400)
    assert "errorlist" in page.content.decode()
    assert set(api.json()) <= {"start", "end", "file_type"}
    assert AuditRecord.objects.filter(kind="export").count() == before


def test_without_dates_the_page_is_the_form(admin_client):
    response = admin_client.get(EXPORT_PAGE)

    assert response.status_code == 200
    assert 'data-testid="lineage-export-form"' in response.content.decode()


def test_the_api_export_streams_the_same_lines(api_client, make_user, story):
    api_client.credentials(HTTP_AUTHORIZATION=token_header(make_user("admin")))

    response = api_client.get(EXPORT_API, _export_params("jsonl"), HTTP_ACCEPT="text/csv")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    ids = {json.loads(line)["decision_id"] for line in _body(response).splitlines()}
    assert story["decision"].pk in ids


def test_the_export_reads_a_page_of_decisions_in_a_fixed_number_of_queries(
    story, make_user, routed
):
    """No query per decision: twelve more decisions cost no more queries than none."""
    admin = make_user("admin")
    settings = PolicySettings.of(current_policy("churn"))
    change_policy(
        kind="churn",
        settings=replace(settings, auto_approve_confidence=0.5, blind_share=0.0),
        actor=None,
        reason="auto-approve the batch",
    )

    def queries() -> int:
        decisions = list(lineage_decisions(admin))
        with CaptureQueriesContext(connection) as captured:
            lineages_of(admin, decisions, now=timezone.now())
        return len(captured)

    few = queries()
    for _ in range(12):
        PredictionFactory(model_version=story["version"], confidence=0.95, score=0.1)
    route_new_predictions(kind="churn")
    assert lineage_decisions(admin).count() >= 14

    assert queries() == few
