"""When synthetic members act, and the events that makes.

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

Activity does not change as a member nears leaving, so that the leave time stays memoryless
given the habits (what `truth` relies on).
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from loyalty.services.synthetic.members import (
    ACTIVITY_STREAM,
    BASKET_NOISE_SD,
    CATEGORIES,
    EVENT_STREAM,
    SyntheticSpec,
    latent_chunks,
)

SECONDS_PER_DAY = 86_400
CLICK_PROBABILITY, ADD_TO_CART_PROBABILITY, SEARCH_PROBABILITY = 0.3, 0.1, 0.3
DWELL_NOISE_SD = 0.8
FAVOURITE_CATEGORY_SHARE = 0.6
MAILING_INTERVAL_DAYS = 30
MAIL_OPEN_DELAY_DAYS = 1.0  # mean of the exponential delay between a mailing and its opening
PRODUCTS = 5_000
SUPPORT_CHANNELS = np.array(["phone", "email", "chat"])


def event_frames(spec: SyntheticSpec) -> Iterator[pd.DataFrame]:
    for index, latent, wanted in latent_chunks(spec):
        yield event_frame(spec, index, latent, wanted)


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

    mailings = mailing_days(window + spec.horizon_days)
    shape = (len(latent), len(mailings))
    opened = rng.random(shape) < latent["mail_open"].to_numpy()[:, None]
    opened_at = mailings[None, :] + rng.exponential(MAIL_OPEN_DELAY_DAYS, shape)
    received = mailings[None, :] >= active_from[:, None]
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


def mailing_days(until: float) -> np.ndarray:
    """The days, counted from the window's start, on which a monthly mailing goes out."""
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


def expected_count(rate, trend, window: float, a, b) -> np.ndarray:
    """Integral of rate * exp(trend * (t - window) / window) over [a, b]."""
    level_a = np.exp(trend * (a - window) / window)
    return rate * window / trend * level_a * np.expm1(trend * (b - a) / window)


def _time_after(rate, trend, window: float, a, expected) -> np.ndarray:
    """The t at which the expected count since `a` reaches `expected` (inverse of the above)."""
    level_a = np.exp(trend * (a - window) / window)
    return a + window / trend * np.log1p(expected * trend / (rate * window * level_a))


def _poisson_times(rng, rate, trend, a, b, window: float) -> tuple[np.ndarray, np.ndarray]:
    """Event owners and times of each member's process on [a, b] (b <= a gives none)."""
    expected = np.where(b > a, expected_count(rate, trend, window, a, b), 0.0)
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
