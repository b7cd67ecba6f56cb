"""Turning decisions and observed outcomes into labeled examples: what retraining learns from.

Decision examples follow the reason code's treatment: confirm (the model's answer is the
label), relabel (the person's answer is), exclude (kept `excluded` so the sweep knows the
decision was handled, never trained on). Approvals and corrections weigh the same: the reviewed
members are already a chosen sample, and weighting corrections higher tilts the labels towards
"the model was wrong" (README, "The learning loop"). The model's churn answer is its call at
CHURN_CALL_THRESHOLD (predictions.calls).

Outcome examples: once the data clock (the latest imported event, not the wall clock) passes a
prediction's cutoff + horizon, what the member did. Only members who may be profiled get them:
an erased member has no events left, and "no event" must not become "churned".

Every function here is idempotent: a unique constraint per decision and per prediction's
outcome stands behind it, so a task run twice or a sweep racing a task creates one row.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from learning.models import LabeledExample
from loyalty.clock import scoring_clock
from loyalty.models import Action, Event
from loyalty.selectors import scorable_members
from predictions.calls import model_churn_call
from predictions.ml.nba import DECISION_WEIGHT, OUTCOME_WEIGHT, observed_outcome_labels
from predictions.models import ModelVersion, Prediction, PredictionKind
from predictions.selectors import events_frame
from reviews.models import Decision, ReasonCode, Review

DECISION_LABEL_WEIGHT = {
    PredictionKind.CHURN: 1.0,
    PredictionKind.NEXT_ACTION: DECISION_WEIGHT / 2,
}
SWEEP_BATCH = 500
OUTCOME_BATCH = 5000
OUTCOME_KINDS = ("campaign_received", "coupon_redeemed")


@dataclass(frozen=True)
class OutcomeResult:
    recorded: int
    by_kind: dict[str, int]
    # The scoring clock's reading the outcomes were recorded at.
    data_clock: datetime | None


def label_decision(*, decision_id: int) -> LabeledExample:
    """The decision's examples, created where they are not there yet; returns the one of its
    review's kind (a case's decision teaches both kinds: its churn example is returned, its
    next-action example made beside it). Safe to call any number of times, concurrently too:
    the examples are written in one statement that skips what another caller wrote."""
    examples = LabeledExample.objects.filter(
        decision_id=decision_id, source=LabeledExample.Source.DECISION
    )
    decision = Decision.objects.select_related(
        "reason", "review__prediction", "review__action_prediction"
    ).get(pk=decision_id)
    wanted = _decision_examples(decision)
    there = set(examples.values_list("kind", flat=True))
    missing = [example for example in wanted if example.kind not in there]
    if missing:
        LabeledExample.objects.bulk_create(missing, ignore_conflicts=True)
    return examples.get(kind=decision.review.kind)


def _decision_examples(decision: Decision) -> list[LabeledExample]:
    """The examples a decision teaches: one of its review's kind; a case's, one of each kind
    (the churn call it settled on, the action it settled on)."""
    review: Review = decision.review
    if not review.is_case:
        return [_decision_example(decision)]
    model_call = model_churn_call(review.prediction.score)
    churn_call = decision.churn_label if decision.churn_label is not None else model_call
    action_id = decision.settled_action_id
    return [
        _example(
            decision,
            prediction=review.prediction,
            churn_label=churn_call,
            agrees=churn_call == model_call,
        ),
        _example(
            decision,
            prediction=review.action_prediction,
            action_id=action_id,
            agrees=action_id == review.recommended_action_id,
        ),
    ]


def _decision_example(decision: Decision) -> LabeledExample:
    review: Review = decision.review
    prediction: Prediction = review.prediction
    approved = decision.verdict == Decision.Verdict.APPROVE
    if review.kind == PredictionKind.CHURN:
        model_call = model_churn_call(prediction.score)
        churn_label = model_call if approved else decision.churn_label
        return _example(
            decision,
            prediction=prediction,
            churn_label=churn_label,
            agrees=churn_label == model_call,
        )
    # What the person saw recommended (ranked by the review's policy) is the model's answer.
    action_id = review.recommended_action_id if approved else decision.action_id
    return _example(
        decision,
        prediction=prediction,
        action_id=action_id,
        agrees=action_id == review.recommended_action_id,
    )


def _example(
    decision: Decision,
    *,
    prediction: Prediction,
    agrees: bool,
    churn_label: bool | None = None,
    action_id: int | None = None,
) -> LabeledExample:
    """The example of one prediction a decision labels, weighed by the reason's treatment."""
    treatment = decision.reason.treatment
    excluded = treatment == ReasonCode.Treatment.EXCLUDE
    return LabeledExample(
        source=LabeledExample.Source.DECISION,
        kind=prediction.kind,
        prediction=prediction,
        decision=decision,
        member_id=decision.review.member_id,
        model_version_id=prediction.model_version_id,
        cutoff=prediction.cutoff,
        churn_label=churn_label,
        action_id=action_id,
        treatment=treatment,
        agrees_with_model=agrees,
        weight=0.0 if excluded else DECISION_LABEL_WEIGHT[prediction.kind],
        excluded=excluded,
        feature_values=prediction.feature_values,
        observed_at=decision.decided_at,
    )


