"""Members who withdrew consent to profiling, and erased ones, are never trained on."""

from datetime import UTC, datetime, timedelta

import pytest

from loyalty.services.catalog import seed_action_catalog
from loyalty.services.erasure import erase_member
from loyalty.services.members import set_consent
from predictions.exceptions import TrainingDataError
from predictions.ml.contracts import MLError
from predictions.services import training
from predictions.services.training import (
    train_churn_version,
    train_next_action_version,
    training_frames,
)
from tests.factories import EventFactory, MemberFactory

pytestmark = pytest.mark.django_db

START = datetime(2025, 1, 1, tzinfo=UTC)
CUTOFF = datetime(2025, 10, 1, tzinfo=UTC)
# Purchases every 30 days from START, and one coupon redeemed: outcome labels for next action.
PURCHASE_DAYS = range(0, 270, 30)
COUPON_DAY = 200


def _member_with_history(**fields):
    member = MemberFactory(**fields)
    for day in PURCHASE_DAYS:
        EventFactory(member=member, kind="purchase", occurred_at=START + timedelta(days=day))
    EventFactory(
        member=member, kind="coupon_redeemed", occurred_at=START + timedelta(days=COUPON_DAY)
    )
    return member


@pytest.fixture
def program():
    """Two consenting members around one who withdrew consent, and one erased (with consent
    on the row, as an erasure that did not go through the service would leave it)."""
    first = _member_with_history(external_id="C-1")
    withdrawn = _member_with_history(external_id="W-1")
    erased = _member_with_history(external_id="E-1", erased_at=START + timedelta(days=300))
    second = _member_with_history(external_id="C-2")
    set_consent(member=withdrawn, consent=False, actor=None)
    return {"consenting": {first.pk, second.pk}, "withdrawn": withdrawn, "erased": erased}


def test_training_frames_hold_only_members_who_may_be_profiled(program):
    events, members = training_frames()

    assert set(members["member_id"]) == program["consenting"]
    assert len(members) == 2
    assert set(events["member_id"]) == program["consenting"]
    assert len(events) == 2 * (len(PURCHASE_DAYS) + 1)


def test_an_erasure_through_the_service_leaves_no_row_to_train_on(program):
    member = _member_with_history(external_id="E-2")
    erase_member(member_id=member.pk, actor=None)

    events, members = training_frames()

    assert member.pk not in set(members["member_id"])
    assert set(members["member_id"]) == program["consenting"]


def _captured(monkeypatch, engine: str) -> dict:
    """Replace the engine's training entry point by one that records what it was given."""
    seen: dict = {}

    def capture(**kwargs):
        seen.update(kwargs)
        raise MLError("captured")

    monkeypatch.setattr(training, engine, capture)
    return seen


def test_churn_training_hands_the_engine_no_row_of_a_member_without_consent(program, monkeypatch):
    seen = _captured(monkeypatch, "train_churn")

    with pytest.raises(TrainingDataError, match="captured"):
        train_churn_version(cutoff=CUTOFF, horizon_days=90)

    assert set(seen["members"]["member_id"]) == program["consenting"]
    assert set(seen["events"]["member_id"]) == program["consenting"]


def test_next_action_training_hands_the_engine_no_row_of_a_member_without_consent(
    program, monkeypatch
):
    seed_action_catalog()
    seen = _captured(monkeypatch, "train_next_action")

    with pytest.raises(TrainingDataError, match="captured"):
        train_next_action_version(cutoff=CUTOFF)

    assert set(seen["features"].index.get_level_values("member_id")) == program["consenting"]
    assert set(seen["labels"]["member_id"]) == program["consenting"]
