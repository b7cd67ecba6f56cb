"""`manage.py lift_tombstone EXTERNAL_ID --reason WHY [--actor USERNAME]`: let an erased
member's external id come back."""

from django.core.management.base import BaseCommand

from loyalty.management.support import command_errors, user_named
from loyalty.services.erasure import lift_tombstone


class Command(BaseCommand):
    help = (
        "Lift the tombstone that an erasure left for an external id, so that the id may be "
        "created or imported again (as a new member: nothing erased comes back). Audited; "
        "running it again for the same id changes nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("external_id", help="The erased member's former external id.")
        parser.add_argument("--reason", required=True, help="Why the id may come back.")
        parser.add_argument(
            "--actor",
            help="Username recorded as having lifted it (needs loyalty.erase_member); without "
            "it the audit record names the system.",
        )

    def handle(self, *args, external_id: str, reason: str, actor: str | None, **options) -> None:
        user = user_named(actor)
        with command_errors():
            tombstone = lift_tombstone(external_id=external_id, actor=user, reason=reason)
        self.stdout.write(
            self.style.SUCCESS(
                f"The tombstone of member {tombstone.member_id} is lifted (since "
                f"{tombstone.lifted_at:%Y-%m-%d %H:%M:%S %Z}): its former external id may be "
                "used again."
            )
        )
