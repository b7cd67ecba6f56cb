"""The three roles and what each may do, as Django groups and permissions.

The data migration that creates the groups and `make run`'s demo users both read this, so
that a role's meaning lives in one place. Later apps add their own permissions to a role
with a migration of their own.
"""

ANALYST = "analyst"
EXPERT = "expert"
ADMIN = "admin"
INTEGRATOR = "integrator"
ROLES = (ANALYST, EXPERT, ADMIN, INTEGRATOR)

_READ_PROGRAM = [
    "loyalty.view_member",
    "loyalty.view_event",
    "loyalty.view_action",
    "predictions.view_prediction",
    "predictions.view_modelversion",
]

_REVIEW = ["reviews.view_review", "reviews.view_decision", "reviews.decide_review"]

# The learning loop's page (labels, retraining runs, calibration and drift).
_WATCH_LOOP = ["learning.view_retrainingrun", "learning.view_labeledexample"]
# Fairness per protected group (age band, region, marked attributes): admins and experts,
# never analysts.
_SEE_FAIRNESS = ["learning.view_fairness"]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    ANALYST: _READ_PROGRAM + _REVIEW,
    EXPERT: _READ_PROGRAM + _REVIEW + ["reviews.decide_escalated"] + _WATCH_LOOP + _SEE_FAIRNESS,
    ADMIN: _READ_PROGRAM
    + [
        "loyalty.add_member",
        "loyalty.change_member",
        "loyalty.erase_member",
        "loyalty.add_event",
        "loyalty.add_action",
        "loyalty.change_action",
        "loyalty.delete_action",
        "loyalty.view_controlgroupsettings",
        "loyalty.change_controlgroupsettings",
        "loyalty.view_contactrules",
        "loyalty.change_contactrules",
        "loyalty.view_auditrecord",
        "auth.view_user",
        "auth.add_user",
        "auth.change_user",
        # Login lockouts (django-axes): see the failed attempts, unlock an account (audited).
        "axes.view_accessattempt",
        "axes.delete_accessattempt",
        "django_celery_beat.view_periodictask",
        "django_celery_beat.change_periodictask",
        "predictions.promote_modelversion",
        "predictions.view_scoringrun",
        "reviews.view_review",
        "reviews.view_decision",
        "reviews.view_escalationpolicy",
        "reviews.add_escalationpolicy",
        "reviews.view_reasoncode",
        "reviews.add_reasoncode",
        "reviews.change_reasoncode",
        "learning.view_gatepolicy",
        "learning.change_gatepolicy",
        "learning.add_retrainingrun",
        # The fairness check's limits (and who hears of a breach).
        "learning.view_fairnesslimits",
        "learning.change_fairnesslimits",
        # Webhook endpoints and their delivery log (integrations).
        "integrations.view_webhookendpoint",
        "integrations.add_webhookendpoint",
        "integrations.change_webhookendpoint",
        "integrations.delete_webhookendpoint",
        "integrations.view_delivery",
    ]
    + _WATCH_LOOP
    + _SEE_FAIRNESS,
    # Systems that push members and events in and pull decisions out, through the API.
    INTEGRATOR: _READ_PROGRAM
    + ["loyalty.add_member", "loyalty.change_member", "loyalty.add_event", "reviews.view_decision"],
}


def is_staff_for(role_names) -> bool:
    """Whether a user holding these roles may open the admin site: the admin role does."""
    return ADMIN in set(role_names)


def role_of(user) -> str | None:
    """The highest role a user holds, for display; None for a user with no role."""
    if not user.is_authenticated:
        return None
    from loyalty.access import user_access

    # Every page asks (the nav shows it): read once per request, cached across requests.
    names = user_access(user).groups
    for role in (ADMIN, EXPERT, ANALYST, INTEGRATOR):
        if role in names:
            return role
    return "admin" if user.is_superuser else None
