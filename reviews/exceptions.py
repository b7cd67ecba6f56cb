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


class InvalidPolicyTest(DomainError):
    """A policy test that cannot start or end as asked (a share outside (0, 1), no end, an end
    in the past, a challenger identical to the current version, an unknown arm)."""


class PolicyTestRunning(ConflictError):
    """A policy test of the kind is running: another cannot start, and the thresholds cannot
    change until it ends with one version adopted."""

    @classmethod
    def of(cls, test) -> "PolicyTestRunning":
        """The error naming the running `test` (a PolicyExperiment) and what to do."""
        return cls(
            f"A policy test of version {test.champion.version} against version "
            f"{test.challenger.version} is running: end it first, by adopting one of them.",
            kind=test.kind,
            test=test.pk,
        )


class PolicyTestEnded(ConflictError):
    """The policy test ended already, with another version adopted."""


class PolicyTestNotFound(NotFoundError):
    """No policy test has this id."""
