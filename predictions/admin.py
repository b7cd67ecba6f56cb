"""Admin for the model registry: versions with promote and rollback actions, runs, predictions,
and which model serves scoring per kind."""

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from loyalty.exceptions import DomainError
from predictions.models import ModelVersion, Prediction, ScoringRun, ScoringSetting
from predictions.services.registry import (
    PROMOTE_PERMISSION,
    promote_model_version,
    rollback_model_version,
)
from predictions.services.scoring.settings import set_scoring_model

# Promotion and rollback re-score every member, as `manage.py promote` does: the predictions
# of the version taken out of service must not stay live.
RESCORING = "Scoring every member with it in the background."

# The out-of-time figures the registry compares, in the order people read them.
SIDE_BY_SIDE_METRICS = (
    ("roc_auc", "ROC AUC"),
    ("pr_auc", "PR AUC"),
    ("log_loss", "Log loss"),
    ("brier", "Brier score"),
    ("ece", "Calibration error (ECE)"),
    ("coverage", "Label-set coverage"),
    ("nominal_coverage", "Nominal coverage"),
    ("interval_mean_width", "Mean interval width"),
    ("base_rate", "Churn rate"),
    ("n", "Members"),
)
# Report entry -> column heading; entries a version lacks are left out.
SIDE_BY_SIDE_COLUMNS = (
    ("model", "Trees (XGBoost)"),
    ("ensemble", "Ensemble (trees + sequence)"),
    ("sequence", "Sequence model alone"),
    ("recency", "Recency baseline"),
    ("rfm_logistic", "RFM logistic baseline"),
    ("bgnbd", "BG/NBD baseline"),
)


def metrics_columns(metrics: dict) -> list[tuple[str, dict, float | None]]:
    """(column heading, out-of-time metrics, selection log loss) per model a churn version's
    report evaluated, in SIDE_BY_SIDE_COLUMNS order; models without figures are left out."""
    entries = {
        "model": metrics.get("model") or {},
        "ensemble": metrics.get("ensemble") or {},
        "sequence": metrics.get("sequence") or {},
        **(metrics.get("baselines") or {}),
    }
    selection = dict((metrics.get("selection") or {}).get("log_loss") or {})
    selection["model"] = selection.get("xgboost")
    selection["sequence"] = (metrics.get("sequence_model") or {}).get("sequence_selection_log_loss")
    return [
        (title, entries[key], selection.get(key))
        for key, title in SIDE_BY_SIDE_COLUMNS
        if entries.get(key)
    ]


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "status",
        "algorithm",
        "sequence_ensemble",
        "evaluation_cutoff",
        "created_at",
        "promoted_at",
        "promoted_by",
    ]
    list_filter = ["kind", "status"]
    actions = ["promote", "roll_back"]
    readonly_fields = ["metrics_side_by_side"] + [field.name for field in ModelVersion._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # versions come from training, never typed in

    @admin.display(description="Sequence ensemble")
    def sequence_ensemble(self, version: ModelVersion) -> str:
        sequence = (version.metrics or {}).get("sequence_model") or {}
        if not sequence.get("trained"):
            return "–"
        return "won the selection" if version.algorithm == "ensemble" else "trained, trees won"

    @admin.display(description="Out of time: trees and ensemble side by side")
    def metrics_side_by_side(self, version: ModelVersion) -> str:
        metrics = version.metrics or {}
        columns = metrics_columns(metrics)
        if not columns:
            reason = (metrics.get("evaluation") or {}).get("reason") or "no figures"
            return format_html("<p>No out-of-time evaluation: {}</p>", reason)

        def cells(values) -> str:
            return format_html_join("", "<td>{}</td>", ((_cell(value),) for value in values))

        rows = [
            (label, cells(entry.get(code) for _, entry, _ in columns))
            for code, label in SIDE_BY_SIDE_METRICS
        ]
        rows.append(
            (
                "Selection log loss (calibration split)",
                cells(loss for _, _, loss in columns),
            )
        )
        return format_html(
            "<p>Selected: <strong>{}</strong> (without the sequence model: {})</p>"
            "<table><thead><tr><th></th>{}</tr></thead><tbody>{}</tbody></table>",
            metrics.get("selected", version.algorithm),
            metrics.get("selected_without_sequence", version.algorithm),
            format_html_join("", "<th>{}</th>", ((title,) for title, _, _ in columns)),
            format_html_join("", "<tr><th>{}</th>{}</tr>", rows),
        )

    @admin.action(description="Promote the selected version to active", permissions=["promote"])
    def promote(self, request, queryset) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", messages.ERROR)
            return
        version = promote_model_version(
            version_id=queryset.get().pk, actor=request.user, rescore=True
        )
        self.message_user(request, f"{version} is now active. {RESCORING}", messages.SUCCESS)

    @admin.action(description="Roll back to the previously active version", permissions=["promote"])
    def roll_back(self, request, queryset) -> None:
        for kind in sorted(set(queryset.values_list("kind", flat=True))):
            try:
                version = rollback_model_version(kind=kind, actor=request.user, rescore=True)
            except DomainError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                self.message_user(
                    request, f"{version} is active again. {RESCORING}", messages.SUCCESS
                )

    def has_promote_permission(self, request) -> bool:
        return request.user.has_perm(PROMOTE_PERMISSION)


@admin.register(ScoringSetting)
class ScoringSettingAdmin(admin.ModelAdmin):
    """Trees alone or the ensemble, per kind. Whoever may promote versions may choose this
    (it is part of what runs in production); every change is audited by the service."""

    list_display = ["kind", "model", "updated_at", "updated_by"]
    fields = ["kind", "model", "updated_at", "updated_by"]
    readonly_fields = ["kind", "updated_at", "updated_by"]

    def has_add_permission(self, request) -> bool:
        return False  # one row per kind, created by the migration or the service

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(PROMOTE_PERMISSION) or super().has_view_permission(
            request, obj
        )

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(PROMOTE_PERMISSION)

    def save_model(self, request, obj, form, change) -> None:
        try:
            set_scoring_model(kind=obj.kind, model=obj.model, actor=request.user)
        except DomainError as error:
            self.message_user(request, error.message, messages.ERROR)


@admin.register(ScoringRun)
class ScoringRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "model_version",
        "cutoff",
        "served_model",
        "status",
        "members_total",
        "members_scored",
        "members_skipped_no_consent",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status"]
    readonly_fields = [field.name for field in ScoringRun._meta.fields]


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["id", "member", "kind", "model_version", "cutoff", "score", "confidence"]
    list_filter = ["kind"]
    raw_id_fields = ["member", "model_version", "recommended_action"]
    search_fields = ["member__external_id"]
    show_full_result_count = False
