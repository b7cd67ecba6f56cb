"""What a chunk's members become: the active version's predictions, as rows to write.

Churn served by the tree + sequence ensemble (the admin's ScoringSetting, resolved once per run
into `ScoringRun.served_model`) takes its score, interval, label set and confidence from the
calibrated ensemble. Its explanation is the trees' SHAP times the tree weight plus one
"behavior_sequence" item, adding up to the ensemble margin, with "model": "ensemble" and, under
"sequence_events", the SEQUENCE_EVENTS_STORED events whose removal moved that margin most
(`churn.sequence.top_sequence_events` gives their shape).
"""

import dataclasses
import functools

import numpy as np
import pandas as pd
from django.conf import settings

from loyalty.models import Action, Member
from predictions.exceptions import NoActiveModelError
from predictions.ml import artifacts, frames
from predictions.ml.churn.model import ENSEMBLE, predict_churn
from predictions.ml.contracts import (
    ATTRIBUTION_RECENT_EVENTS,
    STORED_SEQUENCE_EVENTS,
    ChurnBundle,
    MLError,
    NextActionBundle,
)
from predictions.ml.features import (
    FEATURE_NAMES,
    MEMBER_VALUE_FEATURE,
    build_features,
    prepare_events,
)
from predictions.ml.nba import predict_next_action
from predictions.models import ModelVersion, PredictionKind
from predictions.selectors import feature_event_frame, members_frame
from predictions.services.scoring.settings import ENSEMBLE as SERVE_ENSEMBLE
from predictions.services.scoring.settings import scoring_model_setting, served_model

# Events per ensemble prediction that the member page marks on the timeline, and how many of
# each member's latest events occlusion looks at (see contracts.ATTRIBUTION_RECENT_EVENTS).
SEQUENCE_EVENTS_STORED = STORED_SEQUENCE_EVENTS
SEQUENCE_ATTRIBUTION_RECENT_EVENTS = ATTRIBUTION_RECENT_EVENTS


def active_version(kind: str) -> ModelVersion:
    version = ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.ACTIVE).first()
    if version is None:
        raise NoActiveModelError(f"There is no active {kind} model version.", kind=kind)
    return version


def version_served_model(version: ModelVersion) -> str:
    """'ensemble' or 'trees': which of the version's models the scoring setting serves now.

    Read from the version's registered report (what training found), not its artifacts, so
    that starting a run (after a promotion, in a web process too) loads no model; a chunk
    that is told to use an ensemble its artifacts lack fails loudly."""
    if version.kind != PredictionKind.CHURN:
        return "trees"
    metrics = version.metrics or {}
    return served_model(
        has_ensemble=bool((metrics.get("sequence_model") or {}).get("trained")),
        ensemble_won=metrics.get("selected") == ENSEMBLE,
        setting=scoring_model_setting(version.kind),
    )


def predict_rows(
    *, version: ModelVersion, member_ids: list[int], cutoff, served: str | None = None
) -> list[dict]:
    """Prediction rows of these members; `served` ('trees' or 'ensemble', a run's
    `served_model`) defaults to what the scoring setting serves now."""
    if not member_ids:
        return []
    frame, first_ns = feature_event_frame(cutoff=cutoff, member_ids=member_ids)
    events = prepare_events(frame)
    if first_ns is not None:
        events = dataclasses.replace(events, first_ns=first_ns)
    members = members_frame(member_ids=member_ids)
    features = build_features(events=events, members=members, cutoff=cutoff)
    bundle = load_bundle(version.pk, tuple(sorted(version.artifact_checksums.items())))
    if version.kind == PredictionKind.CHURN:
        served = served or version_served_model(version)
        sequences = None
        if served == SERVE_ENSEMBLE:
            if bundle.ensemble is None:
                raise MLError(f"model version {version.pk} has no ensemble to serve")
            from predictions.ml.churn.sequence import encode_members  # imports torch

            sequences = encode_members(
                ensemble=bundle.ensemble, events=frame, member_ids=features.index, cutoff=cutoff
            )
        return _churn_rows(version, bundle, features, cutoff, sequences=sequences)
    return _next_action_rows(version, bundle, features, members, cutoff)


def _churn_rows(
    version, bundle: ChurnBundle, features: pd.DataFrame, cutoff, sequences=None
) -> list[dict]:
    """Prediction rows (write_predictions mappings). With `sequences` (the members' encoded
    events), the ensemble scores them."""
    if sequences is None:
        result = predict_churn(bundle=bundle, features=features)
    else:
        result = predict_churn(
            bundle=bundle,
            features=features,
            candidate=ENSEMBLE,
            sequences=sequences,
            sequence_events=SEQUENCE_EVENTS_STORED,
            attribution_recent_events=SEQUENCE_ATTRIBUTION_RECENT_EVENTS,
        )
    columns = result.columns(names=FEATURE_NAMES)
    explanations = _explanations(columns)
    if sequences is not None:
        for explanation in explanations:
            explanation["model"] = ENSEMBLE
    return _prediction_rows(
        version=version,
        kind=PredictionKind.CHURN.value,
        cutoff=cutoff,
        member_ids=columns["member_id"],
        scores=columns["probability"],
        label_sets=columns["label_set"],
        confidences=columns["confidence"],
        explanations=explanations,
        features=features,
        feature_codes=bundle.feature_codes,
        interval_low=columns["low"],
        interval_high=columns["high"],
    )


