"""Pages of the review workspace: the queues, the member page, decisions and the what-if.

Views check permission, validate, call one service or selector and render; an htmx request
gets a fragment from templates/reviews/partials/. Domain errors become 400/403/409 with a
message the page shows, for htmx requests too.
"""

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

from loyalty.exceptions import DomainError
from loyalty.parsing import parse_id
from predictions.models import PredictionKind
from predictions.services.whatif import WhatIfInputError, what_if
from reviews.figures import (
    actions_figure,
    figure_html,
    interval_figure,
    waterfall_caption,
    waterfall_figure,
)
from reviews.forms import DecisionForm, what_if_features
from reviews.models import Review
from reviews.selectors import (
    REASON_LABELS,
    QueueFilters,
    can_decide_review,
    can_open_queue,
    catalogs_read_once,
    feature_name,
    format_feature_value,
    format_interval,
    format_percent,
    next_pending_review,
    pending_count_labels,
    pending_reviews_for,
    reason_choices,
    review_page,
    visible_reviews,
)
from reviews.services.decisions import approve_prediction, escalate_review, override_prediction

QUICK_APPROVE_REASON = "model-correct"
QUICK_ESCALATE_REASON = "needs-expert"
QUEUE_URLS = {Review.Route.ANALYST: "reviews:queue", Review.Route.EXPERT: "reviews:expert_queue"}


# --- the queues -----------------------------------------------------------------------------


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
        # ~3 µs a time and five times a row) and its two links.
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
        "filter_options": _filter_options(),
        "escalate_reasons": reason_choices(("escalate",)),
        "can_see_expert_queue": can_open_queue(request.user, Review.Route.EXPERT),
    }


# Any id will do: it is replaced; a long one cannot occur elsewhere in the path by accident.
_URL_ID_PLACEHOLDER = 918273645


def _url_by_id(name: str):
    """The URL of a route taking one review id, as a function of the id: reverse() once, then
    string formatting per row. reverse() costs ~25 µs a call: the queue table's {% url %} tags
    took 5.5 ms of its 8.5 ms of rendering (50 rows, four links each)."""
    prefix, suffix = reverse(name, args=[_URL_ID_PLACEHOLDER]).split(str(_URL_ID_PLACEHOLDER))
    return lambda review_id: f"{prefix}{review_id}{suffix}"


