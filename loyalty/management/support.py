"""What the loyalty management commands share: progress bars, the acting user by name, the
import commands' options, and domain errors as CommandError (a message on stderr and exit
status 1, not a traceback)."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from loyalty.exceptions import DomainError
from loyalty.services.imports.rejects import rejects_path_for
from loyalty.services.imports.results import ImportResult
from loyalty.services.imports.validation import ImportValidationError


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


def user_named(username: str | None) -> AbstractBaseUser | None:
    """The user a command acts as; None, the system itself, when no name is given."""
    if not username:
        return None
    user_model = get_user_model()
    try:
        return user_model.objects.get_by_natural_key(username)
    except user_model.DoesNotExist as error:
        raise CommandError(f"No user named {username!r}.") from error


@contextmanager
def command_errors(*also: type[Exception]) -> Iterator[None]:
    """Domain errors, and those of the `also` types, as CommandError; an import's bad rows
    follow its summary, one per line."""
    try:
        yield
    except ImportValidationError as error:
        raise CommandError("\n".join([error.message, *error.describe()])) from error
    except DomainError as error:
        raise CommandError(error.message) from error
    except also as error:
        raise CommandError(str(error)) from error


class ImportCommand(BaseCommand):
    """A CSV import command: FILE, --timezone and --skip-invalid; subclasses name the import
    service (`importer`, a staticmethod) and the `label` of its progress bars."""

    label: str

    @staticmethod
    def importer(**arguments) -> ImportResult:
        raise NotImplementedError

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", type=Path, help="CSV file, UTF-8, header on line 1.")
        parser.add_argument(
            "--timezone",
            metavar="ZONE",
            help="IANA time zone (e.g. Europe/Paris) of times written without an offset; "
            "daylight saving time is applied. Default: the LOYALTY_IMPORT_TIMEZONE setting; with "
            "neither, such times are refused. Times with an offset keep it.",
        )
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help="Import the valid rows and write the others, with their line, column and "
            "reason, to FILE.rejected.csv beside the file (instead of importing nothing).",
        )

    def handle(
        self, *args, file: Path, timezone: str | None, skip_invalid: bool, **options
    ) -> None:
        if not file.is_file():
            raise CommandError(f"{file}: no such file.")
        rejects = rejects_path_for(file) if skip_invalid else None
        with TqdmProgress(self.label) as progress, command_errors():
            result = self.importer(
                source=file, progress=progress, naive_timezone=timezone, rejects_path=rejects
            )
        self.stdout.write(self.style.SUCCESS(result.summary()))
        if rejects is not None:
            style = self.style.WARNING if result.rejected else self.style.SUCCESS
            self.stdout.write(
                style(
                    f"{result.imported:,} rows imported, {result.rejected:,} rejected; the "
                    f"rejected rows and why are in {rejects}"
                )
            )
