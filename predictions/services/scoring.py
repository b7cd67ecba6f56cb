"""Scoring members with the active model versions, in chunks that parallel workers take.

A run is split into chunks of member ids when it starts; each chunk is one Celery task. The
chunk's state lives in the database: rerunning a chunk writes nothing twice (one prediction per
member, version and cutoff, enforced by a unique constraint), and a sweep re-sends chunks whose
worker died, so every run finishes.
"""

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from loyalty.models import Action, Event, Member
from loyalty.selectors import scorable_members
from predictions.exceptions import NoActiveModelError
from predictions.ml import artifacts
from predictions.ml.churn import predict_churn
from predictions.ml.contracts import ChurnBundle, MLError, NextActionBundle
from predictions.ml.features import FEATURE_NAMES, build_features
from predictions.ml.nba import predict_next_action
from predictions.models import ModelVersion, Prediction, PredictionKind, ScoringChunk, ScoringRun
from predictions.selectors import events_frame, members_frame

# Big enough that per-task overhead is small, small enough that a chunk's events fit in memory
# and a killed chunk costs little to redo.
DEFAULT_CHUNK_SIZE = 2000
# A chunk sent this long ago and still pending has lost its worker: send it again.
STALE_CHUNK_AFTER = timedelta(minutes=15)
WRITE_BATCH_SIZE = 1000


@dataclass(frozen=True)
class ChunkOutcome:
    chunk_id: int
    scored: int
    skipped_no_consent: int
    already_done: bool


def active_version(kind: str) -> ModelVersion:
    version = ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.ACTIVE).first()
    if version is None:
        raise NoActiveModelError(f"There is no active {kind} model version.", kind=kind)
    return version


