"""The member page: one review with the model's call and why, deciding it, and the what-if."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from loyalty.rate_limits import throttled_page
from predictions.calls import model_churn_call
from predictions.models import PredictionKind
from predictions.services.explanations import ensure_explanation
from predictions.services.whatif import what_if
from reviews.exceptions import ReviewNotOpen
from reviews.figures import (
    actions_figure,
    figure_html,
    interval_figure,
    waterfall_caption,
    waterfall_figure,
)
from reviews.forms.blind import BlindAnswerForm
from reviews.forms.decision import DecisionForm, what_if_features
from reviews.models import Review
from reviews.page_errors import domain_errors_as_pages, error_fragment
from reviews.permissions import VIEW_DECISION, VIEW_REVIEW, can_decide_review
from reviews.selectors.blind import hides_model
from reviews.selectors.catalogs import catalogs_read_once
from reviews.selectors.formatting import (
    feature_name,
    format_feature_value,
    format_interval,
    format_percent,
)
from reviews.selectors.member_page import (
    ReviewPage,
    blind_page,
    page_of_review,
    visible_page_review,
)
from reviews.selectors.queue import next_pending_review
from reviews.services.blind import commit_blind_answer
from reviews.services.decisions import BLIND_ANSWER_FIRST
from reviews.services.openings import record_opening
from reviews.services.verdicts import decide_by_verdict
from reviews.views.queue import QUEUE_URLS

DONE = {"approve": "Approved", "override": "Overrode", "escalate": "Escalated"}
# A refused decision is shown on the member page, its form as the person filled it in.
DECISION_ERRORS_SHOWN = (400, 403, 409)
# A what-if score moving less than this is shown as no change.
WHAT_IF_FLAT = 0.005


def _visible(request, review_id: int) -> Review:
    """The review after the visibility rule: 404 for what the user may not see, before
    anything is read or computed."""
    try:
        return visible_page_review(review_id=review_id, viewer=request.user)
    except Review.DoesNotExist as error:
        raise Http404("No such review.") from error


def _open(request, review_id: int) -> ReviewPage:
    """The member page's data. A prediction opened for the first time gets its explanation
    here (computed once, stored). A blind item nobody answered shows nothing of the model:
    what needs its page (deciding, the what-if) is refused until someone answers."""
    review_obj = _visible(request, review_id)
    if hides_model(review_obj):
        raise ReviewNotOpen(BLIND_ANSWER_FIRST, review_id=review_obj.pk)
    ensure_explanation(prediction=review_obj.prediction)
    record_opening(review=review_obj, user=request.user)
    return page_of_review(review=review_obj, viewer=request.user)


@login_required
@require_GET
def review(request, review_id: int):
    review_obj = _visible(request, review_id)
    if hides_model(review_obj):
        record_opening(review=review_obj, user=request.user)  # their time on it starts
        return _render_blind(request, review_obj)
    return _render_review(request, _open(request, review_id))


def _render_blind(request, review_obj: Review, *, form=None, error: str = "", status: int = 200):
    page = blind_page(review_obj)
    context = {
        "review": review_obj,
        "blind": page,
        "form": form or BlindAnswerForm(actions=page.actions),
        "can_answer": can_decide_review(request.user, review_obj),
        "error": error,
        "queue_url": reverse(QUEUE_URLS.get(review_obj.route, "reviews:queue")),
    }
    return render(request, "reviews/member_blind.html", context, status=status)


def _blind_refused(request, error, review_id: int):
    """The blind page again with the message (the answer as submitted); once someone has
    answered, the revealed page with the message."""
    review_obj = _visible(request, review_id)
    if not hides_model(review_obj):
        return _render_review(
            request, _open(request, review_id), error=error.message, status=error.status
        )
    form = BlindAnswerForm(request.POST, actions=blind_page(review_obj).actions)
    return _render_blind(request, review_obj, form=form, error=error.message, status=error.status)


@login_required
@require_POST
@domain_errors_as_pages(_blind_refused, shown_in_page=DECISION_ERRORS_SHOWN)
def blind_answer(request, review_id: int):
    """Commit the person's own answer to a blind item; then its page shows the model's."""
    review_obj = _visible(request, review_id)
    form = BlindAnswerForm(request.POST, actions=blind_page(review_obj).actions)
    if not form.is_valid():
        return _render_blind(request, review_obj, form=form, status=400)
    answer = commit_blind_answer(review_id=review_obj.pk, user=request.user, **form.answer())
    said = "will churn" if answer.churn_label else "will stay"
    messages.success(request, f"Your answer ({said}) is saved. Here is the model's: decide.")
    return redirect("reviews:review", review_id=review_obj.pk)


def _render_review(request, page: ReviewPage, *, forms=None, error: str = "", status: int = 200):
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
        "review_page": page,
        "review": review_obj,
        "is_churn": review_obj.kind == PredictionKind.CHURN,
        "is_case": review_obj.is_case,
        "model_call": _model_call_words(prediction),
        "can_decide": can_decide,
        # Who may read decisions reads their lineage (integrations' page).
        "can_read_lineage": request.user.has_perms((VIEW_DECISION, VIEW_REVIEW)),
        "decision_forms": decision_forms,
        "open_form": next((verdict for verdict, form in forms.items() if form.errors), ""),
        "error": error,
        "queue_url": reverse(QUEUE_URLS.get(review_obj.route, "reviews:queue")),
        "interval_figure": _interval_html(prediction),
        "waterfall_figure": figure_html(waterfall_figure(page.explanation), "waterfall-figure"),
        "waterfall_caption": waterfall_caption(
            page.explanation,
            probability=prediction.score,
            kind=review_obj.kind,
            action=page.explained_action,
        ),
        "actions_figure": figure_html(actions_figure(page.actions), "actions-figure"),
        "what_if_fields": what_if_features(page.explanation, prediction.features_seen),
    }
    return render(request, "reviews/member.html", context, status=status)


def _model_call_words(prediction) -> str:
    """The model's churn call as the approve button names it."""
    call = model_churn_call(prediction.score)
    return "" if call is None else ("will churn" if call else "will stay")


