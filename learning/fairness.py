"""Fairness of the models and of the decisions per group (the evidence page "Fairness" and
`GET /api/fairness/`): the decisions of the limits' window read into the frames that
`learning.fairness_stats` measures, one per kind.

An item is a decision on a churn review or a case (the policy's auto-approvals and people's
decisions), of a member not erased, made within `FairnessLimits.window_days`. Its groups are
the member's age band and region as recorded now (they are kept for this audit only), the
tier the review was routed with, and the member's value of every attribute an admin marked as
protected (`ProtectedAttribute`, read as `member__attributes__<key>`; a member without the key
is "not recorded", as one without an age band is). The model's call is
`predictions.calls.model_churn_call` of the score; the final call the one the decision settled on
(`reviews.services.decision_events.decided_churn_call`); the outcome the member's observed
churn once the prediction's horizon has passed (`review_quality.observed_churn`).

Next action: an item is a decision that settles an action (a next-action review, or a case:
its action side), with the same members, window and groups. The model's action is the review's
recommendation (`Review.recommended_action`: the next-action model's probabilities ranked by
the policy, what an approval settles on), the final action `Decision.settled_action`; either
missing (nothing eligible) counts as "no_action", which is an action like any other. Decisions
held out for a control group are included: the product made them, and the member was chosen
for them by a random draw, not by their group (the report counts them).

Protected attributes are for admins and experts (`FAIRNESS_PERMISSION`); analysts never see
them, here or anywhere.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from django.db.models import Q
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

from learning.fairness_actions import (
    ACTION_FRAME_COLUMNS,
    ActionFairnessReport,
    action_fairness_report,
)
from learning.fairness_attributes import AuditedAttributes, with_marked
from learning.fairness_stats import (
    FRAME_COLUMNS,
    FairnessReport,
    Limits,
    fairness_report,
)
from learning.models import FairnessCheck, FairnessLimits, ProtectedAttribute
from learning.review_quality import observed_churn
from loyalty.services.catalog import NO_ACTION
from predictions.calls import model_churn_call
from predictions.models import PredictionKind
from reviews.models import Decision
from reviews.services.decision_events import decided_churn_call

FAIRNESS_PERMISSION = "learning.view_fairness"
MEASURED_KINDS = (PredictionKind.CHURN.value, PredictionKind.NEXT_ACTION.value)
DECISIONS_PER_QUERY = 2_000
DECISION_FIELDS = (
    "verdict",
    "churn_label",
    "decided_as",
    "decided_at",
    "review__kind",
    "review__tier",
    "review__action_prediction_id",
    "review__prediction__score",
    "member__age_band",
    "member__region",
)


def fairness_limits(kind: str) -> FairnessLimits:
    """The kind's limits (seeded by a migration, edited in the admin); the model's defaults
    where its row is missing (a flushed test database), without writing one."""
    return FairnessLimits.objects.filter(kind=kind).first() or FairnessLimits(kind=kind)


def limits_of(row: FairnessLimits) -> Limits:
    return Limits(
        min_group_size=row.min_group_size,
        max_parity_difference=row.max_parity_difference,
        min_parity_ratio=row.min_parity_ratio,
        max_equalized_odds_difference=row.max_equalized_odds_difference,
        max_calibration_difference=row.max_calibration_difference,
        max_override_difference=row.max_override_difference,
    )


def audited_attributes() -> AuditedAttributes:
    """The attributes the reports measure now: the built-in ones and every marked one."""
    return with_marked(dict(ProtectedAttribute.objects.values_list("key", "label")))


def _marked_values(keys: Sequence[str]) -> dict[str, KeyTextTransform]:
    """An annotation per marked key (`marked_0`, ...): `member__attributes__<key>` as text, NULL
    where the member has none (one query on SQLite and PostgreSQL alike)."""
    return {
        f"marked_{index}": KeyTextTransform(key, "member__attributes")
        for index, key in enumerate(keys)
    }


def _group(value) -> str:
    return "" if value is None else str(value)


def churn_decisions(since: datetime, marked: Sequence[str] = ()):
    """The decisions measured: on churn reviews and cases, since `since`, members not erased,
    with `outcome` (observed churn, None before the horizon) and the members' values of the
    `marked` attributes annotated."""
    return (
        Decision.objects.filter(
            review__kind=PredictionKind.CHURN,
            member__erased_at__isnull=True,
            decided_at__gte=since,
        )
        .annotate(outcome=observed_churn(), **_marked_values(marked))
        .select_related("review__prediction", "member")
        # What the calls and groups need: not the predictions' features and explanations.
        .only(*DECISION_FIELDS)
        .order_by("pk")
    )


def fairness_frame(since: datetime, marked: Sequence[str] = ()) -> pd.DataFrame:
    """One row per measured decision (`fairness_stats.FRAME_COLUMNS`, then a column per key of
    `marked`)."""
    rows = []
    decisions = churn_decisions(since, marked).iterator(chunk_size=DECISIONS_PER_QUERY)
    for decision in decisions:
        review, member = decision.review, decision.member
        score = review.prediction.score
        rows.append(
            (
                member.age_band,
                member.region,
                review.tier,
                score,
                bool(model_churn_call(score)),
                bool(decided_churn_call(decision)),
                decision.decided_as != Decision.POLICY,
                None if decision.outcome is None else bool(decision.outcome),
                *(_group(getattr(decision, f"marked_{i}")) for i in range(len(marked))),
            )
        )
    return pd.DataFrame.from_records(rows, columns=[*FRAME_COLUMNS, *marked])


ACTION_DECISION_FIELDS = (
    "member__age_band",
    "member__region",
    "review__tier",
    "review__recommended_action__code",
    "settled_action__code",
    "decided_as",
    "held_out",
)


def action_decisions(since: datetime, marked: Sequence[str] = ()):
    """The decisions that settle an action (next-action reviews, cases), since `since`,
    members not erased: the values of `ACTION_DECISION_FIELDS`, then the members' values of
    the `marked` attributes."""
    values = _marked_values(marked)
    return (
        Decision.objects.filter(
            Q(review__kind=PredictionKind.NEXT_ACTION) | Q(review__action_prediction__isnull=False),
            member__erased_at__isnull=True,
            decided_at__gte=since,
        )
        .annotate(**values)
        .order_by("pk")
        .values_list(*ACTION_DECISION_FIELDS, *values)
    )


def action_frame(since: datetime, marked: Sequence[str] = ()) -> pd.DataFrame:
    """One row per decision that settles an action (`fairness_stats.ACTION_FRAME_COLUMNS`,
    then a column per key of `marked`)."""
    rows = [
        (
            age_band,
            region,
            tier,
            recommended or NO_ACTION,
            settled or NO_ACTION,
            decided_as != Decision.POLICY,
            held_out,
            *(_group(value) for value in values),
        )
        for age_band, region, tier, recommended, settled, decided_as, held_out, *values in (
            action_decisions(since, marked).iterator(chunk_size=DECISIONS_PER_QUERY)
        )
    ]
    return pd.DataFrame.from_records(rows, columns=[*ACTION_FRAME_COLUMNS, *marked])


@dataclass(frozen=True)
class KindFairness:
    kind: str
    since: datetime
    limits: FairnessLimits
    report: FairnessReport | ActionFairnessReport
    latest_check: FairnessCheck | None
    computed_at: datetime


def kind_fairness(kind: str, *, now: datetime | None = None) -> KindFairness:
    """Everything the page and the API show for `kind` (one of MEASURED_KINDS)."""
    now = now or timezone.now()
    limits = fairness_limits(kind)
    since = now - timedelta(days=limits.window_days)
    audited = audited_attributes()
    if kind == PredictionKind.NEXT_ACTION:
        frame = action_frame(since, audited.marked)
        report = action_fairness_report(frame, limits_of(limits), audited)
    else:
        frame = fairness_frame(since, audited.marked)
        report = fairness_report(frame, limits_of(limits), audited)
    return KindFairness(
        kind=kind,
        since=since,
        limits=limits,
        report=report,
        latest_check=FairnessCheck.objects.filter(kind=kind).first(),
        computed_at=now,
    )
