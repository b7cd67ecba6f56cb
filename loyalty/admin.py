"""Staff-only admin for members, events, the action catalog and the audit trail."""

from django.contrib import admin

from loyalty.models import Action, AuditRecord, Event, Member


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    list_display = [
        "external_id",
        "tier",
        "points_balance",
        "consent_profiling",
        "joined_on",
        "erased_at",
    ]
    list_filter = ["tier", "consent_profiling"]
    search_fields = ["external_id"]
    readonly_fields = ["consent_changed_at", "erased_at", "created_at", "updated_at"]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["member", "occurred_at", "kind", "amount", "category", "channel"]
    list_filter = ["kind", "channel"]
    search_fields = ["member__external_id", "session_id", "product_id"]
    raw_id_fields = ["member"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False  # counting a million events on every page is slow


@admin.register(Action)
class ActionAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "cost", "min_tier", "requires_consent", "is_active"]
    list_filter = ["is_active", "requires_consent"]
    search_fields = ["code", "name"]


@admin.register(AuditRecord)
class AuditRecordAdmin(admin.ModelAdmin):
    """Read-only: the trail is append-only."""

    list_display = ["occurred_at", "kind", "subject", "actor_name"]
    list_filter = ["kind"]
    search_fields = ["subject", "actor_name"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