def default_scoring_cutoff() -> datetime:
    """Now, or just after the last imported event when the data ends in the past (a demo or
    a historical import): features then see all the data there is."""
    last = Event.objects.aggregate(last=Max("occurred_at"))["last"]
    now = timezone.now()
    if last is None or last >= now:
        return now
    return (last + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


@transaction.atomic
def start_scoring_run(
    *,
    kind: str,
    cutoff: datetime | None = None,
    member_limit: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    enqueue: bool = True,
) -> ScoringRun:
    """Create a run over the scorable members (consenting, not erased) and, unless the caller
    scores the chunks itself (`enqueue=False`), queue them once the run is committed."""
    from predictions import tasks

    version = active_version(kind)
    cutoff = cutoff or default_scoring_cutoff()
    member_ids = list(scorable_members().order_by("pk").values_list("pk", flat=True))
    if member_limit is not None:
        member_ids = member_ids[:member_limit]
    run = ScoringRun.objects.create(
        model_version=version,
        cutoff=cutoff,
        chunk_size=chunk_size,
        members_total=len(member_ids),
        status=ScoringRun.Status.RUNNING if member_ids else ScoringRun.Status.DONE,
        finished_at=None if member_ids else timezone.now(),
    )
    now = timezone.now()
    chunks = ScoringChunk.objects.bulk_create(
        ScoringChunk(
            run=run, index=i, member_ids=member_ids[start : start + chunk_size], sent_at=now
        )
        for i, start in enumerate(range(0, len(member_ids), chunk_size))
    )
    chunk_ids = [chunk.pk for chunk in chunks]
    if enqueue:
        transaction.on_commit(lambda: [tasks.score_chunk_task.delay(pk) for pk in chunk_ids])
    return run


def score_chunk(*, chunk_id: int) -> ChunkOutcome:
    """Score one chunk. Idempotent: a done chunk returns at once, and a chunk redone after a
    crash writes only the predictions that are missing."""
    chunk = ScoringChunk.objects.select_related("run__model_version").get(pk=chunk_id)
    if chunk.status == ScoringChunk.Status.DONE:
        return ChunkOutcome(chunk.pk, chunk.scored, chunk.skipped_no_consent, already_done=True)
    ScoringChunk.objects.filter(pk=chunk.pk).update(attempts=F("attempts") + 1)
    run, version = chunk.run, chunk.run.model_version
    # Consent is read now, not when the run started: a withdrawal stops scoring from then on.
    member_ids = sorted(
        scorable_members().filter(pk__in=chunk.member_ids).values_list("pk", flat=True)
    )
    try:
        rows = _predict_rows(version=version, member_ids=member_ids, cutoff=run.cutoff)
    except MLError as error:  # bad data or a corrupted artifact: retrying cannot help
        _fail_chunk(chunk_id=chunk.pk, reason=f"{type(error).__name__}: {error}")
        raise
    return _write_chunk(chunk_id=chunk.pk, rows=rows, skipped=len(chunk.member_ids) - len(rows))


def _predict_rows(*, version: ModelVersion, member_ids: list[int], cutoff) -> list[Prediction]:
    if not member_ids:
        return []
    events = events_frame(before=cutoff, member_id_range=(member_ids[0], member_ids[-1]))
    events = events[events["member_id"].isin(member_ids)]
    members = members_frame(member_ids=member_ids)
    features = build_features(events=events, members=members, cutoff=cutoff)
    bundle = load_bundle(version.pk, tuple(sorted(version.artifact_checksums.items())))
    if version.kind == PredictionKind.CHURN:
        return _churn_rows(version, bundle, features, cutoff)
    return _next_action_rows(version, bundle, features, members, cutoff)


def _churn_rows(version, bundle: ChurnBundle, features: pd.DataFrame, cutoff) -> list[Prediction]:
    result = predict_churn(bundle=bundle, features=features)
    seen = _feature_values(features, bundle.feature_codes)
    return [
        Prediction(
            member_id=record["member_id"],
            model_version=version,
            kind=PredictionKind.CHURN,
            cutoff=cutoff,
            score=record["probability"],
            interval_low=record["low"],
            interval_high=record["high"],
            label_set=record["label_set"],
            confidence=record["confidence"],
            explanation=record["explanation"],
            feature_values=seen[i],
        )
        for i, record in enumerate(result.records(names=FEATURE_NAMES))
    ]


def _next_action_rows(
    version, bundle: NextActionBundle, features: pd.DataFrame, members: pd.DataFrame, cutoff
) -> list[Prediction]:
    eligibility = action_eligibility(member_ids=list(features.index), codes=bundle.action_codes)
    result = predict_next_action(bundle=bundle, features=features, eligibility=eligibility)
    action_ids = dict(Action.objects.values_list("code", "pk"))
    seen = _feature_values(features, bundle.feature_codes)
    return [
        Prediction(
            member_id=record["member_id"],
            model_version=version,
            kind=PredictionKind.NEXT_ACTION,
            cutoff=cutoff,
            score=record["probability"],
            probabilities=record["probabilities"],
            label_set=record["action_set"],
            recommended_action_id=action_ids.get(record["recommended"]),
            confidence=record["confidence"],
            explanation=record["explanation"],
            feature_values=seen[i],
        )
        for i, record in enumerate(result.records(names=FEATURE_NAMES))
    ]


def action_eligibility(*, member_ids: list[int], codes: tuple[str, ...]) -> pd.DataFrame:
    """Members x action codes: may this action be offered to this member (catalog rules,
    the same as `Action.is_eligible`, evaluated for the whole chunk at once)."""
    ladder = {tier: rank for rank, tier in enumerate(settings.LOYALTY_TIER_LADDER)}
    rows = Member.objects.filter(pk__in=member_ids).values_list("pk", "tier", "consent_profiling")
    known = {pk: (ladder.get(tier, -1), consent) for pk, tier, consent in rows}
    rank = np.array([known.get(pk, (-1, False))[0] for pk in member_ids])
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
            allowed &= rank >= ladder.get(action.min_tier, len(ladder))
        matrix[:, j] = allowed
    return pd.DataFrame(matrix, index=pd.Index(member_ids, name="member_id"), columns=list(codes))


def _feature_values(features: pd.DataFrame, codes: tuple[str, ...]) -> list[dict]:
    values = features.loc[:, list(codes)].to_numpy(dtype="float64")
    rounded = np.round(values, 6)
    return [
        {code: (None if np.isnan(v) else float(v)) for code, v in zip(codes, row, strict=True)}
        for row in rounded
    ]


@transaction.atomic
def _write_chunk(*, chunk_id: int, rows: list[Prediction], skipped: int) -> ChunkOutcome:
    chunk = ScoringChunk.objects.select_for_update().get(pk=chunk_id)
    if chunk.status == ScoringChunk.Status.DONE:  # a duplicate delivery finished first
        return ChunkOutcome(chunk.pk, chunk.scored, chunk.skipped_no_consent, already_done=True)
    Prediction.objects.bulk_create(rows, batch_size=WRITE_BATCH_SIZE, ignore_conflicts=True)
    chunk.status = ScoringChunk.Status.DONE
    chunk.scored = len(rows)
    chunk.skipped_no_consent = skipped
    chunk.finished_at = timezone.now()
    chunk.save(update_fields=["status", "scored", "skipped_no_consent", "finished_at"])
    ScoringRun.objects.filter(pk=chunk.run_id).update(
        members_scored=F("members_scored") + len(rows),
        members_skipped_no_consent=F("members_skipped_no_consent") + skipped,
    )
    if not ScoringChunk.objects.filter(run_id=chunk.run_id).exclude(status="done").exists():
        ScoringRun.objects.filter(pk=chunk.run_id).update(
            status=ScoringRun.Status.DONE, finished_at=timezone.now()
        )
    return ChunkOutcome(chunk.pk, len(rows), skipped, already_done=False)


@transaction.atomic
def _fail_chunk(*, chunk_id: int, reason: str) -> None:
    chunk = ScoringChunk.objects.select_for_update().get(pk=chunk_id)
    chunk.status = ScoringChunk.Status.FAILED
    chunk.error = reason
    chunk.save(update_fields=["status", "error"])
    ScoringRun.objects.filter(pk=chunk.run_id).update(
        status=ScoringRun.Status.FAILED, error=reason, finished_at=timezone.now()
    )


def resend_stale_chunks(*, older_than: timedelta = STALE_CHUNK_AFTER) -> int:
    """Send again every pending chunk sent more than `older_than` ago (its worker died)."""
    from predictions import tasks

    stale = list(
        ScoringChunk.objects.filter(
            status=ScoringChunk.Status.PENDING, sent_at__lte=timezone.now() - older_than
        ).values_list("pk", flat=True)
    )
    if stale:
        ScoringChunk.objects.filter(pk__in=stale).update(sent_at=timezone.now())
        for pk in stale:
            tasks.score_chunk_task.delay(pk)
    return len(stale)


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
