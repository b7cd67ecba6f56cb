"""`manage.py route_predictions`: give every unrouted prediction its review (idempotent)."""

from django.core.management.base import BaseCommand

from predictions.models import PredictionKind
from reviews.services.cases import cases_in_force
from reviews.services.routing import route_new_predictions


class Command(BaseCommand):
    help = "Route every prediction that has no review yet, by the current escalation policy."

    def handle(self, *args, **options) -> None:
        # While both kinds are active, routing either one routes the cases of both.
        kinds = ["cases"] if cases_in_force() else PredictionKind.values
        for kind in kinds:
            result = route_new_predictions(kind=PredictionKind.CHURN if kind == "cases" else kind)
            routes = ", ".join(
                f"{route} {count}" for route, count in sorted(result.by_route.items())
            )
            self.stdout.write(f"{kind}: {result.routed} routed ({routes or 'nothing new'}).")
