"""Who may reach what: every route of the URLconf × every role, with the status each must get.

One table for pages and API alike. `test_every_route_is_in_the_table` fails when a route is
added without a row here, so each new route states its answer for every role. Object rows
name the object they ask for: a review routed to another queue, an erased member's review, an
erased member. Expected statuses follow two rules: a role that may not use a route at all gets
403 (401 or a login redirect when anonymous); an object the caller may not see answers 404,
exactly like an id that does not exist.

The admin site is covered by one row per registered model's change list (what each role sees
of it); its add, change and delete pages are the admin's own per-model permission checks, and
`tests/loyalty/test_admin_security.py` tests the user admin's in detail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from django.contrib import admin
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from learning.models import ProtectedAttribute
from loyalty.models import Member
from loyalty.services.erasure import erase_member
from tests.factories import MemberFactory, ModelVersionFactory, PredictionFactory
from tests.tokens import token_header

ROLES = ("anonymous", "analyst", "expert", "admin", "integrator")
LOGIN = 302  # a page's answer to an anonymous visitor: the login page
ADMIN_LOGIN = 302  # the admin's answer to anyone who is not staff: the admin login page


@dataclass(frozen=True)
class Row:
    """One route asked in one way, and what each of ROLES gets."""

    name: str
    method: str
    statuses: tuple[int, int, int, int, int]
    target: str = ""  # which fixture object the URL names (see `world`)
    data: tuple = ()  # request body (a GET's query), as items (a dict is not hashable)
    path: tuple = ()  # other URL arguments, as items: ("action", "rotate")
    note: str = ""  # tells apart rows of one route, target and method in the test ids

    @property
    def is_api(self) -> bool:
        return self.name.startswith(("api", "reviews-api", "integrations-api", "learning-api"))

    def label(self) -> str:
        shown = [self.target, *(str(value) for _, value in self.path), self.note]
        shown = [part for part in shown if part]
        return f"{self.method} {self.name}" + (f" [{' '.join(shown)}]" if shown else "")


DECIDE_FORM = (("verdict", "approve"), ("reason", "model-correct"))
POLICY_FORM = (
    ("auto_approve_confidence", "0.9"),
    ("expert_confidence", "0.5"),
    ("expert_value_quantile", "0.95"),
    ("human_risk_low", "0.6"),
    ("human_risk_high", "1.0"),
    ("audit_sample_rate", "0.05"),
    ("blind_share", "0.05"),
    ("sla_hours", "48"),
    ("reason", "route matrix"),
)
MEMBER_FIELDS = (
    ("joined_on", "2020-01-01"),
    ("tier", "gold"),
    ("points_balance", 10),
    ("consent_profiling", True),
    ("consent_marketing", True),
    ("age_band", ""),
    ("region", ""),
)
ENDPOINT_FORM = (("url", "https://receiver.example.com/hooks"),)
# A churn policy test (the world's running test is a next-action one).
POLICY_TEST_FORM = (
    *(item for item in POLICY_FORM if item[0] not in ("reason", "auto_approve_confidence")),
    ("auto_approve_confidence", "0.8"),
    ("challenger_share", "0.5"),
    ("days", "14"),
    ("hypothesis", "route matrix"),
)
POLICY_TEST_START = (
    ("kind", "churn"),
    ("challenger", {"auto_approve_confidence": 0.8}),
    ("max_decisions", 100),
    ("hypothesis", "route matrix"),
)
POLICY_TEST_END = (("adopt", "challenger"), ("reason", "route matrix"))
EXPORT_DAYS = (("start", "2026-03-01"), ("end", "2026-03-02"))
EVENT = (
    ("events", ({"member_external_id": "M-1", "occurred_at": "2024-01-01T10:00:00Z",
                 "kind": "purchase", "amount": "5.00"},)),
)  # fmt: skip

#            anonymous, analyst, expert, admin, integrator
ROWS: tuple[Row, ...] = (
    # --- pages ---------------------------------------------------------------------------
    Row("home", "GET", (LOGIN, 200, 200, 200, 200)),
    Row("login", "GET", (200, 200, 200, 200, 200)),
    Row("logout", "POST", (302, 302, 302, 302, 302)),
    Row("reviews:notifications", "GET", (LOGIN, 200, 200, 200, 200)),
    Row("reviews:mark_all_read", "POST", (LOGIN, 302, 302, 302, 302)),
    Row("reviews:queue", "GET", (LOGIN, 200, 200, 403, 403)),
    Row("reviews:expert_queue", "GET", (LOGIN, 403, 200, 403, 403)),
    Row(
        "reviews:bulk_approve",
        "POST",
        (LOGIN, 302, 302, 403, 403),
        data=(("route", "analyst"), ("review", "analyst_review")),
    ),
    Row("reviews:review", "GET", (LOGIN, 200, 200, 200, 404), target="analyst_review"),
    Row("reviews:review", "GET", (LOGIN, 200, 200, 200, 404), target="auto_review"),
    Row("reviews:review", "GET", (LOGIN, 404, 200, 200, 404), target="expert_review"),
    Row("reviews:review", "GET", (LOGIN, 404, 404, 404, 404), target="erased_review"),
    Row("reviews:review", "GET", (LOGIN, 404, 404, 404, 404), target="unknown_review"),
    Row(
        "reviews:decide",
        "POST",
        (LOGIN, 302, 302, 403, 404),
        target="analyst_review",
        data=DECIDE_FORM,
    ),
    Row(
        "reviews:decide",
        "POST",
        (LOGIN, 404, 302, 403, 404),
        target="expert_review",
        data=DECIDE_FORM,
    ),
    Row(
        "reviews:decide",
        "POST",
        (LOGIN, 404, 404, 404, 404),
        target="erased_review",
        data=DECIDE_FORM,
    ),
    Row(
        "reviews:quick_decide",
        "POST",
        (LOGIN, 302, 302, 403, 404),
        target="analyst_review",
        data=(("verdict", "approve"),),
    ),
    # Blind review: whoever may decide the item answers it first; an item that is not blind
    # answers 409 to them, and every other rule as deciding does.
    Row(
        "reviews:blind_answer",
        "POST",
        (LOGIN, 302, 302, 403, 404),
        target="blind_review",
        data=(("churn", "stay"),),
    ),
    Row(
        "reviews:blind_answer",
        "POST",
        (LOGIN, 404, 409, 403, 404),
        target="expert_review",
        data=(("churn", "stay"),),
    ),
    Row(
        "reviews:blind_answer",
        "POST",
        (LOGIN, 404, 404, 404, 404),
        target="erased_review",
        data=(("churn", "stay"),),
    ),
    Row(
        "reviews-api:review-blind-answer",
        "POST",
        (401, 201, 201, 403, 403),
        target="blind_review",
        data=(("churn_label", False),),
    ),
    Row(
        "reviews-api:review-blind-answer",
        "POST",
        (401, 404, 409, 403, 403),
        target="expert_review",
        data=(("churn_label", False),),
    ),
    Row(
        "reviews-api:review-blind-answer",
        "POST",
        (401, 404, 404, 403, 403),
        target="erased_review",
        data=(("churn_label", False),),
    ),
    Row(
        "reviews:quick_decide",
        "POST",
        (LOGIN, 404, 302, 403, 404),
        target="expert_review",
        data=(("verdict", "approve"),),
    ),
    # No feature changed: a clear 400 to those who may see the review, 404 to the others.
    Row("reviews:what_if", "POST", (LOGIN, 404, 400, 400, 404), target="expert_review"),
    Row("reviews:what_if", "POST", (LOGIN, 404, 404, 404, 404), target="erased_review"),
    Row("reviews:policy", "GET", (LOGIN, 403, 403, 200, 403)),
    Row("reviews:policy", "POST", (LOGIN, 403, 403, 302, 403), data=POLICY_FORM),
    Row("reviews:policy_simulate", "POST", (LOGIN, 403, 403, 200, 403), data=POLICY_FORM),
    Row("reviews:audit_log", "GET", (LOGIN, 403, 403, 200, 403)),
    Row("learning:loop", "GET", (LOGIN, 403, 200, 200, 403)),
    # Review quality: a reviewer their own figures, experts and admins everyone's.
    Row("learning:review_quality", "GET", (LOGIN, 200, 200, 200, 403)),
    Row(
        "learning:review_quality",
        "GET",
        (LOGIN, 200, 200, 200, 403),
        data=(("sort", "outcome"),),
        note="by outcome",
    ),
    Row("learning-api:review-quality", "GET", (401, 200, 200, 200, 403)),
    # Fairness per protected group: experts and admins; never analysts (protected attributes).
    Row("learning:fairness", "GET", (LOGIN, 403, 200, 200, 403)),
    Row(
        "learning:fairness",
        "GET",
        (LOGIN, 403, 200, 200, 403),
        data=(("kind", "next_action"),),
        note="next action",
    ),
    Row(
        "learning:fairness",
        "GET",
        (LOGIN, 403, 404, 404, 403),
        data=(("kind", "unknown"),),
        note="kind not measured",
    ),
    Row("learning-api:fairness", "GET", (401, 403, 200, 200, 403)),
    Row(
        "learning-api:fairness",
        "GET",
        (401, 403, 200, 200, 403),
        data=(("kind", "next_action"),),
        note="next action",
    ),
    Row(
        "learning-api:fairness",
        "GET",
        (401, 403, 400, 400, 403),
        data=(("kind", "unknown"),),
        note="kind not measured",
    ),
    # Protected attributes: marked and unmarked by admins (who set the fairness limits).
    Row(
        "learning:mark_protected_attribute",
        "POST",
        (LOGIN, 403, 403, 302, 403),
        data=(("key", "income"), ("label", "Income band")),
    ),
    Row(
        "learning:mark_protected_attribute",
        "POST",
        (LOGIN, 403, 403, 400, 403),
        data=(("key", "shoe_size"),),
        note="key no member has",
    ),
    Row(
        "learning:unmark_protected_attribute",
        "POST",
        (LOGIN, 403, 403, 302, 403),
        path=(("key", "household_size"),),
    ),
    Row(
        "learning:unmark_protected_attribute",
        "POST",
        (LOGIN, 403, 403, 404, 403),
        path=(("key", "shoe_size"),),
        note="not marked",
    ),
    Row("learning:retrain_now", "POST", (LOGIN, 403, 403, 302, 403)),
    Row("learning:approve_run", "POST", (LOGIN, 403, 403, 302, 403), target="run"),
    Row("learning:approve_run", "POST", (LOGIN, 403, 403, 404, 403), target="unknown_run"),
    Row("learning:resume_automation", "POST", (LOGIN, 403, 403, 302, 403)),
    # Policy tests: admins only.
    Row("learning:policy_test", "GET", (LOGIN, 403, 403, 200, 403)),
    Row("learning:policy_test_start", "POST", (LOGIN, 403, 403, 302, 403), data=POLICY_TEST_FORM),
    Row(
        "learning:policy_test_end",
        "POST",
        (LOGIN, 403, 403, 302, 403),
        target="policy_test",
        data=POLICY_TEST_END,
    ),
    Row(
        "learning:policy_test_end",
        "POST",
        (LOGIN, 403, 403, 404, 403),
        target="unknown_policy_test",
        data=POLICY_TEST_END,
    ),
    Row("integrations:webhooks", "GET", (LOGIN, 403, 403, 200, 403)),
    # Post/redirect/get: the secret is shown once, on the page the redirect leads to.
    Row("integrations:webhooks", "POST", (LOGIN, 403, 403, 302, 403), data=ENDPOINT_FORM),
    Row(
        "integrations:webhooks",
        "POST",
        (LOGIN, 403, 403, 400, 403),
        data=(("url", "ftp://receiver.example.com/"),),
        note="refused url",
    ),
    Row(
        "integrations:endpoint_action",
        "POST",
        (LOGIN, 403, 403, 302, 403),
        target="endpoint",
        path=(("action", "rotate"),),
    ),
    Row(
        "integrations:endpoint_action",
        "POST",
        (LOGIN, 403, 403, 302, 403),
        target="endpoint",
        path=(("action", "disable"),),
    ),
    Row(
        "integrations:endpoint_action",
        "POST",
        (LOGIN, 403, 403, 302, 403),
        target="endpoint",
        path=(("action", "delete"),),
    ),
    Row(
        "integrations:endpoint_action",
        "POST",
        (LOGIN, 403, 403, 404, 403),
        target="endpoint",
        path=(("action", "explode"),),
    ),
    Row(
        "integrations:endpoint_action",
        "POST",
        (LOGIN, 403, 403, 404, 403),
        target="unknown_endpoint",
        path=(("action", "disable"),),
    ),
    Row("integrations:deliveries", "GET", (LOGIN, 403, 403, 200, 403)),
    Row("integrations:delivery", "GET", (LOGIN, 403, 403, 200, 403), target="delivery"),
    Row("integrations:delivery", "GET", (LOGIN, 403, 403, 404, 403), target="unknown_delivery"),
    Row("integrations:redeliver", "POST", (LOGIN, 403, 403, 302, 403), target="delivery"),
    Row(
        "integrations:redeliver",
        "POST",
        (LOGIN, 403, 403, 404, 403),
        target="unknown_delivery",
    ),
    # A queue's export answers like the queue.
    Row(
        "integrations:export_queue",
        "GET",
        (LOGIN, 200, 200, 403, 403),
        path=(("route", "analyst"),),
    ),
    Row(
        "integrations:export_queue",
        "GET",
        (LOGIN, 403, 200, 403, 403),
        path=(("route", "expert"),),
    ),
    Row(
        "integrations:export_queue",
        "GET",
        (LOGIN, 404, 404, 404, 404),
        path=(("route", "auto"),),
    ),
    # Without dates: the form; with them, the decisions the caller may read.
    Row("integrations:export_decisions", "GET", (LOGIN, 200, 200, 200, 200)),
    Row(
        "integrations:export_decisions",
        "GET",
        (LOGIN, 200, 200, 200, 200),
        data=EXPORT_DAYS,
        note="a day",
    ),
    Row(
        "integrations:export_decisions",
        "GET",
        (LOGIN, 400, 400, 400, 400),
        data=(("start", "2026-03-02"), ("end", "2026-03-01")),
        note="end before start",
    ),
    # --- the API -------------------------------------------------------------------------
    Row("api-schema", "GET", (200, 200, 200, 200, 200)),
    Row("api-docs", "GET", (200, 200, 200, 200, 200)),
    Row("api:member-list", "GET", (401, 200, 200, 200, 200)),
    Row("api:member-list", "POST", (401, 403, 403, 201, 201), data=(("external_id", "NEW-1"),)),
    Row("api:member-detail", "GET", (401, 200, 200, 200, 200), target="member"),
    # An erased member's row holds nothing personal: readable under its placeholder id (so
    # that systems holding copies learn of the erasure), never writable.
    Row("api:member-detail", "GET", (401, 200, 200, 200, 200), target="erased_member"),
    Row("api:member-detail", "GET", (401, 404, 404, 404, 404), target="unknown_member"),
    Row(
        "api:member-detail",
        "PATCH",
        (401, 403, 403, 200, 200),
        target="member",
        data=(("tier", "gold"),),
    ),
    Row(
        "api:member-detail",
        "PATCH",
        (401, 403, 403, 409, 409),
        target="erased_member",
        data=(("tier", "gold"),),
    ),
    Row(
        "api:member-detail",
        "PUT",
        (401, 403, 403, 200, 200),
        target="member",
        data=MEMBER_FIELDS,
    ),
    Row("api:member-events", "GET", (401, 200, 200, 200, 200), target="member"),
    Row("api:member-events", "GET", (401, 200, 200, 200, 200), target="erased_member"),
    Row("api:member-erase", "POST", (401, 403, 403, 200, 403), target="member"),
    Row("api:member-erase", "POST", (401, 403, 403, 404, 403), target="unknown_member"),
    Row("api:member-export", "GET", (401, 403, 403, 200, 403), target="member"),
    # What remains of an erased member is theirs to ask for, by the id they knew.
    Row("api:member-export", "GET", (401, 403, 403, 200, 403), target="erased_former_id"),
    Row("api:member-export", "GET", (401, 403, 403, 404, 403), target="unknown_member"),
    Row("api:event-batch", "POST", (401, 403, 403, 200, 200), data=EVENT),
    Row("reviews-api:review-list", "GET", (401, 200, 200, 200, 403)),
    Row("reviews-api:review-detail", "GET", (401, 200, 200, 200, 403), target="analyst_review"),
    Row("reviews-api:review-detail", "GET", (401, 404, 200, 200, 403), target="expert_review"),
    Row("reviews-api:review-detail", "GET", (401, 404, 404, 404, 403), target="erased_review"),
    Row(
        "reviews-api:review-approve",
        "POST",
        (401, 201, 201, 403, 403),
        target="analyst_review",
        data=(("reason_code", "model-correct"),),
    ),
    Row(
        "reviews-api:review-approve",
        "POST",
        (401, 404, 201, 403, 403),
        target="expert_review",
        data=(("reason_code", "model-correct"),),
    ),
    # An auto-approval is the policy's decision already: an expert may try, and hears so.
    Row(
        "reviews-api:review-approve",
        "POST",
        (401, 403, 409, 403, 403),
        target="auto_review",
        data=(("reason_code", "model-correct"),),
    ),
    Row(
        "reviews-api:review-override",
        "POST",
        (401, 201, 201, 403, 403),
        target="analyst_review",
        data=(("reason_code", "wrong-churn-call"), ("churn_label", True)),
    ),
    Row(
        "reviews-api:review-override",
        "POST",
        (401, 404, 404, 403, 403),
        target="erased_review",
        data=(("reason_code", "wrong-churn-call"), ("churn_label", True)),
    ),
    Row(
        "reviews-api:review-escalate",
        "POST",
        (401, 200, 200, 403, 403),
        target="analyst_review",
        data=(("reason_code", "needs-expert"),),
    ),
    Row(
        "reviews-api:review-escalate",
        "POST",
        (401, 404, 409, 403, 403),
        target="expert_review",
        data=(("reason_code", "needs-expert"),),
    ),
    Row("integrations-api:decision-feed", "GET", (401, 200, 200, 200, 200)),
    Row("learning-api:policy-test-list", "GET", (401, 403, 403, 200, 403)),
    Row(
        "learning-api:policy-test-list",
        "POST",
        (401, 403, 403, 201, 403),
        data=POLICY_TEST_START,
    ),
    Row("learning-api:policy-test-detail", "GET", (401, 403, 403, 200, 403), target="policy_test"),
    Row(
        "learning-api:policy-test-detail",
        "GET",
        (401, 403, 403, 404, 403),
        target="unknown_policy_test",
    ),
    Row(
        "learning-api:policy-test-end",
        "POST",
        (401, 403, 403, 200, 403),
        target="policy_test",
        data=POLICY_TEST_END,
    ),
    Row(
        "learning-api:policy-test-end",
        "POST",
        (401, 403, 403, 404, 403),
        target="unknown_policy_test",
        data=POLICY_TEST_END,
    ),
    Row("integrations-api:endpoint-list", "GET", (401, 403, 403, 200, 403)),
    Row("integrations-api:endpoint-list", "POST", (401, 403, 403, 201, 403), data=ENDPOINT_FORM),
    Row("integrations-api:endpoint-detail", "GET", (401, 403, 403, 200, 403), target="endpoint"),
    Row(
        "integrations-api:endpoint-detail",
        "GET",
        (401, 403, 403, 404, 403),
        target="unknown_endpoint",
    ),
    Row(
        "integrations-api:endpoint-detail",
        "PATCH",
        (401, 403, 403, 200, 403),
        target="endpoint",
        data=(("is_enabled", False),),
    ),
    Row(
        "integrations-api:endpoint-detail",
        "PATCH",
        (401, 403, 403, 404, 403),
        target="unknown_endpoint",
        data=(("is_enabled", False),),
    ),
    Row("integrations-api:endpoint-detail", "DELETE", (401, 403, 403, 204, 403), target="endpoint"),
    Row(
        "integrations-api:endpoint-detail",
        "DELETE",
        (401, 403, 403, 404, 403),
        target="unknown_endpoint",
    ),
    Row("integrations-api:endpoint-rotate", "POST", (401, 403, 403, 200, 403), target="endpoint"),
    Row(
        "integrations-api:endpoint-rotate",
        "POST",
        (401, 403, 403, 404, 403),
        target="unknown_endpoint",
    ),
    # --- decision lineage: whoever may read the decision (404 like an unknown id otherwise);
    # systems read the feed, not the people behind it. The export: admins (auditors).
    Row("integrations:decision_lineage", "GET", (LOGIN, 200, 200, 200, 403), target="decision"),
    Row(
        "integrations:decision_lineage",
        "GET",
        (LOGIN, 404, 200, 200, 403),
        target="expert_decision",
    ),
    Row(
        "integrations:decision_lineage",
        "GET",
        (LOGIN, 404, 404, 404, 403),
        target="erased_decision",
    ),
    Row(
        "integrations:decision_lineage",
        "GET",
        (LOGIN, 404, 404, 404, 403),
        target="unknown_decision",
    ),
    Row("integrations:export_lineage", "GET", (LOGIN, 403, 403, 200, 403)),
    Row(
        "integrations:export_lineage",
        "GET",
        (LOGIN, 403, 403, 200, 403),
        data=EXPORT_DAYS,
        note="a day",
    ),
    Row(
        "integrations:export_lineage",
        "GET",
        (LOGIN, 403, 403, 400, 403),
        data=(("start", "2026-03-02"), ("end", "2026-03-01")),
        note="end before start",
    ),
    Row("integrations-api:decision-lineage", "GET", (401, 200, 200, 200, 403), target="decision"),
    Row(
        "integrations-api:decision-lineage",
        "GET",
        (401, 404, 200, 200, 403),
        target="expert_decision",
    ),
    Row(
        "integrations-api:decision-lineage",
        "GET",
        (401, 404, 404, 404, 403),
        target="erased_decision",
    ),
    Row(
        "integrations-api:decision-lineage",
        "GET",
        (401, 404, 404, 404, 403),
        target="unknown_decision",
    ),
    Row("integrations-api:lineage-export", "GET", (401, 403, 403, 200, 403), data=EXPORT_DAYS),
    Row("integrations-api:lineage-export", "GET", (401, 403, 403, 400, 403), note="no dates"),
)


# --- the fixture world ------------------------------------------------------------------------


@pytest.fixture
def world(routed, make_user):
    """Three routed reviews, a member of each kind, a retraining run, a webhook endpoint and
    one delivery to it, decisions for the lineage rows; ids by name."""
    from integrations.models import Delivery
    from integrations.services.endpoints import create_endpoint
    from learning.models import RetrainingRun
    from loyalty.outbox import DECISION_CREATED, emit
    from reviews.models import Review
    from reviews.services.routing import route_new_predictions

    erased_member = MemberFactory(external_id="GONE-1")
    PredictionFactory(
        member=erased_member, model_version=routed["analyst"].prediction.model_version,
        confidence=0.8, score=0.3,
    )  # fmt: skip
    route_new_predictions(kind="churn")
    erased_review = Review.objects.get(member=erased_member)
    erase_member(member_id=erased_member.pk, actor=None)
    blind = PredictionFactory(
        model_version=routed["analyst"].prediction.model_version, confidence=0.8, score=0.3
    )
    route_new_predictions(kind="churn")
    Review.objects.filter(prediction=blind).update(is_blind=True)
    member = MemberFactory(
        external_id="M-1", attributes={"income": "50-74K", "household_size": "2"}
    )
    ProtectedAttribute.objects.create(key="household_size", label="Household size")
    policy_test = _next_action_policy_test()
    run = RetrainingRun.objects.create(
        kind="churn", trigger="manual", status="succeeded", candidate=ModelVersionFactory()
    )
    endpoint = create_endpoint(actor=None, url="https://receiver.example.com/hooks").endpoint
    with transaction.atomic():
        event = emit(DECISION_CREATED, {"member_external_id": "M-1"})
    delivery = Delivery.objects.create(event=event, endpoint=endpoint, status="failed")
    decisions = _lineage_decisions(routed, make_user)
    return {
        **decisions,
        "endpoint": endpoint.pk,
        "unknown_endpoint": endpoint.pk + 10_000,
        "delivery": delivery.pk,
        "unknown_delivery": delivery.pk + 10_000,
        "analyst_review": routed["analyst"].pk,
        "expert_review": routed["expert"].pk,
        "auto_review": routed["auto"].pk,
        "erased_review": erased_review.pk,
        "blind_review": Review.objects.get(prediction=blind).pk,
        "unknown_review": erased_review.pk + 10_000,
        "member": member.external_id,
        "erased_member": Member.objects.get(pk=erased_member.pk).external_id,
        "erased_former_id": "GONE-1",
        "unknown_member": "NO-SUCH-MEMBER",
        "run": run.pk,
        "unknown_run": run.pk + 10_000,
        "policy_test": policy_test.pk,
        "unknown_policy_test": policy_test.pk + 10_000,
    }


def _lineage_decisions(routed, make_user) -> dict:
    """The policy's decision on the auto-approved review (analysts read it), an expert's on an
    item of its own (the world's expert review stays undecided), an erased member's."""
    from reviews.models import Decision, Review
    from reviews.services.decisions import approve_prediction
    from reviews.services.routing import route_new_predictions

    version = routed["analyst"].prediction.model_version
    expert_item = PredictionFactory(model_version=version, confidence=0.2, score=0.5)
    erased = PredictionFactory(
        member=MemberFactory(external_id="GONE-2"), model_version=version, confidence=0.99,
        score=0.1,
    )  # fmt: skip
    route_new_predictions(kind="churn")
    Review.objects.filter(prediction=expert_item).update(is_blind=False)  # a draw by id
    expert_decision = approve_prediction(
        review_id=Review.objects.get(prediction=expert_item).pk,
        actor=make_user("expert", username="expert-lineage"),
        reason_code="model-correct",
    )
    erased_decision = Decision.objects.get(review__prediction=erased)
    erase_member(member_id=erased.member_id, actor=None)
    return {
        "decision": Decision.objects.get(review=routed["auto"]).pk,
        "expert_decision": expert_decision.pk,
        "erased_decision": erased_decision.pk,
        "unknown_decision": Decision.objects.order_by("-pk").first().pk + 10_000,
    }


def _next_action_policy_test():
    """A running next-action policy test (the churn thresholds stay free to change)."""
    from dataclasses import replace

    from reviews.policy_settings import PolicySettings
    from reviews.selectors.policy import current_policy
    from reviews.services.experiments import start_policy_test

    current = PolicySettings.of(current_policy("next_action"))
    return start_policy_test(
        kind="next_action",
        challenger_settings=replace(current, sla_hours=24),
        share=0.5,
        hypothesis="route matrix",
        actor=None,
        max_decisions=10,
    )


def _url(row: Row, world: dict) -> str:
    pattern = _patterns()[row.name]
    given = dict(row.path)
    kwargs = {}
    for parameter in pattern.converters:
        if parameter in given:
            kwargs[parameter] = given[parameter]
        elif parameter == "kind":
            kwargs["kind"] = "churn"
        else:
            kwargs[parameter] = world[row.target]
    return reverse(row.name, kwargs=kwargs)


def _body(row: Row, world: dict) -> dict:
    body = dict(row.data)
    if body.get("review") in world:
        body["review"] = str(world[body["review"]])
    if "events" in body:
        body["events"] = list(body["events"])
    return body


def _client(role: str, make_user, *, api: bool) -> Client:
    client = Client()
    if role == "anonymous":
        return client
    user = make_user(role, username=f"{role}-matrix")
    if api:
        client.defaults["HTTP_AUTHORIZATION"] = token_header(user)
    else:
        client.force_login(user)
    return client


def _ask(client: Client, row: Row, url: str, body: dict):
    if row.is_api and row.method != "GET":
        return client.generic(row.method, url, json.dumps(body), content_type="application/json")
    if row.method == "GET":
        return client.get(url, body)
    return client.post(url, body)


CASES = [
    pytest.param(row, index, id=f"{row.label()}-{role}")
    for row in ROWS
    for index, role in enumerate(ROLES)
]


@pytest.mark.parametrize(("row", "role_index"), CASES)
def test_route_answers_each_role_as_the_table_says(row, role_index, world, make_user):
    role = ROLES[role_index]
    client = _client(role, make_user, api=row.is_api)

    response = _ask(client, row, _url(row, world), _body(row, world))

    assert response.status_code == row.statuses[role_index], (
        f"{row.label()} as {role}: {response.status_code}, expected {row.statuses[role_index]}"
    )


# --- the admin site ---------------------------------------------------------------------------

# What each role sees of the admin: staff only; the admin role only what its permissions allow.
ADMIN_VISIBLE_TO_ADMIN_ROLE = {
    "auth.user",
    "loyalty.member",
    "loyalty.event",
    "loyalty.action",
    "loyalty.controlgroupsettings",
    "loyalty.contactrules",
    "loyalty.auditrecord",
    "loyalty.erasuretombstone",
    "predictions.modelversion",
    "predictions.prediction",
    "predictions.scoringrun",
    "predictions.scoringsetting",
    "reviews.review",
    "reviews.decision",
    "reviews.escalationpolicy",
    "reviews.reasoncode",
    "learning.gatepolicy",
    "learning.retrainingrun",
    "learning.labeledexample",
    "learning.fairnesslimits",
    "learning.protectedattribute",
    "django_celery_beat.periodictask",
    # Login lockouts: admins see failed attempts and unlock accounts (test_rate_limits.py).
    "axes.accessattempt",
}


def _admin_models() -> list[str]:
    return sorted(model._meta.label_lower for model in admin.site._registry)


@pytest.mark.parametrize("label", _admin_models())
@pytest.mark.parametrize("role", ROLES)
def test_admin_change_lists_answer_each_role(label, role, make_user, db):
    client = _client(role, make_user, api=False)
    app_label, model_name = label.split(".")

    response = client.get(reverse(f"admin:{app_label}_{model_name}_changelist"))

    if role != "admin":
        expected = ADMIN_LOGIN
    else:
        expected = 200 if label in ADMIN_VISIBLE_TO_ADMIN_ROLE else 403
    assert response.status_code == expected


# --- completeness -----------------------------------------------------------------------------


def _walk(patterns, namespace: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _walk(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}{pattern.name}", pattern.pattern


def _patterns() -> dict:
    return {name: pattern for name, pattern in _walk(get_resolver().url_patterns)}


def test_every_route_is_in_the_table():
    """A new route must say, in ROWS, what every role gets. The admin site's routes are the
    admin's own (covered per model above)."""
    routes = {name for name in _patterns() if not name.startswith("admin:")}

    missing = routes - {row.name for row in ROWS}
    stale = {row.name for row in ROWS} - routes

    assert (sorted(missing), sorted(stale)) == ([], [])


def test_every_admin_model_is_in_the_admin_table():
    """A newly registered admin model must be placed: visible to the admin role or not."""
    listed = set(_admin_models())

    assert sorted(ADMIN_VISIBLE_TO_ADMIN_ROLE - listed) == []
