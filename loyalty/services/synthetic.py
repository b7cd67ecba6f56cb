"""Synthetic members and events at any scale, each member's true churn probability known.

Every member has latent habits: a purchase rate at the cutoff and a trend (the log change of that
rate over the observed window, continuing after it), a ratio of browsing sessions to purchases,
views per session, dwell time and channel habits, basket size, a favourite category, how often
they open the monthly mailing, and a dissatisfaction level that drives support contacts.

Purchases follow a Poisson process with rate `rate * exp(trend * (t - cutoff) / window)`. After
the cutoff a member either has left, with probability `p_leave = sigmoid(LEAVE_INTERCEPT +
LEAVE_PER_DISSATISFACTION * dissatisfaction - LEAVE_PER_TREND * trend)`, or keeps the process
going. The truth is then, by construction,

    P(no purchase within the horizon) = p_leave + (1 - p_leave) * exp(-expected purchases in it)

stored in SyntheticTruth with `churned`, one Bernoulli draw from it. Events after the cutoff agree
with that draw: a churned member has none, a retained one at least one purchase (a zero-truncated
Poisson process), so a model trained at the cutoff can be scored against real labels too.

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
LATENT_STREAM, EVENT_STREAM = 0, 1
SECONDS_PER_DAY = 86_400
DAYS_PER_YEAR = 365.0
# Members join up to three years before the window, and at least 60 days before its end.
EARLIEST_JOIN_DAYS = -3 * 365
MIN_HISTORY_DAYS = 60
# Purchases per year at the cutoff: gamma-distributed, mean 6; with sessions, mailings and
# support contacts a member has about 20 events, so 1 M members stay a manageable 20 M rows.
PURCHASE_RATE_SHAPE = 1.5
MEAN_PURCHASES_PER_YEAR = 6.0
TREND_MEAN, TREND_SD = -0.1, 0.6
SESSIONS_PER_PURCHASE_SHAPE, SESSIONS_PER_PURCHASE_SCALE = 2.0, 0.2
VIEWS_PER_SESSION_SHAPE, VIEWS_PER_SESSION_SCALE = 2.0, 0.5
CLICK_PROBABILITY, ADD_TO_CART_PROBABILITY, SEARCH_PROBABILITY = 0.3, 0.1, 0.3
DWELL_LOG_MEAN, DWELL_LOG_SD, DWELL_NOISE_SD = np.log(25.0), 0.5, 0.8
BASKET_LOG_MEAN, BASKET_LOG_SD, BASKET_NOISE_SD = np.log(30.0), 0.5, 0.6
FAVOURITE_CATEGORY_SHARE = 0.6
MAILING_INTERVAL_DAYS = 30
MAIL_OPEN_ALPHA, MAIL_OPEN_BETA = 1.5, 6.0
DISSATISFACTION_SHAPE, DISSATISFACTION_SCALE = 0.5, 1.0
SUPPORT_CONTACTS_PER_YEAR = 1.5  # at dissatisfaction 1
LEAVE_INTERCEPT, LEAVE_PER_DISSATISFACTION, LEAVE_PER_TREND = -3.5, 1.2, 0.8
# Stored probabilities stay strictly inside (0, 1); churned is drawn from the stored value.
PROBABILITY_FLOOR = 1e-6
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
    """(chunk index, the whole chunk's latent habits and truth, how many of them are wanted)."""
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
    window = float(spec.days)
    joined = rng.integers(EARLIEST_JOIN_DAYS, spec.days - MIN_HISTORY_DAYS + 1, size)
    rate = rng.gamma(
        PURCHASE_RATE_SHAPE, MEAN_PURCHASES_PER_YEAR / DAYS_PER_YEAR / PURCHASE_RATE_SHAPE, size
    )
    trend = rng.normal(TREND_MEAN, TREND_SD, size)
    dissatisfaction = rng.gamma(DISSATISFACTION_SHAPE, DISSATISFACTION_SCALE, size)
    latent = pd.DataFrame(
        {
            "number": index * MEMBERS_PER_CHUNK + np.arange(size),
            "joined": joined,
            "rate": rate,
            "trend": _nonzero(trend),
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
            "consent": rng.random(size) < CONSENT_SHARE,
            "age_band": rng.choice(AGE_BANDS, size),
            "region": rng.choice(REGIONS, size),
        }
    )
    expected_after = _expected_count(
        rate, latent["trend"].to_numpy(), window, window, window + spec.horizon_days
    )
    leave = 1.0 / (
        1.0
        + np.exp(
            -(
                LEAVE_INTERCEPT
                + LEAVE_PER_DISSATISFACTION * dissatisfaction
                - LEAVE_PER_TREND * trend
            )
        )
    )
    probability = leave + (1.0 - leave) * np.exp(-expected_after)
    probability = np.clip(probability, PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)
    latent["churn_probability"] = probability
    latent["churned"] = rng.random(size) < probability
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
            "age_band": latent["age_band"],
            "region": latent["region"],
        }
    )


