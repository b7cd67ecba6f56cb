"""Version 1 of each kind's escalation policy: seeded, read without writing, there after a flush."""

import pytest
from django.core.management import call_command

from reviews.models import EscalationPolicy
from reviews.policy_settings import PolicySettings
from reviews.selectors.policy import current_policy, policy_history
from reviews.services.policy import change_policy, seed_first_versions


@pytest.mark.django_db
def test_the_migration_seeds_version_1_of_each_kind_with_the_defaults():
    churn, next_action = current_policy("churn"), current_policy("next_action")

    assert (churn.pk is not None, churn.version, churn.change_reason) == (True, 1, "defaults")
    assert PolicySettings.of(churn) == PolicySettings(segment_overrides={})
    assert (next_action.pk is not None, next_action.version) == (True, 1)
    assert (next_action.human_risk_low, next_action.human_risk_high) == (None, None)


@pytest.mark.django_db
def test_reading_a_missing_policy_writes_nothing_and_gives_the_defaults():
    EscalationPolicy.objects.all().delete()

    policy = current_policy("next_action")

    assert policy.pk is None
    assert (policy.kind, policy.version, policy.change_reason) == ("next_action", 1, "defaults")
    assert (policy.human_risk_low, policy.human_risk_high, policy.segment_overrides) == (
        None,
        None,
        {},
    )
    assert not EscalationPolicy.objects.exists()


@pytest.mark.django_db
def test_seeding_creates_only_what_is_missing():
    EscalationPolicy.objects.filter(kind="churn").delete()

    created = seed_first_versions()
    again = seed_first_versions()

    assert (created, again) == (1, 0)
    assert sorted(EscalationPolicy.objects.values_list("kind", "version")) == [
        ("churn", 1),
        ("next_action", 1),
    ]


@pytest.mark.django_db
def test_a_change_with_no_version_1_saves_version_1_first():
    EscalationPolicy.objects.all().delete()

    change_policy(
        kind="churn",
        settings=PolicySettings(auto_approve_confidence=0.95),
        actor=None,
        reason="tighter",
    )

    history = policy_history("churn")
    assert [(row.policy.version, row.author) for row in history] == [(2, "system"), (1, "system")]
    assert current_policy("churn").auto_approve_confidence == 0.95


@pytest.mark.django_db(transaction=True)
def test_version_1_is_there_again_after_a_flush():
    """Transactional tests flush every table; post_migrate seeds version 1 again, as it
    does the role groups."""
    call_command("flush", interactive=False, verbosity=0)

    assert sorted(EscalationPolicy.objects.values_list("kind", "version", "change_reason")) == [
        ("churn", 1, "defaults"),
        ("next_action", 1, "defaults"),
    ]
