"""Domain errors of the integrations (mapped to HTTP once, by loyalty.api.exceptions)."""

from loyalty.exceptions import DomainError, NotFoundError


class InvalidEndpoint(DomainError):
    """An endpoint's URL or event types cannot be accepted; the message says why."""


class EndpointNotFound(NotFoundError):
    """No webhook endpoint has this id."""


class DeliveryNotFound(NotFoundError):
    """No delivery has this id."""
