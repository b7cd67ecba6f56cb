"""`manage.py import_events FILE`: add events from a CSV file, all or nothing."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from loyalty.management.support import TqdmProgress, command_errors
from loyalty.services.imports.members_and_events import import_events


class Command(BaseCommand):
    help = (
        "Import events from a CSV file with the columns member_external_id, occurred_at, kind, "
        "amount, quantity, category, channel, session_id, dwell_seconds, product_id. The whole "
        "file is checked first; on any bad row nothing is imported and every problem is listed. "
        "Events already stored (same member, time, kind, session and product) are skipped."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", type=Path, help="CSV file, UTF-8, header on line 1.")

    def handle(self, *args, file: Path, **options) -> None:
        if not file.is_file():
            raise CommandError(f"{file}: no such file.")
        with TqdmProgress("events") as progress, command_errors():
            result = import_events(source=file, progress=progress)
        self.stdout.write(self.style.SUCCESS(result.summary()))
