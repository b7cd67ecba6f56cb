"""Admin of the review workflow: reason codes are edited here, every change audited with its
before and after values; policies, reviews, decisions and notifications are shown read-only
(they change only through their services, which audit them)."""

from django.contrib import admin

from loyalty.admin.read_only import ReadOnlyAdmin
from loyalty.services.config_audit import AuditedAdminMixin
from reviews.models import Decision, EscalationPolicy, Notification, ReasonCode, Review


@admin.register(ReasonCode)
class ReasonCodeAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["code", "label", "treatment", "is_active"]
    list_filter = ["treatment", "is_active"]
    search_fields = ["code", "label"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # decisions point at their reason: deactivate instead


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(ReadOnlyAdmin):
    list_display = ["kind", "version", "auto_approve_confidence", "expert_confidence", "created_at"]
    list_filter = ["kind"]


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "route", "state", "member", "confidence", "routed_at"]
    list_filter = ["kind", "route", "state"]
    raw_id_fields = ["prediction", "member"]


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ["id", "review", "verdict", "reason", "decided_by", "decided_at"]
    list_filter = ["verdict", "reason"]


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["id", "recipient", "subject", "created_at", "read_at"]
