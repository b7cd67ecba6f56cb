"""Admin of the learning loop: the gate, the fairness limits and the protected attributes are
edited here, every change audited with its before and after values; labels and retraining runs
are shown read-only."""

from django.contrib import admin

from learning.models import (
    FairnessLimits,
    GatePolicy,
    LabeledExample,
    ProtectedAttribute,
    RetrainingRun,
)
from learning.services.protected_attributes import MARK_PERMISSION
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


@admin.register(ProtectedAttribute)
class ProtectedAttributeAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Marked and unmarked by those who set the fairness limits (the Fairness page does the
    same through `learning.services.protected_attributes`)."""

    list_display = ["key", "label", "created_by", "created_at"]
    readonly_fields = ["created_by", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        # The key names the attribute measured: another key is another mark.
        return [*self.readonly_fields, "key"] if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def has_module_permission(self, request) -> bool:
        return super().has_module_permission(request) or self._may_mark(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._may_mark(request)

    def has_add_permission(self, request) -> bool:
        return self._may_mark(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._may_mark(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._may_mark(request)

    @staticmethod
    def _may_mark(request) -> bool:
        return request.user.is_active and request.user.has_perm(MARK_PERMISSION)
