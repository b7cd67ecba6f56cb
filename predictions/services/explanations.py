"""Explanations of stored predictions: exact SHAP, computed once per prediction and kept.

Scoring stores none: routing reads no SHAP, and most predictions are approved automatically
without anybody looking. Routing asks for the explanations of what it gives to people
(`explain_predictions`, in batches); any other prediction gets its explanation the first time
someone opens it (`ensure_explanation`: TreeSHAP of one row takes milliseconds). Both run the
same computation on the same numbers, so an explanation does not depend on when, or with
which other predictions, it was computed, and equals what scoring would have stored:

- the prediction's own model version, active or not, and the model that scored it
  (`Prediction.served_model`): the trees, explained by their exact TreeSHAP, or the tree +
  sequence ensemble, explained by the trees' SHAP times the tree weight plus one
  "behavior_sequence" item, adding up to the ensemble margin, with "model": "ensemble" and,
  under "sequence_events", the SEQUENCE_EVENTS_STORED events whose removal moved that margin
  most (`churn.sequence.top_sequence_events` gives their shape);
- the row the model scored, as scoring stored it (`Prediction.model_input`): a late import
  or a changed tier since scoring changes nothing in it;
- next action: the SHAP of the class scoring recommended (the stored recommendation);
- the ensemble's sequence: the member's events before the cutoff, read in the order scoring
  read them for the GRU (`selectors.feature_event_frame(scattered=True)`), one member at a
  time: the GRU's float32 arithmetic varies with the batch, and an explanation must not.

Nothing is computed for a member who may not be profiled (erased, or consent withdrawn,
`loyalty.selectors.scorable_members`), nor for a prediction that holds no scored row (one
stored before `model_input` existed, which scoring explained then). The member row is locked
while an explanation is stored, so an erasure or a withdrawal that commits first wins. Storing
is idempotent: an explanation is written only where there is none, so two first opens at once
store it once, and both show the stored one.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.db import connection, transaction

from loyalty.models import Action
from loyalty.selectors import scorable_members
from predictions.ml.churn.model import ENSEMBLE, predict_churn
from predictions.ml.contracts import ATTRIBUTION_RECENT_EVENTS, STORED_SEQUENCE_EVENTS, MLError
from predictions.ml.features import FEATURE_NAMES
from predictions.ml.nba import predict_next_action
from predictions.models import ModelVersion, Prediction, PredictionKind
from predictions.selectors import feature_event_frame
from predictions.services.scoring.predict import (
    action_eligibility,
    ensemble_sequences,
    model_input_matrix,
    version_bundle,
)
from predictions.services.scoring.settings import ENSEMBLE as SERVE_ENSEMBLE

logger = logging.getLogger(__name__)

# Predictions explained together, their scored rows read and their explanations written at
# once: routing's batch (reviews.services.routing.ROUTING_BATCH_SIZE), one write per batch.
EXPLAIN_BATCH_SIZE = 5000
# Events per ensemble prediction that the member page marks on the timeline, and how many of
# each member's latest events occlusion looks at (see contracts.ATTRIBUTION_RECENT_EVENTS).
SEQUENCE_EVENTS_STORED = STORED_SEQUENCE_EVENTS
SEQUENCE_ATTRIBUTION_RECENT_EVENTS = ATTRIBUTION_RECENT_EVENTS


@dataclass(frozen=True)
class _Pending:
    """A prediction without an explanation, with what explaining it needs."""

    prediction_id: int
    member_id: int
    recommended_action_id: int | None
    model_input: bytes


def explain_predictions(*, prediction_ids: Iterable[int]) -> int:
    """Compute and store the explanation of each of these predictions that has none and whose
    member may be profiled; returns how many were stored now. Idempotent."""
    ids = sorted(set(prediction_ids))
    stored = 0
    for start in range(0, len(ids), EXPLAIN_BATCH_SIZE):
        stored += _explain_batch(ids[start : start + EXPLAIN_BATCH_SIZE])
    return stored


def ensure_explanation(*, prediction: Prediction) -> dict:
    """The prediction's explanation, computed and stored first if it has none (a page or an
    API read calls this after its visibility check, before it renders); {} for a member who
    may not be profiled, or when the version's artifacts cannot be read (logged). Sets
    `prediction.explanation` to what is stored."""
    if prediction.explanation:
        return prediction.explanation
    try:
        explain_predictions(prediction_ids=[prediction.pk])
    except MLError:
        # A version whose artifacts are gone or corrupt: the page shows no explanation (the
        # rest of it stands) and the log says why.
        logger.exception("explaining prediction %d failed", prediction.pk)
    prediction.explanation = Prediction.objects.values_list("explanation", flat=True).get(
        pk=prediction.pk
    )
    return prediction.explanation


def _explain_batch(ids: list[int]) -> int:
    rows = list(
        Prediction.objects.filter(pk__in=ids, explanation={}, model_input__isnull=False)
        .order_by("model_version_id", "cutoff", "served_model", "member_id")
        .values_list(
            "model_version_id",
            "cutoff",
            "served_model",
            "pk",
            "member_id",
            "recommended_action_id",
            "model_input",
        )
    )
    # Two lookups by key rather than one query with a subquery: SQLite's plan for the
    # subquery probes every scorable member against the id list.
    allowed = set(
        scorable_members().filter(pk__in={row[4] for row in rows}).values_list("pk", flat=True)
    )
    explanations: dict[int, dict] = {}
    members: dict[int, int] = {}
    for (version_id, cutoff, served), group in itertools.groupby(rows, key=lambda row: row[:3]):
        pending = [_Pending(*row[3:]) for row in group if row[4] in allowed]
        if not pending:
            continue
        version = ModelVersion.objects.get(pk=version_id)
        computed = _explanations(version=version, cutoff=cutoff, served=served, pending=pending)
        for item, explanation in zip(pending, computed, strict=True):
            explanations[item.prediction_id] = explanation
            members[item.prediction_id] = item.member_id
    return _store(explanations=explanations, members=members) if explanations else 0


def _explanations(
    *, version: ModelVersion, cutoff, served: str, pending: list[_Pending]
) -> list[dict]:
    """The explanations of `pending` (predictions of one version, cutoff and served model),
    in their order."""
    bundle = version_bundle(version)
    codes = tuple(bundle.feature_codes)
    scored = model_input_matrix([item.model_input for item in pending], codes)
    features = pd.DataFrame(
        scored.astype("float64"),  # exact: the models read them back as float32
        index=pd.Index([item.member_id for item in pending], name="member_id"),
        columns=list(codes),
    )
    if version.kind == PredictionKind.NEXT_ACTION:
        eligibility = _recommended_only(bundle.action_codes, pending)
        result = predict_next_action(bundle=bundle, features=features, eligibility=eligibility)
        return result.explanation.rows(names=FEATURE_NAMES)
    if served == SERVE_ENSEMBLE:
        return _ensemble_explanations(version, bundle, features, cutoff)
    result = predict_churn(bundle=bundle, features=features, with_interval=False)
    return result.explanation.rows(names=FEATURE_NAMES)


def _ensemble_explanations(version, bundle, features: pd.DataFrame, cutoff) -> list[dict]:
    """One member at a time (see the module docstring), each as scoring explained it."""
    events, _ = feature_event_frame(cutoff=cutoff, member_ids=list(features.index), scattered=True)
    sequences = ensemble_sequences(
        version=version, bundle=bundle, events=events, member_ids=features.index, cutoff=cutoff
    )
    explanations = []
    for row in range(len(features)):
        result = predict_churn(
            bundle=bundle,
            features=features.iloc[[row]],
            candidate=ENSEMBLE,
            sequences=sequences.take([row]),
            with_interval=False,
            sequence_events=SEQUENCE_EVENTS_STORED,
            attribution_recent_events=SEQUENCE_ATTRIBUTION_RECENT_EVENTS,
        )
        (explanation,) = result.columns(names=FEATURE_NAMES)["explanation"]
        explanation["model"] = ENSEMBLE
        explanations.append(explanation)
    return explanations


def _recommended_only(action_codes: tuple[str, ...], pending: list[_Pending]) -> np.ndarray:
    """Eligibility that leaves each member only the action scoring recommended, so that the
    explained class is that one whatever changed since; a prediction without a
    recommendation gets the catalog's eligibility, as scoring did."""
    codes_of = dict(
        Action.objects.filter(
            pk__in={item.recommended_action_id for item in pending} - {None}
        ).values_list("pk", "code")
    )
    position = {code: index for index, code in enumerate(action_codes)}
    allowed = np.zeros((len(pending), len(action_codes)), dtype=bool)
    unanswered = []
    for row, item in enumerate(pending):
        column = position.get(codes_of.get(item.recommended_action_id))
        if column is None:
            unanswered.append(row)
        else:
            allowed[row, column] = True
    if unanswered:
        catalog = action_eligibility(
            member_ids=[pending[row].member_id for row in unanswered], codes=action_codes
        )
        allowed[unanswered] = catalog.to_numpy(dtype=bool)
    return allowed


