"""`manage.py generate_members --members N --seed S`: synthetic members with known churn truth."""

from datetime import date

from django.core.management.base import BaseCommand

from loyalty.management.support import TqdmProgress, command_errors
from loyalty.services.synthetic.generation import generate_members


class Command(BaseCommand):
    help = (
        "Generate synthetic members and their events up to a cutoff (start + days) and over "
        "the horizon after it, with each member's true churn probability stored apart from "
        "everything a model reads. The same seed always gives the same data; running again "
        "changes nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--members", type=int, required=True)
        parser.add_argument("--seed", type=int, required=True)
        parser.add_argument(
            "--start",
            type=date.fromisoformat,
            default=date(2025, 1, 1),
            help="First day of the observed window (default 2025-01-01).",
        )
        parser.add_argument(
            "--days",
            type=int,
            default=365,
            help="Length of the observed window; the cutoff is its end (default 365).",
        )
        parser.add_argument(
            "--horizon",
            type=int,
            default=90,
            help="Days after the cutoff over which churn is "
            "defined and events are generated (default 90).",
        )

    def handle(
        self, *args, members: int, seed: int, start: date, days: int, horizon: int, **options
    ) -> None:
        # ValueError: arguments out of range, said in the message.
        with TqdmProgress() as progress, command_errors(ValueError):
            result = generate_members(
                members=members,
                seed=seed,
                start=start,
                days=days,
                horizon_days=horizon,
                progress=progress,
            )
        for line in result.summary_lines():
            self.stdout.write(line)
