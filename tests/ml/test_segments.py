"""RFM segments (`predictions.ml.segments`): quintile scores within a population, the segment
map, a fixed scale, no database."""

import itertools

import numpy as np
import pandas as pd
import pytest

from predictions.ml.segments import (
    NO_PURCHASES,
    RFM_SEGMENT_MAP,
    RFM_SEGMENTS,
    RfmScale,
    fit_rfm_scale,
    rfm_scores,
    rfm_segments,
)

# Five equally common values of each of R (days), F (baskets) and M (spend, fractional): their
# mid-rank percentiles are 0.1, 0.3, ..., 0.9, so each value is exactly one quintile score.
DAYS = (3.5, 20.0, 45.25, 90.0, 300.0)  # score R 5, 4, 3, 2, 1
BASKETS = (1.0, 2.0, 4.0, 7.0, 15.0)  # score F 1..5
SPEND = (9.99, 40.5, 120.0, 333.33, 1250.75)  # score M 1..5


def _grid() -> pd.DataFrame:
    """Every combination of the planted values once: 125 members."""
    rows = list(itertools.product(DAYS, BASKETS, SPEND))
    return pd.DataFrame(
        rows,
        columns=["days_since_last_purchase", "baskets_365", "spend_365"],
        index=pd.Index(range(1000, 1000 + len(rows)), name="member_id"),
    )


def _member(days, baskets, spend) -> pd.DataFrame:
    return pd.DataFrame(
        {"days_since_last_purchase": [days], "baskets_365": [baskets], "spend_365": [spend]},
        index=pd.Index([1], name="member_id"),
    )


def test_each_planted_value_gets_its_quintile_score():
    population = _grid()
    scale = fit_rfm_scale(population)

    scores = rfm_scores(population, scale)

    by_days = dict(zip(population["days_since_last_purchase"], scores["r"], strict=True))
    by_baskets = dict(zip(population["baskets_365"], scores["f"], strict=True))
    by_spend = dict(zip(population["spend_365"], scores["m"], strict=True))
    assert by_days == {3.5: 5, 20.0: 4, 45.25: 3, 90.0: 2, 300.0: 1}
    assert by_baskets == {1.0: 1, 2.0: 2, 4.0: 3, 7.0: 4, 15.0: 5}
    assert by_spend == {9.99: 1, 40.5: 2, 120.0: 3, 333.33: 4, 1250.75: 5}
    assert scale.members == 125


@pytest.mark.parametrize(
    ("member", "segment"),
    [
        ((3.5, 15.0, 1250.75), "champions"),  # R5 FM5
        ((20.0, 7.0, 333.33), "loyal"),  # R4 FM4
        ((45.25, 15.0, 333.33), "loyal"),  # R3 FM5 (4.5 rounds up)
        ((3.5, 2.0, 120.0), "potential"),  # R5 FM3 (2.5 rounds up)
        ((3.5, 1.0, 9.99), "new"),  # R5 FM1
        ((20.0, 1.0, 9.99), "promising"),  # R4 FM1
        ((45.25, 4.0, 120.0), "needs_attention"),  # R3 FM3
        ((45.25, 1.0, 40.5), "about_to_sleep"),  # R3 FM2 (1.5 rounds up)
        ((90.0, 7.0, 120.0), "at_risk"),  # R2 FM4 (3.5 rounds up)
        ((300.0, 15.0, 1250.75), "cant_lose"),  # R1 FM5
        ((90.0, 1.0, 9.99), "hibernating"),  # R2 FM1
        ((300.0, 2.0, 9.99), "lost"),  # R1 FM2 (1.5 rounds up)
        ((np.nan, 0.0, 0.0), NO_PURCHASES),  # no purchase in the lookback
    ],
)
def test_planted_members_land_in_their_segment(member, segment):
    scale = fit_rfm_scale(_grid())

    assert rfm_segments(_member(*member), scale) == [segment]


def test_every_named_segment_is_reachable():
    population = pd.concat([_grid(), _member(np.nan, 0.0, 0.0)])
    scale = fit_rfm_scale(population)

    found = set(rfm_segments(population, scale))

    assert found == {info.code for info in RFM_SEGMENTS}
    assert {code for row in RFM_SEGMENT_MAP.values() for code in row} | {NO_PURCHASES} == found


def test_a_partial_refresh_gives_each_member_the_segment_of_the_full_run():
    """The scale is fitted once (with the model version) and stored: scoring 10 members with
    it gives each the segment it gets among all 125, through its JSON round trip."""
    population = _grid()
    stored = fit_rfm_scale(population).to_json()
    segments = rfm_segments(population, RfmScale.from_json(stored))
    full = dict(zip(population.index, segments, strict=True))
    few = population.sample(10, random_state=3)

    partial = dict(zip(few.index, rfm_segments(few, RfmScale.from_json(stored)), strict=True))

    assert partial == {member: full[member] for member in few.index}


def test_tied_members_share_one_score_whatever_their_share():
    # Most members bought once: they all score alike (not spread over quintiles by order).
    population = _grid()
    population.loc[population.index[:90], "baskets_365"] = 1.0
    scale = fit_rfm_scale(population)

    scores = rfm_scores(population, scale)

    assert scores.loc[population.index[:90], "f"].nunique() == 1
    # Mid-rank 0.36 (90 of 125 tied at the bottom): the second quintile for all of them.
    assert int(scores.loc[population.index[0], "f"]) == 2


def test_too_few_buyers_give_no_scale_and_no_segment():
    few = _grid().iloc[:24]

    assert fit_rfm_scale(few) is None
    assert rfm_segments(few, None) == [""] * 24
    assert RfmScale.from_json(None) is None
