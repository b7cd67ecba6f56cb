"""Synthetic members and events at any scale, each member's true churn probability known.

Every member has latent habits: a purchase rate at the cutoff and a trend (the log change of that
rate over the observed window, continuing before and after it), a ratio of browsing sessions to
purchases, views per session, dwell time and channel habits, basket size, a favourite category,
how often they open the monthly mailing, and a dissatisfaction level that drives support contacts.

One mechanism runs through the whole timeline, so that churn labels at any past cutoff (what a
model trains on) come from the same process as the truth at the generator's cutoff:

- Each member is in the programme from `active_from`, the later of their join date and the
  window's start (the roster is the members present when the window opens or joining during it),
  and leaves at `active_from + Exp(hazard)`, with a constant leave hazard per day
  `hazard = LEAVE_PER_YEAR / 365 * exp(LEAVE_PER_DISSATISFACTION * dissatisfaction
  - LEAVE_PER_TREND * trend)`.
- Until they leave, and never after, they purchase by a Poisson process of rate
  `r(t) = rate * exp(trend * (t - cutoff) / window)`, start sessions at `sessions_per_purchase *
  r(t)`, contact support at a constant `SUPPORT_CONTACTS_PER_YEAR * dissatisfaction`, and open
  each monthly mailing with their own probability after an exponential delay.
- Events are simulated the same way up to the cutoff and over the horizon after it, and
  `churned` is read off them: no purchase in [cutoff, cutoff + horizon).

The stored truth is the probability of that outcome given the member's latent habits and their
whole history before the cutoff (everything a model could see, plus the habits), so `churned` is
one realization of exactly it. With `a` the member's last activity before the cutoff `C` (or
`active_from` when none; they were in the programme then), `h` the horizon, `lam` the hazard,
`K(a, y)` the expected count of purchases, sessions and support contacts over [a, y) and
`M(y)` the chance that no mailing still unopened at `a` gets opened in (a, y):

    L(y) = exp(-lam * (y - a) - K(a, y)) * M(y)     # in until y and silent over (a, y)
    B    = integral from a to C of lam * L(y) dy     # left, silently, before the cutoff
    A    = L(C)                                      # still in at the cutoff, silent since a
    S    = exp(-lam * h - R(C, C + h)) + integral from 0 to h of lam * exp(-lam * t - R(C, C + t))
           dt                                        # no purchase in the horizon if still in
    P(churn) = (B + A * S) / (A + B)

where `R` is the expected purchase count. The integrals are taken numerically on grids on which
the log of the integrand is piecewise almost linear (nodes packed after each mailing, where the
open delay makes it curve), integrating the exponential of the linear interpolation exactly
(within 1e-4 of a 50 times finer grid).

The truth does not condition on the leave time itself: nothing a model reads could reveal it,
and a truth of exactly 1 for members gone but not yet visibly so would be unreachable by any
model. A member who left long before the cutoff is still stored and scored (a model's training
population, members who bought in the lookback, includes such members at past cutoffs): their
long silence makes B dominate and their probability near 1. Activity does not change as a
member nears leaving, so that the leave time stays memoryless given the habits and the formula
above is the whole truth.

Members and events go through the import services (same validation and writer). Generation runs
in fixed chunks of members, each from its own seeded random streams, so the same seed gives the
same data, memory stays flat, and a larger --members extends a smaller run of the same seed.
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
from django.db import connection, transaction

from loyalty.exceptions import ConflictError
from loyalty.models import Member, SyntheticTruth
from loyalty.services.csv_validation import ColumnKind
from loyalty.services.imports import (
    ImportResult,
    ProgressCallback,
    import_events,
    import_members,
    load_staging_table,
    staging_table,
)

# Generation always draws whole chunks and drops what is beyond --members: member n is the same
# whatever the total, so a run extends a smaller one of the same seed.
MEMBERS_PER_CHUNK = 10_000
LATENT_STREAM, EVENT_STREAM, ACTIVITY_STREAM = 0, 1, 2
SECONDS_PER_DAY = 86_400
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
CLICK_PROBABILITY, ADD_TO_CART_PROBABILITY, SEARCH_PROBABILITY = 0.3, 0.1, 0.3
DWELL_LOG_MEAN, DWELL_LOG_SD, DWELL_NOISE_SD = np.log(25.0), 0.5, 0.8
BASKET_LOG_MEAN, BASKET_LOG_SD, BASKET_NOISE_SD = np.log(30.0), 0.5, 0.6
FAVOURITE_CATEGORY_SHARE = 0.6
MAILING_INTERVAL_DAYS = 30
MAIL_OPEN_ALPHA, MAIL_OPEN_BETA = 1.5, 6.0
MAIL_OPEN_DELAY_DAYS = 1.0  # mean of the exponential delay between a mailing and its opening
# Past this many mean delays after a mailing, the chance it is still to be opened is below
# e^-40, under the precision of a float: it is taken as zero.
MAIL_OPEN_SETTLED_DELAYS = 40.0
DISSATISFACTION_SHAPE, DISSATISFACTION_SCALE = 0.5, 1.0
SUPPORT_CONTACTS_PER_YEAR = 1.5  # at dissatisfaction 1
# Leave hazard: 6 % a year at dissatisfaction 0 and a flat trend; each unit of dissatisfaction
# multiplies it by e^0.8, a halving purchase rate (trend -0.69) by 1.7. Dissatisfaction is
# gamma with scale 1, so its coefficient must stay below 1 for the mean hazard to be finite.
# With these rates about 11 % of members leave within the year before the cutoff, and 26 %
# (25 % of those who bought in that year) make no purchase over a 90-day horizon after it.
LEAVE_PER_YEAR, LEAVE_PER_DISSATISFACTION, LEAVE_PER_TREND = 0.06, 0.8, 0.8
# Stored probabilities stay strictly inside (0, 1).
PROBABILITY_FLOOR = 1e-6
# Nodes of the integral over the leave time, in days after each mailing: dense where the open
# delay makes the log of the integrand bend, every two days where it is nearly linear.
MAILING_GRID_OFFSETS = np.concatenate(
    [
        [0.0, 0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0],
        np.arange(6.0, MAILING_INTERVAL_DAYS, 2.0),
    ]
)
HORIZON_GRID_STEPS = 128
# Below this change of the log integrand over a step, (e^d - 1) / d is taken as 1 + d / 2: the
# quotient would lose its precision.
FLAT_RISE = 1e-8
# Members per block of the posterior's (members x nodes) arrays: bounds their memory.
POSTERIOR_BLOCK = 2_000
CONSENT_SHARE = 0.9
PRODUCTS = 5_000
# Tier from expected yearly spend (purchases per year x mean basket).
TIER_SPEND_FLOORS = ((1500.0, "platinum"), (600.0, "gold"), (200.0, "silver"), (0.0, "bronze"))
POINTS_PER_UNIT_SPENT = 1.0
CATEGORIES = np.array(
    ["GROCERY", "PRODUCE", "DAIRY", "MEAT", "BAKERY", "FROZEN", "DRINKS", "HOUSEHOLD", "BEAUTY"]
)
AGE_BANDS = np.array(["18-24", "25-34", "35-44", "45-54", "55-64", "65+"])
REGIONS = np.array(["north", "south", "east", "west", "central"])
SUPPORT_CHANNELS = np.array(["phone", "email", "chat"])
# Trends closer to zero than this are treated as flat (the closed forms divide by the trend).
FLAT_TREND = 1e-9


@dataclass(frozen=True)
class SyntheticSpec:
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


@dataclass(frozen=True)
class SyntheticResult:
    spec: SyntheticSpec
    members: ImportResult
    events: ImportResult
    truths_created: int
    churned: int
    mean_churn_probability: float
    seconds: float

    def summary_lines(self) -> list[str]:
        spec = self.spec
        return [
            f"seed {spec.seed}: {spec.members:,} members, events from {spec.start} to the "
            f"cutoff {spec.cutoff:%Y-%m-%d} and {spec.horizon_days} days after, "
            f"in {self.seconds:.1f} s",
            self.members.summary(),
            self.events.summary(),
            f"truth: {self.truths_created:,} rows created; {self.churned:,} members churned "
            f"in the horizon; mean true churn probability {self.mean_churn_probability:.3f}",
        ]


def generate_members(
    *,
    members: int,
    seed: int,
    start: date = date(2025, 1, 1),
    days: int = 365,
    horizon_days: int = 90,
    progress: ProgressCallback | None = None,
) -> SyntheticResult:
    """Generate and store `members` synthetic members, their events and their truth.

    Running it again with the same arguments changes nothing. A seed already used with another
    window or horizon raises ConflictError: one seed is one dataset.
    """
    if members < 1 or days < MIN_HISTORY_DAYS or horizon_days < 1:
        raise ValueError(
            f"members must be positive, days at least {MIN_HISTORY_DAYS}, horizon positive."
        )
    spec = SyntheticSpec(
        seed=seed, members=members, start=start, days=days, horizon_days=horizon_days
    )
    started = time.perf_counter()
    clash = SyntheticTruth.objects.filter(seed=seed).exclude(
        cutoff=spec.cutoff, horizon_days=horizon_days
    )
    if clash.exists():
        raise ConflictError(
            f"Seed {seed} was generated with another window or horizon; use a new seed.",
            seed=seed,
        )
    member_result = import_members(
        source=member_frames(spec),
        source_name=f"synthetic seed={seed}",
        progress=progress,
    )
    event_result = import_events(
        source=event_frames(spec),
        source_name=f"synthetic seed={seed}",
        progress=progress,
    )
    created, churned, probability_sum = _store_truth(spec)
    return SyntheticResult(
        spec=spec,
        members=member_result,
        events=event_result,
        truths_created=created,
        churned=churned,
        mean_churn_probability=probability_sum / members,
        seconds=time.perf_counter() - started,
    )


# --- latent habits ---------------------------------------------------------------------------


def latent_chunks(spec: SyntheticSpec) -> Iterator[tuple[int, pd.DataFrame, int]]:
    """(chunk index, the whole chunk's latent habits, how many of them are wanted)."""
    for index, first in enumerate(range(0, spec.members, MEMBERS_PER_CHUNK)):
        yield index, _latent_chunk(spec, index), min(MEMBERS_PER_CHUNK, spec.members - first)


def member_frames(spec: SyntheticSpec) -> Iterator[pd.DataFrame]:
    for _, latent, wanted in latent_chunks(spec):
        yield member_frame(spec, latent.iloc[:wanted])


def event_frames(spec: SyntheticSpec) -> Iterator[pd.DataFrame]:
    for index, latent, wanted in latent_chunks(spec):
        yield event_frame(spec, index, latent, wanted)


def _latent_chunk(spec: SyntheticSpec, index: int) -> pd.DataFrame:
    rng = np.random.default_rng([spec.seed, index, LATENT_STREAM])
    size = MEMBERS_PER_CHUNK
    joined = rng.integers(EARLIEST_JOIN_DAYS, spec.days - MIN_HISTORY_DAYS + 1, size)
    rate = rng.gamma(
        PURCHASE_RATE_SHAPE, MEAN_PURCHASES_PER_YEAR / DAYS_PER_YEAR / PURCHASE_RATE_SHAPE, size
    )
    trend = _nonzero(rng.normal(TREND_MEAN, TREND_SD, size))
    dissatisfaction = rng.gamma(DISSATISFACTION_SHAPE, DISSATISFACTION_SCALE, size)
    return pd.DataFrame(
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
            "age_band": latent["age_band"],
            "region": latent["region"],
        }
    )


