"""Fairness of the churn model and of the decisions per group (the evidence page "Fairness" and
`GET /api/fairness/`): the decided churn reviews of the limits' window read into the frame
that `learning.fairness_stats` measures.

An item is a decision on a churn review or a case (the policy's auto-approvals and people's
decisions), of a member not erased, made within `FairnessLimits.window_days`. Its groups are
the member's age band and region as recorded now (they are kept for this audit only) and the
tier the review was routed with. The model's call is `predictions.calls.model_churn_call` of
the score; the final call the one the decision settled on
(`reviews.services.decision_events.decided_churn_call`); the outcome the member's observed
churn once the prediction's horizon has passed (`review_quality.observed_churn`).

Protected attributes are for admins and experts (`FAIRNESS_PERMISSION`); analysts never see
them, here or anywhere.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from django.utils import timezone

from learning.fairness_stats import FRAME_COLUMNS, FairnessReport, Limits, fairness_report
from learning.models import FairnessCheck, FairnessLimits
from learning.review_quality import observed_churn
from predictions.calls import model_churn_call
from predictions.models import PredictionKind
from reviews.models import Decision
from reviews.services.decision_events import decided_churn_call

FAIRNESS_PERMISSION = "learning.view_fairness"
# The kinds measured so far: a next action's "churn call" does not exist, and its per-action
# shares are not measured yet.
MEASURED_KINDS = (PredictionKind.CHURN.value,)
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


def churn_decisions(since: datetime):
    """The decisions measured: on churn reviews and cases, since `since`, members not erased,
    with `outcome` (observed churn, None before the horizon) annotated."""
    return (
        Decision.objects.filter(
            review__kind=PredictionKind.CHURN,
            member__erased_at__isnull=True,
            decided_at__gte=since,
        )
        .annotate(outcome=observed_churn())
        .select_related("review__prediction", "member")
        # What the calls and groups need: not the predictions' features and explanations.
        .only(*DECISION_FIELDS)
        .order_by("pk")
    )


def fairness_frame(since: datetime) -> pd.DataFrame:
    """One row per measured decision (`fairness_stats.FRAME_COLUMNS`)."""
    rows = []
    for decision in churn_decisions(since).iterator(chunk_size=DECISIONS_PER_QUERY):
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
            )
        )
    return pd.DataFrame.from_records(rows, columns=list(FRAME_COLUMNS))


@dataclass(frozen=True)
class KindFairness:
    kind: str
    since: datetime
    limits: FairnessLimits
    report: FairnessReport
    latest_check: FairnessCheck | None
    computed_at: datetime


def kind_fairness(kind: str, *, now: datetime | None = None) -> KindFairness:
    """Everything the page and the API show for `kind` (one of MEASURED_KINDS)."""
    now = now or timezone.now()
    limits = fairness_limits(kind)
    since = now - timedelta(days=limits.window_days)
    return KindFairness(
        kind=kind,
        since=since,
        limits=limits,
        report=fairness_report(fairness_frame(since), limits_of(limits)),
        latest_check=FairnessCheck.objects.filter(kind=kind).first(),
        computed_at=now,
    )
