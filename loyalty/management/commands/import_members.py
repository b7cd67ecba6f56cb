"""`manage.py import_members FILE`: create or update members from a CSV file, all or nothing (or
the valid rows with --skip-invalid)."""

from loyalty.management.support import ImportCommand
from loyalty.services.imports.members_and_events import import_members


class Command(ImportCommand):
    help = (
        "Import members from a CSV file with the columns external_id, joined_at, tier, "
        "points_balance, consent_profiling, consent_marketing, age_band, region; any other "
        "column is a member attribute kept for fairness audits (key: its header as a slug). "
        "The whole file "
        "is checked first; on any bad row nothing is imported and every problem is listed "
        "(--skip-invalid imports the good rows and writes the bad ones to FILE.rejected.csv). "
        "Members are matched by external_id, so importing the same file again changes nothing."
    )
    label = "members"
    importer = staticmethod(import_members)
