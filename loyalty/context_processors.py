"""Template context shared by every page."""

from loyalty.roles import role_of


def roles(request) -> dict:
    user = getattr(request, "user", None)
    return {"current_role": role_of(user) if user is not None else None}
