"""What a chunk's members become: the active version's predictions, as rows to write.

Rows carry no explanation ({}): routing reads the score, interval, confidence and member
value, never SHAP, and exact SHAP of every member would be spent mostly on predictions nobody
reads. `predictions.services.explanations` explains a prediction when routing gives it to a
person, or when someone first opens it. Each row keeps what that needs to give exactly what
scoring would have given: the model that scored it (`served_model`) and the row it scored
(`model_input`).

Churn served by the tree + sequence ensemble (the admin's ScoringSetting, resolved once per run
into `ScoringRun.served_model`) takes its score, interval, label set and confidence from the
calibrated ensemble.
"""

import dataclasses
import functools

import numpy as np
import pandas as pd
from django.conf import settings

from loyalty.models import Action, Member
from predictions.behavior_clusters import version_clusters
from predictions.exceptions import NoActiveModelError
from predictions.ml import artifacts, frames
from predictions.ml.churn.model import ENSEMBLE, predict_churn
from predictions.ml.churn.rows import feature_matrix
from predictions.ml.clusters import cluster_numbers
from predictions.ml.contracts import ChurnBundle, MLError, NextActionBundle
from predictions.ml.features import (
    FEATURE_NAMES,
    MEMBER_VALUE_FEATURE,
    build_features,
    prepare_events,
)
from predictions.ml.nba import predict_next_action
from predictions.ml.segments import RfmScale, rfm_segments
from predictions.models import ModelVersion, PredictionKind
from predictions.selectors import feature_event_frame, members_frame
from predictions.services.scoring.settings import ENSEMBLE as SERVE_ENSEMBLE
from predictions.services.scoring.settings import TREES, scoring_model_setting, served_model


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
    """Prediction rows of these members, without explanations; `served` ('trees' or
    'ensemble', a run's `served_model`) defaults to what the scoring setting serves now."""
    if not member_ids:
        return []
    bundle = version_bundle(version)
    if version.kind == PredictionKind.CHURN:
        served = served or version_served_model(version)
        inputs = model_inputs(
            member_ids=member_ids, cutoff=cutoff, in_stored_order=served == SERVE_ENSEMBLE
        )
        sequences = None
        if served == SERVE_ENSEMBLE:
            sequences = ensemble_sequences(
                version=version,
                bundle=bundle,
                events=inputs.events,
                member_ids=inputs.features.index,
                cutoff=cutoff,
            )
        return _churn_rows(version, bundle, inputs.features, cutoff, sequences=sequences)
    inputs = model_inputs(member_ids=member_ids, cutoff=cutoff)
    return _next_action_rows(version, bundle, inputs.features, inputs.members, cutoff)


@dataclasses.dataclass(frozen=True)
class ModelInputs:
    """What a model scores members with: their features at the cutoff (index member_id, in
    the members frame's order), the members frame and the events frame they were built from
    (the ensemble encodes its sequences from the same frame)."""

    features: pd.DataFrame
    members: pd.DataFrame
    events: pd.DataFrame


def model_inputs(*, member_ids: list[int], cutoff, in_stored_order: bool = False) -> ModelInputs:
    """The inputs scoring builds for these members at `cutoff`, from their events read as
    `selectors.feature_event_frame` says (`in_stored_order` for the sequence model)."""
    frame, first_ns = feature_event_frame(
        cutoff=cutoff, member_ids=member_ids, in_stored_order=in_stored_order
    )
    events = prepare_events(frame)
    if first_ns is not None:
        events = dataclasses.replace(events, first_ns=first_ns)
    members = members_frame(member_ids=member_ids)
    features = build_features(events=events, members=members, cutoff=cutoff)
    return ModelInputs(features=features, members=members, events=frame)


def ensemble_sequences(
    *, version: ModelVersion, bundle: ChurnBundle, events: pd.DataFrame, member_ids, cutoff
):
    """The encoded event sequences the version's ensemble scores these members with (from
    `events`, a ModelInputs' frame), in their order; MLError when it has no ensemble."""
    if bundle.ensemble is None:
        raise MLError(f"model version {version.pk} has no ensemble to serve")
    from predictions.ml.churn.sequence import encode_members  # imports torch

    return encode_members(
        ensemble=bundle.ensemble, events=events, member_ids=member_ids, cutoff=cutoff
    )


