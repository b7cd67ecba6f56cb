"""Staff-only admin of the loyalty program (`program`), of who may do what (`users`) and of
login lockouts (`logins`).

Django's admin autodiscovery imports this package only, so it imports the modules that register
their admins.
"""

from loyalty.admin import logins, program, users  # noqa: F401
