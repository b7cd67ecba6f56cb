"""Domain errors of the review workflow (mapped to HTTP once, by loyalty.api.exceptions)."""

from loyalty.exceptions import ConflictError, DomainError, NotFoundError, PermissionDeniedError


class ReviewAlreadyDecided(ConflictError):
    """A second, different decision on a review that someone has decided."""


class ReviewNotOpen(ConflictError):
    """The review is not in a state that allows this (e.g. escalating an expert's item)."""


class ReviewNotFound(NotFoundError):
    """No review has this id, or none the acting user may see (the two answer alike)."""


class ReviewNotYours(PermissionDeniedError):
    """The review is routed to a role the acting user does not hold."""


class InvalidDecision(DomainError):
    """The decision is missing what its verdict needs (an override without the right answer)."""


class PolicyChanged(ConflictError):
    """Someone saved another escalation-policy version since the page was opened."""
