"""Pending per-prediction reviews become cases, by one rule:

- a member's pending churn review and pending next-action review whose predictions share a
  cutoff (one scoring cycle) become one case: the churn review carries the next-action
  prediction, its recommendation, expected value and contact flags, the lower of the two
  confidences, and the more demanding route of the two (with its reason, its escalation and
  the analyst's proposal when that route came from the next-action side); the next-action
  review is superseded (the case decides it now);
- every other review stays as it is: a decided one is history (its labels keep their
  meaning: the churn label from the churn call, the action label from the chosen action), an
  unpaired pending one is still decided on its own until the member's next cycle makes a case
  and supersedes it.
"""

from django.db import migrations

DEMAND = {"auto": 0, "analyst": 1, "expert": 2}
BATCH = 2000


def pair_pending_reviews(apps, schema_editor):
    Review = apps.get_model("reviews", "Review")
    pending = Review.objects.filter(state="pending", action_prediction__isnull=True)
    last_id = 0
    while True:
        actions = list(
            pending.filter(kind="next_action", pk__gt=last_id)
            .select_related("prediction")
            .order_by("pk")[:BATCH]
        )
        if not actions:
            break
        last_id = actions[-1].pk
        churn = {
            (review.member_id, review.prediction.cutoff): review
            for review in pending.filter(
                kind="churn", member_id__in={review.member_id for review in actions}
            ).select_related("prediction")
        }
        for action in actions:
            case = churn.pop((action.member_id, action.prediction.cutoff), None)
            if case is None:
                continue
            _absorb(case, action)
            case.save()
            action.state = "superseded"
            action.save(update_fields=["state"])


def _absorb(case, action) -> None:
    """The churn review `case` takes on the next-action review `action`."""
    case.action_prediction_id = action.prediction_id
    case.action_policy_id = action.policy_id
    case.recommended_action_id = action.recommended_action_id
    case.expected_value = action.expected_value
    case.contact_flags = action.contact_flags
    case.confidence = min(case.confidence, action.confidence)
    case.priority = max(case.priority, action.priority)
    if DEMAND[action.route] > DEMAND[case.route]:
        case.route = action.route
        case.route_reason = f"{action.route_reason} (next action)"[:300]
        case.due_at = action.due_at
        for field in (
            "escalated_at",
            "escalated_by_id",
            "escalation_reason_id",
            "escalation_comment",
            "analyst_proposal",
        ):
            setattr(case, field, getattr(action, field))
    else:
        case.route_reason = f"{case.route_reason} (churn call)"[:300]


class Migration(migrations.Migration):
    dependencies = [("reviews", "0017_cases")]

    operations = [migrations.RunPython(pair_pending_reviews, migrations.RunPython.noop)]
