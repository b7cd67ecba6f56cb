"""The catalogs the decision forms offer: active reason codes and actions, from the shared
cache when there is one, read at most once per block of code."""

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from loyalty import shared_cache
from loyalty.models import Action
from reviews.models import ReasonCode


@dataclass
class _Catalogs:
    """The active reason codes and actions, read once for a block of code (catalogs_read_once)."""

    reason_codes: list[tuple[str, str, str]] | None = None  # (treatment, code, label)
    actions: list[tuple[int, str, str]] | None = None  # (pk, code, name)


_catalogs: ContextVar[_Catalogs | None] = ContextVar("review_catalogs", default=None)


@contextmanager
def catalogs_read_once():
    """Within the block, reason_choices and override_action_choices read their catalog from
    the database once and answer every later call from it: the member page builds three
    decision forms, each asking for both (six queries become two)."""
    token = _catalogs.set(_Catalogs())
    try:
        yield
    finally:
        _catalogs.reset(token)


REASON_CODES_KEY = "catalog:reason-codes"
ACTIONS_KEY = "catalog:actions:v2"


def _active_reason_codes() -> list[tuple[str, str, str]]:
    """(treatment, code, label) of the active reason codes; in the shared cache when there is
    one (forgotten when a reason code is saved, reviews.signals)."""
    return shared_cache.remembered(
        REASON_CODES_KEY,
        lambda: list(
            ReasonCode.objects.filter(is_active=True)
            .order_by("treatment", "label")
            .values_list("treatment", "code", "label")
        ),
    )


def _active_actions() -> list[tuple[int, str, str]]:
    """(pk, code, name) of the active actions, cached as the reason codes are."""
    return shared_cache.remembered(
        ACTIONS_KEY,
        lambda: list(
            Action.objects.filter(is_active=True).order_by("name").values_list("pk", "code", "name")
        ),
    )


def reason_choices(treatments: tuple[str, ...]) -> list[tuple[str, str]]:
    """Active reason codes of the given treatments, as (code, label) choices."""
    catalogs = _catalogs.get()
    if catalogs is None:
        codes = _active_reason_codes()
    else:
        if catalogs.reason_codes is None:
            catalogs.reason_codes = _active_reason_codes()
        codes = catalogs.reason_codes
    return [(code, label) for treatment, code, label in codes if treatment in treatments]


def override_action_choices(*, exclude_id: int | None = None) -> list[tuple[str, str]]:
    """Active actions a next-action override can pick (all but the recommended one)."""
    catalogs = _catalogs.get()
    if catalogs is None:
        actions = _active_actions()
    else:
        if catalogs.actions is None:
            catalogs.actions = _active_actions()
        actions = catalogs.actions
    return [(code, name) for pk, code, name in actions if pk != exclude_id]
