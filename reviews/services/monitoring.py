"""The calibration and drift monitor, and the auto-approval pause it can pull.

Per kind, for the active version (periodically, and on the loop page):
- calibration (churn): the version's predictions whose outcome is known (outcome examples)
  against what the members did: reliability bins and ECE, judged only from
  `GatePolicy.monitor_min_outcomes` outcomes on;
- drift: PSI of every feature between the training data (features at the version's latest
  training cutoff, the members active then) and what the version saw at its latest scoring.
When the ECE or any feature's PSI passes the gate policy's limit, auto-approval pauses: routing
sends every new prediction to people until an admin resumes it or a new version is promoted.
"""

from datetime import datetime

import pandas as pd
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone

from loyalty import shared_cache
from loyalty.exceptions import require_permission
from loyalty.models import AuditRecord
from loyalty.services.audit import record_audit
from predictions.ml import labels
from predictions.ml.features import build_features
from predictions.ml.monitoring import feature_drift, reliability
from predictions.models import ModelVersion, Prediction, PredictionKind
from predictions.selectors import profiling_frames
from predictions.services.registry import PROMOTE_PERMISSION
from reviews.models import AutomationPause, LabeledExample, MonitorReport
from reviews.services.notifications import notify, users_with_permission
from reviews.services.retraining import gate_policy

DRIFT_SAMPLE = 20_000


def open_pause(kind: str) -> AutomationPause | None:
    return AutomationPause.objects.open().filter(kind=kind).first()


PAUSES_KEY = "automation:open-pauses"


def open_pauses() -> list[AutomationPause]:
    """Every open pause (the banner on every queue page reads this; from the shared cache when
    there is one: pausing and resuming forget it). Routing reads the database itself."""
    return shared_cache.remembered(
        PAUSES_KEY,
        lambda: list(AutomationPause.objects.open().order_by("kind")),
    )


def run_monitor(*, kind: str) -> MonitorReport | None:
    """Measure the active version of `kind`, store the report, pause on a breach."""
    version = ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.ACTIVE).first()
    if version is None:
        return None
    policy = gate_policy(kind)
    calibration = calibration_of(version)
    drift = drift_of(version)
    values = [value for value in drift.values() if value is not None]
    max_psi = max(values) if values else None
    breaches = []
    judged = calibration["n"] >= policy.monitor_min_outcomes
    if judged and calibration["ece"] is not None and calibration["ece"] > policy.monitor_max_ece:
        breaches.append(
            f"calibration error {calibration['ece']:.3f} > {policy.monitor_max_ece:.3f} "
            f"on {calibration['n']} outcomes"
        )
    if max_psi is not None and max_psi > policy.monitor_max_psi:
        worst = max(drift, key=lambda code: drift[code] if drift[code] is not None else -1)
        breaches.append(f"drift of {worst}: PSI {max_psi:.2f} > {policy.monitor_max_psi:.2f}")
    report = MonitorReport.objects.create(
        kind=kind,
        model_version=version,
        outcomes=calibration["n"],
        ece=calibration["ece"],
        reliability=calibration["bins"],
        drift=drift,
        max_psi=max_psi,
        breaches=breaches,
    )
    if breaches:
        pause_auto_approval(kind=kind, reason="; ".join(breaches)[:300], report=report)
    return report


def calibration_of(version: ModelVersion) -> dict:
    """Reliability of a churn version on its predictions with known outcomes."""
    if version.kind != PredictionKind.CHURN:
        return {"bins": [], "ece": None, "n": 0}
    rows = LabeledExample.objects.filter(
        source=LabeledExample.Source.OUTCOME, model_version=version, churn_label__isnull=False
    ).values_list("prediction__score", "churn_label")
    frame = pd.DataFrame.from_records(list(rows), columns=["score", "churned"]).dropna()
    return reliability(
        probability=frame["score"].to_numpy(dtype="float64"),
        outcome=frame["churned"].to_numpy(dtype="float64"),
    )


def drift_of(version: ModelVersion) -> dict[str, float | None]:
    """PSI per feature: training data (at the latest training cutoff) vs the latest scoring."""
    current = _latest_scored_features(version)
    if current.empty or not version.training_cutoffs:
        return {}
    reference = _training_features(version)
    return dict(feature_drift(reference=reference, current=current, codes=list(current.columns)))


def _latest_scored_features(version: ModelVersion) -> pd.DataFrame:
    latest = Prediction.objects.filter(model_version=version).aggregate(last=Max("cutoff"))["last"]
    if latest is None:
        return pd.DataFrame()
    values = list(
        Prediction.objects.filter(model_version=version, cutoff=latest)
        .order_by("?")
        .values_list("feature_values", flat=True)[:DRIFT_SAMPLE]
    )
    frame = pd.DataFrame(values, columns=list(version.feature_codes))
    return frame.astype("float64")


def _training_features(version: ModelVersion) -> pd.DataFrame:
    cutoff = pd.Timestamp(version.training_cutoffs[-1])
    cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff
    events, members = profiling_frames(before=cutoff.to_pydatetime())
    features = build_features(events=events, members=members, cutoff=cutoff)
    config = (version.hyperparameters or {}).get("qualifying_kinds") or ["purchase"]
    active = labels.active_member_ids(events=events, cutoff=cutoff, qualifying_kinds=config)
    features = features.loc[features.index.intersection(active)]
    if len(features) > DRIFT_SAMPLE:
        features = features.sample(DRIFT_SAMPLE, random_state=0)
    return features.reindex(columns=list(version.feature_codes))


def pause_auto_approval(
    *, kind: str, reason: str, report: MonitorReport | None = None
) -> AutomationPause:
    """Open a pause (or return the one that is open) and tell the admins."""
    existing = open_pause(kind)
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            pause = AutomationPause.objects.create(kind=kind, reason=reason, report=report)
            shared_cache.forget(PAUSES_KEY)
            record_audit(
                kind=AuditRecord.Kind.POLICY_CHANGE,
                actor=None,
                subject=f"automation:{kind}",
                details={"auto_approval": "paused", "reason": reason},
            )
    except IntegrityError:
        return open_pause(kind)
    notify(
        recipients=users_with_permission(PROMOTE_PERMISSION),
        subject=f"Auto-approval of {PredictionKind(kind).label} paused",
        body=f"{reason}. Every new prediction goes to people until an admin resumes "
        "auto-approval or a new model version is promoted.",
        link=reverse("reviews:loop"),
    )
    return pause


def resume_auto_approval(
    *, kind: str, actor: AbstractBaseUser | None, reason: str, now: datetime | None = None
) -> AutomationPause | None:
    """Close the open pause of `kind`; None when there was none."""
    require_permission(actor, PROMOTE_PERMISSION)
    with transaction.atomic():
        pause = AutomationPause.objects.select_for_update().open().filter(kind=kind).first()
        if pause is None:
            return None
        pause.resumed_at = now or timezone.now()
        pause.resumed_by = actor if actor is not None and actor.is_authenticated else None
        pause.resume_reason = reason[:300]
        pause.save(update_fields=["resumed_at", "resumed_by", "resume_reason"])
        shared_cache.forget(PAUSES_KEY)
        record_audit(
            kind=AuditRecord.Kind.POLICY_CHANGE,
            actor=actor,
            subject=f"automation:{kind}",
            details={"auto_approval": "resumed", "reason": reason},
        )
    return pause
