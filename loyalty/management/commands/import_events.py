"""`manage.py import_events FILE`: add events from a CSV file, all or nothing (or the valid rows
with --skip-invalid)."""

from loyalty.management.support import ImportCommand
from loyalty.services.imports.members_and_events import import_events


class Command(ImportCommand):
    help = (
        "Import events from a CSV file with the columns member_external_id, occurred_at, kind, "
        "amount, quantity, category, channel, session_id, dwell_seconds, product_id. The whole "
        "file is checked first; on any bad row nothing is imported and every problem is listed "
        "(--skip-invalid imports the good rows and writes the bad ones to FILE.rejected.csv). "
        "Events already stored (same member, time, kind, session and product) are skipped; one "
        "given twice in the file is refused. A purchase with a negative amount or quantity is "
        "stored as a return."
    )
    label = "events"
    importer = staticmethod(import_events)
