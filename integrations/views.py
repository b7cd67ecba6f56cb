"""Pages of the integrations: webhook endpoints and their delivery log (admins), the CSV
exports (a queue, for whoever may open it; decisions, for whoever may read them), a decision's
lineage (for the people who may read the decision) and the auditors' lineage export (admins)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from integrations import exports, lineage, selectors
from integrations.exceptions import InvalidEndpoint
from integrations.forms import (
    DecisionExportForm,
    DeliveryFilterForm,
    EndpointForm,
    LineageExportForm,
)
from integrations.services import delivery as deliveries
from integrations.services import endpoints, lineage_export
from reviews.page_errors import domain_errors_as_pages
from reviews.permissions import VIEW_DECISION, can_open_queue
from reviews.selectors.queue import QUEUE_ROUTES, QueueFilters

VIEW_DELIVERIES = "integrations.view_delivery"
ENDPOINT_ACTIONS = ("rotate", "enable", "disable", "delete")
REVEAL_KEY = "integrations.revealed_secret"


def _require(user, permission: str) -> None:
    if not user.has_perm(permission):
        raise PermissionDenied("This page is for admins.")


@login_required
@require_http_methods(["GET", "POST"])
@domain_errors_as_pages(lambda request, error, **_: _refused(request, error))
def webhooks(request):
    _require(request.user, endpoints.MANAGE_PERMISSION)
    if request.method == "GET":
        return _webhooks(request, form=EndpointForm(), revealed=_take_revealed(request))
    form = EndpointForm(request.POST)
    if not form.is_valid():
        return _webhooks(request, form=form, status=400)
    try:
        made = endpoints.create_endpoint(actor=request.user, **form.cleaned_data)
    except InvalidEndpoint as error:
        # Shown beside the field, with what was typed kept, rather than above an empty form.
        form.add_error("event_types" if "event_types" in error.context else "url", error.message)
        return _webhooks(request, form=form, status=400)
    return _reveal_once(request, made)


@login_required
@require_POST
@domain_errors_as_pages(lambda request, error, **_: _refused(request, error))
def endpoint_action(request, endpoint_id: int, action: str):
    _require(request.user, endpoints.MANAGE_PERMISSION)
    if action not in ENDPOINT_ACTIONS:
        raise Http404("No such action.")
    if action == "rotate":
        made = endpoints.rotate_secret(actor=request.user, endpoint_id=endpoint_id)
        return _reveal_once(request, made)
    if action == "delete":
        endpoints.delete_endpoint(actor=request.user, endpoint_id=endpoint_id)
        messages.success(request, "The endpoint and its delivery log were deleted.")
    else:
        enabled = action == "enable"
        endpoints.update_endpoint(actor=request.user, endpoint_id=endpoint_id, is_enabled=enabled)
        messages.success(request, f"The endpoint is {'enabled' if enabled else 'disabled'}.")
    return redirect("integrations:webhooks")


def _reveal_once(request, made: endpoints.EndpointWithSecret):
    """Post/redirect/get: the new secret waits in the session for the next page view only, so
    that reloading the page neither makes a second endpoint nor rotates the secret again."""
    request.session[REVEAL_KEY] = {"endpoint": made.endpoint.pk, "secret": made.secret}
    return redirect("integrations:webhooks")


def _take_revealed(request) -> endpoints.EndpointWithSecret | None:
    kept = request.session.pop(REVEAL_KEY, None)
    endpoint = kept and selectors.endpoints().filter(pk=kept["endpoint"]).first()
    return endpoints.EndpointWithSecret(endpoint, kept["secret"]) if endpoint else None


def _refused(request, error):
    return _webhooks(request, error=error.message, status=400)


def _webhooks(request, *, form=None, revealed=None, error="", status=200):
    context = {
        "endpoints": selectors.endpoints(),
        "form": form or EndpointForm(),
        "revealed": revealed,
        "error": error,
        "overlap_hours": endpoints.default_overlap_hours(),
    }
    return render(request, "integrations/webhooks.html", context, status=status)


@login_required
@require_GET
def delivery_log(request):
    _require(request.user, VIEW_DELIVERIES)
    filters = DeliveryFilterForm(request.GET)
    chosen = filters.cleaned_data if filters.is_valid() else {}
    before = request.GET.get("before", "")
    page = selectors.delivery_log(
        status=chosen.get("status", ""),
        endpoint_id=chosen.get("endpoint"),
        before=int(before) if before.isdigit() else None,
    )
    context = {"page": page, "filters": filters, "chosen": chosen}
    return render(request, "integrations/deliveries.html", context)


@login_required
@require_GET
def delivery_detail(request, delivery_id: int):
    _require(request.user, VIEW_DELIVERIES)
    found = selectors.delivery_with_attempts(delivery_id)
    if found is None:
        raise Http404("No such delivery.")
    delivery, attempts = found
    context = {"delivery": delivery, "attempts": attempts, "body": exports.pretty_body(delivery)}
    return render(request, "integrations/delivery.html", context)


@login_required
@require_POST
@domain_errors_as_pages()
def redeliver(request, delivery_id: int):
    _require(request.user, endpoints.MANAGE_PERMISSION)
    delivery = deliveries.redeliver(delivery_id)
    transaction.on_commit(lambda: deliveries.queue_delivery([delivery.event_id]))
    messages.success(request, "Queued for one more attempt, with the same event id.")
    return redirect("integrations:delivery", delivery_id=delivery_id)


@login_required
@require_GET
def export_queue(request, route: str):
    if route not in QUEUE_ROUTES:
        raise Http404("No such queue.")
    if not can_open_queue(request.user, route):
        raise PermissionDenied("This queue is for another role.")
    rows = exports.queue_rows(route=route, filters=QueueFilters.from_params(request.GET))
    return _csv(f"{route}-queue", exports.QUEUE_COLUMNS, rows)


@login_required
@require_GET
def export_decisions(request):
    _require(request.user, VIEW_DECISION)
    form = DecisionExportForm(request.GET or None)
    if not form.is_valid():
        status = 400 if request.GET else 200
        return render(request, "integrations/export.html", {"form": form}, status=status)
    start, end = exports.day_bounds(form.cleaned_data["start"], form.cleaned_data["end"])
    rows = exports.decision_rows(request.user, start=start, end=end)
    return _csv(f"decisions-{form.cleaned_data['start']}", exports.DECISION_COLUMNS, rows)


@login_required
@require_GET
def decision_lineage(request, decision_id: int):
    if not lineage.may_read_lineage(request.user):
        raise PermissionDenied("A decision's lineage is for the people who review decisions.")
    document = lineage.decision_lineage(request.user, decision_id=decision_id)
    if document is None:
        raise Http404("No such decision.")
    return render(request, "integrations/lineage.html", {"lineage": document})


@login_required
@require_GET
def export_lineage(request):
    _require(request.user, lineage_export.EXPORT_PERMISSION)
    form = LineageExportForm(request.GET or None)
    if not form.is_valid():
        status = 400 if request.GET else 200
        return render(request, "integrations/export_lineage.html", {"form": form}, status=status)
    made = lineage_export.export_lineages(actor=request.user, **form.cleaned_data)
    return exports.streamed_file(made.lines, content_type=made.content_type, filename=made.filename)


def _csv(name: str, header, rows):
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    return exports.streamed_file(
        exports.csv_lines(header, rows),
        content_type="text/csv; charset=utf-8",
        filename=f"{name}-{stamp}.csv",
    )