def version_bundle(version: ModelVersion):
    """The version's trained bundle (`load_bundle`, cached per process)."""
    return load_bundle(version.pk, tuple(sorted(version.artifact_checksums.items())))


def _churn_rows(
    version, bundle: ChurnBundle, features: pd.DataFrame, cutoff, sequences=None
) -> list[dict]:
    """Prediction rows (write_predictions mappings). With `sequences` (the members' encoded
    events), the ensemble scores them."""
    result = predict_churn(
        bundle=bundle,
        features=features,
        candidate=ENSEMBLE if sequences is not None else None,
        sequences=sequences,
        explain_top_k=0,
    )
    columns = result.columns(names=FEATURE_NAMES)
    return _prediction_rows(
        version=version,
        kind=PredictionKind.CHURN.value,
        cutoff=cutoff,
        served_model=SERVE_ENSEMBLE if sequences is not None else TREES,
        member_ids=columns["member_id"],
        scores=columns["probability"],
        label_sets=columns["label_set"],
        confidences=columns["confidence"],
        features=features,
        feature_codes=bundle.feature_codes,
        interval_low=columns["low"],
        interval_high=columns["high"],
    )


def _next_action_rows(
    version, bundle: NextActionBundle, features: pd.DataFrame, members: pd.DataFrame, cutoff
) -> list[dict]:
    eligibility = action_eligibility(member_ids=list(features.index), codes=bundle.action_codes)
    result = predict_next_action(
        bundle=bundle, features=features, eligibility=eligibility, explain_top_k=0
    )
    columns = result.columns(names=FEATURE_NAMES)
    action_ids = dict(Action.objects.values_list("code", "pk"))
    return _prediction_rows(
        version=version,
        kind=PredictionKind.NEXT_ACTION.value,
        cutoff=cutoff,
        served_model=TREES,
        member_ids=columns["member_id"],
        scores=columns["probability"],
        label_sets=columns["action_set"],
        confidences=columns["confidence"],
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
    served_model: str,
    member_ids: list[int],
    scores: list[float],
    label_sets: list[list[str]],
    confidences: list[float],
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
        _feature_values(features, feature_codes),
        model_input_rows(features, feature_codes),
        _member_values(features),
        rfm_segments(features, version_rfm_scale(version)),
        cluster_numbers(features, version_clusters(version)),
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
            "served_model": served_model,
            "explanation": {},
            "feature_values": seen,
            "model_input": scored,
            "member_value": value,
            "rfm_segment": segment,
            "behavior_cluster": cluster,
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
            seen,
            scored,
            value,
            segment,
            cluster,
        ) in rows
    ]


def version_rfm_scale(version: ModelVersion) -> RfmScale | None:
    """The RFM scale stored with the version at training (None for a version trained before
    segments: its predictions have none)."""
    return RfmScale.from_json((version.metrics or {}).get("rfm_scale"))


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


# How a prediction stores the row its model scored (`Prediction.model_input`).
MODEL_INPUT_DTYPE = "<f4"


def model_input_rows(features: pd.DataFrame, codes: tuple[str, ...]) -> list[bytes]:
    """Per member, the row the models score (`churn.rows.feature_matrix`: float32, `codes`
    order) as bytes: an explanation computed later starts from exactly these numbers."""
    matrix = feature_matrix(features, codes).astype(MODEL_INPUT_DTYPE, copy=False)
    return [row.tobytes() for row in matrix]


def model_input_matrix(rows: list[bytes], codes: tuple[str, ...]) -> np.ndarray:
    """The float32 matrix of stored `model_input_rows`; MLError when one does not hold a
    value per code."""
    width = np.dtype(MODEL_INPUT_DTYPE).itemsize * len(codes)
    data = [bytes(row) for row in rows]
    if any(len(row) != width for row in data):
        raise MLError(f"a stored model input does not hold {len(codes)} float32 values")
    matrix = np.frombuffer(b"".join(data), dtype=MODEL_INPUT_DTYPE)
    return matrix.reshape(len(data), len(codes)).astype("float32")


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
