"""Reads of the loyalty program's data that are more than a one-line query."""

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import QuerySet

from loyalty.models import Action, AuditRecord, Event, Member


@dataclass(frozen=True)
class ProgramOverview:
    members: int
    consenting_members: int
    events: int
    first_event_at: datetime | None
    last_event_at: datetime | None
    active_actions: int
    recent_audit: list[AuditRecord]


def program_overview(*, audit_rows: int = 8) -> ProgramOverview:
    """The program's counts for the home page (its worker health is `home.selectors`). Event
    min/max use the occurred_at index."""
    first = Event.objects.order_by("occurred_at").values_list("occurred_at", flat=True).first()
    last = Event.objects.order_by("-occurred_at").values_list("occurred_at", flat=True).first()
    return ProgramOverview(
        members=Member.objects.count(),
        consenting_members=Member.objects.filter(consent_profiling=True).count(),
        events=Event.objects.count(),
        first_event_at=first,
        last_event_at=last,
        active_actions=Action.objects.filter(is_active=True).count(),
        recent_audit=list(AuditRecord.objects.select_related("actor")[:audit_rows]),
    )


def scorable_members() -> QuerySet[Member]:
    """THE members that may be profiled: consenting to profiling and not erased.

    The one home of that rule. Scoring, training (history rows), retraining (labeled
    examples), outcome labeling and what-if all start from this query (as a subquery:
    `member_id__in=scorable_members().values("pk")`), so that a consent withdrawal takes a
    member out of all of them from the next run on and an erased member is never seen.
    """
    return Member.objects.filter(consent_profiling=True, erased_at__isnull=True)


def may_profile(*, member_id: int) -> bool:
    """Whether this one member may be profiled now (`scorable_members`)."""
    return scorable_members().filter(pk=member_id).exists()


def member_list() -> QuerySet[Member]:
    """Members for the API list, in a stable order that cursor pagination can follow."""
    return Member.objects.order_by("pk")


def member_events(*, member: Member) -> QuerySet[Event]:
    """A member's events oldest first; the natural-key index serves this order."""
    return Event.objects.filter(member=member).order_by("occurred_at", "pk")


# Lists a JSON object's keys, one row per key and member (a member whose attributes are not an
# object, which only a hand edit could store, counts as having none).
_ATTRIBUTE_KEYS_SQL = {
    "postgresql": "SELECT k, COUNT(*) FROM {table} m CROSS JOIN LATERAL jsonb_object_keys("
    "CASE WHEN jsonb_typeof(m.attributes) = 'object' THEN m.attributes ELSE '{{}}'::jsonb END"
    ") AS k WHERE m.erased_at IS NULL GROUP BY k ORDER BY k",
    "sqlite": "SELECT j.key, COUNT(*) FROM {table} m, json_each("
    "CASE WHEN json_type(m.attributes) = 'object' THEN m.attributes ELSE '{{}}' END"
    ") AS j WHERE m.erased_at IS NULL GROUP BY j.key ORDER BY j.key",
}


def member_attribute_counts() -> dict[str, int]:
    """Each attribute key among the members (`Member.attributes`) and how many members have
    it, in key order: one aggregate query in the database, never a row per member here."""
    sql = _ATTRIBUTE_KEYS_SQL[connection.vendor].format(table=Member._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return {str(key): int(count) for key, count in cursor.fetchall()}
