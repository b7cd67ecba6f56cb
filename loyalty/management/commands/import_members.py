"""`manage.py import_members FILE`: create or update members from a CSV file, all or nothing."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from loyalty.management.support import TqdmProgress, command_errors
from loyalty.services.imports.members_and_events import import_members


class Command(BaseCommand):
    help = (
        "Import members from a CSV file with the columns external_id, joined_at, tier, "
        "points_balance, consent_profiling, age_band, region. The whole file is checked first; "
        "on any bad row nothing is imported and every problem is listed. Members are matched "
        "by external_id, so importing the same file again changes nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", type=Path, help="CSV file, UTF-8, header on line 1.")

    def handle(self, *args, file: Path, **options) -> None:
        if not file.is_file():
            raise CommandError(f"{file}: no such file.")
        with TqdmProgress("members") as progress, command_errors():
            result = import_members(source=file, progress=progress)
        self.stdout.write(self.style.SUCCESS(result.summary()))