# --- events ----------------------------------------------------------------------------------


def event_frame(spec: SyntheticSpec, index: int, latent: pd.DataFrame, wanted: int) -> pd.DataFrame:
    """Events of one chunk's first `wanted` members: before the cutoff, and after it for those
    retained. Drawn for the whole chunk, so that member n never depends on how many were asked."""
    rng = np.random.default_rng([spec.seed, index, EVENT_STREAM])
    events = _chunk_events(spec, latent, rng)
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


def _chunk_events(spec: SyntheticSpec, latent: pd.DataFrame, rng) -> pd.DataFrame:
    window = float(spec.days)
    end = window + spec.horizon_days
    cutoff_second = spec.days * SECONDS_PER_DAY
    size = len(latent)
    rate = latent["rate"].to_numpy()
    trend = latent["trend"].to_numpy()
    active_from = np.maximum(latent["joined"].to_numpy(), 0).astype(float)
    retained = ~latent["churned"].to_numpy()
    cutoff = np.full(size, window)

    # Purchases: Poisson before the cutoff; after it, at least one for the retained. Seconds are
    # clamped to their side of the cutoff, so rounding can never move a purchase across it.
    before_owner, before_t = _poisson_times(rng, rate, trend, active_from, cutoff, window)
    after_owner, after_t = _at_least_one(
        rng, rate[retained], trend[retained], window, end, np.flatnonzero(retained)
    )
    purchase_seconds = np.concatenate(
        [
            np.minimum(_seconds(before_t), cutoff_second - 1),
            np.maximum(_seconds(after_t), cutoff_second),
        ]
    )
    purchases = _purchases(
        rng, latent, np.concatenate([before_owner, after_owner]), purchase_seconds
    )

    # Sessions follow engagement: the purchase intensity times the member's session ratio.
    session_rate = rate * latent["sessions_per_purchase"].to_numpy()
    until = np.where(retained, end, window)
    session_owner, session_t = _poisson_times(rng, session_rate, trend, active_from, until, window)
    sessions = _sessions(rng, latent, session_owner, _seconds(session_t))

    mail = _mail_opens(rng, latent, active_from, until)
    support = _support_contacts(rng, latent, active_from, until)
    return pd.concat([purchases, sessions, mail, support], ignore_index=True)


def _seconds(days: np.ndarray) -> np.ndarray:
    return np.floor(days * SECONDS_PER_DAY).astype("int64")


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


def _mail_opens(
    rng, latent: pd.DataFrame, active_from: np.ndarray, until: np.ndarray
) -> pd.DataFrame:
    """A monthly mailing; members open each one with their own probability."""
    mailing_days = np.arange(0.0, until.max(), MAILING_INTERVAL_DAYS)
    size = len(latent)
    opened = rng.random((size, len(mailing_days))) < latent["mail_open"].to_numpy()[:, None]
    delay = rng.exponential(1.0, (size, len(mailing_days)))
    t = mailing_days[None, :] + delay
    receiving = (mailing_days[None, :] >= active_from[:, None]) & (t < until[:, None])
    owner, mailing = np.nonzero(opened & receiving)
    return pd.DataFrame(
        {
            "owner": owner,
            "second": _seconds(t[owner, mailing]),
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
    rng, latent: pd.DataFrame, active_from: np.ndarray, until: np.ndarray
) -> pd.DataFrame:
    yearly = latent["dissatisfaction"].to_numpy() * SUPPORT_CONTACTS_PER_YEAR
    counts = rng.poisson(yearly / DAYS_PER_YEAR * (until - active_from))
    owner = np.repeat(np.arange(len(latent)), counts)
    t = active_from[owner] + rng.random(len(owner)) * (until - active_from)[owner]
    return pd.DataFrame(
        {
            "owner": owner,
            "second": _seconds(t),
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


def _at_least_one(
    rng, rate, trend, window: float, end: float, owners: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The process on [window, end] conditioned on at least one event (for retained members)."""
    start = np.full(len(rate), window)
    expected = _expected_count(rate, trend, window, start, np.full(len(rate), end))
    # First event: inverse of its distribution given that it happens before `end`.
    first_expected = -np.log1p(rng.random(len(rate)) * np.expm1(-expected))
    first = np.minimum(
        _time_after(rate, trend, window, start, first_expected), np.nextafter(end, -np.inf)
    )
    rest_owner, rest_t = _poisson_times(rng, rate, trend, first, np.full(len(rate), end), window)
    owner = np.concatenate([np.arange(len(rate)), rest_owner])
    return owners[owner], np.concatenate([first, rest_t])


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
            for _, latent, wanted in latent_chunks(spec):
                latent = latent.iloc[:wanted]
                frame = pd.DataFrame(
                    {
                        "external_id": spec.external_id(latent["number"].to_numpy()),
                        "churn_probability": latent["churn_probability"],
                        "churned": latent["churned"],
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
                churned += int(latent["churned"].sum())
                probability_sum += float(latent["churn_probability"].sum())
    return created, churned, probability_sum
