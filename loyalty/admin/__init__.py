"""Staff-only admin of the loyalty program (`program`) and of who may do what (`users`).

Django's admin autodiscovery imports this package only, so it imports the modules that register
their admins.
"""

from loyalty.admin import program, users  # noqa: F401