def _next_action_rows(
    version, bundle: NextActionBundle, features: pd.DataFrame, members: pd.DataFrame, cutoff
) -> list[dict]:
    eligibility = action_eligibility(member_ids=list(features.index), codes=bundle.action_codes)
    result = predict_next_action(bundle=bundle, features=features, eligibility=eligibility)
    columns = result.columns(names=FEATURE_NAMES)
    action_ids = dict(Action.objects.values_list("code", "pk"))
    return _prediction_rows(
        version=version,
        kind=PredictionKind.NEXT_ACTION.value,
        cutoff=cutoff,
        member_ids=columns["member_id"],
        scores=columns["probability"],
        label_sets=columns["action_set"],
        confidences=columns["confidence"],
        explanations=_explanations(columns),
        features=features,
        feature_codes=bundle.feature_codes,
        probabilities=columns["probabilities"],
        recommended_action_ids=[action_ids.get(code) for code in columns["recommended"]],
    )


def _prediction_rows(
    *,
    version: ModelVersion,
    kind: str,
    cutoff,
    member_ids: list[int],
    scores: list[float],
    label_sets: list[list[str]],
    confidences: list[float],
    explanations: list[dict],
    features: pd.DataFrame,
    feature_codes: tuple[str, ...],
    interval_low: list | None = None,
    interval_high: list | None = None,
    probabilities: list | None = None,
    recommended_action_ids: list | None = None,
) -> list[dict]:
    """The one shape of a stored prediction (write_predictions mappings), from columns of an
    ML result's `columns()` and what the model saw; a field the kind lacks is None."""
    absent = [None] * len(member_ids)
    rows = zip(
        member_ids,
        scores,
        probabilities or absent,
        interval_low or absent,
        interval_high or absent,
        label_sets,
        recommended_action_ids or absent,
        confidences,
        explanations,
        _feature_values(features, feature_codes),
        _member_values(features),
        strict=True,
    )
    return [
        {
            "member_id": member_id,
            "model_version_id": version.pk,
            "kind": kind,
            "cutoff": cutoff,
            "score": score,
            "probabilities": probabilities_of_actions,
            "interval_low": low,
            "interval_high": high,
            "label_set": label_set,
            "recommended_action_id": action_id,
            "confidence": confidence,
            "explanation": explanation,
            "feature_values": seen,
            "member_value": value,
        }
        for (
            member_id,
            score,
            probabilities_of_actions,
            low,
            high,
            label_set,
            action_id,
            confidence,
            explanation,
            seen,
            value,
        ) in rows
    ]


def _explanations(columns: dict[str, list]) -> list[dict]:
    """The explanation column of an ML result's `columns()`, {} per row when it has none."""
    return columns.get("explanation") or [{} for _ in columns["member_id"]]


def action_eligibility(*, member_ids: list[int], codes: tuple[str, ...]) -> pd.DataFrame:
    """Members x action codes: may this action be offered to this member (catalog rules,
    the same as `Action.is_eligible`, evaluated for the whole chunk at once)."""
    ladder = settings.LOYALTY_TIER_LADDER
    rows = Member.objects.filter(pk__in=member_ids).values_list("pk", "tier", "consent_profiling")
    known = {pk: (frames.tier_rank(tier, ladder), consent) for pk, tier, consent in rows}
    rank = np.array([known.get(pk, (frames.UNKNOWN_TIER_RANK, False))[0] for pk in member_ids])
    consent = np.array([known.get(pk, (-1, False))[1] for pk in member_ids], dtype=bool)
    exists = np.array([pk in known for pk in member_ids], dtype=bool)
    actions = {action.code: action for action in Action.objects.filter(code__in=codes)}
    matrix = np.zeros((len(member_ids), len(codes)), dtype=bool)
    for j, code in enumerate(codes):
        action = actions.get(code)
        if action is None or not action.is_active:
            continue
        allowed = exists.copy()
        if action.requires_consent:
            allowed &= consent
        if action.min_tier:
            allowed &= rank >= frames.required_tier_rank(action.min_tier, ladder)
        matrix[:, j] = allowed
    return pd.DataFrame(matrix, index=pd.Index(member_ids, name="member_id"), columns=list(codes))


def _feature_values(features: pd.DataFrame, codes: tuple[str, ...]) -> list[list]:
    """What the model saw, per member, in `codes` order: rounded to 6 decimals, None for NaN."""
    rounded = np.round(features.loc[:, list(codes)].to_numpy(dtype="float64"), 6)
    cells = rounded.astype(object)
    cells[np.isnan(rounded)] = None
    return cells.tolist()


def _member_values(features: pd.DataFrame) -> list[float | None]:
    """Per member, the value routing and the queue use (None where it is unknown)."""
    if MEMBER_VALUE_FEATURE not in features.columns:
        return [None] * len(features)
    values = features[MEMBER_VALUE_FEATURE].to_numpy(dtype="float64")
    cells = values.astype(object)
    cells[~np.isfinite(values)] = None
    return cells.tolist()


@functools.lru_cache(maxsize=4)
def load_bundle(version_id: int, checksums: tuple[tuple[str, str], ...]):
    """A version's bundle, loaded once per process; checksums are verified on every load."""
    version = ModelVersion.objects.get(pk=version_id)
    loader = (
        artifacts.load_churn_bundle
        if version.kind == PredictionKind.CHURN
        else artifacts.load_next_action_bundle
    )
    return loader(directory=version.artifact_path, checksums=dict(checksums))