@transaction.atomic
def _store(*, explanations: dict[int, dict], members: dict[int, int]) -> int:
    """Write each explanation where the prediction still has none and its member may still be
    profiled; returns how many were written."""
    # Erasure and consent changes lock the member row before they touch its predictions:
    # locking it here too, whichever commits first wins.
    allowed = set(
        scorable_members()
        .filter(pk__in=set(members.values()))
        .order_by("pk")
        .select_for_update(no_key=True)
        .values_list("pk", flat=True)
    )
    pairs = [(pk, value) for pk, value in explanations.items() if members[pk] in allowed]
    if not pairs:
        return 0
    encode = _json_encoder().encode
    table = connection.ops.quote_name(Prediction._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} AS p SET explanation = data.explanation::jsonb "
                "FROM unnest(%s::bigint[], %s::text[]) AS data(id, explanation) "
                "WHERE p.id = data.id AND p.explanation = '{}'::jsonb",
                [[pk for pk, _ in pairs], [encode(value) for _, value in pairs]],
            )
        else:
            cursor.executemany(
                f"UPDATE {table} SET explanation = %s WHERE id = %s AND json(explanation) = '{{}}'",
                [(encode(value), pk) for pk, value in pairs],
            )
        return cursor.rowcount


def _json_encoder() -> json.JSONEncoder:
    """The explanation field's own encoder, compact (what the scoring write used)."""
    field = Prediction._meta.get_field("explanation")
    return (field.encoder or json.JSONEncoder)(separators=(",", ":"))
