"""One list of event kinds and one list of event columns: the engine's (predictions.ml.frames),
which the database model and the readers follow."""

from django.conf import settings

from loyalty.models import Action, Event, Member
from predictions.ml import frames


def test_the_database_accepts_exactly_the_event_kinds_the_engine_knows():
    assert Event.Kind.values == list(frames.EVENT_KINDS)
    assert Event.Kind.PURCHASE == frames.PURCHASE
    # The labels the migrations hold: a change here would need a migration.
    assert Event.Kind.choices[5] == ("add_to_cart", "Add To Cart")
    longest = max(len(kind) for kind in frames.EVENT_KINDS)
    assert longest <= Event._meta.get_field("kind").max_length


def test_the_engine_reads_the_event_table_column_for_column():
    table = [field.attname for field in Event._meta.concrete_fields if field.name != "id"]

    assert table == list(frames.EVENT_COLUMNS)
    grouped = frames.EVENT_REQUIRED + frames.EVENT_FLOATS + frames.EVENT_STRINGS
    assert sorted(grouped) == sorted(frames.EVENT_COLUMNS)


def test_a_member_ranks_by_the_configured_ladder_and_an_unlisted_tier_lowest():
    ladder = settings.LOYALTY_TIER_LADDER

    ranks = [Member(tier=tier).tier_rank for tier in (*ladder, "diamond", "")]

    assert ranks == [*range(len(ladder)), -1, -1]
    assert [frames.tier_rank(tier, ladder) for tier in (*ladder, "diamond", "")] == ranks


def test_an_action_from_a_tier_off_the_ladder_is_offered_to_nobody():
    top = settings.LOYALTY_TIER_LADDER[-1]
    member = Member(tier=top, consent_profiling=True)

    assert Action(code="a", min_tier=top).is_eligible(member) is True
    assert Action(code="b", min_tier="diamond").is_eligible(member) is False
