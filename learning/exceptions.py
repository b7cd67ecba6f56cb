"""Domain errors of the learning loop (mapped to HTTP once, by loyalty.api.exceptions)."""

from loyalty.exceptions import ConflictError, NotFoundError


class NotAwaitingApproval(ConflictError):
    """Approving a retrained candidate that did not pass the gate or was decided already."""


class RetrainingRunNotFound(NotFoundError):
    """No retraining run has this id."""
