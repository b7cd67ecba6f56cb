"""What the loyalty management commands share: progress bars, the acting user by name, and
domain errors as CommandError (a message on stderr and exit status 1, not a traceback)."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import CommandError
from tqdm import tqdm

from loyalty.exceptions import DomainError
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
