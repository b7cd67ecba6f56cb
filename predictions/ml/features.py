"""Point-in-time member features from events: one row per member, only events before the cutoff.

Only events strictly before the cutoff and within MAX_LOOKBACK_DAYS count. Every feature is
computed in bulk over all members, on events compacted once (`prepare_events`), so that a panel
of many cutoffs pays the string handling once and each cutoff is a contiguous slice. A basket is
one purchase session (a session_id, else one member's purchases on one UTC day); items are
purchase lines, not quantities, whose units differ between data sets. Rates and trends account
for the days a member was actually observed (`member_aggregates`), so that members of different
tenure stay comparable. Data a data set does not have gives NaN or 0 columns, never an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import frames
from .contracts import FeatureInfo
from .member_aggregates import (
    distinct_first,
    gap_stats,
    group_max,
    group_min,
    pair_groups,
    rate_per_30d,
    share_of,
    symmetric_change,
    trend,
    weighted_mix,
)

DAY_NS = 86_400 * 10**9
WINDOWS = (30, 90, 180, 365)
MAX_LOOKBACK_DAYS = 730
DAYS_PER_YEAR = 365.25
# Code of "no value" in the integer-coded string columns.
MISSING_CODE = -1

BROWSE_KINDS = (frames.VIEW, frames.CLICK, frames.SEARCH, frames.ADD_TO_CART)
# Done *to* the member, not *by* them: a campaign received says nothing about activity, so it
# is left out of recency, active days, sessions and channel mix.
PROGRAM_INITIATED_KINDS = (frames.CAMPAIGN_RECEIVED,)

FEATURES: tuple[FeatureInfo, ...] = (
    FeatureInfo(
        "days_since_last_purchase",
        "Days since last purchase",
        "Days between the last purchase and the cutoff; empty if none in the last two years.",
    ),
    FeatureInfo(
        "days_since_last_event",
        "Days since last activity",
        "Days between the member's last event of any kind (campaigns received do not count) "
        "and the cutoff.",
    ),
    FeatureInfo(
        "tenure_days",
        "Membership age (days)",
        "Days since the member joined, or since their first event when the join date is unknown.",
    ),
    FeatureInfo(
        "purchase_overdue_ratio",
        "Time since purchase vs usual gap",
        "Days since last purchase divided by the member's mean gap between purchase days; "
        "above 1 means the next purchase is overdue.",
    ),
    FeatureInfo(
        "days_until_expected_purchase",
        "Days until expected purchase",
        "Mean gap between purchase days minus days since last purchase; negative when overdue.",
    ),
    FeatureInfo(
        "mean_gap_days",
        "Usual days between purchases",
        "Mean gap in days between consecutive purchase days.",
    ),
    FeatureInfo(
        "gap_std_days",
        "Spread of days between purchases",
        "Standard deviation of the gaps between purchase days (needs three purchase days).",
    ),
    FeatureInfo(
        "gap_cv",
        "Irregularity of purchases",
        "Coefficient of variation of the gaps between purchase days (std / mean).",
    ),
    FeatureInfo(
        "repeat_purchase_days",
        "Repeat purchase days",
        "Distinct purchase days after the first one in the last two years (BG/NBD's x).",
    ),
    FeatureInfo(
        "days_since_first_purchase",
        "Days since first purchase",
        "Days between the first purchase of the last two years and the cutoff (BG/NBD's T).",
    ),
    *(
        FeatureInfo(
            f"baskets_{w}", f"Baskets, last {w} days", f"Purchase baskets in the last {w} days."
        )
        for w in WINDOWS
    ),
    FeatureInfo(
        "baskets_per_30d",
        "Baskets per month",
        "Baskets per 30 days over the observed part of the last year.",
    ),
    *(
        FeatureInfo(
            f"basket_trend_{w}",
            f"Basket trend, {w} days",
            f"Change in basket rate: last {w} days vs the {w} days before (-1 to +1).",
        )
        for w in WINDOWS[:3]
    ),
    *(
        FeatureInfo(
            f"spend_{w}", f"Spend, last {w} days", f"Sum of purchase amounts in the last {w} days."
        )
        for w in WINDOWS
    ),
    FeatureInfo(
        "spend_per_30d",
        "Spend per month",
        "Spend per 30 days over the observed part of the last year.",
    ),
    *(
        FeatureInfo(
            f"spend_trend_{w}",
            f"Spend trend, {w} days",
            f"Change in spend rate: last {w} days vs the {w} days before (-1 to +1).",
        )
        for w in WINDOWS[:3]
    ),
    FeatureInfo(
        "mean_basket_value",
        "Average basket value",
        "Mean amount per basket over the last year.",
    ),
    FeatureInfo(
        "mean_basket_items",
        "Average items per basket",
        "Mean number of purchase lines per basket over the last year.",
    ),
    FeatureInfo(
        "basket_value_trend_90",
        "Basket value trend",
        "Change in mean basket value: last 90 days vs the 90 before (-1 to +1).",
    ),
    FeatureInfo("returns_365", "Returns, last year", "Return events in the last 365 days."),
    FeatureInfo(
        "return_share_365",
        "Share of returns",
        "Returns / (returns + purchase lines) in the last 365 days.",
    ),
    FeatureInfo(
        "coupons_redeemed_90",
        "Coupons redeemed, 90 days",
        "Coupon redemptions in the last 90 days.",
    ),
    FeatureInfo(
        "coupons_redeemed_365",
        "Coupons redeemed, last year",
        "Coupon redemptions in the last 365 days.",
    ),
    FeatureInfo(
        "campaigns_received_365",
        "Campaigns received, last year",
        "Campaigns the member received in the last 365 days.",
    ),
    FeatureInfo(
        "coupon_response_rate_365",
        "Coupon redemptions per campaign",
        "Coupons redeemed per campaign received in the last 365 days; empty without campaigns.",
    ),
    FeatureInfo(
        "points_redemptions_365",
        "Points redemptions, last year",
        "Points redemptions in the last 365 days.",
    ),
    FeatureInfo(
        "distinct_categories_365",
        "Categories bought",
        "Distinct product categories purchased in the last 365 days.",
    ),
    FeatureInfo(
        "category_entropy_365",
        "Category variety (entropy)",
        "Shannon entropy (bits) of purchase lines over categories in the last 365 days.",
    ),
    FeatureInfo(
        "top_category_share_365",
        "Share of top category",
        "Share of purchase lines in the member's most bought category, last 365 days.",
    ),
    FeatureInfo(
        "sessions_30", "Sessions, last 30 days", "Distinct sessions of member events, 30 days."
    ),
    FeatureInfo(
        "sessions_90", "Sessions, last 90 days", "Distinct sessions of member events, 90 days."
    ),
    FeatureInfo(
        "session_trend_30",
        "Session trend",
        "Change in session rate: last 30 days vs the 30 before (-1 to +1).",
    ),
    FeatureInfo(
        "mean_dwell_seconds_90",
        "Average dwell time (s)",
        "Mean dwell seconds of events with a dwell time, last 90 days.",
    ),
    FeatureInfo(
        "dwell_trend_90",
        "Dwell time trend",
        "Change in mean dwell: last 90 days vs the 90 before (-1 to +1).",
    ),
    FeatureInfo(
        "browse_events_30",
        "Browsing, last 30 days",
        "Views, clicks, searches and cart adds in the last 30 days.",
    ),
    FeatureInfo(
        "browse_events_90",
        "Browsing, last 90 days",
        "Views, clicks, searches and cart adds in the last 90 days.",
    ),
    FeatureInfo(
        "browse_trend_30",
        "Browsing trend",
        "Change in browsing rate: last 30 days vs the 30 before (-1 to +1).",
    ),
    FeatureInfo("cart_adds_90", "Cart adds, 90 days", "Add-to-cart events in the last 90 days."),
    FeatureInfo(
        "cart_conversion_90",
        "Baskets per cart add",
        "Baskets / add-to-cart events in the last 90 days; empty without cart adds.",
    ),
    FeatureInfo(
        "distinct_channels_365",
        "Channels used",
        "Distinct channels of the member's own events in the last 365 days.",
    ),
    FeatureInfo(
        "top_channel_share_365",
        "Share of main channel",
        "Share of the member's events in their most used channel, last 365 days.",
    ),
    FeatureInfo(
        "support_contacts_90", "Support contacts, 90 days", "Support contacts in the last 90 days."
    ),
    FeatureInfo(
        "support_contacts_365",
        "Support contacts, last year",
        "Support contacts in the last 365 days.",
    ),
    FeatureInfo(
        "days_since_support_contact",
        "Days since support contact",
        "Days since the last support contact; empty if none.",
    ),
    FeatureInfo("logins_30", "Logins, last 30 days", "Logins in the last 30 days."),
    FeatureInfo("logins_90", "Logins, last 90 days", "Logins in the last 90 days."),
    FeatureInfo(
        "login_trend_30",
        "Login trend",
        "Change in login rate: last 30 days vs the 30 before (-1 to +1).",
    ),
    FeatureInfo("email_opens_90", "Emails opened, 90 days", "Email opens in the last 90 days."),
    FeatureInfo(
        "email_open_trend_90",
        "Email open trend",
        "Change in email open rate: last 90 days vs the 90 before (-1 to +1).",
    ),
    FeatureInfo(
        "active_days_30", "Active days, last 30", "Days with any member event in the last 30 days."
    ),
    FeatureInfo(
        "active_days_90", "Active days, last 90", "Days with any member event in the last 90 days."
    ),
    FeatureInfo(
        "activity_trend_30",
        "Activity trend",
        "Change in active-day rate: last 30 days vs the 30 before (-1 to +1).",
    ),
    FeatureInfo(
        "season_sin",
        "Season (sine)",
        "sin(2 pi x day of year / 365.25) of the cutoff: with season_cos, the time of year.",
    ),
    FeatureInfo(
        "season_cos",
        "Season (cosine)",
        "cos(2 pi x day of year / 365.25) of the cutoff: with season_sin, the time of year.",
    ),
    FeatureInfo(
        "days_to_year_end",
        "Days to year end",
        "Days from the cutoff to the next 1 January (the year-end peak of most retailers).",
    ),
    FeatureInfo(
        "points_balance",
        "Points balance",
        "Current points balance (a snapshot, not as of the cutoff).",
    ),
    FeatureInfo(
        "tier_rank",
        "Tier rank",
        "Position of the member's tier on the ladder, -1 when unknown (a snapshot).",
    ),
)
FEATURE_CODES: tuple[str, ...] = tuple(info.code for info in FEATURES)
FEATURE_NAMES: dict[str, str] = {info.code: info.name for info in FEATURES}
# The member's value to the program, as routing ("member value in the top 5 %") and the queue's
# priority read it: what they spent over the last year.
MEMBER_VALUE_FEATURE = "spend_365"
# Member attributes known only as of today: using them at past training cutoffs leaks the future.
SNAPSHOT_FEATURES: tuple[str, ...] = ("points_balance", "tier_rank")
# Features of the cutoff, not of the member.
SEASON_FEATURES: tuple[str, ...] = ("season_sin", "season_cos", "days_to_year_end")


@dataclass(frozen=True)
class PreparedEvents:
    """Events compacted and integer-coded, sorted by time; reusable across cutoffs.

    Rows that share member, timestamp, kind, session, category and channel are merged
    (`lines` counts them, amounts and dwell are summed), which is exact for any cutoff because
    merged rows share one timestamp. `first_ns` is each member's first event over all history.
    """

    member_id: np.ndarray
    t_ns: np.ndarray
    kind: np.ndarray
    amount: np.ndarray
    lines: np.ndarray
    category: np.ndarray
    channel: np.ndarray
    session: np.ndarray
    dwell_sum: np.ndarray
    dwell_count: np.ndarray
    first_ns: pd.Series


def prepare_events(events: pd.DataFrame) -> PreparedEvents:
    """Normalize, integer-code and compact an events frame (see PreparedEvents)."""
    ev = frames.normalize_events(events)
    coded = pd.DataFrame(
        {
            "member_id": ev["member_id"].to_numpy(),
            "t_ns": ev["occurred_at"].to_numpy(dtype="datetime64[ns]").view("int64"),
            "kind": ev["kind"].map(frames.KIND_CODE).to_numpy(dtype="int8"),
            "session": _codes(ev["session_id"]).astype("int64"),
            "category": _codes(ev["category"]),
            "channel": _codes(ev["channel"]),
            "amount": ev["amount"].to_numpy(),
            "dwell": ev["dwell_seconds"].to_numpy(),
        }
    )
    coded["has_dwell"] = coded["dwell"].notna().astype("float64")
    keys = ["member_id", "t_ns", "kind", "session", "category", "channel"]
    compact = (
        coded.groupby(keys, sort=False)
        .agg(
            amount=("amount", "sum"),
            has_amount=("amount", "count"),
            lines=("kind", "size"),
            dwell_sum=("dwell", "sum"),
            dwell_count=("has_dwell", "sum"),
        )
        .reset_index()
        .sort_values("t_ns", kind="stable")
    )
    amount = compact["amount"].to_numpy(dtype="float64")
    amount[compact["has_amount"].to_numpy() == 0] = np.nan
    first_ns = coded.groupby("member_id")["t_ns"].min()
    return PreparedEvents(
        member_id=compact["member_id"].to_numpy(dtype="int64"),
        t_ns=compact["t_ns"].to_numpy(dtype="int64"),
        kind=compact["kind"].to_numpy(dtype="int8"),
        amount=amount,
        lines=compact["lines"].to_numpy(dtype="float64"),
        category=compact["category"].to_numpy(dtype="int32"),
        channel=compact["channel"].to_numpy(dtype="int32"),
        session=compact["session"].to_numpy(dtype="int64"),
        dwell_sum=compact["dwell_sum"].to_numpy(dtype="float64"),
        dwell_count=compact["dwell_count"].to_numpy(dtype="float64"),
        first_ns=first_ns,
    )


def build_features(
    *, events: pd.DataFrame | PreparedEvents, members: pd.DataFrame, cutoff: object
) -> pd.DataFrame:
    """The feature matrix at `cutoff`: one row per member of `members` (in its order).

    Index: member_id. Columns: FEATURE_CODES, float64. Members without events get zero counts
    and NaN where a value is undefined (no purchase, no gap). Events of members not in
    `members` are ignored.
    """
    prepared = events if isinstance(events, PreparedEvents) else prepare_events(events)
    roster = frames.normalize_members(members)
    return features_at(prepared, roster, frames.to_utc_timestamp(cutoff))


def build_feature_panel(
    *, events: pd.DataFrame | PreparedEvents, members: pd.DataFrame, cutoffs: Sequence[object]
) -> pd.DataFrame:
    """Feature matrices at several cutoffs stacked, indexed by (cutoff, member_id).

    The cutoff level holds aware UTC timestamps. This is the `features` argument that
    `nba.train_next_action` expects.
    """
    prepared = events if isinstance(events, PreparedEvents) else prepare_events(events)
    roster = frames.normalize_members(members)
    parts = []
    stamps = []
    for cutoff in cutoffs:
        stamp = frames.to_utc_timestamp(cutoff)
        stamps.append(stamp)
        parts.append(features_at(prepared, roster, stamp))
    panel = pd.concat(parts, keys=stamps, names=["cutoff", "member_id"])
    return panel


def _codes(values: pd.Series) -> np.ndarray:
    """Integer codes of a string column, MISSING_CODE for ''."""
    codes, _ = pd.factorize(values.where(values != "", None), use_na_sentinel=True)
    return np.where(codes < 0, MISSING_CODE, codes).astype("int32")


class _Slice:
    """The events of one cutoff window, with member positions and ages in days."""

    def __init__(self, prepared: PreparedEvents, positions: np.ndarray, cutoff_ns: int):
        lo = np.searchsorted(prepared.t_ns, cutoff_ns - MAX_LOOKBACK_DAYS * DAY_NS, side="left")
        hi = np.searchsorted(prepared.t_ns, cutoff_ns, side="left")
        pos = positions[lo:hi]
        keep = pos >= 0
        self.pos = pos[keep]
        self.t_ns = prepared.t_ns[lo:hi][keep]
        self.age = (cutoff_ns - self.t_ns) / DAY_NS
        self.day = self.t_ns // DAY_NS
        self.kind = prepared.kind[lo:hi][keep]
        self.amount = prepared.amount[lo:hi][keep]
        self.lines = prepared.lines[lo:hi][keep]
        self.category = prepared.category[lo:hi][keep]
        self.channel = prepared.channel[lo:hi][keep]
        self.session = prepared.session[lo:hi][keep]
        self.dwell_sum = prepared.dwell_sum[lo:hi][keep]
        self.dwell_count = prepared.dwell_count[lo:hi][keep]

    def of_kind(self, *kinds: str) -> np.ndarray:
        return np.isin(self.kind, [frames.KIND_CODE[k] for k in kinds])


def features_at(
    prepared: PreparedEvents, roster: pd.DataFrame, cutoff: pd.Timestamp
) -> pd.DataFrame:
    """`build_features` of a normalized roster at a UTC cutoff (what a panel repeats)."""
    n = len(roster)
    member_index = pd.Index(roster["member_id"].to_numpy())
    positions = member_index.get_indexer(prepared.member_id)
    cutoff_ns = int(cutoff.value)
    ev = _Slice(prepared, positions, cutoff_ns)

    def count(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        w = None if weights is None else weights[mask]
        return np.bincount(ev.pos[mask], weights=w, minlength=n).astype("float64")

    first_ns = prepared.first_ns.reindex(member_index).to_numpy(dtype="float64")
    observed = np.where(first_ns < cutoff_ns, (cutoff_ns - first_ns) / DAY_NS, 0.0)
    observed = np.nan_to_num(observed, nan=0.0)

    f: dict[str, np.ndarray] = {}
    purchase = ev.of_kind(frames.PURCHASE)

    # Recency and tenure.
    f["days_since_last_purchase"] = group_min(ev.pos[purchase], ev.age[purchase], n)
    acted = ~ev.of_kind(*PROGRAM_INITIATED_KINDS)
    f["days_since_last_event"] = group_min(ev.pos[acted], ev.age[acted], n)
    joined = roster["joined_on"].to_numpy(dtype="datetime64[ns]").view("int64").astype("float64")
    joined[roster["joined_on"].isna().to_numpy()] = np.nan
    since_joined = (cutoff_ns - joined) / DAY_NS
    since_first = np.where(observed > 0, observed, np.nan)
    f["tenure_days"] = np.where(since_joined >= 0, since_joined, since_first)

    # Gaps between purchase days.
    mean_gap, std_gap = gap_stats(ev.pos[purchase], ev.day[purchase], n)
    recency = f["days_since_last_purchase"]
    with np.errstate(divide="ignore", invalid="ignore"):
        f["purchase_overdue_ratio"] = recency / mean_gap
        f["days_until_expected_purchase"] = mean_gap - recency
        f["mean_gap_days"] = mean_gap
        f["gap_std_days"] = std_gap
        f["gap_cv"] = std_gap / mean_gap
    purchase_days, _ = distinct_first(ev.pos, ev.day, ev.age, purchase)
    f["repeat_purchase_days"] = np.maximum(np.bincount(purchase_days, minlength=n) - 1.0, 0.0)
    f["days_since_first_purchase"] = group_max(ev.pos[purchase], ev.age[purchase], n)

    # Baskets: frequency, monetary value, trends.
    b_pos, b_age, b_amount, b_lines = _baskets(ev, purchase)

    def basket_count(lo: float, hi: float, weights: np.ndarray | None = None) -> np.ndarray:
        mask = (b_age >= lo) & (b_age < hi)
        w = None if weights is None else weights[mask]
        return np.bincount(b_pos[mask], weights=w, minlength=n).astype("float64")

    for w in WINDOWS:
        f[f"baskets_{w}"] = basket_count(0, w)
    f["baskets_per_30d"] = rate_per_30d(f["baskets_365"], observed)
    for w in WINDOWS[:3]:
        f[f"basket_trend_{w}"] = trend(f[f"baskets_{w}"], basket_count(w, 2 * w), observed, w)
    for w in WINDOWS:
        f[f"spend_{w}"] = basket_count(0, w, b_amount)
    f["spend_per_30d"] = rate_per_30d(f["spend_365"], observed)
    for w in WINDOWS[:3]:
        f[f"spend_trend_{w}"] = trend(
            f[f"spend_{w}"], basket_count(w, 2 * w, b_amount), observed, w
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        baskets_year = np.where(f["baskets_365"] > 0, f["baskets_365"], np.nan)
        f["mean_basket_value"] = f["spend_365"] / baskets_year
        f["mean_basket_items"] = basket_count(0, 365, b_lines) / baskets_year
        recent_value = f["spend_90"] / np.where(f["baskets_90"] > 0, f["baskets_90"], np.nan)
        earlier_baskets = basket_count(90, 180)
        earlier_value = basket_count(90, 180, b_amount) / np.where(
            earlier_baskets > 0, earlier_baskets, np.nan
        )
    f["basket_value_trend_90"] = symmetric_change(recent_value, earlier_value)

    # Returns, coupons, campaigns, points.
    year = ev.age < 365
    quarter = ev.age < 90
    f["returns_365"] = count(ev.of_kind(frames.RETURN) & year, ev.lines)
    purchase_lines = count(purchase & year, ev.lines)
    f["return_share_365"] = share_of(f["returns_365"], f["returns_365"] + purchase_lines)
    coupons = ev.of_kind(frames.COUPON_REDEEMED)
    f["coupons_redeemed_90"] = count(coupons & quarter, ev.lines)
    f["coupons_redeemed_365"] = count(coupons & year, ev.lines)
    f["campaigns_received_365"] = count(ev.of_kind(frames.CAMPAIGN_RECEIVED) & year, ev.lines)
    f["coupon_response_rate_365"] = share_of(f["coupons_redeemed_365"], f["campaigns_received_365"])
    f["points_redemptions_365"] = count(ev.of_kind(frames.REDEMPTION) & year, ev.lines)

    # Category mix of purchase lines.
    mask = purchase & year & (ev.category != MISSING_CODE)
    distinct, entropy, top_share = weighted_mix(ev.pos[mask], ev.category[mask], ev.lines[mask], n)
    f["distinct_categories_365"] = distinct
    f["category_entropy_365"] = entropy
    f["top_category_share_365"] = top_share

    # Sessions, dwell, browsing.
    s_pos, s_age = distinct_first(ev.pos, ev.session, ev.age, acted & (ev.session != MISSING_CODE))
    sessions_prev_30 = np.bincount(s_pos[(s_age >= 30) & (s_age < 60)], minlength=n)
    f["sessions_30"] = np.bincount(s_pos[s_age < 30], minlength=n).astype("float64")
    f["sessions_90"] = np.bincount(s_pos[s_age < 90], minlength=n).astype("float64")
    f["session_trend_30"] = trend(f["sessions_30"], sessions_prev_30, observed, 30)
    with np.errstate(divide="ignore", invalid="ignore"):
        dwell_recent = count(quarter, ev.dwell_sum) / count(quarter, ev.dwell_count)
        before = (ev.age >= 90) & (ev.age < 180)
        dwell_before = count(before, ev.dwell_sum) / count(before, ev.dwell_count)
    f["mean_dwell_seconds_90"] = dwell_recent
    f["dwell_trend_90"] = symmetric_change(dwell_recent, dwell_before)
    browse = ev.of_kind(*BROWSE_KINDS)
    f["browse_events_30"] = count(browse & (ev.age < 30), ev.lines)
    f["browse_events_90"] = count(browse & quarter, ev.lines)
    browse_before = count(browse & (ev.age >= 30) & (ev.age < 60), ev.lines)
    f["browse_trend_30"] = trend(f["browse_events_30"], browse_before, observed, 30)
    f["cart_adds_90"] = count(ev.of_kind(frames.ADD_TO_CART) & quarter, ev.lines)
    f["cart_conversion_90"] = share_of(f["baskets_90"], f["cart_adds_90"])

    # Channel mix of all events.
    mask = acted & year & (ev.channel != MISSING_CODE)
    distinct, _, top_share = weighted_mix(ev.pos[mask], ev.channel[mask], ev.lines[mask], n)
    f["distinct_channels_365"] = distinct
    f["top_channel_share_365"] = top_share

    # Service and engagement.
    support = ev.of_kind(frames.SUPPORT_CONTACT)
    f["support_contacts_90"] = count(support & quarter, ev.lines)
    f["support_contacts_365"] = count(support & year, ev.lines)
    f["days_since_support_contact"] = group_min(ev.pos[support], ev.age[support], n)
    login = ev.of_kind(frames.LOGIN)
    f["logins_30"] = count(login & (ev.age < 30), ev.lines)
    f["logins_90"] = count(login & quarter, ev.lines)
    logins_before = count(login & (ev.age >= 30) & (ev.age < 60), ev.lines)
    f["login_trend_30"] = trend(f["logins_30"], logins_before, observed, 30)
    email = ev.of_kind(frames.EMAIL_OPEN)
    f["email_opens_90"] = count(email & quarter, ev.lines)
    emails_before = count(email & (ev.age >= 90) & (ev.age < 180), ev.lines)
    f["email_open_trend_90"] = trend(f["email_opens_90"], emails_before, observed, 90)

    # Active days.
    d_pos, d_age = distinct_first(ev.pos, ev.day, ev.age, acted)
    f["active_days_30"] = np.bincount(d_pos[d_age < 30], minlength=n).astype("float64")
    f["active_days_90"] = np.bincount(d_pos[d_age < 90], minlength=n).astype("float64")
    active_before = np.bincount(d_pos[(d_age >= 30) & (d_age < 60)], minlength=n)
    f["activity_trend_30"] = trend(f["active_days_30"], active_before, observed, 30)

    # The time of year of the cutoff, the same for every member: lets a model trained over
    # several seasons tell a quiet summer from the weeks before the year-end peak.
    for code, value in season_of(cutoff).items():
        f[code] = np.full(n, value)

    # Member attributes (snapshots).
    f["points_balance"] = roster["points_balance"].to_numpy(dtype="float64")
    f["tier_rank"] = roster["tier_rank"].to_numpy(dtype="float64")

    matrix = pd.DataFrame({code: f[code] for code in FEATURE_CODES}, index=member_index)
    matrix.index.name = "member_id"
    return matrix


def season_of(cutoff: pd.Timestamp) -> dict[str, float]:
    """The season features of a cutoff (see FEATURES)."""
    angle = 2 * np.pi * (cutoff.dayofyear - 1 + cutoff.hour / 24) / DAYS_PER_YEAR
    year_end = pd.Timestamp(year=cutoff.year + 1, month=1, day=1, tz=cutoff.tz)
    return {
        "season_sin": float(np.sin(angle)),
        "season_cos": float(np.cos(angle)),
        "days_to_year_end": (year_end - cutoff) / pd.Timedelta(days=1),
    }


def _baskets(ev: _Slice, purchase: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per basket: member position, age of its first event, amount, lines."""
    session = ev.session[purchase]
    key = np.where(session != MISSING_CODE, session, -(ev.day[purchase] + 1))
    group, owner = pair_groups(ev.pos[purchase], key)
    count = len(owner)
    age = np.zeros(count)
    np.maximum.at(age, group, ev.age[purchase])
    amount = np.bincount(group, weights=np.nan_to_num(ev.amount[purchase]), minlength=count)
    lines = np.bincount(group, weights=ev.lines[purchase], minlength=count)
    return owner, age, amount, lines
