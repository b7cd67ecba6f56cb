"""RFM segments: a readable name for each member from recency, frequency and monetary value.

The rule (the classic RFM segment map, on scores within a population, so that nothing in it
is tuned to one retailer's data):

- Recency R is the days since the last purchase (`days_since_last_purchase`, looking back two
  years), frequency F the purchase baskets of the last 365 days (`baskets_365`), monetary M
  the spend of the last 365 days (`spend_365`): the feature builder's own columns, fractional
  amounts and all.
- Each becomes a score from 1 to 5: the member's mid-rank percentile p among the population's
  values (the share below plus half the share equal: tied members share one score, whatever
  their number), score = 1 + min(4, floor(5 p)) (quintiles). A recent purchase scores high:
  R uses the percentile of the days counted the other way round. FM is the mean of F and M,
  rounded half up.
- The population is the members with a purchase within the lookback at the cutoff of the
  model version's training (`fit_rfm_scale`), stored with the version as RFM_SCALE_POINTS
  quantiles of each of R, F and M. Every score the version gives reads that one scale, so a
  refresh of 100 members gives each the segment a full run would; a retrained version
  re-fits it.
- The segment map (R rows, FM columns; RFM_SEGMENT_MAP):

  =====  =============  =============  ==============  =========  =========
  R\\FM  1              2              3               4          5
  =====  =============  =============  ==============  =========  =========
  5      new            potential      potential       champions  champions
  4      promising      potential      potential       loyal      loyal
  3      about to       about to       needs           loyal      loyal
         sleep          sleep          attention
  2      hibernating    hibernating    at risk         at risk    can't lose
  1      lost           lost           at risk         at risk    can't lose
  =====  =============  =============  ==============  =========  =========

  A member without a purchase within the lookback is `no_purchases`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .features import MEMBER_VALUE_FEATURE

RECENCY_FEATURE = "days_since_last_purchase"
FREQUENCY_FEATURE = "baskets_365"
MONETARY_FEATURE = MEMBER_VALUE_FEATURE  # spend over the last 365 days
# Scores run 1..SCORE_LEVELS (quintiles, as in the classic RFM map).
SCORE_LEVELS = 5
# A scale keeps each of R, F and M at this many evenly spaced quantiles (1 % apart): ties and
# the shape of the population survive, and the version's report stays small.
RFM_SCALE_POINTS = 101
# Fewer members with a purchase than this give no scale (and no segments): quintiles of a
# handful of members say nothing.
MIN_SCALE_MEMBERS = 25

NO_PURCHASES = "no_purchases"


@dataclass(frozen=True)
class SegmentInfo:
    code: str
    name: str
    description: str


RFM_SEGMENTS: tuple[SegmentInfo, ...] = (
    SegmentInfo("champions", "Champions", "Bought recently, buy often and spend the most."),
    SegmentInfo("loyal", "Loyal", "Buy often and spend well; not always the most recent."),
    SegmentInfo("potential", "Potential loyalists", "Recent buyers of middling frequency."),
    SegmentInfo("new", "New customers", "Bought very recently, rarely before."),
    SegmentInfo("promising", "Promising", "Bought recently, little so far."),
    SegmentInfo("needs_attention", "Needs attention", "Middling recency, frequency and spend."),
    SegmentInfo("about_to_sleep", "About to sleep", "Middling recency, low frequency and spend."),
    SegmentInfo("at_risk", "At risk", "Bought often or spent well, but long ago."),
    SegmentInfo("cant_lose", "Can't lose them", "Among the best buyers, but not for a long time."),
    SegmentInfo("hibernating", "Hibernating", "Long since the last purchase, little before."),
    SegmentInfo("lost", "Lost", "The longest since the last purchase, little before."),
    SegmentInfo(NO_PURCHASES, "No purchases", "No purchase within the lookback (two years)."),
)
RFM_SEGMENT_NAMES: dict[str, str] = {info.code: info.name for info in RFM_SEGMENTS}

# Rows: R score 5 down to 1; columns: FM score 1 to 5.
RFM_SEGMENT_MAP: dict[int, tuple[str, str, str, str, str]] = {
    5: ("new", "potential", "potential", "champions", "champions"),
    4: ("promising", "potential", "potential", "loyal", "loyal"),
    3: ("about_to_sleep", "about_to_sleep", "needs_attention", "loyal", "loyal"),
    2: ("hibernating", "hibernating", "at_risk", "at_risk", "cant_lose"),
    1: ("lost", "lost", "at_risk", "at_risk", "cant_lose"),
}


@dataclass(frozen=True)
class RfmScale:
    """Where recency, frequency and monetary value stand in a population: each at
    RFM_SCALE_POINTS quantiles, over `members` members with a purchase."""

    recency: tuple[float, ...]
    frequency: tuple[float, ...]
    monetary: tuple[float, ...]
    members: int

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": "RFM quintile scores (mid-rank percentiles within the population of members "
            "with a purchase at the training cutoff) on the classic R x FM segment map "
            "(predictions/ml/segments.py)",
            "members": self.members,
            "recency_points": list(self.recency),
            "frequency_points": list(self.frequency),
            "monetary_points": list(self.monetary),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> RfmScale | None:
        """The scale stored with `to_json`; None for none (a version trained before segments)."""
        if not data:
            return None
        return cls(
            recency=tuple(float(v) for v in data["recency_points"]),
            frequency=tuple(float(v) for v in data["frequency_points"]),
            monetary=tuple(float(v) for v in data["monetary_points"]),
            members=int(data["members"]),
        )


def _rfm_columns(features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Recency (nan: no purchase in the lookback), frequency and monetary value (0 when
    missing) of each row."""

    def column(name: str) -> np.ndarray:
        if name not in features.columns:
            return np.full(len(features), np.nan)
        return features[name].to_numpy(dtype="float64")

    recency = column(RECENCY_FEATURE)
    frequency = np.nan_to_num(column(FREQUENCY_FEATURE), nan=0.0)
    monetary = np.nan_to_num(column(MONETARY_FEATURE), nan=0.0)
    return recency, frequency, monetary


