"""Maps domain errors to HTTP responses, once for the whole API."""

from rest_framework.response import Response
from rest_framework.views import exception_handler

from loyalty.exceptions import DomainError


def domain_exception_handler(exc, context):
    if isinstance(exc, DomainError):
        body = {"detail": exc.message}
        body.update({key: str(value) for key, value in exc.context.items()})
        return Response(body, status=exc.status)
    return exception_handler(exc, context)
