"""Celery entry points of the review workflow."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from predictions.models import PredictionKind
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
