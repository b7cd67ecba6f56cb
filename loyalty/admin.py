"""Staff-only admin for members, events, the action catalog and the audit trail."""

from django.contrib import admin, messages

from loyalty.models import Action, AuditRecord, Event, Member
from loyalty.services.erasure import erase_member
from loyalty.services.members import MEMBER_EDITABLE_FIELDS, create_member, update_member


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
    actions = ["erase_selected"]

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        # The external id is what integrators address a member by: set once, never edited.
        if obj is not None:
            return [*self.readonly_fields, "external_id"]
        return self.readonly_fields

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.is_erased:
            return False  # nothing personal is left to edit; the page stays viewable
        return super().has_change_permission(request, obj)

    def has_erase_permission(self, request) -> bool:
        return request.user.has_perm("loyalty.erase_member")

    def save_model(self, request, obj, form, change) -> None:
        # Through the services, so that admin edits are audited (consent above all) like
        # every other write.
        if change:
            data = {
                field: form.cleaned_data[field]
                for field in form.changed_data
                if field in MEMBER_EDITABLE_FIELDS
            }
            update_member(member=obj, actor=request.user, data=data)
        else:
            fields = ("external_id", *MEMBER_EDITABLE_FIELDS)
            created = create_member(
                actor=request.user,
                **{
                    field: form.cleaned_data[field]
                    for field in fields
                    if field in form.cleaned_data
                },
            )
            obj.pk = created.pk
        obj.refresh_from_db()

    @admin.action(
        description="Erase selected members (delete events, blank personal data)",
        permissions=["erase"],
    )
    def erase_selected(self, request, queryset) -> None:
        results = [
            erase_member(member_id=member_id, actor=request.user)
            for member_id in queryset.values_list("pk", flat=True)
        ]
        erased = [result for result in results if not result.already_erased]
        events_deleted = sum(result.events_deleted for result in erased)
        message = f"Erased {len(erased)} member(s) and deleted {events_deleted} event(s)."
        if len(erased) < len(results):
            message += f" {len(results) - len(erased)} were already erased; left unchanged."
        self.message_user(request, message, messages.SUCCESS)


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