# --- when members act ------------------------------------------------------------------------


@dataclass(frozen=True)
class Activity:
    """When each member of a chunk acts, in days since the window's start, up to the horizon's
    end: owners are positions in the chunk. Mail opens also carry their mailing's index."""

    leave: np.ndarray
    purchase_owner: np.ndarray
    purchase_t: np.ndarray
    session_owner: np.ndarray
    session_t: np.ndarray
    support_owner: np.ndarray
    support_t: np.ndarray
    mail_owner: np.ndarray
    mail_index: np.ndarray
    mail_t: np.ndarray


def simulate_activity(spec: SyntheticSpec, index: int, latent: pd.DataFrame) -> Activity:
    """Leave times and the times of every activity until then, for the whole chunk."""
    rng = np.random.default_rng([spec.seed, index, ACTIVITY_STREAM])
    window = float(spec.days)
    rate = latent["rate"].to_numpy()
    trend = latent["trend"].to_numpy()
    active_from = latent["active_from"].to_numpy()
    leave = active_from + rng.exponential(1.0 / latent["hazard"].to_numpy())
    until = np.minimum(leave, window + spec.horizon_days)

    purchase_owner, purchase_t = _poisson_times(rng, rate, trend, active_from, until, window)
    session_rate = rate * latent["sessions_per_purchase"].to_numpy()
    session_owner, session_t = _poisson_times(rng, session_rate, trend, active_from, until, window)

    counts = rng.poisson(latent["support_rate"].to_numpy() * (until - active_from))
    support_owner = np.repeat(np.arange(len(latent)), counts)
    span = (until - active_from)[support_owner]
    support_t = active_from[support_owner] + rng.random(len(support_owner)) * span

    mailing_days = _mailing_days(window + spec.horizon_days)
    shape = (len(latent), len(mailing_days))
    opened = rng.random(shape) < latent["mail_open"].to_numpy()[:, None]
    opened_at = mailing_days[None, :] + rng.exponential(MAIL_OPEN_DELAY_DAYS, shape)
    received = mailing_days[None, :] >= active_from[:, None]
    mail_owner, mail_index = np.nonzero(opened & received & (opened_at < until[:, None]))
    return Activity(
        leave=leave,
        purchase_owner=purchase_owner,
        purchase_t=purchase_t,
        session_owner=session_owner,
        session_t=session_t,
        support_owner=support_owner,
        support_t=support_t,
        mail_owner=mail_owner,
        mail_index=mail_index,
        mail_t=opened_at[mail_owner, mail_index],
    )


