"""Remembers who is making the current request, for audit records written by signal receivers
(role changes made in the admin arrive through Django's m2m signal, which knows no request)."""

from contextvars import ContextVar

_current_user: ContextVar = ContextVar("current_user", default=None)


def current_user():
    """The authenticated user of the request being handled, or None outside a request."""
    return _current_user.get()


class CurrentUserMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        token = _current_user.set(getattr(request, "user", None))
        try:
            return self.get_response(request)
        finally:
            _current_user.reset(token)
