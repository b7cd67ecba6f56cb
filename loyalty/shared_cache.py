"""Small, often-read facts kept in the cache every process shares (CACHE_URL), so that a page
does not ask the database for them on every request: a user's permissions and roles, the open
automation pauses, unread notification counts, the reason codes and actions in the forms.

Only with a shared cache: without CACHE_URL (embedded) each process would hold its own copy and
a change made by a worker would stay invisible to the web process, so every read then goes to
the database, as if this module did not exist. With one, whoever changes a fact forgets its
key after the change commits (`forget`), and every entry also expires after CACHE_SECONDS, a
bound on staleness should a change bypass the services (a raw SQL update).
"""

from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.core.cache import caches
from django.db import transaction

T = TypeVar("T")
CACHE_SECONDS = 300
_MISSING = object()


def enabled() -> bool:
    return bool(getattr(settings, "SHARED_CACHE", False))


def remembered(key: str, compute: Callable[[], T]) -> T:
    """The cached value of `key`, computed (and cached) when absent."""
    if not enabled():
        return compute()
    cache = caches["default"]
    value = cache.get(key, _MISSING)
    if value is _MISSING:
        value = compute()
        cache.set(key, value, CACHE_SECONDS)
    return value


def forget(*keys: str) -> None:
    """Drop `keys` now and again once the current transaction commits: a request that reads
    between the two would otherwise cache the old value for CACHE_SECONDS."""
    if not enabled() or not keys:
        return
    cache = caches["default"]
    cache.delete_many(keys)
    transaction.on_commit(lambda: cache.delete_many(keys))


def generation(name: str) -> int:
    """A counter that invalidates a whole family of keys at once (`bump`): part of their key."""
    if not enabled():
        return 0
    return caches["default"].get_or_set(f"generation:{name}", 0, None)


def bump(name: str) -> None:
    """A new generation of `name`, now and after the transaction commits (as `forget`)."""
    if not enabled():
        return
    cache = caches["default"]

    def increment() -> None:
        try:
            cache.incr(f"generation:{name}")
        except ValueError:  # evicted or never set: any fresh value differs from the old keys'
            cache.set(f"generation:{name}", 1, None)

    increment()
    transaction.on_commit(increment)
