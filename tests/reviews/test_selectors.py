"""The queue selectors: keyset pages, filters, routes, and what the member page reads."""

from datetime import timedelta

import pytest
from django.utils import timezone

from loyalty import keyset
from reviews.models import Review
from reviews.selectors.formatting import format_age
from reviews.selectors.member_page import review_page
from reviews.selectors.queue import (
    QUEUE_ORDER,
    QueueFilters,
    next_pending_review,
    pending_counts,
    pending_reviews_for,
)
from reviews.services.decisions import approve_prediction
from tests.factories import EventFactory, ModelVersionFactory, PredictionFactory

pytestmark = pytest.mark.django_db


def make_reviews(priorities, *, route="analyst", state="pending", **fields):
    """Pending reviews with the given priorities (ids ascending in list order)."""
    version = ModelVersionFactory()
    from reviews.models import EscalationPolicy

    policy = EscalationPolicy.objects.filter(kind="churn").first() or (
        EscalationPolicy.objects.create(kind="churn", version=1)
    )
    now = timezone.now()
    reviews = []
    for priority in priorities:
        prediction = PredictionFactory(model_version=version)
        values = {
            "kind": "churn",
            "route": route,
            "state": state,
            "route_reason": "confidence 0.70 between expert 0.50 and auto-approve 0.90",
            "tier": "silver",
            "member_value": 100.0,
            "risk": prediction.score,
            "confidence": prediction.confidence,
            "routed_at": now,
            **fields,
        }
        reviews.append(
            Review.objects.create(
                prediction=prediction,
                member=prediction.member,
                policy=policy,
                priority=priority,
                **values,
            )
        )
    return reviews


def ids(page):
    return [row.review_id for row in page.rows]


def test_page_two_starts_exactly_after_page_one_with_equal_priorities():
    # Seven rows share priority 0.5 across the page boundary.
    reviews = make_reviews([0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.1])
    expected = [r.pk for r in sorted(reviews, key=lambda r: (-r.priority, r.pk))]

    first = pending_reviews_for(route="analyst", limit=4)
    second = pending_reviews_for(route="analyst", limit=4, after=first.next_cursor)
    third = pending_reviews_for(route="analyst", limit=4, after=second.next_cursor)

    assert ids(first) == expected[:4]
    assert ids(second) == expected[4:8]
    assert ids(third) == expected[8:]
    boundary = keyset.decode_cursor(first.next_cursor, model=Review, ordering=QUEUE_ORDER)
    assert boundary.key == (0.5, expected[3])
    assert third.next_cursor is None


def test_a_cursor_keeps_a_float_priority_exactly():
    reviews = make_reviews([0.1 + 0.2, 0.1 + 0.2, 0.3])
    expected = [r.pk for r in sorted(reviews, key=lambda r: (-r.priority, r.pk))]

    first = pending_reviews_for(route="analyst", limit=1)
    rest = pending_reviews_for(route="analyst", limit=5, after=first.next_cursor)

    assert ids(first) + ids(rest) == expected


BROKEN_CURSORS = [
    "nonsense",
    "nan:3",
    "",
    keyset.encode_cursor(keyset.Cursor(key=(float("nan"), 3))),
    keyset.encode_cursor(keyset.Cursor(key=("high", 3))),
    keyset.encode_cursor(keyset.Cursor(key=(0.3,))),
]


@pytest.mark.parametrize("after", BROKEN_CURSORS)
def test_a_broken_cursor_means_the_first_page(after):
    reviews = make_reviews([0.4, 0.2])

    page = pending_reviews_for(route="analyst", after=after)

    assert ids(page) == [reviews[0].pk, reviews[1].pk]
    assert page.cursor is None


def test_an_analyst_queue_never_holds_expert_or_decided_items():
    analyst = make_reviews([0.2])
    make_reviews([0.9], route="expert")
    make_reviews([0.8], route="analyst", state="decided")
    make_reviews([0.7], route="auto", state="auto_approved")

    assert ids(pending_reviews_for(route="analyst")) == [analyst[0].pk]
    assert pending_counts() == {"analyst": 1, "expert": 1}


