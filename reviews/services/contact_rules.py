"""The contact rules a decision must keep (`loyalty.models.ContactRules`, one row):

- frequency cap: at most N executed actions per member in D days;
- budget: at most `Action.budget_count` executed decisions, and `Action.budget_amount` spent
  (cost x decisions), per action in the budget period;
- marketing consent: an action that contacts the member goes out only while they consent to
  marketing, as their consent stands at the decision, not as it stood at scoring.

"Executed" is a decision that was announced, is not held out and settled on an action that
contacts the member (anything but the baseline "no action"). Routing checks a batch at once
(`RuleBook.flags`, counting what the batch itself auto-approves); a person's decision is
checked again when it is made (`flags_now`), under a lock of the member and the action so that
two decisions cannot both take the last unit of a budget. A decision that breaks a rule is
never auto-approved; a person may send it anyway, saying why.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Q

from loyalty.contact_settings import contact_rules_settings
from loyalty.models import Action, ContactRules, Member
from loyalty.services.catalog import NO_ACTION
from reviews.models import Decision

FREQUENCY_CAP = "frequency_cap"
BUDGET_COUNT = "budget_count"
BUDGET_AMOUNT = "budget_amount"
NO_MARKETING_CONSENT = "no_marketing_consent"


def contacts_member(action: Action | None) -> bool:
    """Whether deciding on `action` reaches the member (the baseline and no action do not)."""
    return action is not None and action.code != NO_ACTION


def executed_decisions():
    return Decision.objects.filter(announced=True, held_out=False).exclude(
        Q(settled_action__isnull=True) | Q(settled_action__code=NO_ACTION)
    )


@dataclass
class RuleBook:
    """The rules and the counts they are checked against, for a set of members and actions at
    `now`; `record` adds a decision made meanwhile (a routing batch's own auto-approvals)."""

    settings: ContactRules
    now: datetime
    actions: dict[int, Action]
    consent: dict[int, bool]
    member_counts: Counter = field(default_factory=Counter)
    action_counts: Counter = field(default_factory=Counter)

    @classmethod
    def load(
        cls, *, member_ids, action_ids, now: datetime, settings: ContactRules | None = None
    ) -> "RuleBook":
        settings = settings or contact_rules_settings()
        member_ids, action_ids = set(member_ids), set(action_ids) - {None}
        actions = Action.objects.in_bulk(action_ids)
        executed = executed_decisions()
        since_cap = now - timedelta(days=settings.frequency_cap_days)
        member_counts = Counter(
            dict(
                executed.filter(member_id__in=member_ids, decided_at__gte=since_cap)
                .values("member_id")
                .annotate(n=Count("pk"))
                .values_list("member_id", "n")
            )
        )
        since_budget = now - timedelta(days=settings.budget_period_days)
        budgeted = [
            pk
            for pk, action in actions.items()
            if action.budget_count is not None or action.budget_amount is not None
        ]
        action_counts = Counter(
            dict(
                executed.filter(settled_action_id__in=budgeted, decided_at__gte=since_budget)
                .values("settled_action_id")
                .annotate(n=Count("pk"))
                .values_list("settled_action_id", "n")
            )
        )
        consent = dict(
            Member.objects.filter(pk__in=member_ids).values_list("pk", "consent_marketing")
        )
        return cls(
            settings=settings,
            now=now,
            actions=actions,
            consent=consent,
            member_counts=member_counts,
            action_counts=action_counts,
        )

    def flags(self, *, member_id: int, action_id: int | None) -> list[str]:
        """The rules deciding `action_id` for the member now would break (codes, in order)."""
        action = self.actions.get(action_id)
        if not contacts_member(action):
            return []
        found = []
        if self.member_counts[member_id] >= self.settings.frequency_cap_actions:
            found.append(FREQUENCY_CAP)
        used = self.action_counts[action.pk]
        if action.budget_count is not None and used >= action.budget_count:
            found.append(BUDGET_COUNT)
        if action.budget_amount is not None and (used + 1) * action.cost > action.budget_amount:
            found.append(BUDGET_AMOUNT)
        if not self.consent.get(member_id, False):
            found.append(NO_MARKETING_CONSENT)
        return found

    def record(self, *, member_id: int, action_id: int | None) -> None:
        """Count a decision executed meanwhile against the rules."""
        if contacts_member(self.actions.get(action_id)):
            self.member_counts[member_id] += 1
            self.action_counts[action_id] += 1

    def describe(self, flags: list[str], *, action_id: int | None) -> str:
        """The broken rules in a sentence a person can act on."""
        action = self.actions.get(action_id)
        return "; ".join(self._describe_one(flag, action) for flag in flags)

    def _describe_one(self, flag: str, action: Action | None) -> str:
        settings = self.settings
        if flag == FREQUENCY_CAP:
            return (
                f"the member had {settings.frequency_cap_actions} actions in the last "
                f"{settings.frequency_cap_days} days (the cap)"
            )
        if flag == BUDGET_COUNT:
            return (
                f"{action.name} has used its budget of {action.budget_count} in the last "
                f"{settings.budget_period_days} days"
            )
        if flag == BUDGET_AMOUNT:
            spent = self.action_counts[action.pk] * action.cost
            return (
                f"{action.name} would exceed its budget of {_money(action.budget_amount)} in "
                f"the last {settings.budget_period_days} days ({_money(spent)} spent)"
            )
        if flag == NO_MARKETING_CONSENT:
            return "the member has not consented to marketing"
        return flag


def flags_now(*, member_id: int, action: Action | None, now: datetime) -> tuple[list[str], str]:
    """The rules a decision on `action` for the member breaks as things stand now, and their
    description; the caller holds the member's and the action's row locks (`lock_for_rules`)."""
    if not contacts_member(action):
        return [], ""
    book = RuleBook.load(member_ids=[member_id], action_ids=[action.pk], now=now)
    found = book.flags(member_id=member_id, action_id=action.pk)
    return found, book.describe(found, action_id=action.pk)


def lock_for_rules(*, member_id: int, action: Action | None) -> None:
    """Serialize decisions that count against the same member's cap or the same action's
    budget: the second waits for the first to commit, then counts it."""
    if not contacts_member(action):
        return
    list(Member.objects.select_for_update().filter(pk=member_id).values_list("pk"))
    if action.budget_count is not None or action.budget_amount is not None:
        list(Action.objects.select_for_update().filter(pk=action.pk).values_list("pk"))


def _money(amount: Decimal | float) -> str:
    return f"{float(amount):,.2f}"
