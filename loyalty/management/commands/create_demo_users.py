"""`manage.py create_demo_users`: one login per role for trying the app, printed on stdout."""

from django.core.management.base import BaseCommand

from loyalty.services.users import DEMO_USERS, create_demo_users


class Command(BaseCommand):
    help = "Create (or reset) one demo user per role and print their credentials."

    def handle(self, *args, **options) -> None:
        create_demo_users()
        self.stdout.write("Demo logins (username / password):")
        for demo in DEMO_USERS:
            self.stdout.write(f"  {demo.role:<8} {demo.username} / {demo.password}")
