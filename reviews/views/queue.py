"""The review queues: one page of a route's pending items, and deciding rows from it (one row's
approve or escalate, bulk approve). An htmx request gets the table, or the row, back."""

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from loyalty.parsing import parse_id
from predictions.behavior_clusters import active_cluster_choices
from predictions.ml.segments import RFM_SEGMENT_NAMES
from reviews.models import Decision, Review
from reviews.page_errors import domain_errors_as_pages
from reviews.permissions import can_open_queue, visible_reviews
from reviews.selectors.capacity import backlog_sentences
from reviews.selectors.catalogs import reason_choices
from reviews.selectors.queue import (
    QUEUE_KINDS,
    REASON_LABELS,
    QueueFilters,
    pending_count_labels,
    pending_reviews_for,
)
from reviews.services import verdicts
from reviews.services.verdicts import ESCALATE, QUICK_APPROVE_REASON, QUICK_ESCALATE_REASON

QUEUE_URLS = {Review.Route.ANALYST: "reviews:queue", Review.Route.EXPERT: "reviews:expert_queue"}
# A refused quick decision is shown above the queue; an unknown or hidden review is a 404.
QUICK_DECISION_ERRORS_SHOWN = (400, 403, 409)


@login_required
@require_GET
def queue(request):
    return _queue(request, Review.Route.ANALYST)


@login_required
@require_GET
def expert_queue(request):
    return _queue(request, Review.Route.EXPERT)


def _queue(request, route: str, *, status: int = 200):
    if not can_open_queue(request.user, route):
        raise PermissionDenied("This queue is for another role.")
    context = _queue_context(request, route, request.GET)
    template = (
        "reviews/partials/queue_table.html"
        if request.htmx and request.htmx.target == "queue-table"
        else "reviews/queue.html"
    )
    return render(request, template, context, status=status)


def _queue_context(request, route: str, params) -> dict:
    filters = QueueFilters.from_params(params)
    page = pending_reviews_for(route=route, filters=filters, after=params.get("after") or None)
    base = reverse(QUEUE_URLS[route])
    filter_params = filters.as_params()
    review_url, quick_decide_url = _url_by_id("reviews:review"), _url_by_id("reviews:quick_decide")
    return {
        "page": page,
        # Each row with its id as text (an int in a template goes through number localization,
        # five times a row) and its two links.
        "rows": [
            (row, str(row.review_id), review_url(row.review_id), quick_decide_url(row.review_id))
            for row in page.rows
        ],
        "route": route,
        "is_expert_queue": route == Review.Route.EXPERT,
        "queue_url": base,
        "first_url": f"{base}?{urlencode(filter_params)}" if filter_params else base,
        "next_url": (
            f"{base}?{urlencode({**filter_params, 'after': page.next_cursor})}"
            if page.next_cursor
            else ""
        ),
        # The export streams every row under the same filters (integrations.exports).
        "export_url": (
            reverse("integrations:export_queue", args=[route])
            + (f"?{urlencode(filter_params)}" if filter_params else "")
        ),
        "filter_options": _filter_options(),
        "escalate_reasons": reason_choices(("escalate",)),
        "can_see_expert_queue": can_open_queue(request.user, Review.Route.EXPERT),
        # What waits for this queue in its backlog (its capacity is reached).
        "backlog": backlog_sentences(route),
    }


# Any id will do: it is replaced; a long one cannot occur elsewhere in the path by accident.
_URL_ID_PLACEHOLDER = 918273645


def _url_by_id(name: str):
    """The URL of a route taking one review id, as a function of the id: reverse() once, then
    string formatting per row (reverse() per link was most of the queue table's rendering)."""
    prefix, suffix = reverse(name, args=[_URL_ID_PLACEHOLDER]).split(str(_URL_ID_PLACEHOLDER))
    return lambda review_id: f"{prefix}{review_id}{suffix}"


