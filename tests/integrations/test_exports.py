"""The CSV exports: a queue as its filters show it, decisions in a date range as the caller may
read them, and no cell a spreadsheet would run as a formula."""

import csv
import io
from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations import exports
from integrations.exports import DECISION_COLUMNS, QUEUE_COLUMNS, safe_cell
from loyalty.services.erasure import erase_member
from reviews.models import Decision, Review
from reviews.services.decisions import approve_prediction, override_prediction
from reviews.services.routing import route_new_predictions
from tests.factories import MemberFactory, PredictionFactory

pytestmark = pytest.mark.django_db

EXPORT_DECISIONS = reverse("integrations:export_decisions")


def _queue_url(route: str) -> str:
    return reverse("integrations:export_queue", kwargs={"route": route})


def _logged_in(client, user):
    client.force_login(user)
    return client


def _table(response) -> list[dict]:
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def _header(response) -> list[str]:
    text = b"".join(response.streaming_content).decode()
    return next(csv.reader(io.StringIO(text)))


def _analyst_review(version, external_id: str, *, priority: float | None = None) -> Review:
    """A churn review routed to the analyst queue, for a member with this external id."""
    prediction = PredictionFactory(
        member=MemberFactory(external_id=external_id),
        model_version=version,
        confidence=0.8,
        score=0.3,
    )
    route_new_predictions(kind="churn")
    review = Review.objects.get(prediction=prediction)
    assert review.route == Review.Route.ANALYST
    if priority is not None:
        Review.objects.filter(pk=review.pk).update(priority=priority)
    return review


# --- safe_cell ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("M000123", "M000123"),
        ("a=b", "a=b"),
        (" =1", " =1"),
        ("", ""),
        (None, ""),
        (42, "42"),
        (0.25, "0.25"),
        (True, "True"),
    ],
)
def test_safe_cell_escapes_what_a_spreadsheet_would_run(value, written):
    assert safe_cell(value) == written


def test_csv_lines_escape_every_cell_but_not_the_header():
    lines = list(exports.csv_lines(["=a", "b"], [("=1", "x"), (None, "@y")]))

    assert lines == ["=a,b\r\n", "'=1,x\r\n", ",'@y\r\n"]


# --- queue export -------------------------------------------------------------------------


@pytest.fixture
def analyst_queue(routed, next_action_review):
    """Four analyst items with known priorities (three churn, one next action); the expert and
    auto-approved items of `routed` are in other queues."""
    version = routed["analyst"].prediction.model_version
    high = _analyst_review(version, "Q-HIGH", priority=0.9)
    middle = _analyst_review(version, "Q-MIDDLE", priority=0.5)
    Review.objects.filter(pk=routed["analyst"].pk).update(priority=0.1)
    Review.objects.filter(pk=next_action_review.pk).update(priority=0.7)
    return {
        "high": high.member.external_id,
        "next_action": next_action_review.member.external_id,
        "middle": middle.member.external_id,
        "low": routed["analyst"].member.external_id,
        "expert": routed["expert"].member.external_id,
        "auto": routed["auto"].member.external_id,
    }


def test_analyst_exports_their_queue_in_queue_order(client, make_user, analyst_queue):
    client = _logged_in(client, make_user("analyst"))

    response = client.get(_queue_url("analyst"))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="analyst-queue-')
    assert response["Content-Disposition"].endswith('.csv"')
    rows = _table(response)
    assert [row["member"] for row in rows] == [
        analyst_queue["high"],
        analyst_queue["next_action"],
        analyst_queue["middle"],
        analyst_queue["low"],
    ]
    assert [row["kind"] for row in rows] == ["churn", "next_action", "churn", "churn"]
    assert [row["is_overdue"] for row in rows] == ["False"] * 4


def test_the_queue_export_has_the_queue_columns(client, make_user, analyst_queue):
    client = _logged_in(client, make_user("analyst"))

    assert _header(client.get(_queue_url("analyst"))) == list(QUEUE_COLUMNS)


def test_the_queue_export_applies_the_queue_filters(client, make_user, analyst_queue):
    client = _logged_in(client, make_user("analyst"))

    churn = _table(client.get(_queue_url("analyst"), {"kind": "churn"}))
    next_action = _table(client.get(_queue_url("analyst"), {"kind": "next_action"}))

    assert [row["member"] for row in churn] == [
        analyst_queue["high"],
        analyst_queue["middle"],
        analyst_queue["low"],
    ]
    assert [row["member"] for row in next_action] == [analyst_queue["next_action"]]


def test_the_queue_export_reads_every_page(client, make_user, analyst_queue, monkeypatch):
    monkeypatch.setattr(exports, "PAGE", 3)
    client = _logged_in(client, make_user("analyst"))

    rows = _table(client.get(_queue_url("analyst")))

    assert [row["member"] for row in rows] == [
        analyst_queue["high"],
        analyst_queue["next_action"],
        analyst_queue["middle"],
        analyst_queue["low"],
    ]


