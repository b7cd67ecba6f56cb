"""Findings of the access-control review: each test failed on the code before its fix.

The rule under test is `reviews.permissions.visible_reviews_filter`: every route applies it before
anything else and answers what it excludes exactly like an id that does not exist.
"""

import threading

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from loyalty.models import AuditRecord, Member
from reviews.models import Decision, EscalationPolicy, Review
from reviews.policy_settings import PolicySettings
from reviews.selectors.policy import current_policy
from reviews.services.decisions import escalate_review
from reviews.services.policy import change_policy
from tests.factories import people_decisions
from tests.tokens import token_header

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def _api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=token_header(user))
    return client


def _unknown_id() -> int:
    return (Review.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1000


# --- the escalate endpoint ------------------------------------------------------------------


def test_escalating_an_item_someone_else_escalated_reads_nothing_of_it(routed, make_user):
    """Before: 200 with the whole review (the expert's view of it) to an analyst who gets a
    refusal on GET, because a matching reason returned the review before any check."""
    review = routed["analyst"]
    escalate_review(
        review_id=review.pk,
        actor=make_user("analyst", "ann"),
        reason_code="needs-expert",
        comment="big family account",
    )
    other = _api(make_user("analyst", "bob"))
    url = f"/api/reviews/{review.pk}/escalate/"

    response = other.post(url, {"reason_code": "needs-expert"}, format="json")
    unknown = other.post(f"/api/reviews/{_unknown_id()}/escalate/", {"reason_code": "needs-expert"})

    assert (response.status_code, unknown.status_code) == (404, 404)
    assert response.json() == unknown.json() == {"detail": "No such review."}
    assert "big family account" not in response.content.decode()
    assert AuditRecord.objects.filter(kind=AuditRecord.Kind.ESCALATION).count() == 1


def test_escalating_an_expert_item_answers_like_an_unknown_id(routed, make_user):
    """Before: 409 for an existing expert item and 404 for an unknown id, which told an
    analyst which ids exist."""
    analyst = _api(make_user("analyst"))
    payload = {"reason_code": "high-stakes"}

    existing = analyst.post(f"/api/reviews/{routed['expert'].pk}/escalate/", payload)
    unknown = analyst.post(f"/api/reviews/{_unknown_id()}/escalate/", payload)
    invalid = analyst.post(f"/api/reviews/{routed['expert'].pk}/escalate/", {"reason_code": ""})

    assert [r.status_code for r in (existing, unknown, invalid)] == [404, 404, 404]
    assert existing.json() == unknown.json() == invalid.json()
    review = Review.objects.get(pk=routed["expert"].pk)
    assert (review.route, review.escalated_at) == ("expert", None)


# --- an erased member's reviews -------------------------------------------------------------


def test_an_erased_members_reviews_are_no_ones_case(routed, make_user, client):
    review = routed["analyst"]
    Member.objects.filter(pk=review.member_id).update(erased_at=timezone.now())
    expert = make_user("expert")
    client.force_login(expert)

    page = client.get(reverse("reviews:review", args=[review.pk]))
    expert_api = _api(expert)
    api = expert_api.get(f"/api/reviews/{review.pk}/")
    listed = [item["id"] for item in expert_api.get("/api/reviews/").json()["results"]]

    assert (page.status_code, api.status_code) == (404, 404)
    assert review.pk not in listed


# --- the queue's forms ----------------------------------------------------------------------


def test_bulk_approve_names_no_member_the_user_may_not_see(routed, make_user, client):
    """Before: the conflict list echoed the expert item's external id to an analyst."""
    client.force_login(make_user("analyst"))
    hidden = routed["expert"]

    response = client.post(
        reverse("reviews:bulk_approve"),
        {"route": "analyst", "review": [str(routed["analyst"].pk), str(hidden.pk)]},
        **HTMX,
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert "Approved 1 of 2 selected." in body
    assert f"Review {hidden.pk}: not found." in body
    assert hidden.member.external_id not in body
    assert list(people_decisions().values_list("review_id", flat=True)) == [routed["analyst"].pk]


@pytest.mark.parametrize("text", ["²", "٣", "-1", "1e3", " 7", "9" * 30])
def test_ids_and_ages_that_are_not_ascii_digits_are_ignored(routed, make_user, client, text):
    """Before: "²" passed isdigit() and int() raised, a 500 in both places."""
    client.force_login(make_user("analyst"))

    bulk = client.post(reverse("reviews:bulk_approve"), {"route": "analyst", "review": [text]})
    queue = client.get(reverse("reviews:queue"), {"age": text})

    assert (bulk.status_code, queue.status_code) == (302, 200)
    assert not people_decisions().exists()


def test_quick_decide_never_redirects_off_the_site(routed, make_user, client):
    """Before: `next` was followed wherever it pointed."""
    client.force_login(make_user("analyst"))
    url = reverse("reviews:quick_decide", args=[routed["analyst"].pk])

    response = client.post(url, {"verdict": "approve", "next": "https://evil.example/phish"})

    assert response.status_code == 302
    assert response["Location"] == reverse("reviews:queue")
    assert Decision.objects.filter(review=routed["analyst"]).count() == 1


def test_quick_decide_follows_a_next_inside_the_site(routed, make_user, client):
    client.force_login(make_user("analyst"))
    url = reverse("reviews:quick_decide", args=[routed["analyst"].pk])

    response = client.post(url, {"verdict": "approve", "next": "/reviews/?kind=churn"})

    assert (response.status_code, response["Location"]) == (302, "/reviews/?kind=churn")


# --- the loop page and the policy page ------------------------------------------------------


def test_approving_an_unknown_retraining_run_is_404(make_user, client):
    """Before: RetrainingRun.DoesNotExist, a 500."""
    client.force_login(make_user("admin"))

    response = client.post(reverse("learning:approve_run", args=[987654]))

    assert response.status_code == 404


def test_saving_over_a_version_saved_since_is_a_conflict_that_saves_nothing(make_user, client):
    admin = make_user("admin")
    client.force_login(admin)
    opened = current_policy("churn").version
    change_policy(
        kind="churn",
        settings=PolicySettings(auto_approve_confidence=0.95),
        actor=make_user("admin", "other-admin"),
        reason="tighter",
    )
    form = {
        "auto_approve_confidence": "0.8",
        "expert_confidence": "0.5",
        "expert_value_quantile": "0.95",
        "human_risk_low": "0.6",
        "human_risk_high": "1.0",
        "audit_sample_rate": "0.02",
        "blind_share": "0.05",
        "sla_hours": "48",
        "reason": "looser",
        "based_on_version": str(opened),
    }

    response = client.post(reverse("reviews:policy", args=["churn"]), form)

    assert response.status_code == 409
    assert (
        f"Version {opened + 1} was saved since you opened version {opened} by other-admin"
        in response.content.decode()
    )
    latest = current_policy("churn")
    assert (latest.version, latest.auto_approve_confidence) == (opened + 1, 0.95)


@pytest.mark.django_db(transaction=True)
def test_two_policy_saves_at_once_give_two_versions_or_a_conflict_never_a_500(make_user):
    """Before: both read the same highest version and the second insert raised
    IntegrityError. Now they queue on a lock: each gets its own version."""
    first, second = make_user("admin", "ann"), make_user("admin", "bob")
    current_policy("churn")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def save(actor, confidence):
        barrier.wait()
        try:
            change_policy(
                kind="churn",
                settings=PolicySettings(auto_approve_confidence=confidence),
                actor=actor,
                reason=f"set by {actor.username}",
            )
            outcomes.append("saved")
        except Exception as error:  # noqa: BLE001 - the test reports what went wrong
            outcomes.append(type(error).__name__)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=save, args=(first, 0.91)),
        threading.Thread(target=save, args=(second, 0.92)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes == ["saved", "saved"]
    assert sorted(
        EscalationPolicy.objects.filter(kind="churn").values_list("version", flat=True)
    ) == [1, 2, 3]


def test_the_member_history_lists_only_reviews_the_viewer_may_see(routed, make_user):
    """Before: an analyst's member page listed the member's expert items with who decided
    them and why."""
    from reviews.selectors.member_page import member_history
    from reviews.services.decisions import approve_prediction

    analyst_review, expert_review = routed["analyst"], routed["expert"]
    Review.objects.filter(pk=expert_review.pk).update(member=analyst_review.member)
    approve_prediction(
        review_id=expert_review.pk, actor=make_user("expert"), reason_code="model-correct"
    )

    seen_by_analyst = member_history(
        member_id=analyst_review.member_id, viewer=make_user("analyst")
    )
    seen_by_expert = member_history(
        member_id=analyst_review.member_id, viewer=make_user("expert", "other-expert")
    )

    assert [item.review_id for item in seen_by_analyst] == [analyst_review.pk]
    assert sorted(item.review_id for item in seen_by_expert) == sorted(
        [analyst_review.pk, expert_review.pk]
    )


def test_the_api_refuses_an_approval_with_a_relabel_reason(routed, make_user):
    response = _api(make_user("analyst")).post(
        f"/api/reviews/{routed['analyst'].pk}/approve/", {"reason_code": "wrong-churn-call"}
    )

    assert response.status_code == 400
    assert response.json()["detail"] == (
        "The reason 'wrong-churn-call' (the human answer becomes the label) does not fit an "
        "approve; use one of: bad-data, known-customer, model-correct, test-account."
    )
    assert not people_decisions().exists()