def _mailing_days(until: float) -> np.ndarray:
    return np.arange(0.0, until, MAILING_INTERVAL_DAYS)


# --- events ----------------------------------------------------------------------------------


def event_frame(spec: SyntheticSpec, index: int, latent: pd.DataFrame, wanted: int) -> pd.DataFrame:
    """Events of one chunk's first `wanted` members, before the cutoff and over the horizon.
    Drawn for the whole chunk, so that member n never depends on how many were asked."""
    activity = simulate_activity(spec, index, latent)
    rng = np.random.default_rng([spec.seed, index, EVENT_STREAM])
    events = _chunk_events(spec, latent, activity, rng)
    events = events[events["owner"] < wanted]
    numbers = latent["number"].to_numpy()[events["owner"].to_numpy()]
    return pd.DataFrame(
        {
            "member_external_id": spec.external_id(numbers).to_numpy(),
            "occurred_at": pd.Timestamp(spec.start_at)
            + pd.to_timedelta(events["second"].to_numpy(), unit="s"),
            "kind": events["kind"].to_numpy(),
            "amount": events["amount"].to_numpy(),
            "quantity": events["quantity"].to_numpy(),
            "category": events["category"].to_numpy(),
            "channel": events["channel"].to_numpy(),
            "session_id": events["session_id"].to_numpy(),
            "dwell_seconds": events["dwell_seconds"].to_numpy(),
            "product_id": events["product_id"].to_numpy(),
        }
    )