def _filter_options() -> dict:
    return {
        "kinds": list(QUEUE_KINDS.items()),
        "tiers": [(tier, tier.title()) for tier in settings.LOYALTY_TIER_LADDER],
        "segments": list(RFM_SEGMENT_NAMES.items()),
        "clusters": active_cluster_choices(),
        "risks": [
            ("low", "Low (< 30 %)"),
            ("medium", "Medium (30–60 %)"),
            ("high", "High (≥ 60 %)"),
        ],
        "reasons": list(REASON_LABELS.items()),
        "ages": [("4", "> 4 hours"), ("24", "> 1 day"), ("48", "> 2 days"), ("168", "> 1 week")],
    }


def _visible_review_or_404(user, review_id: int) -> Review:
    """The visibility rule before anything else: a review the user may not see is a 404."""
    try:
        return visible_reviews(user).select_related("member").get(pk=review_id)
    except Review.DoesNotExist as error:
        raise Http404("No such review.") from error


def _safe_next(request, fallback: str) -> str:
    """Where to go after a form: the page's own `next` when it points into this site."""
    target = request.POST.get("next", "")
    is_local = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if target and is_local else fallback


def _quick_decision_refused(request, error, review_id: int):
    """The refusal's message above the queue (htmx: in its flash area), at the error's status;
    without htmx, the queue of the review's route when the user may open it."""
    if request.htmx:
        response = render(
            request,
            "reviews/partials/flash.html",
            {"message": error.message, "level": "error", "review_id": review_id},
            status=error.status,
        )
        response["HX-Retarget"] = "#queue-flash"
        response["HX-Reswap"] = "innerHTML"
        return response
    messages.error(request, error.message)
    route = Review.objects.filter(pk=review_id).values_list("route", flat=True).first()
    if route == Review.Route.AUTO:  # no queue holds it: its own page says how it was decided
        return redirect("reviews:review", review_id)
    shown = route if route and can_open_queue(request.user, route) else Review.Route.ANALYST
    return _queue(request, shown, status=error.status)


@login_required
@require_POST
@domain_errors_as_pages(_quick_decision_refused, shown_in_page=QUICK_DECISION_ERRORS_SHOWN)
def quick_decide(request, review_id: int):
    """Approve or escalate one row of a queue; htmx gets the (empty) row back, so it vanishes."""
    review = _visible_review_or_404(request.user, review_id)
    is_escalation = request.POST.get("verdict", "approve") == ESCALATE
    verdicts.decide_by_verdict(
        review_id=review.pk,
        actor=request.user,
        verdict=ESCALATE if is_escalation else Decision.Verdict.APPROVE,
        reason_code=request.POST.get("reason")
        or (QUICK_ESCALATE_REASON if is_escalation else QUICK_APPROVE_REASON),
        comment=request.POST.get("comment", "").strip(),
        unopened=True,
    )
    member = review.member.external_id
    text = f"Escalated {member} to the experts." if is_escalation else f"Approved {member}."
    if not request.htmx:
        messages.success(request, text)
        return redirect(_safe_next(request, _page_after_deciding(review)))
    context = {
        "message": text,
        "level": "success",
        "counts": pending_count_labels(),
        "show_expert": can_open_queue(request.user, Review.Route.EXPERT),
    }
    return render(request, "reviews/partials/row_done.html", context)


def _page_after_deciding(review: Review) -> str:
    """The review's queue; the review's own page when its route has none (an expert deciding
    an auto-approval)."""
    if review.route in QUEUE_URLS:
        return reverse(QUEUE_URLS[review.route])
    return reverse("reviews:review", args=[review.pk])


@login_required
@require_POST
def bulk_approve(request):
    """Approve every selected row (one decision each); report approvals and conflicts."""
    route = request.POST.get("route", Review.Route.ANALYST)
    if route not in QUEUE_URLS or not can_open_queue(request.user, route):
        raise PermissionDenied
    ids = [pk for pk in map(parse_id, request.POST.getlist("review")) if pk is not None]
    approval = verdicts.bulk_approve(review_ids=ids, actor=request.user)
    if not request.htmx:
        messages.success(request, approval.summary)
        for problem in approval.problems:
            messages.error(request, problem)
        return redirect(reverse(QUEUE_URLS[route]))
    context = _queue_context(request, route, request.POST)
    context.update({"bulk_summary": approval.summary, "bulk_problems": list(approval.problems)})
    return render(request, "reviews/partials/queue_table.html", context)
