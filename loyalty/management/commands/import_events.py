"""`manage.py import_events FILE`: add events from a CSV file, all or nothing."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from loyalty.exceptions import DomainError
from loyalty.services.imports import ImportValidationError, import_events


class TqdmProgress:
    """Progress bars on stderr, a new one for each phase an import reports."""

    def __init__(self, label: str = "") -> None:
        self.label = label
        self._phase: str | None = None
        self._bar: tqdm | None = None

    def __call__(self, phase: str, rows: int, total: int | None) -> None:
        if phase != self._phase:
            self.close()
            self._phase = phase
            description = f"{self.label} {phase}".strip()
            # disable=None: no bar when stderr is not a terminal (logs, tests).
            self._bar = tqdm(
                total=total, desc=description, unit=" rows", file=sys.stderr, disable=None
            )
        self._bar.update(rows)
        if total is not None and self._bar.n >= total:
            self.close()

    def labelled(self, label: str) -> "TqdmProgress":
        """Bars for one of several imports a command runs."""
        return TqdmProgress(f"{self.label} {label}".strip())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "TqdmProgress":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def validation_failure(error: ImportValidationError) -> CommandError:
    """The command's error: the summary, then one line per bad row."""
    return CommandError("\n".join([error.message, *error.describe()]))


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
        with TqdmProgress("events") as progress:
            try:
                result = import_events(source=file, progress=progress)
            except ImportValidationError as error:
                raise validation_failure(error) from error
            except DomainError as error:
                raise CommandError(error.message) from error
        self.stdout.write(self.style.SUCCESS(result.summary()))