def _chunk_events(
    spec: SyntheticSpec, latent: pd.DataFrame, activity: Activity, rng
) -> pd.DataFrame:
    def seconds(days: np.ndarray) -> np.ndarray:
        return _seconds(days, spec)

    return pd.concat(
        [
            _purchases(rng, latent, activity.purchase_owner, seconds(activity.purchase_t)),
            _sessions(rng, latent, activity.session_owner, seconds(activity.session_t)),
            _mail_opens(activity.mail_owner, activity.mail_index, seconds(activity.mail_t)),
            _support_contacts(rng, latent, activity.support_owner, seconds(activity.support_t)),
        ],
        ignore_index=True,
    )


def _seconds(days: np.ndarray, spec: SyntheticSpec) -> np.ndarray:
    """Whole seconds since the window's start, kept on their side of the cutoff and before the
    horizon's end, so that rounding can never move an event across either."""
    cutoff, end = spec.days * SECONDS_PER_DAY, (spec.days + spec.horizon_days) * SECONDS_PER_DAY
    second = np.floor(days * SECONDS_PER_DAY).astype("int64")
    second = np.where(days < spec.days, np.minimum(second, cutoff - 1), np.maximum(second, cutoff))
    return np.minimum(second, end - 1)


def _purchases(rng, latent: pd.DataFrame, owner: np.ndarray, second: np.ndarray) -> pd.DataFrame:
    count = len(owner)
    order = np.lexsort((second, owner))
    owner, second = owner[order], second[order]
    basket = np.exp(
        latent["basket_log_mean"].to_numpy()[owner] + rng.normal(0.0, BASKET_NOISE_SD, count)
    )
    in_store = rng.random(count) < latent["store_share"].to_numpy()[owner]
    in_app = rng.random(count) < latent["app_share"].to_numpy()[owner]
    channel = np.where(in_store, "store", np.where(in_app, "app", "web"))
    return pd.DataFrame(
        {
            "owner": owner,
            "second": second,
            "kind": "purchase",
            "amount": np.round(basket, 2),
            "quantity": (1 + rng.poisson(1.5, count)).astype(float),
            "category": _categories(rng, latent, owner),
            "channel": channel,
            "session_id": _labels("b", latent, owner, _rank_within(owner)),
            "dwell_seconds": np.nan,
            "product_id": _products(rng, count),
        }
    )


