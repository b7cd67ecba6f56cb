"""`manage.py route_predictions`: give every unrouted prediction its review (idempotent)."""

from django.core.management.base import BaseCommand

from predictions.models import PredictionKind
from reviews.services.routing import route_new_predictions


class Command(BaseCommand):
    help = "Route every prediction that has no review yet, by the current escalation policy."

    def handle(self, *args, **options) -> None:
        for kind in PredictionKind.values:
            result = route_new_predictions(kind=kind)
            routes = ", ".join(
                f"{route} {count}" for route, count in sorted(result.by_route.items())
            )
            self.stdout.write(f"{kind}: {result.routed} routed ({routes or 'nothing new'}).")
