"""Who may do what in the review workflow: the permission strings and the role rules over reviews.

Pages, the API, the services and the tasks all ask here; a rule about who sees or decides a
review lives in exactly one function of this module.
"""

from datetime import datetime, timedelta

from django.db.models import Q

from reviews.models import Review

DECIDE = "reviews.decide_review"
DECIDE_ESCALATED = "reviews.decide_escalated"
VIEW_REVIEW = "reviews.view_review"
VIEW_DECISION = "reviews.view_decision"
MANAGE_POLICY = "reviews.add_escalationpolicy"
VIEW_AUDIT = "loyalty.view_auditrecord"

# What an analyst reads: their own queue's items, and the auto-approved ones read-only (an
# analyst checks what the automation decided; deciding it again is an expert's call).
ANALYST_READABLE_ROUTES = (Review.Route.ANALYST.value, Review.Route.AUTO.value)


def queue_route_for(user) -> str | None:
    """The queue a user works by default: experts the expert queue, analysts theirs."""
    if user.has_perm(DECIDE_ESCALATED):
        return Review.Route.EXPERT
    if user.has_perm(DECIDE):
        return Review.Route.ANALYST
    return None


def can_open_queue(user, route: str) -> bool:
    if route == Review.Route.EXPERT:
        return user.has_perm(DECIDE_ESCALATED)
    return user.has_perm(DECIDE)


def readable_routes(user) -> tuple[str, ...] | None:
    """The routes whose reviews a user may read, on the member page and in the API alike:
    None for every route (experts; admins, who read but do not decide), the analyst queue and
    the auto-approved items for analysts, nothing for anyone else."""
    if user.has_perm(DECIDE_ESCALATED):
        return None
    if user.has_perm(DECIDE):
        return ANALYST_READABLE_ROUTES
    return None if user.has_perm(VIEW_REVIEW) else ()


def visible_reviews_filter(user) -> Q:
    """The one visibility rule of reviews, as a filter: every page, API view and service that
    hands out a review by id or lists reviews applies it before anything else, and answers
    404 for what it excludes (an id the caller may not see is as good as no id).

    - the routes of `readable_routes`;
    - an analyst keeps sight of an item they escalated until an expert decides it, so that
      repeating the escalation answers like the first time (and never shows the expert's
      decision);
    - nobody sees the reviews of an erased member: they are no one's case any more.
    """
    routes = readable_routes(user)
    if routes is None:
        visible = Q()
    elif not routes:
        return Q(pk__in=[])
    else:
        visible = Q(route__in=routes)
        if user.is_authenticated:
            visible |= Q(escalated_by=user.pk, state=Review.State.PENDING)
    return visible & Q(member__erased_at__isnull=True)


def visible_reviews(user, reviews=None):
    """`reviews` (all reviews by default) narrowed to what `user` may see."""
    queryset = Review.objects.all() if reviews is None else reviews
    return queryset.filter(visible_reviews_filter(user))


def visible_decisions_filter(user) -> Q:
    """Which decisions a user may read (the decision feed and exports), as a filter on
    Decision: those on the reviews they may see; a system that acts on decisions (an
    integrator: view_decision without view_review) every decision, so that it misses none,
    erased members' excepted like everywhere."""
    if not user.has_perm(VIEW_DECISION):
        return Q(pk__in=[])
    if user.has_perm(VIEW_REVIEW):
        return Q(review__in=visible_reviews(user))
    return Q(review__member__erased_at__isnull=True)


# When a model version states no horizon (older versions), the product's default one.
DEFAULT_HORIZON_DAYS = 90


def holdout_disclosed(user, decision, *, now: datetime) -> bool:
    """Whether `user` may know that a decision was held out: a system at once (it must not
    act on it); a person only once the decision's horizon has passed, so that knowing cannot
    change how they decide or follow up."""
    if not user.has_perm(VIEW_REVIEW):
        return True
    horizon = decision.review.prediction.model_version.horizon_days or DEFAULT_HORIZON_DAYS
    return now >= decision.decided_at + timedelta(days=horizon)


def can_decide_review(user, review: Review) -> bool:
    """May the user decide it now: experts any undecided review, an auto-approval included
    (overriding the automation is theirs to do); analysts pending items of their queue. An
    item waiting in the backlog is nobody's yet. The decision services enforce the same
    (ReviewNotYours, ReviewNotOpen)."""
    if review.state == Review.State.DECIDED or review.is_waiting:
        return False
    if user.has_perm(DECIDE_ESCALATED):
        return True
    return (
        user.has_perm(DECIDE)
        and review.route == Review.Route.ANALYST
        and review.state == Review.State.PENDING
    )
