"""Fresh scores: the daily refresh re-scores the members whose scores are due.

A member's scores are due when an input changed since they were made (new events, a consent, a
tier: marked cheaply where the data are written, `Member.inputs_changed_at`), when they are
older than `every_days` on the scoring clock (`loyalty.clock`: churn risk changes with time
alone, so a member who stops buying must not keep a stale score), or when there are none yet.
A refresh is one cycle (`runs.start_cycle`) over those members, at the clock's reading; its
last run brings their freshness up to date as it writes (`runs.bring_up_to_date`). Routing
then makes their new cases as after any run: a newer case supersedes the older pending one,
and a decided one, emitted or not, is never reopened.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from loyalty.clock import scoring_clock
from loyalty.selectors import scorable_members
from predictions.models import ModelVersion, ScoringRun
from predictions.services.scoring.runs import CYCLE_ORDER, DEFAULT_CHUNK_SIZE, start_cycle

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refresh:
    clock: datetime
    due: int
    runs: tuple[ScoringRun, ...]
    # Why nothing was started (empty when runs were).
    skipped: str = ""


def members_due(*, clock: datetime, every_days: int):
    """Scorable members whose scores are due at `clock` (the module docstring). Each term
    reads an index: the partial index of change marks, and `scored_through`."""
    return scorable_members().filter(
        Q(inputs_changed_at__isnull=False)
        | Q(scored_through__isnull=True)
        | Q(scored_through__lte=clock - timedelta(days=every_days))
    )


def refresh_scores(
    *,
    every_days: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    enqueue: bool = True,
) -> Refresh:
    """Start a cycle over the members due now; nothing when none is, when no kind has an
    active version, or while a run is still scoring (its members would be scored twice)."""
    every_days = every_days or settings.LOYALTY_RESCORE_EVERY_DAYS
    clock = scoring_clock()
    with transaction.atomic():
        if ScoringRun.objects.filter(status=ScoringRun.Status.RUNNING).exists():
            return Refresh(clock=clock, due=0, runs=(), skipped="a scoring run is still running")
        active = set(
            ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).values_list(
                "kind", flat=True
            )
        )
        kinds = [kind for kind in CYCLE_ORDER if kind in active]
        if not kinds:
            return Refresh(clock=clock, due=0, runs=(), skipped="no kind has an active model")
        due = list(
            members_due(clock=clock, every_days=every_days)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if not due:
            return Refresh(clock=clock, due=0, runs=(), skipped="every score is up to date")
        # Everyone due (the first refresh, or every score aged out together): a full run,
        # whose population figures routing then uses.
        everyone = len(due) == scorable_members().count()
        runs = start_cycle(
            kinds=kinds,
            member_ids=None if everyone else due,
            chunk_size=chunk_size,
            enqueue=enqueue,
        )
    logger.info(
        "refresh at %s: %d members due, runs %s",
        clock.isoformat(),
        len(due),
        [run.pk for run in runs],
    )
    return Refresh(clock=clock, due=len(due), runs=tuple(runs))
