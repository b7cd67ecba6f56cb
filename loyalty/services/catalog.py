"""The starting action catalog: seeded once by code, managed by admins from then on."""

from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction

from loyalty.models import Action


@dataclass(frozen=True)
class ActionSeed:
    code: str
    name: str
    description: str
    cost: Decimal
    min_tier: str = ""
    requires_consent: bool = True
    # The prior until the control groups measure it: the share of members about to churn that
    # the action keeps (`Action.retention_gain`).
    retention_gain: float = 0.0


# The action that leaves the member alone: the baseline every other action is weighed against
# (ranking by expected value) and the one that contacts nobody (contact rules).
NO_ACTION = "no_action"

# Costs are the program's expected cost per member treated, in the program's currency.
DEFAULT_ACTIONS: tuple[ActionSeed, ...] = (
    ActionSeed(
        code=NO_ACTION,
        name="No action",
        description="Leave the member alone. The baseline every other action is weighed against, "
        "and the only one open to members who did not consent to profiling.",
        cost=Decimal("0.00"),
        requires_consent=False,
    ),
    ActionSeed(
        code="bonus_points",
        name="Bonus points",
        description="Credit extra points on the member's next purchases for four weeks.",
        cost=Decimal("3.00"),
        retention_gain=0.05,
    ),
    ActionSeed(
        code="personal_discount",
        name="Personal discount",
        description="A one-time discount on the member's most-bought category.",
        cost=Decimal("5.00"),
        retention_gain=0.08,
    ),
    ActionSeed(
        code="free_delivery",
        name="Free delivery",
        description="Free delivery on the next online order.",
        cost=Decimal("4.00"),
        retention_gain=0.04,
    ),
    ActionSeed(
        code="win_back_email",
        name="Win-back email",
        description="A personal email recalling what the member used to buy, with a small offer.",
        cost=Decimal("0.50"),
        retention_gain=0.03,
    ),
    ActionSeed(
        code="personal_outreach",
        name="Personal outreach",
        description="A call from the member service team; kept for the most valuable members.",
        cost=Decimal("15.00"),
        min_tier="gold",
        retention_gain=0.15,
    ),
    ActionSeed(
        code="tier_trial",
        name="Tier trial",
        description="One month at the next tier up, to show what the member would gain.",
        cost=Decimal("8.00"),
        retention_gain=0.06,
    ),
)


@dataclass(frozen=True)
class CatalogSeedResult:
    created: tuple[str, ...]
    existing: tuple[str, ...]


@transaction.atomic
def seed_action_catalog() -> CatalogSeedResult:
    """Create the default actions that are missing. Existing ones are left as an admin set
    them (cost, eligibility, retention gain, active), so seeding again changes nothing."""
    codes = [seed.code for seed in DEFAULT_ACTIONS]
    existing = set(Action.objects.filter(code__in=codes).values_list("code", flat=True))
    created = []
    for seed in DEFAULT_ACTIONS:
        if seed.code in existing:
            continue
        action = Action(
            code=seed.code,
            name=seed.name,
            description=seed.description,
            cost=seed.cost,
            min_tier=seed.min_tier,
            requires_consent=seed.requires_consent,
            retention_gain=seed.retention_gain,
        )
        action.full_clean()
        action.save()
        created.append(seed.code)
    return CatalogSeedResult(
        created=tuple(created), existing=tuple(code for code in codes if code in existing)
    )