def _sessions(rng, latent: pd.DataFrame, owner: np.ndarray, start: np.ndarray) -> pd.DataFrame:
    # `start` is in seconds since the window's start.
    """A login, maybe a search, then views (with dwell), some clicked or added to the cart."""
    order = np.lexsort((start, owner))
    owner, start = owner[order], start[order]
    count = len(owner)
    session_ids = _labels("s", latent, owner, _rank_within(owner))
    channel = np.where(rng.random(count) < latent["app_share"].to_numpy()[owner], "app", "web")

    views = 1 + rng.poisson(latent["views_per_session"].to_numpy()[owner])
    view_session = np.repeat(np.arange(count), views)
    view_owner = owner[view_session]
    dwell = np.round(
        np.exp(
            latent["dwell_log_mean"].to_numpy()[view_owner]
            + rng.normal(0.0, DWELL_NOISE_SD, len(view_session))
        ),
        1,
    )
    # Each view starts a whole second after the previous one ends: distinct times per session.
    step = np.floor(dwell) + 1.0
    ends = np.cumsum(step)
    firsts = np.repeat(np.cumsum(views) - views, views)
    offsets = ends - step - np.concatenate([[0.0], ends])[firsts] + 1.0
    view_second = start[view_session] + offsets.astype("int64")
    view_products = _products(rng, len(view_session))
    view_categories = _categories(rng, latent, view_owner)
    clicked = rng.random(len(view_session)) < CLICK_PROBABILITY
    carted = rng.random(len(view_session)) < ADD_TO_CART_PROBABILITY
    searched = rng.random(count) < SEARCH_PROBABILITY

    def frame(kind: str, rows: np.ndarray, per_view: bool, dwell_values=np.nan) -> pd.DataFrame:
        session = view_session[rows] if per_view else rows
        return pd.DataFrame(
            {
                "owner": owner[session],
                "second": view_second[rows] if per_view else start[rows],
                "kind": kind,
                "amount": np.nan,
                "quantity": np.nan,
                "category": view_categories[rows] if per_view else "",
                "channel": channel[session],
                "session_id": session_ids[session],
                "dwell_seconds": dwell_values,
                "product_id": view_products[rows] if per_view else "",
            }
        )

    every_view = np.arange(len(view_session))
    return pd.concat(
        [
            frame("login", np.arange(count), per_view=False),
            frame("search", np.flatnonzero(searched), per_view=False),
            frame("view", every_view, per_view=True, dwell_values=dwell),
            frame("click", np.flatnonzero(clicked), per_view=True),
            frame("add_to_cart", np.flatnonzero(carted), per_view=True),
        ],
        ignore_index=True,
    )


