"""`manage.py bootstrap_models`: first model versions for a new install, then a scoring pass."""

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from predictions.exceptions import TrainingDataError
from predictions.management.progress import add_progress_argument, training_progress
from predictions.models import Prediction
from predictions.services.training import ensure_active_versions


class Command(BaseCommand):
    help = (
        "Train and promote a version of each model kind that has no active one; score the "
        "members in this process if nothing has been scored yet. Safe to run on every start."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--horizon", type=int, default=90, help="churn horizon in days")
        add_progress_argument(parser)

    def handle(self, *args, **options) -> None:
        progress = training_progress(self, options)
        try:
            outcome = ensure_active_versions(horizon_days=options["horizon"], progress=progress)
        except TrainingDataError as error:
            raise CommandError(f"Cannot train a first model: {error.message}") from error
        finally:
            if progress is not None:
                progress.close()
        for version in outcome.trained:
            self.stdout.write(f"Trained and promoted {version} ({version.algorithm}).")
        for kind in outcome.already_active:
            self.stdout.write(f"An active {kind} version exists already.")
        if outcome.trained or not Prediction.objects.exists():
            call_command("score", inline=True, stdout=self.stdout, stderr=self.stderr)
