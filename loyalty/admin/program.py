"""Staff-only admin for members, events, the action catalog, the program's settings (control
groups, contact rules), periodic tasks, erasure tombstones and the audit trail; users, groups
and API tokens are in `loyalty.admin.users`."""

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse
from django_celery_beat.admin import (
    ClockedScheduleAdmin,
    CrontabScheduleAdmin,
    IntervalScheduleAdmin,
    PeriodicTaskAdmin,
    SolarScheduleAdmin,
)
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from loyalty.admin.read_only import ReadOnlyAdmin
from loyalty.contact_settings import contact_rules_settings
from loyalty.control_groups import control_settings
from loyalty.exceptions import DomainError
from loyalty.models import (
    Action,
    AuditRecord,
    ContactRules,
    ControlGroupSettings,
    ErasureTombstone,
    Event,
    Member,
)
from loyalty.services.config_audit import AuditedAdminMixin, audited_bulk_change
from loyalty.services.erasure import (
    ERASE_PERMISSION,
    ERASED_ID_MESSAGE,
    erase_member,
    erased_external_ids,
    lift_tombstones,
)
from loyalty.services.export import export_member
from loyalty.services.members import MEMBER_EDITABLE_FIELDS, create_member, update_member

# One download of the member export action: a request stays within seconds and the file within
# what a browser and a person handle; more members go through the API, one at a time.
MAX_MEMBERS_PER_EXPORT = 50


class MemberAdminForm(forms.ModelForm):
    class Meta:
        model = Member
        fields = ["external_id", *MEMBER_EDITABLE_FIELDS]

    def clean_external_id(self) -> str:
        """An erased member's former id is refused on the form, as create_member refuses it."""
        external_id = self.cleaned_data["external_id"]
        if erased_external_ids([external_id]):
            raise forms.ValidationError(ERASED_ID_MESSAGE)
        return external_id


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    form = MemberAdminForm
    list_display = [
        "external_id",
        "tier",
        "points_balance",
        "consent_profiling",
        "consent_marketing",
        "joined_on",
        "erased_at",
    ]
    list_filter = ["tier", "consent_profiling", "consent_marketing"]
    search_fields = ["external_id"]
    readonly_fields = ["consent_changed_at", "erased_at", "created_at", "updated_at"]
    actions = ["erase_selected", "export_selected"]

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
        return request.user.has_perm(ERASE_PERMISSION)

    def has_export_permission(self, request) -> bool:
        # Everything held about a member is as sensitive as its erasure: the same role.
        return request.user.has_perm(ERASE_PERMISSION)

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

    @admin.action(
        description="Export everything held about the selected members (JSON)",
        permissions=["export"],
    )
    def export_selected(self, request, queryset):
        member_ids = sorted(queryset.values_list("pk", flat=True)[: MAX_MEMBERS_PER_EXPORT + 1])
        if len(member_ids) > MAX_MEMBERS_PER_EXPORT:
            self.message_user(
                request,
                f"Select at most {MAX_MEMBERS_PER_EXPORT} members per export; nothing was "
                "exported.",
                messages.ERROR,
            )
            return None
        documents = {
            str(member_id): export_member(member_id=member_id, actor=request.user)
            for member_id in member_ids
        }
        if len(member_ids) == 1:
            (member_id,) = member_ids
            content, name = documents[str(member_id)], f"member-{member_id}.json"
        else:
            content, name = documents, f"members-{len(member_ids)}.json"
        response = HttpResponse(
            json.dumps(content, cls=DjangoJSONEncoder, indent=2),
            content_type="application/json",
        )
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["member", "occurred_at", "kind", "amount", "category", "channel"]
    list_filter = ["kind", "channel"]
    search_fields = ["member__external_id", "session_id", "product_id"]
    raw_id_fields = ["member"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False  # counting a million events on every page is slow


@admin.register(Action)
class ActionAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "cost",
        "retention_gain",
        "min_tier",
        "requires_consent",
        "holdout_share",
        "is_active",
    ]
    list_filter = ["is_active", "requires_consent"]
    search_fields = ["code", "name"]
    fieldsets = [
        (None, {"fields": ["code", "name", "description", "is_active"]}),
        ("Who may receive it", {"fields": ["min_tier", "requires_consent"]}),
        (
            "What it is worth",
            {
                "fields": ["cost", "retention_gain"],
                "description": "Expected value for a member: P(churn) x retention gain x member "
                "value - cost.",
            },
        ),
        (
            "Contact rules",
            {
                "fields": ["budget_count", "budget_amount", "cooldown_days"],
                "description": "Budgets count executed decisions in the contact rules' budget "
                "period.",
            },
        ),
        ("Measurement", {"fields": ["holdout_share"]}),
    ]


