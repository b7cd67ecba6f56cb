"""The fairness check (daily): measure a kind's decisions per protected group, record the
check, tell the admins of a breach of the admin's limits and, where the limits say so, pause
the kind's auto-approval (`reviews.services.automation`, as the calibration monitor does).
Both kinds are checked: churn (the churn call) and next action (the share offered each action,
people's changes of the action); pausing next-action auto-approval also sends cases whose
action side would be auto-approved to people (`reviews.services.routing_rules`).

Admins hear of a breach once: a check that finds the same limits breached as the previous
check says nothing again (the page shows the figures). The pause is opened on every breaching
check, like the monitor's: an admin who resumes auto-approval while the breach stands sees it
paused again at the next check, unless they turn `pause_on_breach` off or change the limits.
"""

from django.db import transaction
from django.urls import reverse

from learning.fairness import MEASURED_KINDS, kind_fairness
from learning.models import FairnessCheck
from predictions.models import PredictionKind
from reviews.services.automation import pause_auto_approval
from reviews.services.notifications import notify, users_with_permission

# Who is told of a breach: the people who set the limits (admins).
LIMITS_PERMISSION = "learning.change_fairnesslimits"
REASON_LENGTH = 300


def check_fairness(*, kind: str) -> FairnessCheck | None:
    """Measure `kind`, record the check, notify and pause on a breach; None for a kind not
    measured."""
    if kind not in MEASURED_KINDS:
        return None
    fairness = kind_fairness(kind)
    found = fairness.report.breaches
    sentences = [breach.shown for breach in found]
    previous = FairnessCheck.objects.filter(kind=kind).first()
    pause = bool(found) and fairness.limits.pause_on_breach
    link = f"{reverse('learning:fairness')}?kind={kind}"
    with transaction.atomic():
        check = FairnessCheck.objects.create(
            kind=kind,
            decisions=fairness.report.decisions,
            breaches=[{"key": breach.key, "text": breach.shown} for breach in found],
            paused=pause,
        )
        if found and (previous is None or _keys(previous) != _keys(check)):
            notify(
                recipients=users_with_permission(LIMITS_PERMISSION),
                subject=f"Fairness limits breached: {PredictionKind(kind).label}",
                body="; ".join(sentences)
                + (". Auto-approval is paused." if pause else ". Auto-approval goes on."),
                link=link,
            )
    if pause:
        pause_auto_approval(
            kind=kind, reason=f"fairness: {'; '.join(sentences)}"[:REASON_LENGTH], link=link
        )
    return check


def _keys(check: FairnessCheck) -> set[str]:
    """Which limits a check found breached (the figures move from day to day; the limits
    breached are what admins are told of)."""
    return {breach["key"] for breach in check.breaches}


def check_fairness_of_every_kind() -> int:
    """The task's body: every measured kind; the number of checks with a breach."""
    checks = [check_fairness(kind=kind) for kind in MEASURED_KINDS]
    return sum(1 for check in checks if check is not None and check.breaches)