def _mail_opens(owner: np.ndarray, mailing: np.ndarray, second: np.ndarray) -> pd.DataFrame:
    """Opens of the monthly mailing (one session id per mailing)."""
    return pd.DataFrame(
        {
            "owner": owner,
            "second": second,
            "kind": "email_open",
            "amount": np.nan,
            "quantity": np.nan,
            "category": "",
            "channel": "email",
            "session_id": "mail-" + pd.Series(mailing).astype(str).to_numpy(),
            "dwell_seconds": np.nan,
            "product_id": "",
        }
    )


def _support_contacts(
    rng, latent: pd.DataFrame, owner: np.ndarray, second: np.ndarray
) -> pd.DataFrame:
    order = np.lexsort((second, owner))
    owner, second = owner[order], second[order]
    return pd.DataFrame(
        {
            "owner": owner,
            "second": second,
            "kind": "support_contact",
            "amount": np.nan,
            "quantity": np.nan,
            "category": "",
            "channel": rng.choice(SUPPORT_CHANNELS, len(owner)),
            "session_id": _labels("support", latent, owner, _rank_within(owner)),
            "dwell_seconds": np.nan,
            "product_id": "",
        }
    )


# --- Poisson processes with an exponential trend ---------------------------------------------


def _nonzero(trend: np.ndarray) -> np.ndarray:
    return np.where(np.abs(trend) < FLAT_TREND, FLAT_TREND, trend)


def _expected_count(rate, trend, window: float, a, b) -> np.ndarray:
    """Integral of rate * exp(trend * (t - window) / window) over [a, b]."""
    level_a = np.exp(trend * (a - window) / window)
    return rate * window / trend * level_a * np.expm1(trend * (b - a) / window)


def _time_after(rate, trend, window: float, a, expected) -> np.ndarray:
    """The t at which the expected count since `a` reaches `expected` (inverse of the above)."""
    level_a = np.exp(trend * (a - window) / window)
    return a + window / trend * np.log1p(expected * trend / (rate * window * level_a))


def _poisson_times(rng, rate, trend, a, b, window: float) -> tuple[np.ndarray, np.ndarray]:
    """Event owners and times of each member's process on [a, b] (b <= a gives none)."""
    expected = np.where(b > a, _expected_count(rate, trend, window, a, b), 0.0)
    counts = rng.poisson(expected)
    owner = np.repeat(np.arange(len(rate)), counts)
    fraction = rng.random(len(owner))
    t = _time_after(rate[owner], trend[owner], window, a[owner], fraction * expected[owner])
    return owner, np.clip(t, a[owner], np.nextafter(b[owner], -np.inf))


# --- small helpers ---------------------------------------------------------------------------


def _rank_within(owner: np.ndarray) -> np.ndarray:
    """0, 1, 2... within each run of equal owners (owners sorted)."""
    if not len(owner):
        return owner
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    lengths = np.diff(np.r_[starts, len(owner)])
    return np.arange(len(owner)) - np.repeat(starts, lengths)


def _labels(prefix: str, latent: pd.DataFrame, owner: np.ndarray, rank: np.ndarray) -> np.ndarray:
    numbers = pd.Series(latent["number"].to_numpy()[owner]).astype(str)
    return (f"{prefix}-" + numbers + "-" + pd.Series(rank).astype(str)).to_numpy()


def _categories(rng, latent: pd.DataFrame, owner: np.ndarray) -> np.ndarray:
    favourite = latent["favourite"].to_numpy()[owner]
    other = rng.integers(0, len(CATEGORIES), len(owner))
    keep = rng.random(len(owner)) < FAVOURITE_CATEGORY_SHARE
    return CATEGORIES[np.where(keep, favourite, other)]


def _products(rng, count: int) -> np.ndarray:
    return ("sku-" + pd.Series(rng.integers(1, PRODUCTS + 1, count)).astype(str)).to_numpy()


