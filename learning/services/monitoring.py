"""The calibration and drift monitor of the active versions.

Per kind: calibration (churn) of the version's predictions whose outcome is known, judged
only from `GatePolicy.monitor_min_outcomes` outcomes on, and drift (PSI per feature) between
the training data and what the version saw at its latest scoring. A breach of the gate
policy's limits pauses auto-approval (`reviews.services.automation`): routing then sends every
new prediction to people until an admin resumes it or a new version is promoted.
"""

import pandas as pd
from django.db.models import Max
from django.urls import reverse

from learning.models import LabeledExample, MonitorReport
from learning.selectors import gate_policy
from predictions.ml import labels
from predictions.ml.features import build_features
from predictions.ml.monitoring import feature_drift, reliability
from predictions.models import ModelVersion, Prediction, PredictionKind
from predictions.selectors import profiling_frames
from reviews.services.automation import pause_auto_approval

DRIFT_SAMPLE = 20_000


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
        pause_auto_approval(
            kind=kind,
            reason="; ".join(breaches)[:300],
            report_id=report.pk,
            link=reverse("learning:loop"),
        )
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