@admin.register(ControlGroupSettings)
class ControlGroupSettingsAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """The one row of control group settings: changed (audited), never added or deleted."""

    list_display = ["__str__", "universal_share", "action_holdout_share", "updated_at"]
    fields = ["universal_share", "action_holdout_share"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        control_settings()  # the row exists even after a flush
        return super().get_queryset(request)


@admin.register(ContactRules)
class ContactRulesAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """The one row of contact rules: changed (audited), never added or deleted."""

    list_display = [
        "__str__",
        "frequency_cap_actions",
        "frequency_cap_days",
        "budget_period_days",
        "updated_at",
    ]
    fieldsets = [
        ("Frequency cap", {"fields": ["frequency_cap_actions", "frequency_cap_days"]}),
        ("Budgets", {"fields": ["budget_period_days"]}),
    ]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        contact_rules_settings()  # the row exists even after a flush
        return super().get_queryset(request)


class AuditedPeriodicTaskAdmin(AuditedAdminMixin, PeriodicTaskAdmin):
    """django-celery-beat's admin, audited; its enable, disable and toggle actions update
    rows in bulk, past `save_model`, so they are audited here row by row."""

    @admin.action(description=PeriodicTaskAdmin.enable_tasks.short_description)
    def enable_tasks(self, request, queryset) -> None:
        with audited_bulk_change(actor=request.user, queryset=queryset):
            super().enable_tasks(request, queryset)

    @admin.action(description=PeriodicTaskAdmin.disable_tasks.short_description)
    def disable_tasks(self, request, queryset) -> None:
        with audited_bulk_change(actor=request.user, queryset=queryset):
            super().disable_tasks(request, queryset)

    @admin.action(description=PeriodicTaskAdmin.toggle_tasks.short_description)
    def toggle_tasks(self, request, queryset) -> None:
        with audited_bulk_change(actor=request.user, queryset=queryset):
            super().toggle_tasks(request, queryset)


class AuditedIntervalScheduleAdmin(AuditedAdminMixin, IntervalScheduleAdmin):
    pass


class AuditedCrontabScheduleAdmin(AuditedAdminMixin, CrontabScheduleAdmin):
    pass


class AuditedSolarScheduleAdmin(AuditedAdminMixin, SolarScheduleAdmin):
    pass


class AuditedClockedScheduleAdmin(AuditedAdminMixin, ClockedScheduleAdmin):
    pass


AUDITED_BEAT_ADMINS = (
    (PeriodicTask, AuditedPeriodicTaskAdmin),
    (IntervalSchedule, AuditedIntervalScheduleAdmin),
    (CrontabSchedule, AuditedCrontabScheduleAdmin),
    (SolarSchedule, AuditedSolarScheduleAdmin),
    (ClockedSchedule, AuditedClockedScheduleAdmin),
)
for beat_model, beat_admin in AUDITED_BEAT_ADMINS:
    admin.site.unregister(beat_model)
    admin.site.register(beat_model, beat_admin)


class LiftTombstoneForm(ActionForm):
    reason = forms.CharField(
        required=False, max_length=500, help_text="Why the erased id may come back (required)."
    )


@admin.register(ErasureTombstone)
class ErasureTombstoneAdmin(ReadOnlyAdmin):
    """Read-only: a tombstone shows its digest, never the id (which nobody kept). An admin
    lifts selected tombstones with a reason; by id, `manage.py lift_tombstone`."""

    list_display = ["digest", "member", "erased_at", "lifted_at", "lifted_by", "lift_reason"]
    list_filter = [("lifted_at", admin.EmptyFieldListFilter)]
    search_fields = ["digest"]
    action_form = LiftTombstoneForm
    actions = ["lift_selected"]

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(ERASE_PERMISSION)

    def has_module_permission(self, request) -> bool:
        return request.user.has_perm(ERASE_PERMISSION)

    def has_lift_permission(self, request) -> bool:
        return request.user.has_perm(ERASE_PERMISSION)

    @admin.action(
        description="Lift the selected tombstones (their ids may come back)",
        permissions=["lift"],
    )
    def lift_selected(self, request, queryset) -> None:
        try:
            lifted = lift_tombstones(
                tombstone_ids=queryset.values_list("pk", flat=True),
                actor=request.user,
                reason=request.POST.get("reason", ""),
            )
        except DomainError as error:
            self.message_user(request, f"{error.message} Nothing was lifted.", messages.ERROR)
            return
        message = f"Lifted {lifted} tombstone(s)."
        if lifted < queryset.count():
            message += f" {queryset.count() - lifted} were lifted already; left unchanged."
        self.message_user(request, message, messages.SUCCESS)


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    """Read-only: the trail is append-only."""

    list_display = ["occurred_at", "kind", "subject", "actor_name"]
    list_filter = ["kind"]
    search_fields = ["subject", "actor_name"]
