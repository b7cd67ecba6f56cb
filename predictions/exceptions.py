"""Domain errors of the prediction engine."""

from loyalty.exceptions import ConflictError, DomainError


class NoActiveModelError(DomainError):
    """Scoring or a what-if needs an active model version of a kind and there is none."""


class VersionNotPromotableError(ConflictError):
    """Only a candidate or retired version can become active."""


class NothingToRollBackToError(ConflictError):
    """A rollback needs a version that was active before the current one."""


class TrainingDataError(DomainError):
    """The imported data cannot train a model (too little history, one class only...)."""


class ProfilingNotAllowedError(ConflictError):
    """The member may not be profiled (consent withdrawn, or erased): no what-if about them."""