def _filter_options() -> dict:
    return {
        "kinds": PredictionKind.choices,
        "tiers": [(tier, tier.title()) for tier in settings.LOYALTY_TIER_LADDER],
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


@login_required
@require_POST
def quick_decide(request, review_id: int):
    """Approve or escalate one row of a queue; htmx gets the (empty) row back, so it vanishes."""
    review = _visible_review_or_404(request.user, review_id)
    verdict = request.POST.get("verdict", "approve")
    member = review.member.external_id
    try:
        if verdict == "escalate":
            escalate_review(
                review_id=review.pk,
                actor=request.user,
                reason_code=request.POST.get("reason") or QUICK_ESCALATE_REASON,
                comment=request.POST.get("comment", "").strip(),
            )
            text = f"Escalated {member} to the experts."
        else:
            approve_prediction(
                review_id=review.pk,
                actor=request.user,
                reason_code=request.POST.get("reason") or QUICK_APPROVE_REASON,
                comment=request.POST.get("comment", "").strip(),
            )
            text = f"Approved {member}."
    except DomainError as error:
        if error.status == 404:  # the member was erased a moment ago
            raise Http404("No such review.") from error
        return _queue_error(request, review, error.message, error.status)
    if not request.htmx:
        messages.success(request, text)
        return redirect(_safe_next(request, reverse(QUEUE_URLS[review.route])))
    return render(
        request,
        "reviews/partials/row_done.html",
        {
            "message": text,
            "level": "success",
            "counts": pending_count_labels(),
            "show_expert": can_open_queue(request.user, Review.Route.EXPERT),
        },
    )


def _queue_error(request, review: Review, message: str, status: int):
    if not request.htmx:
        messages.error(request, message)
        route = review.route if can_open_queue(request.user, review.route) else "analyst"
        return _queue(request, route, status=status)
    response = render(
        request,
        "reviews/partials/flash.html",
        {"message": message, "level": "error", "review_id": review.pk},
        status=status,
    )
    response["HX-Retarget"] = "#queue-flash"
    response["HX-Reswap"] = "innerHTML"
    return response


@login_required
@require_POST
def bulk_approve(request):
    """Approve every selected row (one service call each); report approvals and conflicts."""
    route = request.POST.get("route", Review.Route.ANALYST)
    if route not in QUEUE_URLS or not can_open_queue(request.user, route):
        raise PermissionDenied
    ids = [pk for pk in map(parse_id, request.POST.getlist("review")) if pk is not None]
    approved, problems = 0, []
    # Only what the user may see: an id they may not see is reported as not found, without
    # a word about the member behind it.
    reviews = visible_reviews(request.user).select_related("member").in_bulk(ids)
    for pk in ids:
        review = reviews.get(pk)
        if review is None:
            problems.append(f"Review {pk}: not found.")
            continue
        try:
            approve_prediction(review_id=pk, actor=request.user, reason_code=QUICK_APPROVE_REASON)
            approved += 1
        except DomainError as error:
            problems.append(f"{review.member.external_id}: {error.message}")
    summary = f"Approved {approved} of {len(ids)} selected."
    if not request.htmx:
        messages.success(request, summary)
        for problem in problems:
            messages.error(request, problem)
        return redirect(reverse(QUEUE_URLS[route]))
    context = _queue_context(request, route, request.POST)
    context.update({"bulk_summary": summary, "bulk_problems": problems})
    return render(request, "reviews/partials/queue_table.html", context)


# --- the member page ------------------------------------------------------------------------


def _open(request, review_id: int):
    """The member page's data, after the visibility rule: 404 for what the user may not see."""
    try:
        return review_page(review_id=review_id, viewer=request.user)
    except Review.DoesNotExist as error:
        raise Http404("No such review.") from error


@login_required
@require_GET
def review(request, review_id: int):
    page = _open(request, review_id)
    return _render_review(request, page)


def _render_review(request, page, *, forms=None, error: str = "", status: int = 200):
    review_obj = page.review
    can_decide = can_decide_review(request.user, review_obj)
    forms = forms or {}
    verdicts = ("approve", "override")
    if review_obj.route == Review.Route.ANALYST:
        verdicts += ("escalate",)
    with catalogs_read_once():
        decision_forms = (
            {
                verdict: forms.get(verdict) or DecisionForm(review=review_obj, verdict=verdict)
                for verdict in verdicts
            }
            if can_decide
            else {}
        )
    prediction = review_obj.prediction
    context = {
        "p": page,
        "review": review_obj,
        "is_churn": review_obj.kind == PredictionKind.CHURN,
        "can_decide": can_decide,
        "decision_forms": decision_forms,
        "open_form": next((v for v, f in (forms or {}).items() if f.errors), ""),
        "error": error,
        "queue_url": reverse(QUEUE_URLS.get(review_obj.route, "reviews:queue")),
        "interval_figure": _interval_html(prediction),
        "waterfall_figure": figure_html(waterfall_figure(page.explanation), "waterfall-fig"),
        "waterfall_caption": waterfall_caption(
            page.explanation, probability=prediction.score, kind=review_obj.kind
        ),
        "actions_figure": figure_html(actions_figure(page.actions), "actions-fig"),
        "what_if_fields": what_if_features(page.explanation, prediction.features_seen),
    }
    return render(request, "reviews/member.html", context, status=status)


def _interval_html(prediction) -> str:
    if prediction.score is None:
        return ""
    figure = interval_figure(
        score=prediction.score, low=prediction.interval_low, high=prediction.interval_high
    )
    return figure_html(figure, "interval-fig")


@login_required
@require_POST
def decide(request, review_id: int):
    """Approve, override or escalate from the member page, then open the queue's next item."""
    page = _open(request, review_id)
    review_obj = page.review
    form = DecisionForm(request.POST, review=review_obj)
    if not form.is_valid():
        return _render_review(request, page, forms={form.verdict_name: form}, status=400)
    data = form.cleaned_data
    route = review_obj.route
    common = {
        "review_id": review_obj.pk,
        "actor": request.user,
        "reason_code": data["reason"],
        "comment": data["comment"].strip(),
    }
    try:
        if data["verdict"] == "approve":
            approve_prediction(**common)
            done = "Approved"
        elif data["verdict"] == "override":
            override_prediction(**common, **form.override_answer())
            done = "Overrode"
        else:
            escalate_review(**common, proposal=form.proposal())
            done = "Escalated"
    except DomainError as error:
        page = _open(request, review_obj.pk)  # 404 if the member was erased meanwhile
        return _render_review(
            request, page, forms={form.verdict_name: form}, error=error.message, status=error.status
        )
    member = review_obj.member.external_id
    if route not in QUEUE_URLS:  # an expert decided an auto-approval: no queue to go on with
        messages.success(request, f"{done} {member}.")
        return redirect("reviews:review", review_id=review_obj.pk)
    following = next_pending_review(route=route, after=review_obj)
    if following is None:
        messages.success(request, f"{done} {member}. The queue is empty — nice work.")
        return redirect(QUEUE_URLS[route])
    messages.success(request, f"{done} {member}. Here is the next one.")
    return redirect("reviews:review", review_id=following)


@login_required
@require_POST
def what_if_view(request, review_id: int):
    """Score the member again with a few feature values changed; stores nothing."""
    page = _open(request, review_id)
    prediction = page.review.prediction
    codes = [field["code"] for field in what_if_features(page.explanation, {})]
    stored = prediction.features_seen
    changes = {}
    for code in codes:
        raw = request.POST.get(f"f_{code}")
        if raw is None:
            continue
        if _is_unchanged(raw, stored.get(code)):
            continue  # leave the stored value exactly as the model saw it
        changes[code] = raw
    try:
        result = what_if(prediction=prediction, changes=changes)
    except WhatIfInputError as error:
        return _what_if_error(request, error.message, 400)
    except DomainError as error:
        return _what_if_error(request, error.message, error.status)
    is_churn = result.kind == PredictionKind.CHURN
    before = prediction.score if prediction.score is not None else 0.0
    delta = result.score - before
    context = {
        "result": result,
        "is_churn": is_churn,
        "score": format_percent(result.score),
        "interval": format_interval(result.interval_low, result.interval_high),
        "confidence": format_percent(result.confidence),
        "delta": f"{delta * 100:+.0f} pts",
        "delta_class": "up" if delta > 0.005 else "down" if delta < -0.005 else "flat",
        "changes": [
            (feature_name(code), format_feature_value(code, value))
            for code, value in result.changes.items()
        ],
        "recommended": result.recommended_action,
        "waterfall_figure": figure_html(waterfall_figure(result.explanation), "whatif-fig"),
        "waterfall_caption": waterfall_caption(
            result.explanation, probability=result.score, kind=result.kind
        ),
    }
    return render(request, "reviews/partials/whatif_result.html", context)


def _is_unchanged(raw: str, stored_value) -> bool:
    """The what-if form shows a stored value as `{value:g}` and a missing one as an empty box:
    either left as shown is no change (the model treats a missing value as missing)."""
    if stored_value is None:
        return raw.strip() == ""
    return raw.strip() == f"{float(stored_value):g}"


def _what_if_error(request, message: str, status: int):
    return render(
        request,
        "reviews/partials/flash.html",
        {"message": message, "level": "error"},
        status=status,
    )
