"""Admin of the learning loop: the gate and the fairness limits are edited here, every change
audited with its before and after values; labels and retraining runs are shown read-only."""

from django.contrib import admin

from learning.models import FairnessLimits, GatePolicy, LabeledExample, RetrainingRun
from loyalty.admin.read_only import ReadOnlyAdmin
from loyalty.services.config_audit import AuditedAdminMixin


@admin.register(GatePolicy)
class GatePolicyAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = [
        "kind",
        "max_auc_drop",
        "max_ece",
        "coverage_tolerance",
        "auto_promote",
        "retraining_horizon_days",
    ]


@admin.register(LabeledExample)
class LabeledExampleAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "source", "churn_label", "action", "weight", "excluded"]
    list_filter = ["kind", "source", "excluded", "agrees_with_model"]
    raw_id_fields = ["prediction", "decision", "member"]


@admin.register(RetrainingRun)
class RetrainingRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "status", "verdict", "trigger", "candidate", "created_at"]
    list_filter = ["kind", "status", "verdict"]


@admin.register(FairnessLimits)
class FairnessLimitsAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = [
        "kind",
        "window_days",
        "min_group_size",
        "max_parity_difference",
        "min_parity_ratio",
        "max_equalized_odds_difference",
        "max_calibration_difference",
        "max_override_difference",
        "pause_on_breach",
    ]