def _interval_html(prediction) -> str:
    if prediction.score is None:
        return ""
    figure = interval_figure(
        score=prediction.score, low=prediction.interval_low, high=prediction.interval_high
    )
    return figure_html(figure, "interval-figure")


def _decision_refused(request, error, review_id: int):
    """The page again with the message and the form as submitted, at the error's status (the
    page opens afresh: a 404 if the member was erased meanwhile; a blind item nobody answered
    opens blind)."""
    review_obj = _visible(request, review_id)
    if hides_model(review_obj):
        return _render_blind(request, review_obj, error=error.message, status=error.status)
    page = _open(request, review_id)
    form = DecisionForm(request.POST, review=page.review)
    return _render_review(
        request, page, forms={form.verdict_name: form}, error=error.message, status=error.status
    )


@login_required
@require_POST
@domain_errors_as_pages(_decision_refused, shown_in_page=DECISION_ERRORS_SHOWN)
def decide(request, review_id: int):
    """Approve, override or escalate from the member page, then open the queue's next item."""
    page = _open(request, review_id)
    form = DecisionForm(request.POST, review=page.review)
    if not form.is_valid():
        return _render_review(request, page, forms={form.verdict_name: form}, status=400)
    verdict = form.cleaned_data["verdict"]
    decide_by_verdict(
        review_id=page.review.pk,
        actor=request.user,
        verdict=verdict,
        reason_code=form.cleaned_data["reason"],
        comment=form.cleaned_data["comment"].strip(),
        override_answer=form.override_answer(),
        proposal=form.proposal(),
        override_contact_rules=form.cleaned_data.get("override_contact_rules", False),
    )
    return _go_on_after_decision(request, page.review, DONE[verdict])


def _go_on_after_decision(request, review_obj: Review, done: str):
    """The queue's next item, with a word on what was done; the route is the one decided in."""
    member, route = review_obj.member.external_id, review_obj.route
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
@throttled_page("what_if", respond=error_fragment)
@domain_errors_as_pages()
def what_if_view(request, review_id: int):
    """Score the member again with a few feature values changed; stores nothing. Invalid input
    and refusals come back as a message fragment at their status."""
    page = _open(request, review_id)
    prediction = page.review.prediction
    changes = _what_if_changes(request.POST, page.explanation, prediction.features_seen)
    result = what_if(prediction=prediction, changes=changes)
    context = _what_if_context(prediction, result)
    return render(request, "reviews/partials/whatif_result.html", context)


def _what_if_changes(data, explanation: dict, stored: dict) -> dict[str, str]:
    """The submitted values that differ from what the model saw, by feature code."""
    changes = {}
    for field in what_if_features(explanation, {}):
        code = field["code"]
        raw = data.get(f"f_{code}")
        if raw is None or _is_unchanged(raw, stored.get(code)):
            continue  # leave the stored value exactly as the model saw it
        changes[code] = raw
    return changes


def _is_unchanged(raw: str, stored_value) -> bool:
    """The what-if form shows a stored value as `{value:g}` and a missing one as an empty box:
    either left as shown is no change (the model treats a missing value as missing)."""
    if stored_value is None:
        return raw.strip() == ""
    return raw.strip() == f"{float(stored_value):g}"


def _what_if_context(prediction, result) -> dict:
    before = prediction.score if prediction.score is not None else 0.0
    delta = result.score - before
    moved = "up" if delta > WHAT_IF_FLAT else "down" if delta < -WHAT_IF_FLAT else "flat"
    return {
        "result": result,
        "is_churn": result.kind == PredictionKind.CHURN,
        "score": format_percent(result.score),
        "interval": format_interval(result.interval_low, result.interval_high),
        "confidence": format_percent(result.confidence),
        "delta": f"{delta * 100:+.0f} pts",
        "delta_class": moved,
        "changes": [
            (feature_name(code), format_feature_value(code, value))
            for code, value in result.changes.items()
        ],
        "recommended": result.recommended_action,
        "waterfall_figure": figure_html(waterfall_figure(result.explanation), "what-if-figure"),
        "waterfall_caption": waterfall_caption(
            result.explanation, probability=result.score, kind=result.kind
        ),
    }
