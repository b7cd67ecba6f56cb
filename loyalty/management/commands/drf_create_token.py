"""`manage.py drf_create_token USERNAME [--days N]`: print a new API token for a user."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from loyalty.services.tokens import create_api_token


class Command(BaseCommand):
    help = (
        "Create a new API token for USERNAME and print its key (shown only now: the database "
        "keeps a digest). It expires after API_TOKEN_TTL_DAYS unless --days says otherwise "
        "(0: never). The user's other tokens keep working until they expire."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--days",
            type=float,
            default=None,
            help="days until the token expires (0: never); default API_TOKEN_TTL_DAYS",
        )

    def handle(self, *args, username: str, days: float | None, **options) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist as error:
            raise CommandError(f"No user named {username!r}.") from error
        if days is not None and days < 0:
            raise CommandError("--days must be 0 (never expires) or more.")
        if days is None:
            token, key = create_api_token(user=user)
        else:
            token, key = create_api_token(user=user, ttl=timedelta(days=days) if days else None)
        expiry = token.expiry.isoformat() if token.expiry else "never"
        self.stderr.write(f"Token for {username}, expires {expiry}:")
        self.stdout.write(key)
