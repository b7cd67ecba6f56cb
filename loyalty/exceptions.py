"""Domain errors of the loyalty program, on one base class; the API maps them to HTTP once."""


class DomainError(Exception):
    """Base of every domain error. `status` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message)
        self.message = message
        self.context = context


class PermissionDeniedError(DomainError):
    status = 403


class ConflictError(DomainError):
    status = 409


class MemberErasedError(ConflictError):
    """A write to a member whose personal data was erased."""
