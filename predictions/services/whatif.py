"""What-if: score one member's stored features with a few values changed. Stores nothing.

The active model version of the prediction's kind answers, with the model the scoring setting
serves (trees alone or the tree + sequence ensemble), so a reviewer sees what the model in
production would say today about the changed member. The ensemble's sequence share comes from
the member's events before the prediction's cutoff, which a what-if does not change.

A what-if profiles the member: it is refused for one who may not be profiled (consent
withdrawn or erased, `loyalty.selectors.may_profile`), whatever their stored prediction says.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from loyalty.exceptions import DomainError
from loyalty.models import Member
from loyalty.selectors import may_profile
from predictions.exceptions import ProfilingNotAllowedError
from predictions.ml.churn.model import ENSEMBLE, predict_churn
from predictions.ml.contracts import CHURN_LABELS
from predictions.ml.features import FEATURE_NAMES
from predictions.ml.nba import predict_next_action
from predictions.models import Prediction, PredictionKind
from predictions.selectors import feature_event_frame
from predictions.services.scoring.predict import (
    action_eligibility,
    active_version,
    load_bundle,
    version_served_model,
)


class WhatIfInputError(DomainError):
    """A what-if value is not a finite number, or names a feature the model does not know."""


@dataclass(frozen=True)
class WhatIfResult:
    kind: str
    model_version_id: int
    score: float
    interval_low: float | None
    interval_high: float | None
    label_set: tuple[str, ...]
    confidence: float
    recommended_action: str
    probabilities: Mapping[str, float]
    explanation: Mapping
    changes: Mapping[str, float]


def parse_value(code: str, raw: object) -> float:
    """A submitted value as a finite float; a clear error naming the feature otherwise."""
    name = FEATURE_NAMES.get(code, code)
    text = str(raw).strip().replace(",", "") if raw is not None else ""
    if not text:
        raise WhatIfInputError(f"{name}: enter a number.", feature=code)
    try:
        value = float(text)
    except ValueError as error:
        raise WhatIfInputError(f"{name}: {raw!r} is not a number.", feature=code) from error
    if not math.isfinite(value):
        raise WhatIfInputError(f"{name}: the value must be a finite number.", feature=code)
    return value


def what_if(*, prediction: Prediction, changes: Mapping[str, object]) -> WhatIfResult:
    """Score the prediction's member with `changes` applied to the stored feature values.

    ProfilingNotAllowedError (409) when the member may no longer be profiled."""
    _require_profiling_allowed(prediction.member_id)
    version = active_version(prediction.kind)
    bundle = load_bundle(version.pk, tuple(sorted(version.artifact_checksums.items())))
    codes = tuple(bundle.feature_codes)
    unknown = sorted(set(changes) - set(codes))
    if unknown:
        raise WhatIfInputError(
            f"The active model does not use {', '.join(unknown)}.", features=unknown
        )
    edits = {code: parse_value(code, raw) for code, raw in changes.items()}
    stored = prediction.features_seen
    row = {code: edits.get(code, _stored(stored.get(code))) for code in codes}
    features = pd.DataFrame(
        [row], index=pd.Index([prediction.member_id], name="member_id"), columns=list(codes)
    ).astype("float64")
    if prediction.kind == PredictionKind.CHURN:
        sequences = None
        if version_served_model(version) == ENSEMBLE:
            # The member's events are not edited: the sequence share stays what it was.
            from predictions.ml.churn.sequence import encode_members  # imports torch

            # In stored order, as scoring read them (same-instant events keep their order).
            frame, _ = feature_event_frame(
                cutoff=prediction.cutoff, member_ids=[prediction.member_id], scattered=True
            )
            sequences = encode_members(
                ensemble=bundle.ensemble,
                events=frame,
                member_ids=[prediction.member_id],
                cutoff=prediction.cutoff,
            )
        result = predict_churn(
            bundle=bundle,
            features=features,
            candidate=ENSEMBLE if sequences is not None else None,
            sequences=sequences,
        )
        return WhatIfResult(
            kind=prediction.kind,
            model_version_id=version.pk,
            score=float(result.probability[0]),
            interval_low=float(result.low[0]),
            interval_high=float(result.high[0]),
            label_set=tuple(
                label
                for label, kept in zip(CHURN_LABELS, result.label_sets[0], strict=True)
                if kept
            ),
            confidence=float(result.confidence[0]),
            recommended_action="",
            probabilities={},
            explanation=result.explanation.row(0, names=FEATURE_NAMES),
            changes=edits,
        )
    eligibility = action_eligibility(member_ids=[prediction.member_id], codes=bundle.action_codes)
    result = predict_next_action(bundle=bundle, features=features, eligibility=eligibility)
    action_codes = tuple(str(code) for code in result.action_codes)
    return WhatIfResult(
        kind=prediction.kind,
        model_version_id=version.pk,
        score=float(result.recommended_probability[0]),
        interval_low=None,
        interval_high=None,
        label_set=tuple(
            code for code, kept in zip(action_codes, result.action_sets[0], strict=True) if kept
        ),
        confidence=float(result.confidence[0]),
        recommended_action=str(result.recommended[0]),
        probabilities=dict(zip(action_codes, result.probabilities[0].tolist(), strict=True)),
        explanation=result.explanation.row(0, names=FEATURE_NAMES),
        changes=edits,
    )


def _require_profiling_allowed(member_id: int) -> None:
    if may_profile(member_id=member_id):
        return
    if Member.objects.filter(pk=member_id, erased_at__isnull=False).exists():
        message = "This member's personal data was erased; a what-if cannot be computed."
    else:
        message = (
            "This member withdrew consent to profiling; a what-if would profile them, so it "
            "cannot be computed."
        )
    raise ProfilingNotAllowedError(message, member_id=member_id)


def _stored(value) -> float:
    return float(value) if value is not None else np.nan
