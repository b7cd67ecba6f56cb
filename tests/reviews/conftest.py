"""Fixtures shared by the review tests."""

from dataclasses import replace

import pytest

# A next-action policy that auto-approves from confidence 0.5, sends nothing to experts for
# value and samples nothing for audit: what is auto-approved follows from confidence alone.
LENIENT_NEXT_ACTIONS = {
    "auto_approve_confidence": 0.5,
    "expert_confidence": 0.1,
    "expert_value_quantile": 0.99,
    "audit_sample_rate": 0.0,
}


@pytest.fixture
def lenient_catalog(reason_codes):
    """The seeded action catalog (with its retention-gain priors) under a lenient next-action
    policy (LENIENT_NEXT_ACTIONS)."""
    from loyalty.services.catalog import seed_action_catalog
    from reviews.policy_settings import DEFAULT_SETTINGS
    from reviews.services.policy import change_policy

    seed_action_catalog()
    settings = replace(DEFAULT_SETTINGS["next_action"], **LENIENT_NEXT_ACTIONS)
    change_policy(kind="next_action", settings=settings, actor=None, reason="auto-approve")
    return settings
