"""Celery entry points of the review workflow."""

from celery import shared_task
from django.contrib.auth import get_user_model
from django.db import InterfaceError, OperationalError

from predictions.models import PredictionKind
from reviews.services import capacity, rerouting, sla
from reviews.services.routing import route_new_predictions


@shared_task(
    name="reviews.route_new_predictions_task",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def route_new_predictions_task(kind: str, model_version_id: int | None = None) -> int:
    return route_new_predictions(kind=kind, model_version_id=model_version_id).routed


@shared_task(name="reviews.route_unrouted_predictions_task")
def route_unrouted_predictions_task() -> int:
    """The sweep: a routing task lost with a broker or a worker is made good here."""
    return sum(route_new_predictions(kind=kind).routed for kind in PredictionKind.values)


@shared_task(name="reviews.escalate_overdue_task")
def escalate_overdue_task() -> int:
    """Analyst items past their SLA go to the experts (periodic, idempotent)."""
    return sla.escalate_overdue().escalated


@shared_task(
    name="reviews.reroute_undecided_task",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def reroute_undecided_task(kind: str, policy_version: int, actor_id: int | None = None) -> int:
    """Queued when a policy version is saved; idempotent (rows already re-routed are not
    written again), so a redelivery or a retry after a lost connection only finishes the job."""
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    result = rerouting.reroute_undecided(kind=kind, actor=actor, policy_version=policy_version)
    return result.moved


@shared_task(name="reviews.reroute_stale_task")
def reroute_stale_task() -> list[str]:
    """The sweep: a re-routing whose message or worker was lost is queued again."""
    return rerouting.reroute_stale()


@shared_task(
    name="reviews.drain_backlog_task",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def drain_backlog_task(kind: str | None = None, route: str | None = None) -> int:
    """Waiting items enter queues with room (beat, and queued when a decision frees room);
    idempotent: a full queue or an empty backlog moves nothing. Returns how many entered."""
    drained = capacity.drain_backlog(
        kinds=[kind] if kind else None, routes=[route] if route else None
    )
    return sum(drained.values())
