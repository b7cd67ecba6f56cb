"""Loading The Complete Journey: a few households end to end, idempotent, catalog seeded."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Count

from loyalty.models import Action, AuditRecord, Event, Member
from loyalty.services.catalog import seed_action_catalog

pytestmark = pytest.mark.django_db

ACTION_CODES = [
    "bonus_points",
    "free_delivery",
    "no_action",
    "personal_discount",
    "personal_outreach",
    "tier_trial",
    "win_back_email",
]


def events_per_member_and_kind() -> dict[tuple[str, str], int]:
    rows = Event.objects.values("member__external_id", "kind").annotate(n=Count("id"))
    return {(row["member__external_id"], row["kind"]): row["n"] for row in rows}


def test_five_households_become_members_events_and_a_catalog(capsys):
    call_command("load_complete_journey", "--households", "5")

    members = list(
        Member.objects.order_by("external_id").values_list(
            "external_id",
            "joined_on",
            "tier",
            "points_balance",
            "consent_profiling",
            "consent_marketing",
            "age_band",
            "region",
        )
    )
    assert members == [
        ("cj-1", date(2017, 1, 7), "gold", 2415, True, True, "65+", ""),
        ("cj-2", date(2017, 1, 7), "silver", 1024, True, True, "", ""),
        ("cj-3", date(2017, 1, 7), "gold", 1026, True, True, "", ""),
        ("cj-4", date(2017, 1, 5), "silver", 442, True, True, "", ""),
        ("cj-5", date(2017, 1, 17), "bronze", 299, True, True, "", ""),
    ]
    assert events_per_member_and_kind() == {
        ("cj-1", "purchase"): 982,
        ("cj-2", "purchase"): 358,
        ("cj-3", "purchase"): 358,
        ("cj-4", "purchase"): 111,
        ("cj-5", "purchase"): 85,
        ("cj-1", "coupon_redeemed"): 5,
        ("cj-1", "campaign_received"): 8,
        ("cj-2", "campaign_received"): 1,
        ("cj-3", "campaign_received"): 3,
        ("cj-4", "campaign_received"): 1,
    }
    first = Event.objects.filter(member__external_id="cj-4").order_by("occurred_at", "pk").first()
    assert (
        first.occurred_at,
        first.kind,
        first.amount,
        first.quantity,
        first.category,
        first.channel,
        first.session_id,
        first.product_id,
    ) == (
        datetime(2017, 1, 5, 1, 11, 33, tzinfo=UTC),
        "purchase",
        Decimal("1.49"),
        1.0,
        "GROCERY",
        "store",
        "31254883255",
        "839747",
    )
    coupon = Event.objects.filter(kind="coupon_redeemed").order_by("occurred_at", "product_id")[0]
    assert (coupon.occurred_at, coupon.session_id, coupon.product_id, coupon.category) == (
        datetime(2017, 5, 17, tzinfo=UTC),
        "",
        "10000085364",
        "Type A",
    )
    campaigns = Event.objects.filter(kind="campaign_received", member__external_id="cj-1")
    assert list(
        campaigns.order_by("session_id").values_list("session_id", "occurred_at", "category")
    ) == [
        ("campaign-12", datetime(2017, 7, 12, tzinfo=UTC), "Type B"),
        ("campaign-13", datetime(2017, 8, 8, tzinfo=UTC), "Type A"),
        ("campaign-18", datetime(2017, 10, 30, tzinfo=UTC), "Type A"),
        ("campaign-20", datetime(2017, 11, 27, tzinfo=UTC), "Type C"),
        ("campaign-22", datetime(2017, 12, 6, tzinfo=UTC), "Type B"),
        ("campaign-23", datetime(2017, 12, 28, tzinfo=UTC), "Type B"),
        # Campaign 26 started before the transactions do.
        ("campaign-26", datetime(2016, 12, 28, tzinfo=UTC), "Type B"),
        ("campaign-8", datetime(2017, 5, 8, tzinfo=UTC), "Type A"),
    ]
    assert list(Action.objects.values_list("code", flat=True)) == ACTION_CODES
    assert AuditRecord.objects.filter(kind="import").count() == 4
    out = capsys.readouterr().out
    assert "The Complete Journey: 5 households" in out
    assert "events from complete_journey:transactions: 1,894 rows read, 1,894 created" in out


def test_loading_again_changes_nothing_and_skip_if_loaded_does_nothing(capsys):
    call_command("load_complete_journey", "--households", "5")
    members = list(Member.objects.order_by("pk").values())
    events = Event.objects.count()
    capsys.readouterr()

    call_command("load_complete_journey", "--households", "5")

    assert list(Member.objects.order_by("pk").values()) == members
    assert Event.objects.count() == events == 1912
    out = capsys.readouterr().out
    assert "members from complete_journey:households: 5 rows read, 0 created, 0 updated" in out
    assert "action catalog: 0 created, 7 already there" in out

    audits = AuditRecord.objects.count()
    call_command("load_complete_journey", "--skip-if-loaded")

    assert capsys.readouterr().out == "The Complete Journey is already loaded; skipped.\n"
    assert (Member.objects.count(), Event.objects.count(), AuditRecord.objects.count()) == (
        5,
        events,
        audits,
    )


def test_seeding_the_catalog_keeps_what_an_admin_changed():
    first = seed_action_catalog()
    Action.objects.filter(code="bonus_points").update(cost=Decimal("9.99"), is_active=False)

    again = seed_action_catalog()

    assert (len(first.created), first.existing) == (7, ())
    assert (again.created, len(again.existing)) == ((), 7)
    bonus = Action.objects.get(code="bonus_points")
    assert (bonus.cost, bonus.is_active) == (Decimal("9.99"), False)
    no_action = Action.objects.get(code="no_action")
    assert (no_action.cost, no_action.requires_consent) == (Decimal("0.00"), False)
    assert Action.objects.get(code="personal_outreach").min_tier == "gold"
