"""Synthetic members: deterministic per seed, truth stored for each, events agree with it, the
truth is a calibrated probability, and churn works the same way before the cutoff as after it."""

import math
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import call_command

from loyalty.exceptions import ConflictError
from loyalty.models import AuditRecord, Event, Member, SyntheticTruth
from loyalty.services.synthetic.generation import generate_members

pytestmark = pytest.mark.django_db

CUTOFF = datetime(2026, 1, 1, tzinfo=UTC)
HORIZON = timedelta(days=90)
# Enough members for a calibration check; few enough to generate in seconds.
CALIBRATION_MEMBERS = 4_000


def snapshot() -> tuple[list, list, list]:
    """Everything generated, keyed by external id (primary keys differ between runs)."""
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
    events = list(
        Event.objects.order_by(
            "member__external_id", "occurred_at", "kind", "session_id", "product_id"
        ).values_list(
            "member__external_id",
            "occurred_at",
            "kind",
            "amount",
            "quantity",
            "category",
            "channel",
            "session_id",
            "dwell_seconds",
            "product_id",
        )
    )
    truths = list(
        SyntheticTruth.objects.order_by("member__external_id").values_list(
            "member__external_id", "seed", "cutoff", "horizon_days", "churn_probability", "churned"
        )
    )
    return members, events, truths


def test_the_same_seed_gives_identical_members_events_and_truth():
    generate_members(members=40, seed=11)
    first = snapshot()
    Member.objects.all().delete()

    generate_members(members=40, seed=11)

    assert snapshot() == first
    members, events, truths = first
    assert len(members) == len(truths) == 40
    assert members[0][0] == "syn-11-0"
    assert len(events) > 40


def test_another_seed_gives_other_data():
    generate_members(members=40, seed=11)
    first_members, first_events, first_truths = snapshot()
    Member.objects.all().delete()

    generate_members(members=40, seed=12)

    members, events, truths = snapshot()
    assert [m[1:] for m in members] != [m[1:] for m in first_members]
    assert [t[4] for t in truths] != [t[4] for t in first_truths]
    assert {m[0] for m in members}.isdisjoint({m[0] for m in first_members})


def test_every_member_has_a_truth_and_events_agree_with_it():
    result = generate_members(members=200, seed=5, start=date(2025, 1, 1), days=365)

    truths = list(SyntheticTruth.objects.select_related("member"))
    assert len(truths) == 200 == result.truths_created
    assert {(t.seed, t.cutoff, t.horizon_days) for t in truths} == {(5, CUTOFF, 90)}
    assert all(0 < t.churn_probability < 1 for t in truths)
    churned = [t.member_id for t in truths if t.churned]
    retained = [t.member_id for t in truths if not t.churned]
    assert result.churned == len(churned)
    assert 0 < len(churned) < 200
    purchases_after = Event.objects.filter(kind="purchase", occurred_at__gte=CUTOFF)
    assert not purchases_after.filter(member_id__in=churned).exists()
    assert set(purchases_after.values_list("member_id", flat=True)) == set(retained)
    assert not Event.objects.filter(occurred_at__gte=datetime(2026, 4, 2, tzinfo=UTC)).exists()
    assert not Event.objects.filter(occurred_at__lt=datetime(2025, 1, 1, tzinfo=UTC)).exists()


def test_running_again_changes_nothing_and_a_larger_run_extends_a_smaller_one():
    generate_members(members=10, seed=3)
    first_members, first_events, first_truths = snapshot()

    again = generate_members(members=10, seed=3)
    more = generate_members(members=15, seed=3)

    assert (again.members.created, again.events.created, again.truths_created) == (0, 0, 0)
    assert (more.members.created, more.members.unchanged, more.truths_created) == (5, 10, 5)
    members, events, truths = snapshot()
    first_ids = {m[0] for m in first_members}
    assert [m for m in members if m[0] in first_ids] == first_members
    assert [e for e in events if e[0] in first_ids] == first_events
    assert [t for t in truths if t[0] in first_ids] == first_truths


def test_a_seed_is_one_dataset():
    generate_members(members=5, seed=9, horizon_days=90)
    counts = (Member.objects.count(), Event.objects.count(), AuditRecord.objects.count())

    with pytest.raises(ConflictError):
        generate_members(members=5, seed=9, horizon_days=30)

    assert (Member.objects.count(), Event.objects.count(), AuditRecord.objects.count()) == counts


def test_generate_members_command_prints_a_summary(capsys):
    call_command("generate_members", "--members", "20", "--seed", "4", "--horizon", "60")

    out = capsys.readouterr().out
    assert out.startswith("seed 4: 20 members, events from 2025-01-01 to the cutoff 2026-01-01")
    assert "truth: 20 rows created" in out
    assert SyntheticTruth.objects.filter(horizon_days=60).count() == 20


def purchasers(start: datetime, end: datetime) -> set[int]:
    """Ids of the members with a purchase in [start, end)."""
    purchases = Event.objects.filter(kind="purchase", occurred_at__gte=start, occurred_at__lt=end)
    return set(purchases.values_list("member_id", flat=True))


def test_the_truth_is_a_calibrated_probability():
    generate_members(members=CALIBRATION_MEMBERS, seed=21)

    rows = sorted(SyntheticTruth.objects.values_list("churn_probability", "churned"))
    probabilities = [p for p, _ in rows]
    assert len(rows) == CALIBRATION_MEMBERS
    assert abs(sum(probabilities) - sum(c for _, c in rows)) / len(rows) < 0.03
    # A realistic churn rate, and a spread of true probabilities from near 0 to near 1.
    assert 0.15 < sum(probabilities) / len(rows) < 0.30
    assert probabilities[len(rows) // 100] < 0.01
    assert probabilities[-len(rows) // 100] > 0.99
    # Binned by true probability (quintiles), the realized rate is within four standard errors
    # of the bin's mean probability.
    size = len(rows) // 5
    for first in range(0, len(rows), size):
        bin_rows = rows[first : first + size]
        expected = sum(p for p, _ in bin_rows) / len(bin_rows)
        realized = sum(c for _, c in bin_rows) / len(bin_rows)
        standard_error = math.sqrt(expected * (1 - expected) / len(bin_rows))
        assert abs(realized - expected) < 4 * standard_error, (expected, realized)


def test_members_churn_the_same_way_before_the_cutoff_as_after_it():
    """Leaving happens throughout the timeline, not only at the cutoff: among members who
    bought in the 60 days before a date, the share who then buy nothing for 90 days is the
    same half a year before the cutoff as at it (a model trains on such past windows)."""
    generate_members(members=CALIBRATION_MEMBERS, seed=21)

    shares = []
    for cutoff in (CUTOFF - timedelta(days=180), CUTOFF):
        recent = purchasers(cutoff - timedelta(days=60), cutoff)
        returned = purchasers(cutoff, cutoff + HORIZON)
        shares.append(len(recent - returned) / len(recent))

    assert abs(shares[0] - shares[1]) < 0.03, shares
