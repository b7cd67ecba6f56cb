"""Domain errors as page answers, mapped once for every page (the API's twin is
loyalty.api.exceptions): 403 becomes PermissionDenied and 404 Http404, Django's error pages;
the statuses a page shows itself (400 and 409 unless it says otherwise) go to its responder,
which shows the message at the error's status, or flashes it and redirects."""

from collections.abc import Callable, Collection
from functools import wraps

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from loyalty.exceptions import DomainError

# (request, error, **the view's URL arguments) -> the page that shows the error.
Responder = Callable[..., HttpResponse]
SHOWN_IN_PAGE = (400, 409)


def domain_errors_as_pages(
    respond: Responder | None = None, *, shown_in_page: Collection[int] = SHOWN_IN_PAGE
):
    """Decorate a page view so that a DomainError it raises becomes the page's answer: a status
    in `shown_in_page` is `respond`'s to show; otherwise 403 and 404 are Django's error pages,
    and any other status a message fragment at that status."""

    def decorate(view):
        @wraps(view)
        def view_with_errors_mapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            try:
                return view(request, *args, **kwargs)
            except DomainError as error:
                if respond is not None and error.status in shown_in_page:
                    return respond(request, error, *args, **kwargs)
                return error_page(request, error)

        return view_with_errors_mapped

    return decorate


def error_page(request: HttpRequest, error: DomainError) -> HttpResponse:
    """403 → PermissionDenied, 404 → Http404 (raised); anything else its message at its status."""
    if error.status == 403:
        raise PermissionDenied(error.message) from error
    if error.status == 404:
        raise Http404(error.message) from error
    return error_fragment(request, error.message, error.status)


def error_fragment(request: HttpRequest, message: str, status: int) -> HttpResponse:
    """The message as the flash fragment htmx swaps in (review.js swaps 400/403/409 answers)."""
    context = {"message": message, "level": "error"}
    return render(request, "reviews/partials/flash.html", context, status=status)


def flash_and_redirect(url_name: str) -> Responder:
    """A responder that flashes the error's message and redirects to `url_name`."""

    def respond(request: HttpRequest, error: DomainError, *args, **kwargs) -> HttpResponse:
        messages.error(request, error.message)
        return redirect(url_name)

    return respond