# --- truth -----------------------------------------------------------------------------------


def true_churn(
    spec: SyntheticSpec, latent: pd.DataFrame, activity: Activity
) -> tuple[np.ndarray, np.ndarray]:
    """(churn probability given the habits and the history before the cutoff, churned).

    `churned` is what happened: no purchase in [cutoff, cutoff + horizon). The probability is
    the formula in the module's docstring."""
    window = float(spec.days)
    size = len(latent)
    returned = activity.purchase_owner[activity.purchase_t >= window]
    churned = ~np.isin(np.arange(size), returned)

    last = latent["active_from"].to_numpy().copy()
    opened_before = np.zeros((size, len(_mailing_days(window))), dtype=bool)
    for owner, t in (
        (activity.purchase_owner, activity.purchase_t),
        (activity.session_owner, activity.session_t),
        (activity.support_owner, activity.support_t),
        (activity.mail_owner, activity.mail_t),
    ):
        before = t < window
        np.maximum.at(last, owner[before], t[before])
    before = activity.mail_t < window
    opened_before[activity.mail_owner[before], activity.mail_index[before]] = True

    nodes = _silence_nodes(window)
    probability = np.empty(size)
    for lo in range(0, size, POSTERIOR_BLOCK):
        block = slice(lo, lo + POSTERIOR_BLOCK)
        left, stayed = _silence_masses(
            latent.iloc[block], last[block], opened_before[block], nodes, window
        )
        quiet = _no_purchase_if_in(latent.iloc[block], window, spec.horizon_days)
        with np.errstate(invalid="ignore", divide="ignore"):
            still_in = np.where(stayed > 0, stayed / (stayed + left), 0.0)
        probability[block] = 1.0 - still_in * (1.0 - quiet)
    probability = np.clip(probability, PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)
    return probability, churned


def _silence_nodes(window: float) -> np.ndarray:
    mailings = _mailing_days(window)
    nodes = (mailings[:, None] + MAILING_GRID_OFFSETS[None, :]).ravel()
    return np.unique(np.r_[nodes[nodes < window], window])


