"""Evaluating registered versions side by side: the figures a retraining gate compares.

Both functions score every version given on the same rows, so that a candidate and the
active version are judged on exactly the same data:
- `evaluate_churn_out_of_time`: the members active before a cutoff, labeled by what they did
  in [cutoff, cutoff + horizon) (the same population and label as training's evaluation),
  each version scored by the model the scoring setting serves (trees or the ensemble);
- `evaluate_on_examples`: labeled examples that carry their own feature values (people's
  decisions and observed outcomes), for the versions' own kind. They carry no event
  sequence, so churn versions are judged by their trees there.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from predictions.ml import labels
from predictions.ml.churn.model import ENSEMBLE, predict_churn
from predictions.ml.features import build_features
from predictions.ml.metrics import binary_metrics, multiclass_metrics
from predictions.ml.nba import predict_next_action
from predictions.models import ModelVersion, PredictionKind
from predictions.selectors import profiling_frames
from predictions.services.scoring.predict import load_bundle, version_served_model


@dataclass(frozen=True)
class ExampleSet:
    """Rows to evaluate on: features by feature code, and the label of each row (churned as
    bool for churn; the action code for a next action)."""

    features: pd.DataFrame
    churned: np.ndarray | None = None
    action_codes: Sequence[str] | None = None

    def __len__(self) -> int:
        return len(self.features)


def bundle_of(version: ModelVersion):
    return load_bundle(version.pk, tuple(sorted(version.artifact_checksums.items())))


def evaluate_churn_out_of_time(
    *, versions: Sequence[ModelVersion], cutoff: datetime, horizon_days: int
) -> dict[int, dict]:
    """{version id: binary metrics} on the members active before `cutoff`; empty figures
    (n = 0) when the data do not reach cutoff + horizon. Only members who may be profiled:
    scoring the others for a report would profile them too."""
    events, members = profiling_frames()
    stamp = pd.Timestamp(cutoff)
    window_end = stamp + pd.Timedelta(days=horizon_days)
    if events.empty or events["occurred_at"].max() < window_end - pd.Timedelta(days=1):
        return {version.pk: {"n": 0} for version in versions}
    out = {}
    features_at = None
    for version in versions:
        bundle = bundle_of(version)
        config = bundle.config
        active = labels.active_member_ids(
            events=events,
            cutoff=stamp,
            lookback_days=config.active_lookback_days,
            qualifying_kinds=config.qualifying_kinds,
        )
        if features_at is None:
            features_at = build_features(
                events=events[events["occurred_at"] < stamp], members=members, cutoff=stamp
            )
        active = active[np.isin(active, features_at.index)]
        y = labels.churn_labels(
            events=events,
            member_ids=active,
            cutoff=stamp,
            horizon_days=horizon_days,
            qualifying_kinds=config.qualifying_kinds,
        ).to_numpy()
        sequences = None
        if version_served_model(version) == ENSEMBLE:
            from predictions.ml.churn.sequence import encode_members  # imports torch

            sequences = encode_members(
                ensemble=bundle.ensemble, events=events, member_ids=active, cutoff=stamp
            )
        result = predict_churn(
            bundle=bundle,
            features=features_at.loc[active],
            explain_top_k=0,
            candidate=ENSEMBLE if sequences is not None else None,
            sequences=sequences,
        )
        out[version.pk] = binary_metrics(
            labels=y,
            probability=result.probability,
            label_sets=result.label_sets,
            nominal_coverage=config.label_set_coverage,
            low=result.low,
            high=result.high,
        )
    return out


def evaluate_on_examples(*, versions: Sequence[ModelVersion], examples: ExampleSet) -> dict:
    """{version id: metrics} of each version on the same labeled examples."""
    out = {}
    for version in versions:
        bundle = bundle_of(version)
        features = examples.features.reindex(columns=list(bundle.feature_codes)).astype("float64")
        if not len(features):
            out[version.pk] = {"n": 0}
        elif version.kind == PredictionKind.CHURN:
            result = predict_churn(bundle=bundle, features=features, explain_top_k=0)
            out[version.pk] = binary_metrics(
                labels=np.asarray(examples.churned, dtype="int64"),
                probability=result.probability,
                label_sets=result.label_sets,
                nominal_coverage=bundle.config.label_set_coverage,
            )
        else:
            out[version.pk] = _next_action_metrics(bundle, features, examples.action_codes)
    return out


def _next_action_metrics(bundle, features: pd.DataFrame, action_codes) -> dict:
    codes = [str(code) for code in bundle.action_codes]
    known = np.array([code in codes for code in action_codes], dtype=bool)
    if not known.any():
        return {"n": 0}
    result = predict_next_action(bundle=bundle, features=features, explain_top_k=0)
    y = np.array([codes.index(code) for code in np.asarray(action_codes)[known]])
    return multiclass_metrics(
        labels=y,
        probabilities=np.asarray(result.probabilities)[known],
        sets=np.asarray(result.action_sets)[known],
        nominal_coverage=bundle.config.set_coverage,
    )
