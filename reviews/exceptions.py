"""Domain errors of the review workflow (mapped to HTTP once, by loyalty.api.exceptions)."""

from loyalty.exceptions import ConflictError, DomainError, PermissionDeniedError


class ReviewAlreadyDecided(ConflictError):
    """A second, different decision on a review that someone has decided."""


class ReviewNotOpen(ConflictError):
    """The review is not in a state that allows this (e.g. escalating an expert's item)."""


class ReviewNotYours(PermissionDeniedError):
    """The review is routed to a role the acting user does not hold."""


class InvalidDecision(DomainError):
    """The decision is missing what its verdict needs (an override without the right answer)."""


class NotAwaitingApproval(ConflictError):
    """Approving a retrained candidate that did not pass the gate or was decided already."""
