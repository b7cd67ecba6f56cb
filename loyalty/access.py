"""What a user may do and which roles they hold, read once per request and, with a shared
cache, once per change rather than once per page (five queries on every page before: the
user's and their groups' permissions, their groups, by Django's ModelBackend and `role_of`).

Any change to who holds what (group membership, a user's or a group's permissions, a user or
group saved or deleted) starts a new generation of every cached entry (`loyalty.receivers`), so
a removed permission is gone on the user's next request.
"""

from dataclasses import dataclass

from django.contrib.auth.backends import ModelBackend

from loyalty import shared_cache

GENERATION = "access"


@dataclass(frozen=True)
class Access:
    permissions: frozenset[str]
    groups: frozenset[str]


def user_access(user) -> Access:
    """The permissions ("app_label.codename") and group names of an authenticated user."""
    access = getattr(user, "_access", None)
    if access is None:
        key = f"access:{shared_cache.generation(GENERATION)}:{user.pk}"
        access = shared_cache.remembered(key, lambda: _load(user))
        user._access = access
    return access


def forget_all_access() -> None:
    shared_cache.bump(GENERATION)


def _load(user) -> Access:
    return Access(
        permissions=frozenset(ModelBackend().get_all_permissions(user)),
        groups=frozenset(user.groups.values_list("name", flat=True)),
    )


class CachedPermissionBackend(ModelBackend):
    """Django's ModelBackend (same rules: inactive users have no permissions, superusers all)
    with the permission set read through `user_access`."""

    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            user_obj._perm_cache = set(user_access(user_obj).permissions)
        return user_obj._perm_cache
