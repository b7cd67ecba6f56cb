"""Rates and lockouts: the API's throttles, the same throttle for a page, and the answer to a
locked-out login.

Every rate is read from `settings.THROTTLE_RATES` by scope (`anon`, `user`, and the scopes of
expensive calls such as `what_if`) when a request comes, so that a changed setting takes
effect at once. Counts live in the default cache: shared by every web process when CACHE_URL
is set, one per process otherwise (see the README's Security section).
"""

import math
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework import throttling

RETRY_AFTER = "Retry-After"


class _RatesFromSettings:
    """Reads the rate of `self.scope` from settings at each request (DRF's throttles read
    theirs once, when the class is defined)."""

    def get_rate(self) -> str | None:
        return settings.THROTTLE_RATES.get(self.scope)


class AnonymousRateThrottle(_RatesFromSettings, throttling.AnonRateThrottle):
    """Requests without a user, counted per client address."""


class UserRateThrottle(_RatesFromSettings, throttling.UserRateThrottle):
    """Requests of one user (token or session), whatever the address."""


class ScopedRateThrottle(_RatesFromSettings, throttling.ScopedRateThrottle):
    """Views that name a `throttle_scope` get that scope's rate as well, per user."""


class PageRateThrottle(_RatesFromSettings, throttling.SimpleRateThrottle):
    """A scope's rate for a page (a plain Django view), per user, or per address without one."""

    def __init__(self, scope: str) -> None:
        self.scope = scope
        super().__init__()

    def get_cache_key(self, request, view) -> str:
        user = getattr(request, "user", None)
        ident = user.pk if user is not None and user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


def client_address(request: HttpRequest) -> str:
    """The client's address, one rule for throttles and login lockouts: REMOTE_ADDR, or with
    REST_FRAMEWORK["NUM_PROXIES"] proxies in front, the address the outermost one saw."""
    return throttling.BaseThrottle().get_ident(request)


def retry_after_seconds(wait: float | None) -> int:
    """The `Retry-After` value for a wait: whole seconds, at least one."""
    return max(1, math.ceil(wait or 0))


# (request, message, status) -> the page's answer; plain text when a page names none.
Responder = Callable[[HttpRequest, str, int], HttpResponse]


def _plain_text(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def throttled_page(scope: str, *, respond: Responder = _plain_text) -> Callable:
    """Limit a page view to the rate of `scope`; past it the view does not run and the page
    answers 429 with `Retry-After` (the message as `respond` shows it)."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            throttle = PageRateThrottle(scope)
            if not throttle.allow_request(request, None):
                seconds = retry_after_seconds(throttle.wait())
                message = f"Too many requests; try again in {seconds} seconds."
                response = respond(request, message, 429)
                response[RETRY_AFTER] = str(seconds)
                return response
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


def locked_out(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """What a locked-out login gets (django-axes' AXES_LOCKOUT_CALLABLE): 429, and when the
    lockout ends by itself, `Retry-After` with the cool-off."""
    from axes.helpers import get_cool_off

    cool_off = get_cool_off(request)
    if cool_off is None:
        message = "This account is locked after too many failed logins. An admin can unlock it."
        return _plain_text(request, message, 429)
    seconds = retry_after_seconds(cool_off.total_seconds())
    message = (
        "This account is locked after too many failed logins. Try again in "
        f"{math.ceil(seconds / 60)} minutes, or ask an admin to unlock it."
    )
    response = _plain_text(request, message, 429)
    response[RETRY_AFTER] = str(seconds)
    return response