def unlabeled_decisions():
    """People's decisions that have no example yet (their task never ran or failed). The
    policy's own decisions (auto-approvals) teach nothing: they are the model's answer, and
    training on them would only feed it back; their members' observed outcomes label them."""
    labeled = LabeledExample.objects.filter(
        decision_id=OuterRef("pk"), source=LabeledExample.Source.DECISION
    )
    return Decision.objects.filter(~Exists(labeled)).exclude(decided_as=Decision.POLICY)


def sweep_unlabeled_decisions(*, limit: int | None = None) -> int:
    """Create every missing decision example; returns how many were created."""
    created = 0
    ids = unlabeled_decisions().order_by("pk").values_list("pk", flat=True)
    for decision_id in ids[:limit] if limit else ids.iterator(chunk_size=SWEEP_BATCH):
        label_decision(decision_id=decision_id)
        created += 1
    return created


def predictions_due_for_outcome(*, clock: datetime):
    """Predictions whose horizon has passed by `clock` and whose outcome is not recorded, of
    members who may be profiled (a later consent brings theirs back)."""
    recorded = LabeledExample.objects.filter(
        prediction_id=OuterRef("pk"), source=LabeledExample.Source.OUTCOME
    )
    # cutoff + horizon <= clock, one term per distinct horizon (a plain comparison of the
    # cutoff, the same on every database, where date arithmetic is not).
    horizons = (
        ModelVersion.objects.filter(horizon_days__isnull=False)
        .values_list("horizon_days", flat=True)
        .distinct()
    )
    passed = Q(pk__in=[])
    for horizon in horizons:
        window_ended = clock - timedelta(days=horizon)
        passed |= Q(model_version__horizon_days=horizon, cutoff__lte=window_ended)
    return (
        Prediction.objects.filter(passed)
        .filter(~Exists(recorded))
        .filter(member_id__in=scorable_members().values("pk"))
    )


def record_outcomes(*, clock: datetime | None = None, limit: int | None = None) -> OutcomeResult:
    """Record the outcome of every prediction whose horizon the scoring clock (`loyalty.clock`,
    the end of the data) has passed."""
    clock = clock or scoring_clock()
    counts: dict[str, int] = {}
    last_id = 0
    remaining = limit
    while remaining is None or remaining > 0:
        size = OUTCOME_BATCH if remaining is None else min(OUTCOME_BATCH, remaining)
        batch = pd.DataFrame.from_records(
            predictions_due_for_outcome(clock=clock)
            .filter(pk__gt=last_id)
            .order_by("pk")
            .values(
                "pk",
                "kind",
                "member_id",
                "model_version_id",
                "model_version__horizon_days",
                "model_version__hyperparameters",
                "cutoff",
                "score",
                "recommended_action_id",
                "feature_values",
            )[:size]
        )
        if batch.empty:
            break
        last_id = int(batch["pk"].max())
        examples = _outcome_examples(batch, clock)
        with transaction.atomic():
            LabeledExample.objects.bulk_create(examples, ignore_conflicts=True)
        for example in examples:
            counts[example.kind] = counts.get(example.kind, 0) + 1
        if remaining is not None:
            remaining -= len(batch)
    return OutcomeResult(recorded=sum(counts.values()), by_kind=counts, data_clock=clock)


