"""`manage.py create_demo_users`: one login per role for trying the app, printed on stdout.

Development only: the passwords are in the README, so the command refuses to run unless DEBUG
is on (the development settings, `make run`); production settings never have it on.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from loyalty.services.users import DEMO_USERS, create_demo_users


class Command(BaseCommand):
    help = "Create (or reset) one demo user per role and print their credentials (DEBUG only)."

    def handle(self, *args, **options) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "create_demo_users only runs with DEBUG on (development settings): the demo "
                "passwords are published, and these accounts must never exist in production."
            )
        create_demo_users()
        self.stdout.write("Demo logins (username / password):")
        for demo in DEMO_USERS:
            self.stdout.write(f"  {demo.role:<8} {demo.username} / {demo.password}")
