"""A decision's lineage: its whole story as one JSON-ready document, for the lineage page, the
lineage API and the auditors' export.

Who the member is (by the pseudonymous external id only: never the attributes kept for fairness
audits), the events window the features could see and how many of the member's events fall in
it now, each prediction with its model version (data fingerprint, metrics, artifact checksums),
the feature values and explanation, the policy versions and the rule that routed it, every
person who touched it, the decision as it left the product, its outbound events and their
deliveries, the labeled examples made from it and the outcomes observed. A page of decisions is
read with a fixed number of queries whatever its size (`lineages_of`), so the export streams.

Who may read it: people who may read the decision (`reviews.permissions.visible_decisions_filter`;
an erased member's decisions are no one's). Systems that act on decisions (integrators) read
the decision feed, not the people behind it. Whether a decision was held out stays hidden from
people until its horizon has passed (`reviews.permissions.holdout_disclosed`), and so do the
type and the deliveries of the event that announced it, which would tell it (except to those
who read the delivery log, where every event's type shows).
"""

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone

from integrations.models import Delivery
from integrations.services.feed import decision_item, decision_pages, visible_decisions
from learning.models import LabeledExample
from loyalty import outbox
from loyalty.models import AuditRecord, Event, OutboxEvent
from predictions.ml.features import MAX_LOOKBACK_DAYS
from predictions.models import ModelVersion, Prediction
from reviews.models import BlindAnswer, Decision, EscalationPolicy, ReviewOpening
from reviews.permissions import VIEW_DECISION, VIEW_REVIEW, holdout_disclosed
from reviews.policy_settings import PolicySettings
from reviews.services.decision_events import DECISION_RELATIONS

# Bumped when the document changes shape (fields are only ever added within a format).
LINEAGE_FORMAT = 1
# Decisions read at once by the export: each page costs the same few queries.
PAGE = 200
# Who delivered where (endpoint URLs, errors) is for those who read the delivery log.
VIEW_DELIVERIES = "integrations.view_delivery"
# What the lineage reads of a decision in the decision's own query.
LINEAGE_RELATIONS = (
    *DECISION_RELATIONS,
    "review__prediction__recommended_action",
    "review__prediction__model_version__promoted_by",
    "review__action_prediction__model_version__promoted_by",
    "review__action_prediction__recommended_action",
    "review__recommended_action",
    "review__policy__created_by",
    "review__action_policy__created_by",
    "review__escalated_by",
    "review__escalation_reason",
)
DECISION_EVENTS = (outbox.DECISION_CREATED, outbox.DECISION_HELD_OUT)


def may_read_lineage(user) -> bool:
    """People who read decisions: analysts (what they may see), experts and admins."""
    return user.has_perm(VIEW_DECISION) and user.has_perm(VIEW_REVIEW)


def lineage_decisions(user):
    """The decisions whose lineage `user` may read, with what the lineage reads of each."""
    if not may_read_lineage(user):
        return Decision.objects.none()
    return visible_decisions(user).select_related(*LINEAGE_RELATIONS)


def decision_lineage(user, *, decision_id: int) -> dict[str, Any] | None:
    """The lineage of one decision; None for an unknown id and one `user` may not see alike."""
    decision = lineage_decisions(user).filter(pk=decision_id).first()
    if decision is None:
        return None
    return lineages_of(user, [decision], now=timezone.now())[0]


