"""Celery entry points of the prediction engine."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from predictions.services.scoring import freshness, runs


@shared_task(
    name="predictions.score_chunk_task",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def score_chunk_task(chunk_id: int) -> int:
    return runs.score_chunk(chunk_id=chunk_id).scored


@shared_task(name="predictions.resend_stale_chunks_task")
def resend_stale_chunks_task() -> int:
    return runs.resend_stale_chunks()


@shared_task(name="predictions.refresh_scores_task")
def refresh_scores_task(every_days: int | None = None) -> int:
    """Beat's daily refresh (`freshness`); `every_days` is the schedule's kwarg, editable in
    the admin. Returns how many members it started scoring."""
    return freshness.refresh_scores(every_days=every_days).due
