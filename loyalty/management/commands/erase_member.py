"""`manage.py erase_member EXTERNAL_ID [--actor USERNAME]`: erase one member from the shell."""

from django.core.management.base import BaseCommand

from loyalty.management.support import command_errors, user_named
from loyalty.services.erasure import erase_member_by_external_id


class Command(BaseCommand):
    help = (
        "Delete a member's events and blank its personal data, leaving an audit record with "
        "the SHA-256 of its external id. Running it again for the same id changes nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("external_id", help="The member's external id.")
        parser.add_argument(
            "--actor",
            help="Username recorded as having erased the member (needs loyalty.erase_member); "
            "without it the audit record names the system.",
        )

    def handle(self, *args, external_id: str, actor: str | None, **options) -> None:
        user = user_named(actor)
        with command_errors():
            result = erase_member_by_external_id(external_id=external_id, actor=user)
        if result.already_erased:
            self.stdout.write(
                f"Member {result.member_id} was already erased at "
                f"{result.erased_at:%Y-%m-%d %H:%M:%S %Z}; nothing changed."
            )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Erased member {result.member_id} (now {result.external_id}): "
                f"{result.events_deleted} event(s) deleted, audit record "
                f"{result.audit_record_id}, former id sha256 "
                f"{result.former_external_id_sha256}."
            )
        )
