"""Maps domain errors to HTTP responses, once for the whole API; and answers an API address
that matches no route in JSON, like every other API error."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from loyalty.exceptions import DomainError


def domain_exception_handler(exc, context):
    if isinstance(exc, DomainError):
        body = {"detail": exc.message}
        body.update({key: str(value) for key, value in exc.context.items()})
        return Response(body, status=exc.status)
    if isinstance(exc, DjangoValidationError):
        # A service's full_clean() refused the data: the same shape as a serializer's errors.
        if hasattr(exc, "error_dict"):
            return Response(exc.message_dict, status=status.HTTP_400_BAD_REQUEST)
        return Response({"detail": exc.messages}, status=status.HTTP_400_BAD_REQUEST)
    return exception_handler(exc, context)


API_PREFIX = "/api/"


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The project's 404 handler: under /api/ (a review id that is not a number, a path that
    does not exist) the API's JSON error, elsewhere Django's page."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
