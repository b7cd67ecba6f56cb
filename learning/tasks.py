"""Celery entry points of the learning loop: labeling, outcomes, retraining, monitoring,
fairness."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from learning.services import fairness, housekeeping, labels, monitoring, retraining
from predictions.models import PredictionKind


@shared_task(
    name="learning.label_decision_task",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def label_decision_task(decision_id: int) -> int:
    """Queued when a decision commits; idempotent, so a redelivery changes nothing."""
    return labels.label_decision(decision_id=decision_id).pk


@shared_task(name="learning.sweep_unlabeled_decisions_task")
def sweep_unlabeled_decisions_task() -> int:
    """The sweep: a decision whose labeling task was lost (broker down) gets its example here."""
    return labels.sweep_unlabeled_decisions()


@shared_task(name="learning.record_outcomes_task")
def record_outcomes_task() -> int:
    return labels.record_outcomes().recorded


@shared_task(
    name="learning.retrain_task",
    # The whole training may run up to the hard limit; the visibility timeout is above it.
    autoretry_for=retraining.TRANSIENT_ERRORS,
    retry_backoff=True,
    max_retries=3,
)
def retrain_task(run_id: int) -> str:
    """A retry resumes the run (a registered candidate is not trained again)."""
    return retraining.run_retraining(run_id=run_id).status


@shared_task(name="learning.scheduled_retraining_task")
def scheduled_retraining_task(kind: str = "churn") -> int:
    """The schedule's entry point (weekly by default; edit it in the admin's periodic tasks)."""
    return retraining.request_retraining(kind=kind, trigger="schedule").pk


@shared_task(name="learning.recover_stalled_retraining_task")
def recover_stalled_retraining_task() -> int:
    return retraining.recover_stalled_runs()


@shared_task(name="learning.monitor_task")
def monitor_task() -> int:
    """Calibration and drift of every active version; pauses auto-approval on a breach."""
    reports = [monitoring.run_monitor(kind=kind) for kind in PredictionKind.values]
    return sum(1 for report in reports if report is not None and report.breaches)


@shared_task(name="learning.check_fairness_task")
def check_fairness_task() -> int:
    """Daily: fairness per protected group against the admin's limits; a breach tells the
    admins and, where the limits say so, pauses auto-approval. Returns the breaching checks."""
    return fairness.check_fairness_of_every_kind()


@shared_task(name="learning.prune_predictions_task")
def prune_predictions_task() -> int:
    """Daily: superseded predictions nothing points to, past their retention (housekeeping)."""
    return housekeeping.prune_predictions().predictions
