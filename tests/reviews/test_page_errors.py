"""Domain errors as page answers: 403 and 404 are Django's error pages, the rest the page's."""

import pytest
from django.contrib.messages.storage.fallback import FallbackStorage
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.test import RequestFactory

from loyalty.exceptions import ConflictError, DomainError, NotFoundError, PermissionDeniedError
from reviews.page_errors import domain_errors_as_pages, flash_and_redirect


def _view_raising(error: DomainError):
    def view(request, review_id: int):
        raise error

    return view


def _request():
    request = RequestFactory().post("/anywhere/")
    request.session = {}
    request._messages = FallbackStorage(request)
    return request


def _shown(request, error, review_id: int) -> HttpResponse:
    return HttpResponse(f"{review_id}: {error.message}", status=error.status)


@pytest.mark.parametrize(
    ("error", "raised"),
    [(PermissionDeniedError("not yours"), PermissionDenied), (NotFoundError("gone"), Http404)],
)
def test_403_and_404_become_django_error_pages(error, raised):
    view = domain_errors_as_pages(_shown)(_view_raising(error))

    with pytest.raises(raised, match=error.message):
        view(_request(), review_id=7)


def test_a_conflict_goes_to_the_page_responder_with_the_view_arguments():
    view = domain_errors_as_pages(_shown)(_view_raising(ConflictError("decided already")))

    response = view(_request(), review_id=7)

    assert (response.status_code, response.content) == (409, b"7: decided already")


def test_a_page_may_show_a_403_itself():
    view = domain_errors_as_pages(_shown, shown_in_page=(403,))(
        _view_raising(PermissionDeniedError("only an expert"))
    )

    response = view(_request(), review_id=7)

    assert (response.status_code, response.content) == (403, b"7: only an expert")


def test_without_a_responder_a_conflict_is_a_message_fragment_at_its_status():
    view = domain_errors_as_pages()(_view_raising(ConflictError("paused meanwhile")))

    response = view(_request(), review_id=7)

    assert response.status_code == 409
    assert '<div class="flash error" role="alert" data-testid="flash">paused meanwhile</div>' in (
        response.content.decode()
    )


@pytest.mark.django_db
def test_flash_and_redirect_keeps_the_message_for_the_next_page():
    request = _request()
    view = domain_errors_as_pages(flash_and_redirect("learning:loop"))(
        _view_raising(ConflictError("not awaiting approval"))
    )

    response = view(request, review_id=7)

    assert (response.status_code, response["Location"]) == (302, "/reviews/manage/loop/")
    assert [str(message) for message in request._messages] == ["not awaiting approval"]