def _silence_masses(
    latent: pd.DataFrame,
    last: np.ndarray,
    opened_before: np.ndarray,
    nodes: np.ndarray,
    window: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(B, A) of the docstring: left silently before the cutoff, in at it and silent since."""
    hazard = latent["hazard"].to_numpy()[:, None]
    rate = latent["rate"].to_numpy()[:, None]
    trend = latent["trend"].to_numpy()[:, None]
    active_from = latent["active_from"].to_numpy()
    a = last[:, None]
    y = np.clip(nodes[None, :], a, window)
    # Purchases and sessions share the trend; support contacts and leaving are constant rates.
    per_purchase = 1.0 + latent["sessions_per_purchase"].to_numpy()[:, None]
    constant = hazard + latent["support_rate"].to_numpy()[:, None]
    log_l = -constant * (y - a) - per_purchase * _expected_count(rate, trend, window, a, y)
    # A mailing m received by then and not opened by `a` stays unopened over (a, y) with
    # probability (1 - p + p e^-(y - m)) / (1 - p + p e^-(a - m)) (delays in units of their
    # mean). That is 1 where y = a, so at every node up to m (where y is a, or m >= y >= a),
    # and 1 - p over the second factor once e^-(y - m) vanishes: the exact form is needed only
    # at the nodes of the first MAIL_OPEN_SETTLED_DELAYS mean delays after the mailing.
    p = latent["mail_open"].to_numpy()
    days = _mailing_days(window)
    settled_from = np.searchsorted(
        nodes, days + MAIL_OPEN_SETTLED_DELAYS * MAIL_OPEN_DELAY_DAYS, side="right"
    )
    settled_terms = np.zeros((len(last), len(days) + 1))
    for index, day in enumerate(days):
        pending = (day >= active_from) & ~opened_before[:, index]
        unopened_by_a = np.log1p(p * np.expm1(-np.maximum(last - day, 0.0) / MAIL_OPEN_DELAY_DAYS))
        settled_terms[:, index + 1] = pending * (np.log1p(-p) - unopened_by_a)
        first = np.searchsorted(nodes, day, side="right")
        recent = y[:, first : settled_from[index]]
        unopened_by_y = np.log1p(p[:, None] * np.expm1(-(recent - day) / MAIL_OPEN_DELAY_DAYS))
        log_l[:, first : settled_from[index]] += pending[:, None] * (
            unopened_by_y - unopened_by_a[:, None]
        )
    # Settled mailings add their constant from their settling node on; mailings are in order.
    settled_by_node = np.searchsorted(settled_from, np.arange(len(nodes)), side="right")
    log_l += np.cumsum(settled_terms, axis=1)[:, settled_by_node]
    left = hazard[:, 0] * _integral_of_exp(y, log_l)
    return left, np.exp(log_l[:, -1])


def _no_purchase_if_in(latent: pd.DataFrame, window: float, horizon_days: int) -> np.ndarray:
    """S of the docstring: no purchase in the horizon for a member still in at the cutoff."""
    hazard = latent["hazard"].to_numpy()[:, None]
    t = np.linspace(0.0, float(horizon_days), HORIZON_GRID_STEPS + 1)[None, :]
    rate = latent["rate"].to_numpy()[:, None]
    trend = latent["trend"].to_numpy()[:, None]
    log_s = -hazard * t - _expected_count(rate, trend, window, window, window + t)
    t = np.broadcast_to(t, log_s.shape)
    return np.exp(log_s[:, -1]) + hazard[:, 0] * _integral_of_exp(t, log_s)


def _integral_of_exp(x: np.ndarray, log_f: np.ndarray) -> np.ndarray:
    """Row-wise integral of exp(log_f) over x, log_f linear between nodes (exact for that)."""
    width = np.diff(x, axis=1)
    rise = np.diff(log_f, axis=1)
    small = np.abs(rise) < FLAT_RISE
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_factor = np.where(small, 1.0 + rise / 2, np.expm1(rise) / np.where(small, 1.0, rise))
    return (width * np.exp(log_f[:, :-1]) * mean_factor).sum(axis=1)


_TRUTH_STAGE = "loyalty_synthetic_truth_import"
_TRUTH_STAGE_COLUMNS = (
    ("external_id", ColumnKind.TEXT),
    ("churn_probability", ColumnKind.FLOAT),
    ("churned", ColumnKind.BOOLEAN),
)


def _store_truth(spec: SyntheticSpec) -> tuple[int, int, float]:
    """Write each member's truth once: (rows created, members churned, sum of probabilities)."""
    truths, members = SyntheticTruth._meta.db_table, Member._meta.db_table
    cutoff = connection.ops.adapt_datetimefield_value(spec.cutoff)
    created = churned = 0
    probability_sum = 0.0
    with transaction.atomic(), connection.cursor() as cursor:
        with staging_table(cursor=cursor, table=_TRUTH_STAGE, columns=_TRUTH_STAGE_COLUMNS):
            for index, latent, wanted in latent_chunks(spec):
                probability, churned_now = true_churn(
                    spec, latent, simulate_activity(spec, index, latent)
                )
                frame = pd.DataFrame(
                    {
                        "external_id": spec.external_id(latent["number"].to_numpy()[:wanted]),
                        "churn_probability": probability[:wanted],
                        "churned": churned_now[:wanted],
                    }
                )
                load_staging_table(
                    cursor=cursor, table=_TRUTH_STAGE, columns=_TRUTH_STAGE_COLUMNS, frame=frame
                )
                cursor.execute(
                    f"INSERT INTO {truths} "
                    "(member_id, seed, cutoff, horizon_days, churn_probability, churned) "
                    f"SELECT m.id, %s, %s, %s, s.churn_probability, s.churned "
                    f"FROM {_TRUTH_STAGE} s JOIN {members} m ON m.external_id = s.external_id "
                    "WHERE TRUE ON CONFLICT (member_id) DO NOTHING",
                    [spec.seed, cutoff, spec.horizon_days],
                )
                created += cursor.rowcount
                churned += int(frame["churned"].sum())
                probability_sum += float(frame["churn_probability"].sum())
    return created, churned, probability_sum