def _outcome_examples(batch: pd.DataFrame, clock: datetime) -> list[LabeledExample]:
    prediction_ids = batch["pk"].tolist()
    decisions = dict(
        Decision.objects.filter(review__prediction_id__in=prediction_ids).values_list(
            "review__prediction_id", "pk"
        )
    )
    # A next-action prediction a case carried: the latest case decision on it.
    carried = (
        Decision.objects.filter(review__action_prediction_id__in=prediction_ids)
        .order_by("review__action_prediction_id", "decided_at", "pk")
        .values_list("review__action_prediction_id", "pk")
    )
    for prediction_id, decision_id in carried:
        decisions[prediction_id] = decision_id
    examples = []
    for (kind, horizon, cutoff), group in batch.groupby(
        ["kind", "model_version__horizon_days", "cutoff"], sort=False
    ):
        end = cutoff + timedelta(days=int(horizon))
        if kind == PredictionKind.CHURN:
            labels = _churned(group, cutoff, end)
        else:
            labels = _vindicated_actions(group, cutoff, int(horizon))
        for row, label in zip(group.itertuples(index=False), labels, strict=True):
            examples.append(_outcome_example(row, label, end, decisions.get(row.pk)))
    return examples


def _churned(group: pd.DataFrame, start: datetime, end: datetime) -> list[bool]:
    """Per prediction: no qualifying event in [cutoff, cutoff + horizon)."""
    kinds = set()
    for config in group["model_version__hyperparameters"]:
        kinds.update((config or {}).get("qualifying_kinds") or ["purchase"])
    members = group["member_id"].tolist()
    active = set(
        Event.objects.filter(member_id__in=members, kind__in=sorted(kinds))
        .filter(occurred_at__gte=start, occurred_at__lt=end)
        .values_list("member_id", flat=True)
        .distinct()
    )
    return [member not in active for member in members]


def _vindicated_actions(group: pd.DataFrame, start: datetime, window_days: int) -> list:
    """Per prediction: the id of the action an observed response vindicates, or None."""
    members = group["member_id"].tolist()
    events = events_frame(
        since=start,
        before=start + timedelta(days=window_days),
        member_ids=members,
        columns=("member_id", "occurred_at", "kind"),
    )
    events = events[events["kind"].isin(OUTCOME_KINDS)]
    labels = observed_outcome_labels(events=events, cutoff=start, window_days=window_days)
    codes = dict(zip(labels["member_id"].tolist(), labels["action_code"].tolist(), strict=True))
    action_ids = dict(Action.objects.values_list("code", "pk"))
    return [action_ids.get(codes.get(member)) for member in members]


def _outcome_example(row, label, observed_at: datetime, decision_id: int | None):
    churn = row.kind == PredictionKind.CHURN
    if churn:
        agrees = bool(label) == model_churn_call(row.score)
        excluded = False
    else:
        recommended = None if pd.isna(row.recommended_action_id) else row.recommended_action_id
        agrees = label is not None and label == recommended
        excluded = label is None
    return LabeledExample(
        source=LabeledExample.Source.OUTCOME,
        kind=row.kind,
        prediction_id=int(row.pk),
        decision_id=decision_id,
        member_id=int(row.member_id),
        model_version_id=int(row.model_version_id),
        cutoff=row.cutoff,
        churn_label=bool(label) if churn else None,
        action_id=None if churn else label,
        treatment="",
        agrees_with_model=agrees,
        weight=0.0 if excluded else OUTCOME_WEIGHT,
        excluded=excluded,
        feature_values=row.feature_values,
        observed_at=min(observed_at, timezone.now()),
    )