def lineages_in_range(user, *, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
    """The lineage of every decision `user` may read made in [start, end), in feed order,
    `PAGE` decisions at a time."""
    decisions = lineage_decisions(user).filter(decided_at__gte=start, decided_at__lt=end)
    now = timezone.now()
    for page in decision_pages(decisions, size=PAGE):
        yield from lineages_of(user, page, now=now)


def lineages_of(user, decisions: list[Decision], *, now: datetime) -> list[dict[str, Any]]:
    """The lineages of decisions read through `lineage_decisions`, in their order."""
    if not decisions:
        return []
    batch = _Batch.read(user, decisions, now=now)
    documents = [_lineage(decision, batch) for decision in decisions]
    # One pass through Django's encoder makes every value plain JSON (times, UUIDs).
    return json.loads(json.dumps(documents, cls=DjangoJSONEncoder))


@dataclass(frozen=True)
class _Batch:
    """What a page of decisions needs beyond their own rows, read in one query per kind."""

    user: Any
    now: datetime
    openings: dict[int, list[ReviewOpening]]
    blind_answers: dict[int, BlindAnswer]
    events_in_window: dict[int, int]
    events_out: dict[int, list[OutboxEvent]]
    deliveries: dict[int, list[Delivery]]
    examples: dict[int, list[LabeledExample]]
    outcomes: dict[int, list[LabeledExample]]
    audit_records: dict[str, list[AuditRecord]]
    sees_endpoints: bool

    @classmethod
    def read(cls, user, decisions: list[Decision], *, now: datetime) -> "_Batch":
        review_ids = [decision.review_id for decision in decisions]
        decision_ids = [decision.pk for decision in decisions]
        predictions = [p for decision in decisions for p in _predictions(decision)]
        prediction_ids = [prediction.pk for prediction, _ in predictions]
        events_out = _events_out(decisions)
        examples = LabeledExample.objects.select_related("action").filter(
            Q(decision_id__in=decision_ids, source=LabeledExample.Source.DECISION)
            | Q(prediction_id__in=prediction_ids, source=LabeledExample.Source.OUTCOME)
        )
        return cls(
            user=user,
            now=now,
            openings=_grouped(
                ReviewOpening.objects.select_related("user").filter(review_id__in=review_ids),
                "review_id",
                order=("opened_at", "pk"),
            ),
            blind_answers={
                answer.review_id: answer
                for answer in BlindAnswer.objects.select_related("user", "action").filter(
                    review_id__in=review_ids
                )
            },
            events_in_window=_events_in_window(prediction_ids),
            events_out=events_out,
            deliveries=_grouped(
                Delivery.objects.select_related("endpoint").filter(
                    event_id__in=[event.pk for events in events_out.values() for event in events]
                ),
                "event_id",
                order=("pk",),
            ),
            examples=_grouped(
                [e for e in examples if e.source == LabeledExample.Source.DECISION],
                "decision_id",
                order=("kind", "pk"),
            ),
            outcomes=_grouped(
                [e for e in examples if e.source == LabeledExample.Source.OUTCOME],
                "prediction_id",
                order=("pk",),
            ),
            audit_records=_grouped(
                AuditRecord.objects.filter(subject__in=[f"review:{pk}" for pk in review_ids]),
                "subject",
                order=("occurred_at", "pk"),
            ),
            sees_endpoints=user.has_perm(VIEW_DELIVERIES),
        )


def _grouped(rows: Iterable, key: str, *, order: tuple[str, ...]) -> dict[Any, list]:
    groups: dict[Any, list] = defaultdict(list)
    for row in sorted(rows, key=lambda row: tuple(getattr(row, name) for name in order)):
        groups[getattr(row, key)].append(row)
    return groups


def _predictions(decision: Decision) -> list[tuple[Prediction, str]]:
    """The predictions a decision settled: the one decided, and a case's next-action one."""
    review = decision.review
    found = [(review.prediction, "decided")]
    if review.action_prediction is not None:
        found.append((review.action_prediction, "carried_action"))
    return found


def events_window(cutoff: datetime) -> tuple[datetime, datetime]:
    """The events the features of a prediction at `cutoff` may read: [cutoff - the longest
    lookback, cutoff) (tenure also reads the join date, or the first event ever)."""
    return cutoff - timedelta(days=MAX_LOOKBACK_DAYS), cutoff


def _events_in_window(prediction_ids: list[int]) -> dict[int, int]:
    """Per prediction, how many of its member's events the window holds now: one query."""
    in_window = (
        Event.objects.filter(
            member_id=OuterRef("member_id"),
            occurred_at__lt=OuterRef("cutoff"),
            occurred_at__gte=OuterRef("cutoff") - timedelta(days=MAX_LOOKBACK_DAYS),
        )
        .order_by()
        .values("member_id")
        .annotate(count=Count("pk"))
        .values("count")
    )
    counts = (
        Prediction.objects.filter(pk__in=prediction_ids)
        .annotate(events=Subquery(in_window[:1]))
        .values_list("pk", "events")
    )
    return {pk: events or 0 for pk, events in counts}


def _events_out(decisions: list[Decision]) -> dict[int, list[OutboxEvent]]:
    """Per review, the events that left about it: its decision's, its escalation's."""
    by_decision = {decision.pk: decision.review_id for decision in decisions}
    review_ids = set(by_decision.values())
    events = OutboxEvent.objects.filter(
        member_id__in={decision.review.member_id for decision in decisions}
    ).filter(
        Q(type__in=DECISION_EVENTS, data__decision_id__in=list(by_decision))
        | Q(type=outbox.REVIEW_ESCALATED, data__review_id__in=list(review_ids))
    )
    found: dict[int, list[OutboxEvent]] = defaultdict(list)
    for event in events.order_by("created_at", "pk"):
        if event.type in DECISION_EVENTS:
            review_id = by_decision.get(event.data.get("decision_id"))
        else:
            review_id = event.data.get("review_id")
        if review_id in review_ids:
            found[review_id].append(event)
    return found


def _lineage(decision: Decision, batch: _Batch) -> dict[str, Any]:
    review = decision.review
    disclosed = holdout_disclosed(batch.user, decision, now=batch.now)
    return {
        "format": LINEAGE_FORMAT,
        "decision_id": decision.pk,
        "member": {"external_id": review.member.external_id},
        "predictions": [
            _prediction(prediction, role, batch) for prediction, role in _predictions(decision)
        ],
        "routing": _routing(review),
        "people": _people(decision, batch),
        "escalation": _escalation(review),
        "blind_answer": _blind_answer(batch.blind_answers.get(review.pk)),
        "decision": _decision(decision, batch, disclosed=disclosed),
        "events_out": [
            _event_out(event, batch, disclosed=disclosed)
            for event in batch.events_out.get(review.pk, ())
        ],
        "labeled_examples": [_example(e) for e in batch.examples.get(decision.pk, ())],
        "outcomes": [
            _example(outcome)
            for prediction, _ in _predictions(decision)
            for outcome in batch.outcomes.get(prediction.pk, ())
        ],
        "audit_records": [
            # Which records, not their details: those name the holdout draw (see above).
            {
                "id": record.pk,
                "kind": record.kind,
                "actor": record.actor_name or None,
                "occurred_at": record.occurred_at,
            }
            for record in batch.audit_records.get(f"review:{review.pk}", ())
        ],  # fmt: skip
    }


def _prediction(prediction: Prediction, role: str, batch: _Batch) -> dict[str, Any]:
    start, end = events_window(prediction.cutoff)
    return {
        "id": prediction.pk,
        "role": role,
        "kind": prediction.kind,
        "cutoff": prediction.cutoff,
        "scored_at": prediction.scored_at,
        "score": prediction.score,
        "probabilities": prediction.probabilities,
        "interval_low": prediction.interval_low,
        "interval_high": prediction.interval_high,
        "label_set": prediction.label_set,
        "confidence": prediction.confidence,
        "recommended_action": _code(prediction.recommended_action),
        "served_model": prediction.served_model,
        "member_value": prediction.member_value,
        "events_window": {
            "start": start,
            "end": end,
            "days": MAX_LOOKBACK_DAYS,
            "events": batch.events_in_window.get(prediction.pk, 0),
        },
        "features": prediction.features_seen,
        "explanation": prediction.explanation or None,
        "model_version": _model_version(prediction.model_version),
    }


def _model_version(version: ModelVersion) -> dict[str, Any]:
    return {
        "id": version.pk,
        "name": str(version),
        "kind": version.kind,
        "status": version.status,
        "algorithm": version.algorithm,
        "evaluation_cutoff": version.evaluation_cutoff,
        "training_cutoffs": version.training_cutoffs,
        "horizon_days": version.horizon_days,
        "row_counts": version.row_counts,
        "data_fingerprint": version.data_fingerprint,
        "metrics": version.metrics,
        "artifact_checksums": version.artifact_checksums,
        "library_versions": version.library_versions,
        "created_at": version.created_at,
        "promoted_at": version.promoted_at,
        "promoted_by": _name(version.promoted_by),
    }


def _routing(review) -> dict[str, Any]:
    return {
        "review_id": review.pk,
        "kind": review.decision_kind,
        "route": review.route,
        # The rule as the review keeps it: an escalation rewrites it (it says so).
        "rule": review.route_reason,
        "routed_at": review.routed_at,
        "state": review.state,
        "is_blind": review.is_blind,
        "recommended_action": _code(review.recommended_action),
        "expected_value": review.expected_value,
        "contact_flags": list(review.contact_flags or ()),
        "policy": _policy(review.policy),
        "action_policy": _policy(review.action_policy) if review.action_policy_id else None,
    }


def _policy(policy: EscalationPolicy) -> dict[str, Any]:
    return {
        "id": policy.pk,
        "kind": policy.kind,
        "version": policy.version,
        "created_at": policy.created_at,
        "created_by": _name(policy.created_by),
        "change_reason": policy.change_reason,
        "settings": asdict(PolicySettings.of(policy)),
    }


def _people(decision: Decision, batch: _Batch) -> list[dict[str, Any]]:
    """Every person's step on the item, in time order; the policy's decision names no one."""
    review = decision.review
    steps = [
        {"step": "opened", "who": _name(opening.user), "at": opening.opened_at}
        for opening in batch.openings.get(review.pk, ())
    ]
    answer = batch.blind_answers.get(review.pk)
    if answer is not None:
        steps.append(
            {"step": "answered_blind", "who": _name(answer.user), "at": answer.committed_at}
        )
    if review.escalated_at is not None:
        # No one when the SLA escalated it: the system did.
        steps.append(
            {"step": "escalated", "who": _name(review.escalated_by), "at": review.escalated_at}
        )
    steps.append({"step": "decided", "who": _name(decision.decided_by), "at": decision.decided_at})
    return sorted(steps, key=lambda step: step["at"])


def _escalation(review) -> dict[str, Any] | None:
    if review.escalated_at is None:
        return None
    return {
        "by": _name(review.escalated_by),
        "at": review.escalated_at,
        "reason_code": _code(review.escalation_reason),
        "comment": review.escalation_comment,
        "analyst_proposal": review.analyst_proposal,
    }


def _blind_answer(answer: BlindAnswer | None) -> dict[str, Any] | None:
    if answer is None:
        return None
    return {
        "by": _name(answer.user),
        "committed_at": answer.committed_at,
        "churn_label": answer.churn_label,
        "action": _code(answer.action),
        "model_churn_call": answer.model_churn_call,
    }


def _decision(decision: Decision, batch: _Batch, *, disclosed: bool) -> dict[str, Any]:
    """The decision as it left the product (`decision_item`: the same shape as the feed and
    the webhook, as `user` may read it), with what only people record beside it."""
    return {
        **decision_item(batch.user, decision, now=batch.now),
        "decided_by": _name(decision.decided_by),
        "reason_label": decision.reason.label,
        "reason_treatment": decision.reason.treatment,
        "comment": decision.comment,
        "override_churn_label": decision.churn_label,
        "override_action": _code(decision.action),
        "holdout_reason": (decision.holdout_reason or None) if disclosed else None,
        "silenced_because": decision.silenced_because,
        "seconds_on_item": decision.seconds_on_item,
    }


def _event_out(event: OutboxEvent, batch: _Batch, *, disclosed: bool) -> dict[str, Any]:
    # `decision.held_out` or `decision.created`, and where each went (an endpoint may take one
    # type only), would tell a person what the horizon keeps from them; not those who read
    # the delivery log, which shows every event's type.
    withheld = event.type in DECISION_EVENTS and not (disclosed or batch.sees_endpoints)
    deliveries = batch.deliveries.get(event.pk, ())
    return {
        "event_id": event.event_id,
        "type": None if withheld else event.type,
        "created_at": event.created_at,
        "deliveries": None if withheld else [_delivery(row, batch) for row in deliveries],
    }


def _delivery(delivery: Delivery, batch: _Batch) -> dict[str, Any]:
    return {
        "id": delivery.pk,
        "endpoint": delivery.endpoint.url if batch.sees_endpoints else None,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_status_code": delivery.last_status_code,
        "last_attempt_at": delivery.last_attempt_at,
        "delivered_at": delivery.delivered_at,
        "last_error": delivery.last_error if batch.sees_endpoints else None,
    }


def _example(example: LabeledExample) -> dict[str, Any]:
    return {
        "id": example.pk,
        "source": example.source,
        "kind": example.kind,
        "prediction_id": example.prediction_id,
        "churn_label": example.churn_label,
        "action": _code(example.action),
        "treatment": example.treatment,
        "agrees_with_model": example.agrees_with_model,
        "weight": example.weight,
        "excluded": example.excluded,
        "observed_at": example.observed_at,
    }


def _code(row) -> str | None:
    return row.code if row is not None else None


def _name(user) -> str | None:
    return user.get_username() if user is not None else None
