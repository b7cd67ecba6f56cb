"""Domain errors of the loyalty program, on one base class; the API maps them to HTTP once."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


class DomainError(Exception):
    """Base of every domain error. `status` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message)
        self.message = message
        self.context = context


class PermissionDeniedError(DomainError):
    status = 403


class NotFoundError(DomainError):
    status = 404


class ConflictError(DomainError):
    status = 409


class MemberNotFoundError(NotFoundError):
    """No member (and no erased member) is known by the given id."""


class MemberExistsError(ConflictError):
    """A member with this external id is already in the program."""


class MemberErasedError(ConflictError):
    """A write to a member whose personal data was erased."""


class EventBatchTooLargeError(DomainError):
    """More events in one batch than a request may carry."""


def require_permission(actor: AbstractBaseUser | AnonymousUser | None, permission: str) -> None:
    """Refuse a service call that the acting user's role does not allow.

    `actor=None` is the system itself (a management command, a scheduled task): it acts on an
    operator's authority and is not checked.
    """
    if actor is not None and not actor.has_perm(permission):
        raise PermissionDeniedError(
            f"{actor.get_username() or 'An anonymous user'} lacks the permission {permission}.",
        )
