"""Training reads at most LOYALTY_TRAINING_MAX_MEMBERS members: a stable sample, only their
events, read range by range; the same whatever the reading path, and stated in the report."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from predictions import selectors
from predictions.ml.row_budget import within_budget
from predictions.selectors import events_frame, profiling_frames
from predictions.services.training import member_budget
from tests.factories import EventFactory, MemberFactory

pytestmark = pytest.mark.django_db
START = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def program():
    """Twelve consenting members with three purchases each, and one who withdrew."""
    members = [MemberFactory(consent_profiling=True) for _ in range(12)]
    MemberFactory(consent_profiling=False)
    for number, member in enumerate(members):
        for day in (0, 30, 60):
            EventFactory(
                member=member,
                kind="purchase",
                occurred_at=START + timedelta(days=day, hours=number),
            )
    return sorted(member.pk for member in members)


def _sorted(events: pd.DataFrame) -> pd.DataFrame:
    return events.sort_values(["member_id", "occurred_at"]).reset_index(drop=True)


def test_within_the_budget_every_profiled_member_is_read(program):
    events, members = profiling_frames(max_members=12)

    assert sorted(members["member_id"]) == program
    assert len(events) == 36


def test_beyond_the_budget_a_stable_sample_and_only_its_events_are_read(program, monkeypatch):
    monkeypatch.setattr(selectors, "PROFILING_READ_IDS", 2)  # several range reads

    events, members = profiling_frames(max_members=5)
    again, _ = profiling_frames(max_members=5)

    ids = np.array(program)
    expected = set(ids[within_budget(ids, budget=5, seed=0)].tolist())
    assert set(members["member_id"]) == expected
    assert set(events["member_id"]) == expected
    everything = events_frame(only_profiled=True)
    pd.testing.assert_frame_equal(
        _sorted(events), _sorted(everything[everything["member_id"].isin(expected)])
    )
    pd.testing.assert_frame_equal(_sorted(events), _sorted(again))
    larger, _ = profiling_frames(max_members=8)
    assert expected < set(larger["member_id"])  # a larger budget keeps a superset


def test_the_cutoff_applies_to_the_sample_too(program):
    events, _ = profiling_frames(before=START + timedelta(days=31), max_members=4)

    assert len(events) == 2 * 4
    assert events["occurred_at"].max() < pd.Timestamp(START + timedelta(days=31))


def test_the_report_states_the_member_budget(program, settings):
    settings.LOYALTY_TRAINING_MAX_MEMBERS = 5

    _, members = profiling_frames()
    stated = member_budget(len(members))

    assert (stated["max_members"], stated["profiled"], stated["read"]) == (5, 12, 5)
    assert "lowest stable hash" in stated["rule"]