def test_expert_exports_the_expert_queue(client, make_user, analyst_queue):
    client = _logged_in(client, make_user("expert"))

    response = client.get(_queue_url("expert"))

    assert response.status_code == 200
    assert [row["member"] for row in _table(response)] == [analyst_queue["expert"]]


def test_an_analyst_may_not_export_the_expert_queue(client, make_user, analyst_queue):
    client = _logged_in(client, make_user("analyst"))

    response = client.get(_queue_url("expert"))

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("role", ["admin", "integrator"])
def test_roles_without_a_queue_may_not_export_one(client, make_user, analyst_queue, role):
    client = _logged_in(client, make_user(role))

    assert client.get(_queue_url("analyst")).status_code == 403


def test_a_queue_that_does_not_exist_is_404(client, make_user, analyst_queue):
    client = _logged_in(client, make_user("expert"))

    assert client.get(_queue_url("auto")).status_code == 404


def test_anonymous_is_sent_to_log_in(client, analyst_queue):
    response = client.get(_queue_url("analyst"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_formula_like_member_ids_are_escaped_in_the_queue_export(client, make_user, routed):
    version = routed["analyst"].prediction.model_version
    _analyst_review(version, "=HYPERLINK(1)", priority=0.9)
    _analyst_review(version, "-2+3", priority=0.8)
    Review.objects.filter(pk=routed["analyst"].pk).update(priority=0.1)
    client = _logged_in(client, make_user("analyst"))

    rows = _table(client.get(_queue_url("analyst")))

    assert [row["member"] for row in rows] == [
        "'=HYPERLINK(1)",
        "'-2+3",
        routed["analyst"].member.external_id,
    ]


# --- decisions export --------------------------------------------------------------------------

DAY = datetime(2026, 3, 1)


def _at(day_offset: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """A moment on or around DAY, in the site's time zone (which decides where a day starts)."""
    naive = DAY + timedelta(days=day_offset, hours=hour, minutes=minute, seconds=second)
    return timezone.make_aware(naive, timezone.get_current_timezone())


def _decided_at(decision: Decision, moment: datetime) -> None:
    Decision.objects.filter(pk=decision.pk).update(decided_at=moment)


@pytest.fixture
def decisions(routed, next_action_review, make_user):
    """Decisions around 2026-03-01 (the day exported in these tests), in this order:
    before the day, at its first instant, on an expert-only review, a next-action override,
    at its last second, at the next midnight (outside)."""
    analyst = make_user("analyst", username="decider-analyst")
    expert = make_user("expert", username="decider-expert")
    version = routed["analyst"].prediction.model_version
    made = {}
    moments = {
        "before": _at(-1, 23, 59, 59),
        "at_start": _at(0),
        "expert_only": _at(0, 12),
        "next_action": _at(0, 15),
        "at_end": _at(0, 23, 59, 59),
        "next_day": _at(1),
    }
    for name in moments:
        if name == "expert_only":
            made[name] = approve_prediction(
                review_id=routed["expert"].pk, actor=expert, reason_code="model-correct"
            )
        elif name == "next_action":
            made[name] = override_prediction(
                review_id=next_action_review.pk,
                actor=analyst,
                reason_code="better-action",
                action_code="win_back_email",
            )
        else:
            review = _analyst_review(version, f"D-{name}")
            made[name] = approve_prediction(
                review_id=review.pk, actor=analyst, reason_code="model-correct"
            )
        _decided_at(made[name], moments[name])
    return {name: Decision.objects.get(pk=decision.pk) for name, decision in made.items()}


def _export(client, start="2026-03-01", end="2026-03-02"):
    return client.get(EXPORT_DECISIONS, {"start": start, "end": end})


def test_integrator_exports_every_decision_of_the_range(client, make_user, decisions):
    client = _logged_in(client, make_user("integrator"))

    response = _export(client)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="decisions-2026-03-01-')
    rows = _table(response)
    assert [int(row["decision_id"]) for row in rows] == [
        decisions[name].pk for name in ("at_start", "expert_only", "next_action", "at_end")
    ]
    assert [int(row["sequence"]) for row in rows] == sorted(int(row["sequence"]) for row in rows)


def test_a_decision_row_says_what_was_decided(client, make_user, decisions, next_action_review):
    client = _logged_in(client, make_user("integrator"))

    rows = {int(row["decision_id"]): row for row in _table(_export(client))}

    churn = rows[decisions["at_start"].pk]
    assert churn["member_external_id"] == "D-at_start"
    assert churn["kind"] == "churn"
    assert churn["verdict"] == "approve"
    assert churn["churn_call"] == "False"  # the model's call at a score of 0.3: stay
    assert churn["action_code"] == ""
    assert churn["score"] == "0.3"
    assert churn["reason_code"] == "model-correct"
    assert churn["decided_as"] == "analyst"
    assert churn["held_out"] == "False"
    assert churn["decided_at"] == _at(0).isoformat()
    assert churn["review_id"] == str(decisions["at_start"].review_id)
    action = rows[decisions["next_action"].pk]
    assert action["member_external_id"] == next_action_review.member.external_id
    assert (action["kind"], action["verdict"], action["action_code"]) == (
        "next_action",
        "override",
        "win_back_email",
    )
    assert (action["churn_call"], action["reason_code"]) == ("", "better-action")
    assert rows[decisions["expert_only"].pk]["decided_as"] == "expert"


def test_the_decisions_export_has_the_decision_columns(client, make_user, decisions):
    client = _logged_in(client, make_user("integrator"))

    assert _header(_export(client)) == list(DECISION_COLUMNS)


def test_an_analyst_does_not_get_decisions_on_expert_only_reviews(client, make_user, decisions):
    client = _logged_in(client, make_user("analyst"))

    rows = _table(_export(client))

    assert [int(row["decision_id"]) for row in rows] == [
        decisions[name].pk for name in ("at_start", "next_action", "at_end")
    ]


@pytest.mark.parametrize("role", ["expert", "admin"])
def test_experts_and_admins_get_every_decision_of_the_range(client, make_user, decisions, role):
    client = _logged_in(client, make_user(role))

    rows = _table(_export(client))

    assert [int(row["decision_id"]) for row in rows] == [
        decisions[name].pk for name in ("at_start", "expert_only", "next_action", "at_end")
    ]


def test_a_wider_range_takes_the_days_around_it(client, make_user, decisions):
    client = _logged_in(client, make_user("integrator"))

    rows = _table(_export(client, start="2026-02-28", end="2026-03-03"))

    assert [int(row["decision_id"]) for row in rows] == [
        decision.pk for decision in decisions.values()
    ]


def test_days_start_at_midnight_in_the_site_time_zone(client, make_user, decisions, settings):
    """In Paris (UTC+1 in March) 2026-03-01 begins at 2026-02-28T23:00Z: a decision at
    23:30Z on the 28th belongs to the 1st, one at 23:30Z on the 1st to the 2nd."""
    settings.TIME_ZONE = "Europe/Paris"
    utc = timezone.get_fixed_timezone(0)
    _decided_at(decisions["before"], datetime(2026, 2, 28, 23, 30, tzinfo=utc))
    _decided_at(decisions["at_end"], datetime(2026, 3, 1, 23, 30, tzinfo=utc))
    client = _logged_in(client, make_user("integrator"))

    rows = _table(_export(client))

    assert decisions["before"].pk in {int(row["decision_id"]) for row in rows}
    assert decisions["at_end"].pk not in {int(row["decision_id"]) for row in rows}


def test_decisions_on_erased_members_are_not_exported(client, make_user, decisions):
    erase_member(member_id=decisions["at_start"].review.member_id, actor=None)
    client = _logged_in(client, make_user("integrator"))

    rows = _table(_export(client))

    assert decisions["at_start"].pk not in {int(row["decision_id"]) for row in rows}
    assert len(rows) == 3


def test_the_decisions_export_reads_every_page(client, make_user, decisions, monkeypatch):
    monkeypatch.setattr(exports, "PAGE", 2)
    client = _logged_in(client, make_user("integrator"))

    rows = _table(_export(client, start="2026-02-01", end="2026-04-01"))

    assert [int(row["decision_id"]) for row in rows] == [
        decision.pk for decision in decisions.values()
    ]


def test_formula_like_member_ids_are_escaped_in_the_decisions_export(client, make_user, routed):
    analyst = make_user("analyst")
    version = routed["analyst"].prediction.model_version
    for external_id in ("=HYPERLINK(1)", "-2+3", "@cmd"):
        review = _analyst_review(version, external_id)
        decision = approve_prediction(
            review_id=review.pk, actor=analyst, reason_code="model-correct"
        )
        _decided_at(decision, _at(0, 9))
    client = _logged_in(client, analyst)

    rows = _table(_export(client))

    assert [row["member_external_id"] for row in rows] == ["'=HYPERLINK(1)", "'-2+3", "'@cmd"]


def test_without_dates_the_export_form_is_shown(client, make_user):
    client = _logged_in(client, make_user("analyst"))

    response = client.get(EXPORT_DECISIONS)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b'data-testid="export-form"' in response.content


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "2026-13-01", "end": "2026-03-02"}, "Enter a valid date."),
        ({"start": "2026-03-01", "end": "tomorrow"}, "Enter a valid date."),
        ({"start": "2026-03-01"}, "This field is required."),
        ({"start": "2026-03-02", "end": "2026-03-01"}, "The end date must come after"),
        ({"start": "2026-03-01", "end": "2026-03-01"}, "The end date must come after"),
    ],
    ids=["bad-month", "not-a-date", "no-end", "end-before-start", "empty-range"],
)
def test_bad_dates_answer_400_with_the_form_shown_again(client, make_user, params, message):
    client = _logged_in(client, make_user("integrator"))

    response = client.get(EXPORT_DECISIONS, params)

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert b'data-testid="export-form"' in response.content
    assert message in response.content.decode()
    # What was typed stays in the form.
    assert f'value="{params["start"]}"' in response.content.decode()


def test_anonymous_is_sent_to_log_in_for_the_decisions_export(client):
    response = _export(client)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
