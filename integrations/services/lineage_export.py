"""The auditors' export of decision lineages made in a date range (admins only, audited): every
lineage as one JSON line, or the flat part of each as one CSV row. Streamed, a page of
decisions at a time (`integrations.lineage.lineages_in_range`)."""

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations.exports import csv_lines, day_bounds
from integrations.lineage import lineage_decisions, lineages_in_range
from loyalty.exceptions import require_permission
from loyalty.models import AuditRecord
from loyalty.services.audit import record_audit
from reviews.permissions import VIEW_AUDIT

# Those who read the audit trail: admins.
EXPORT_PERMISSION = VIEW_AUDIT
JSON_LINES = "jsonl"
CSV = "csv"
FILE_TYPES = {
    JSON_LINES: "application/x-ndjson; charset=utf-8",
    CSV: "text/csv; charset=utf-8",
}
# The flat part of a lineage: one row per decision. Lists are joined with "; ".
LINEAGE_COLUMNS = (
    "sequence",
    "decision_id",
    "decided_at",
    "member_external_id",
    "kind",
    "verdict",
    "churn_call",
    "action_code",
    "reason_code",
    "comment",
    "decided_as",
    "decided_by",
    "held_out",
    "review_id",
    "route",
    "route_rule",
    "policy_version",
    "action_policy_version",
    "prediction_id",
    "cutoff",
    "score",
    "confidence",
    "events_window_start",
    "events_in_window",
    "model_version_id",
    "data_fingerprint",
    "artifact_checksums",
    "action_prediction_id",
    "action_model_version_id",
    "people",
    "events_out",
    "deliveries_delivered",
    "deliveries_not_delivered",
    "labels",
    "outcomes",
)


@dataclass(frozen=True)
class LineageExport:
    lines: Iterator[str]
    content_type: str
    filename: str


@transaction.atomic
def export_lineages(*, actor, start: date, end: date, file_type: str = JSON_LINES) -> LineageExport:
    """The lineages of the decisions `actor` may read made from `start` to `end` (exclusive,
    days in the current time zone), as lines to stream. The audit record (kind export) is
    written before the first line, with the number of decisions the range holds."""
    require_permission(actor, EXPORT_PERMISSION)
    if file_type not in FILE_TYPES:
        raise ValueError(f"Unknown file type {file_type!r}.")
    begin, finish = day_bounds(start, end)
    count = lineage_decisions(actor).filter(decided_at__gte=begin, decided_at__lt=finish).count()
    record_audit(
        kind=AuditRecord.Kind.EXPORT,
        actor=actor,
        subject="decision-lineage",
        details={
            "what": "decision lineage",
            "start": start.isoformat(),
            "end": end.isoformat(),
            "file_type": file_type,
            "decisions": count,
        },
    )
    documents = lineages_in_range(actor, start=begin, end=finish)
    if file_type == JSON_LINES:
        lines = (json.dumps(document, sort_keys=True) + "\n" for document in documents)
    else:
        lines = csv_lines(LINEAGE_COLUMNS, (flat_row(document) for document in documents))
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    return LineageExport(
        lines=lines,
        content_type=FILE_TYPES[file_type],
        filename=f"decision-lineage-{start}-{end}-{stamp}.{file_type}",
    )


def flat_row(document: dict[str, Any]) -> tuple:
    """The flat part of a lineage, in the order of LINEAGE_COLUMNS."""
    decision, routing = document["decision"], document["routing"]
    decided, *carried = document["predictions"]
    action = carried[0] if carried else None
    deliveries = [
        delivery for event in document["events_out"] for delivery in event["deliveries"] or ()
    ]
    delivered = sum(delivery["status"] == "delivered" for delivery in deliveries)
    return (
        decision["sequence"],
        decision["decision_id"],
        decision["decided_at"],
        document["member"]["external_id"],
        decision["kind"],
        decision["verdict"],
        decision["churn_call"],
        decision["action_code"],
        decision["reason_code"],
        decision["comment"],
        decision["decided_as"],
        decision["decided_by"],
        decision["held_out"],
        routing["review_id"],
        routing["route"],
        routing["rule"],
        routing["policy"]["version"],
        routing["action_policy"]["version"] if routing["action_policy"] else None,
        decided["id"],
        decided["cutoff"],
        decided["score"],
        decided["confidence"],
        decided["events_window"]["start"],
        decided["events_window"]["events"],
        decided["model_version"]["id"],
        decided["model_version"]["data_fingerprint"],
        _joined(
            f"{name}={digest}"
            for name, digest in sorted(decided["model_version"]["artifact_checksums"].items())
        ),
        action["id"] if action else None,
        action["model_version"]["id"] if action else None,
        _joined(f"{step['step']}:{_who(step)}" for step in document["people"]),
        _joined(event["type"] or "withheld" for event in document["events_out"]),
        delivered,
        len(deliveries) - delivered,
        _joined(_label(example) for example in document["labeled_examples"]),
        _joined(_label(outcome) for outcome in document["outcomes"]),
    )


def _label(example: dict[str, Any]) -> str:
    """`kind=label`: the churn call (true: churns) or the action; `excluded` when not trained
    on."""
    if example["excluded"]:
        label = "excluded"
    elif example["churn_label"] is not None:
        label = "true" if example["churn_label"] else "false"
    else:
        label = example["action"] or "none"
    return f"{example['kind']}={label}"


def _who(step: dict[str, Any]) -> str:
    """A person's name; the policy decided or the system escalated (the SLA) without one."""
    return step["who"] or ("policy" if step["step"] == "decided" else "system")


def _joined(values: Iterable[str]) -> str:
    return "; ".join(values)
