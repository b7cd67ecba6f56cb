"""Synthetic members: the latent habits each one is drawn with, and the member rows they give.

Generation runs in fixed chunks of members, each from its own seeded random streams, so the same
seed gives the same data, memory stays flat, and a larger --members extends a smaller run of the
same seed.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

# Generation always draws whole chunks and drops what is beyond --members: member n is the same
# whatever the total, so a run extends a smaller one of the same seed.
MEMBERS_PER_CHUNK = 10_000
LATENT_STREAM, EVENT_STREAM, ACTIVITY_STREAM = 0, 1, 2
DAYS_PER_YEAR = 365.0
# Members join up to three years before the window, and at least 60 days before its end.
EARLIEST_JOIN_DAYS = -3 * 365
MIN_HISTORY_DAYS = 60
# Purchases per year at the cutoff: gamma-distributed, mean 10 (a member shopping most months);
# with sessions, mailings and support contacts a member has about 25 events, so 1 M members stay
# a manageable 25 M rows.
PURCHASE_RATE_SHAPE = 3.0
MEAN_PURCHASES_PER_YEAR = 10.0
TREND_MEAN, TREND_SD = -0.1, 0.6
SESSIONS_PER_PURCHASE_SHAPE, SESSIONS_PER_PURCHASE_SCALE = 2.0, 0.1
VIEWS_PER_SESSION_SHAPE, VIEWS_PER_SESSION_SCALE = 2.0, 0.5
DWELL_LOG_MEAN, DWELL_LOG_SD = np.log(25.0), 0.5
BASKET_LOG_MEAN, BASKET_LOG_SD, BASKET_NOISE_SD = np.log(30.0), 0.5, 0.6
MAIL_OPEN_ALPHA, MAIL_OPEN_BETA = 1.5, 6.0
DISSATISFACTION_SHAPE, DISSATISFACTION_SCALE = 0.5, 1.0
SUPPORT_CONTACTS_PER_YEAR = 1.5  # at dissatisfaction 1
# Leave hazard: 6 % a year at dissatisfaction 0 and a flat trend; each unit of dissatisfaction
# multiplies it by e^0.8, a halving purchase rate (trend -0.69) by 1.7. Dissatisfaction is
# gamma with scale 1, so its coefficient must stay below 1 for the mean hazard to be finite.
# With these rates about 11 % of members leave within the year before the cutoff, and 26 %
# (25 % of those who bought in that year) make no purchase over a 90-day horizon after it.
LEAVE_PER_YEAR, LEAVE_PER_DISSATISFACTION, LEAVE_PER_TREND = 0.06, 0.8, 0.8
CONSENT_SHARE = 0.9
# Of the members who consent to profiling, the share who also consent to be contacted with
# offers (members who refuse profiling are not contacted either): a program whose mailings most
# members accept, with some who want the service but not the offers.
MARKETING_CONSENT_SHARE = 0.9
# Tier from expected yearly spend (purchases per year x mean basket).
TIER_SPEND_FLOORS = ((1500.0, "platinum"), (600.0, "gold"), (200.0, "silver"), (0.0, "bronze"))
POINTS_PER_UNIT_SPENT = 1.0
CATEGORIES = np.array(
    ["GROCERY", "PRODUCE", "DAIRY", "MEAT", "BAKERY", "FROZEN", "DRINKS", "HOUSEHOLD", "BEAUTY"]
)
AGE_BANDS = np.array(["18-24", "25-34", "35-44", "45-54", "55-64", "65+"])
REGIONS = np.array(["north", "south", "east", "west", "central"])
# Trends closer to zero than this are treated as flat (the closed forms divide by the trend).
FLAT_TREND = 1e-9


@dataclass(frozen=True)
class SyntheticSpec:
    """One dataset: its seed, how many members, the observed window and the horizon after it."""

    seed: int
    members: int
    start: date
    days: int
    horizon_days: int

    @property
    def start_at(self) -> datetime:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)

    @property
    def cutoff(self) -> datetime:
        return self.start_at + timedelta(days=self.days)

    def external_id(self, numbers: np.ndarray) -> pd.Series:
        return f"syn-{self.seed}-" + pd.Series(numbers).astype(str)


def latent_chunks(spec: SyntheticSpec) -> Iterator[tuple[int, pd.DataFrame, int]]:
    """(chunk index, the whole chunk's latent habits, how many of them are wanted)."""
    for index, first in enumerate(range(0, spec.members, MEMBERS_PER_CHUNK)):
        yield index, _latent_chunk(spec, index), min(MEMBERS_PER_CHUNK, spec.members - first)


def member_frames(spec: SyntheticSpec) -> Iterator[pd.DataFrame]:
    for _, latent, wanted in latent_chunks(spec):
        yield member_frame(spec, latent.iloc[:wanted])


def _latent_chunk(spec: SyntheticSpec, index: int) -> pd.DataFrame:
    rng = np.random.default_rng([spec.seed, index, LATENT_STREAM])
    size = MEMBERS_PER_CHUNK
    joined = rng.integers(EARLIEST_JOIN_DAYS, spec.days - MIN_HISTORY_DAYS + 1, size)
    rate = rng.gamma(
        PURCHASE_RATE_SHAPE, MEAN_PURCHASES_PER_YEAR / DAYS_PER_YEAR / PURCHASE_RATE_SHAPE, size
    )
    trend = _nonzero(rng.normal(TREND_MEAN, TREND_SD, size))
    dissatisfaction = rng.gamma(DISSATISFACTION_SHAPE, DISSATISFACTION_SCALE, size)
    latent = pd.DataFrame(
        {
            "number": index * MEMBERS_PER_CHUNK + np.arange(size),
            "joined": joined,
            "active_from": np.maximum(joined, 0).astype(float),
            "rate": rate,
            "trend": trend,
            "sessions_per_purchase": rng.gamma(
                SESSIONS_PER_PURCHASE_SHAPE, SESSIONS_PER_PURCHASE_SCALE, size
            ),
            "views_per_session": rng.gamma(VIEWS_PER_SESSION_SHAPE, VIEWS_PER_SESSION_SCALE, size),
            "dwell_log_mean": rng.normal(DWELL_LOG_MEAN, DWELL_LOG_SD, size),
            "app_share": rng.beta(2.0, 2.0, size),
            "store_share": rng.beta(3.0, 2.0, size),
            "basket_log_mean": rng.normal(BASKET_LOG_MEAN, BASKET_LOG_SD, size),
            "favourite": rng.integers(0, len(CATEGORIES), size),
            "mail_open": rng.beta(MAIL_OPEN_ALPHA, MAIL_OPEN_BETA, size),
            "dissatisfaction": dissatisfaction,
            "support_rate": dissatisfaction * SUPPORT_CONTACTS_PER_YEAR / DAYS_PER_YEAR,
            "hazard": LEAVE_PER_YEAR
            / DAYS_PER_YEAR
            * np.exp(LEAVE_PER_DISSATISFACTION * dissatisfaction - LEAVE_PER_TREND * trend),
            "consent": rng.random(size) < CONSENT_SHARE,
            "age_band": rng.choice(AGE_BANDS, size),
            "region": rng.choice(REGIONS, size),
        }
    )
    # Drawn after everything else, so that adding it left every earlier draw of a seed as it was.
    latent["marketing"] = latent["consent"] & (rng.random(size) < MARKETING_CONSENT_SHARE)
    return latent


def member_frame(spec: SyntheticSpec, latent: pd.DataFrame) -> pd.DataFrame:
    yearly_spend = (
        latent["rate"] * DAYS_PER_YEAR * np.exp(latent["basket_log_mean"] + BASKET_NOISE_SD**2 / 2)
    )
    tier = pd.Series("bronze", index=latent.index)
    for floor, name in reversed(TIER_SPEND_FLOORS):
        tier = tier.mask(yearly_spend >= floor, name)
    joined = pd.Timestamp(spec.start) + pd.to_timedelta(latent["joined"], unit="D")
    return pd.DataFrame(
        {
            "external_id": spec.external_id(latent["number"].to_numpy()),
            "joined_at": joined,
            "tier": tier,
            "points_balance": np.floor(yearly_spend * POINTS_PER_UNIT_SPENT).astype("int64"),
            "consent_profiling": latent["consent"],
            "consent_marketing": latent["marketing"],
            "age_band": latent["age_band"],
            "region": latent["region"],
        }
    )


def _nonzero(trend: np.ndarray) -> np.ndarray:
    return np.where(np.abs(trend) < FLAT_TREND, FLAT_TREND, trend)
