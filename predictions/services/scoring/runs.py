"""A scoring run and its chunks of member ids, one Celery task each.

A run is split into chunks when it starts. A chunk's state lives in the database: rerunning a
chunk writes nothing twice (one prediction per member, version and cutoff, enforced by a unique
constraint), and a sweep re-sends chunks whose worker died, so every run finishes.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db import connection, transaction
from django.db.models import Case, F, When
from django.utils import timezone

from loyalty.clock import scoring_clock
from loyalty.models import Member
from loyalty.selectors import scorable_members
from predictions.ml.contracts import MLError
from predictions.models import Prediction, PredictionKind, ScoringChunk, ScoringRun
from predictions.services.prediction_writer import write_predictions
from predictions.services.scoring.predict import active_version, predict_rows, version_served_model
from predictions.signals import scoring_run_finished

# Big enough that per-task overhead is small, small enough that a chunk's events fit in memory
# and a killed chunk costs little to redo.
DEFAULT_CHUNK_SIZE = 2000
# A chunk sent this long ago and still pending has lost its worker: send it again.
STALE_CHUNK_AFTER = timedelta(minutes=15)


@dataclass(frozen=True)
class ChunkOutcome:
    chunk_id: int
    scored: int
    skipped_no_consent: int
    already_done: bool


# A cycle scores next action before churn: a case waits for the next-action run to finish
# (`reviews.services.cases`), so that run must exist before the churn run can end.
CYCLE_ORDER = (PredictionKind.NEXT_ACTION, PredictionKind.CHURN)
# A full run stores its members' values at this many evenly spaced quantiles (0.1 % apart).
VALUE_POINTS = 1001


@transaction.atomic
def start_cycle(
    *,
    kinds: Sequence[str] = CYCLE_ORDER,
    member_ids: Sequence[int] | None = None,
    member_limit: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    enqueue: bool = True,
) -> list[ScoringRun]:
    """One scoring cycle: a run of each of `kinds`, in CYCLE_ORDER, at one cutoff (the
    scoring clock), over `member_ids` (a refresh) or every scorable member; the last run
    closes the cycle."""
    cutoff = scoring_clock()
    ordered = [kind for kind in CYCLE_ORDER if kind in kinds]
    return [
        start_scoring_run(
            kind=kind,
            cutoff=cutoff,
            member_ids=member_ids,
            member_limit=member_limit,
            chunk_size=chunk_size,
            enqueue=enqueue,
            closes_cycle=kind == ordered[-1],
        )
        for kind in ordered
    ]


@transaction.atomic
def start_scoring_run(
    *,
    kind: str,
    cutoff: datetime | None = None,
    member_ids: Sequence[int] | None = None,
    member_limit: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    enqueue: bool = True,
    closes_cycle: bool = True,
) -> ScoringRun:
    """Create a run over `member_ids` (a refresh: `freshness`) or every scorable member
    (consenting, not erased) and, unless the caller scores the chunks itself
    (`enqueue=False`), queue them once the run is committed."""
    from predictions import tasks

    version = active_version(kind)
    cutoff = cutoff or scoring_clock()
    scope = ScoringRun.Scope.FULL if member_ids is None else ScoringRun.Scope.REFRESH
    if member_ids is None:
        member_ids = list(scorable_members().order_by("pk").values_list("pk", flat=True))
    else:
        member_ids = sorted(member_ids)
    if member_limit is not None:
        member_ids = member_ids[:member_limit]
    run = ScoringRun.objects.create(
        model_version=version,
        cutoff=cutoff,
        scope=scope,
        closes_cycle=closes_cycle,
        served_model=version_served_model(version),
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
        rows = predict_rows(
            version=version, member_ids=member_ids, cutoff=run.cutoff, served=run.served_model
        )
    except MLError as error:  # bad data or a corrupted artifact: retrying cannot help
        _fail_chunk(chunk_id=chunk.pk, reason=f"{type(error).__name__}: {error}")
        raise
    return _write_chunk(chunk_id=chunk.pk, rows=rows, skipped=len(chunk.member_ids) - len(rows))


@transaction.atomic
def _write_chunk(*, chunk_id: int, rows: list[dict], skipped: int) -> ChunkOutcome:
    # The run row is locked first: chunks finishing at the same moment take turns, so exactly
    # one of them sees every other chunk done and finishes the run.
    run_id = ScoringChunk.objects.values_list("run_id", flat=True).get(pk=chunk_id)
    run = ScoringRun.objects.select_for_update().select_related("model_version").get(pk=run_id)
    chunk = ScoringChunk.objects.select_for_update().get(pk=chunk_id)
    if chunk.status == ScoringChunk.Status.DONE:  # a duplicate delivery finished first
        return ChunkOutcome(chunk.pk, chunk.scored, chunk.skipped_no_consent, already_done=True)
    # In this transaction: the predictions and the chunk's "done" commit together or not at all.
    _commit_without_waiting_for_the_disk()
    write_predictions(rows=rows)
    chunk.status = ScoringChunk.Status.DONE
    chunk.scored = len(rows)
    chunk.skipped_no_consent = skipped
    chunk.finished_at = timezone.now()
    chunk.save(update_fields=["status", "scored", "skipped_no_consent", "finished_at"])
    ScoringRun.objects.filter(pk=chunk.run_id).update(
        members_scored=F("members_scored") + len(rows),
        members_skipped_no_consent=F("members_skipped_no_consent") + skipped,
    )
    if run.closes_cycle:
        bring_up_to_date(run=run, member_ids=[row["member_id"] for row in rows])
    if not ScoringChunk.objects.filter(run_id=chunk.run_id).exclude(status="done").exists():
        ScoringRun.objects.filter(pk=chunk.run_id).update(
            status=ScoringRun.Status.DONE,
            finished_at=timezone.now(),
            value_points=population_value_points(run) if run.scope == run.Scope.FULL else [],
        )
        scoring_run_finished.send(
            sender=ScoringRun,
            run_id=run.pk,
            kind=run.model_version.kind,
            model_version_id=run.model_version_id,
        )
    return ChunkOutcome(chunk.pk, len(rows), skipped, already_done=False)


def bring_up_to_date(*, run: ScoringRun, member_ids: list[int]) -> None:
    """The members a cycle's last run scored are scored through its cutoff; their change
    marks made before the run started are cleared (one made since stays: the next refresh
    takes it)."""
    Member.objects.filter(pk__in=member_ids).update(
        scored_through=run.cutoff,
        inputs_changed_at=Case(
            When(inputs_changed_at__lte=run.created_at, then=None),
            default=F("inputs_changed_at"),
        ),
    )


def population_value_points(run: ScoringRun) -> list[float]:
    """The member values of a full run's predictions at VALUE_POINTS evenly spaced quantiles
    (`ScoringRun.value_points`); a member without a value counts as 0, as routing counts it."""
    values = np.fromiter(
        (
            value or 0.0
            for value in Prediction.objects.filter(
                model_version_id=run.model_version_id, cutoff=run.cutoff
            )
            .values_list("member_value", flat=True)
            .iterator(chunk_size=20_000)
        ),
        dtype="float64",
    )
    if not len(values):
        return []
    return np.quantile(values, np.linspace(0.0, 1.0, VALUE_POINTS)).tolist()


def _commit_without_waiting_for_the_disk() -> None:
    """PostgreSQL's asynchronous commit for this transaction only: the commit returns before
    its WAL reaches the disk, which saves a noticeable part of a chunk's write time. Safe
    here: a database crash can lose only the last moments' transactions, whole, so a lost
    chunk loses its predictions and its "done" together; it stays pending and the periodic
    sweep (`resend_stale_chunks`) sends it again. Nothing is ever half written."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")


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