def test_the_expert_queue_shows_why_an_item_was_escalated(routed, make_user):
    from reviews.services.decisions import escalate_review

    analyst = make_user("analyst")
    review = routed["analyst"]
    escalate_review(
        review_id=review.pk,
        actor=analyst,
        reason_code="needs-expert",
        comment="Called us twice last week",
        proposal={"verdict": "override", "churn_label": True},
    )

    rows = {row.review_id: row for row in pending_reviews_for(route="expert").rows}

    row = rows[review.pk]
    assert (row.escalation, row.escalated_by, row.escalation_comment, row.proposal) == (
        "Needs an expert's judgement",
        "analyst-user",
        "Called us twice last week",
        "Override: will churn",
    )
    assert review.pk not in ids(pending_reviews_for(route="analyst"))


def test_filters_combine():
    old = timezone.now() - timedelta(hours=30)
    target = make_reviews([0.5], tier="gold", risk=0.7, routed_at=old)[0]
    make_reviews([0.6], tier="gold", risk=0.7)  # too recent
    make_reviews([0.6], tier="silver", risk=0.7, routed_at=old)  # other tier
    make_reviews([0.6], tier="gold", risk=0.2, routed_at=old)  # low risk
    filters = QueueFilters.from_params({"tier": "gold", "risk": "high", "age": "24"})

    assert ids(pending_reviews_for(route="analyst", filters=filters)) == [target.pk]
    assert filters.as_params() == {"tier": "gold", "risk": "high", "age": "24"}


def test_reason_and_kind_filters():
    value = make_reviews([0.3], route_reason="member value in top 5 %")[0]
    make_reviews([0.4], route_reason="audit sample (2%)")
    audit_nba = make_reviews([0.2], route_reason="audit sample (2%)", kind="next_action")[0]

    by_value = QueueFilters.from_params({"reason": "value"})
    audit_next_action = QueueFilters.from_params({"reason": "audit", "kind": "next_action"})

    assert ids(pending_reviews_for(route="analyst", filters=by_value)) == [value.pk]
    assert ids(pending_reviews_for(route="analyst", filters=audit_next_action)) == [audit_nba.pk]


def test_unknown_filter_values_are_dropped():
    filters = QueueFilters.from_params(
        {"kind": "x", "tier": "diamond", "risk": "huge", "age": "-3"}
    )

    assert filters == QueueFilters()


def test_rows_are_formatted_for_people():
    review = make_reviews([0.5], member_value=1234.5, risk=0.3)[0]
    Review.objects.filter(pk=review.pk).update(routed_at=timezone.now() - timedelta(hours=50))

    row = pending_reviews_for(route="analyst").rows[0]

    assert (row.call, row.call_detail, row.confidence, row.value, row.waiting, row.risk_band) == (
        "30 %",
        "25–35 %",
        "80 %",
        "1,234",
        "2 d 2 h",
        "medium",
    )
    assert format_age(timedelta(minutes=5)) == "5 min"


def test_the_next_item_follows_in_priority_order_and_wraps_to_the_top():
    first, second, third = make_reviews([0.9, 0.5, 0.1])

    assert next_pending_review(route="analyst", after=second) == third.pk
    assert next_pending_review(route="analyst", after=third) == first.pk


def test_no_next_item_when_the_queue_is_empty(routed, make_user):
    review = routed["analyst"]
    approve_prediction(review_id=review.pk, actor=make_user("analyst"), reason_code="model-correct")
    review.refresh_from_db()

    assert next_pending_review(route="analyst", after=review) is None


def test_the_member_page_never_shows_age_band_or_region(routed, make_user):
    review = routed["analyst"]
    EventFactory.create_batch(3, member=review.member)

    page = review_page(review_id=review.pk, viewer=make_user("analyst"))

    labels = [fact.label for fact in page.member_facts]
    assert labels == [
        "Member",
        "Tier",
        "Tenure",
        "Points",
        "12-month spend",
        "RFM segment",
        "Behavior cluster",
    ]
    values = " ".join(fact.value for fact in page.member_facts)
    assert "35-44" not in values and "north" not in values
    assert len(page.timeline) == 3
    assert page.timeline[0].when >= page.timeline[-1].when
    assert [item.review_id for item in page.history] == [review.pk]


@pytest.mark.django_db
def test_queue_counts_stop_at_the_cap_and_say_so(routed):
    from reviews.selectors.queue import pending_count_labels

    assert pending_counts(cap=1) == {"analyst": 1, "expert": 1}
    assert pending_count_labels(cap=1) == {"analyst": "1", "expert": "1"}
    assert pending_count_labels(cap=0) == {"analyst": "0+", "expert": "0+"}
