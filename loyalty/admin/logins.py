"""Admin of login lockouts (django-axes): admins see the failed attempts and unlock accounts;
every unlock, by the action or by deleting the attempts, is audited (`unlock_logins`)."""

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin, messages

from loyalty.services.logins import unlock_logins


class AuditedAccessAttemptAdmin(AccessAttemptAdmin):
    actions = ["unlock", *AccessAttemptAdmin.actions]

    @admin.action(description="Unlock the selected accounts", permissions=["delete"])
    def unlock(self, request, queryset) -> None:
        records = unlock_logins(
            usernames=queryset.values_list("username", flat=True), actor=request.user
        )
        self.message_user(request, f"Unlocked {len(records)} account(s).", messages.SUCCESS)

    def delete_model(self, request, obj) -> None:
        unlock_logins(usernames=[obj.username], actor=request.user)

    def delete_queryset(self, request, queryset) -> None:
        unlock_logins(usernames=queryset.values_list("username", flat=True), actor=request.user)


admin.site.unregister(AccessAttempt)
admin.site.register(AccessAttempt, AuditedAccessAttemptAdmin)