def fit_rfm_scale(features: pd.DataFrame) -> RfmScale | None:
    """The scale of a population's features (one row per member, the feature builder's
    columns); None when fewer than MIN_SCALE_MEMBERS have a purchase."""
    recency, frequency, monetary = _rfm_columns(features)
    bought = np.isfinite(recency)
    if int(bought.sum()) < MIN_SCALE_MEMBERS:
        return None
    grid = np.linspace(0.0, 1.0, RFM_SCALE_POINTS)

    def points(values: np.ndarray) -> tuple[float, ...]:
        return tuple(float(v) for v in np.quantile(values[bought], grid))

    return RfmScale(
        recency=points(recency),
        frequency=points(frequency),
        monetary=points(monetary),
        members=int(bought.sum()),
    )


def _scores(points: tuple[float, ...], values: np.ndarray) -> np.ndarray:
    """Quintile score 1..SCORE_LEVELS of each value by its mid-rank percentile in `points`."""
    scale = np.asarray(points, dtype="float64")
    below = np.searchsorted(scale, values, side="left")
    at_or_below = np.searchsorted(scale, values, side="right")
    percentile = (below + at_or_below) / (2.0 * len(scale))
    return 1 + np.minimum(SCORE_LEVELS - 1, np.floor(SCORE_LEVELS * percentile)).astype("int64")


def rfm_scores(features: pd.DataFrame, scale: RfmScale) -> pd.DataFrame:
    """R, F, M and FM scores (1..5) of each row, on the rows' index; 0 where a member has no
    purchase in the lookback."""
    recency, frequency, monetary = _rfm_columns(features)
    bought = np.isfinite(recency)
    # Fewer days since the purchase is better: score the days counted the other way round.
    r = (SCORE_LEVELS + 1) - _scores(scale.recency, np.nan_to_num(recency))
    f = _scores(scale.frequency, frequency)
    m = _scores(scale.monetary, monetary)
    fm = (f + m + 1) // 2  # the mean, rounded half up
    frame = pd.DataFrame({"r": r, "f": f, "m": m, "fm": fm}, index=features.index)
    frame.loc[~bought, :] = 0
    return frame


def segment_of(r: int, fm: int) -> str:
    """The map's segment of an R and an FM score (each 1..5); NO_PURCHASES for 0."""
    if r == 0 or fm == 0:
        return NO_PURCHASES
    return RFM_SEGMENT_MAP[r][fm - 1]


def rfm_segments(features: pd.DataFrame, scale: RfmScale | None) -> list[str]:
    """Each row's RFM segment code; '' for every row without a scale."""
    if scale is None:
        return [""] * len(features)
    scores = rfm_scores(features, scale)
    return [
        segment_of(int(r), int(fm))
        for r, fm in zip(scores["r"].to_numpy(), scores["fm"].to_numpy(), strict=True)
    ]
