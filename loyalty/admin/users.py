"""Admin of who may do what: users, groups and API tokens, every change audited.

An admin who is not a superuser manages people through their roles: names, email, whether the
account is active, and which role groups (`loyalty.roles.ROLES`) they hold. Staff status
follows the admin role. Superuser status, direct permissions, other groups, other people's
passwords and superusers themselves stay out of their reach; a superuser keeps Django's
stock user admin.
"""

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import UserCreationForm, UsernameField
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import router, transaction
from django.db.models import Q
from django.forms import ModelForm
from knox.admin import AuthTokenAdmin
from knox.models import AuthToken

from loyalty import roles
from loyalty.services.config_audit import (
    AuditedAdminMixin,
    record_config_change,
    snapshot,
    stored_snapshot,
)

User = get_user_model()

ROLE_FIELDSET_TITLE = "Role"
# Staff status is what opens the admin: it follows the admin role rather than a checkbox.
ROLE_FIELDS = ("is_active", "groups")
PERSONAL_FIELDS = ("first_name", "last_name", "email")
SHOWN_NOT_EDITED = ("is_staff", "last_login", "date_joined")


class RoleGroupsFormMixin:
    """The groups field offers the role groups only (the admin narrows its choices); groups
    a superuser gave that are not roles stay as they are."""

    def clean_groups(self):
        chosen = self.cleaned_data["groups"]
        if self.instance.pk is None:
            return chosen
        kept = self.instance.groups.exclude(name__in=roles.ROLES)
        return Group.objects.filter(Q(pk__in=chosen) | Q(pk__in=kept))


class RoleUserCreationForm(RoleGroupsFormMixin, UserCreationForm):
    """A new user with a password and roles, nothing more."""

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "groups")


class RoleUserChangeForm(RoleGroupsFormMixin, ModelForm):
    """What an admin who is not a superuser may change about an existing user."""

    class Meta:
        model = User
        fields = ("username", *PERSONAL_FIELDS, *ROLE_FIELDS)
        field_classes = {"username": UsernameField}


class RestrictedUserAdmin(AuditedAdminMixin, UserAdmin):
    """Django's user admin for superusers; for everyone else, users managed by role."""

    role_add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "password1", "password2")}),
        (ROLE_FIELDSET_TITLE, {"fields": ("groups",)}),
    )
    role_change_fieldsets = (
        (None, {"fields": ("username",)}),
        ("Personal info", {"fields": PERSONAL_FIELDS}),
        (ROLE_FIELDSET_TITLE, {"fields": (*ROLE_FIELDS, "is_staff")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )

    def get_fieldsets(self, request, obj=None):
        if request.user.is_superuser:
            return super().get_fieldsets(request, obj)
        return self.role_add_fieldsets if obj is None else self.role_change_fieldsets

    def get_readonly_fields(self, request, obj=None):
        if request.user.is_superuser or obj is None:
            return super().get_readonly_fields(request, obj)
        return SHOWN_NOT_EDITED

    def get_form(self, request, obj=None, **kwargs):
        if not request.user.is_superuser:
            kwargs["form"] = RoleUserCreationForm if obj is None else RoleUserChangeForm
        return super().get_form(request, obj, **kwargs)

    def formfield_for_manytomany(self, db_field, request=None, **kwargs):
        if db_field.name == "groups" and not request.user.is_superuser:
            kwargs["queryset"] = Group.objects.filter(name__in=roles.ROLES).order_by("name")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None) -> bool:
        if _is_out_of_reach(request, obj):
            return False  # the page stays viewable, read-only
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if _is_out_of_reach(request, obj):
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change) -> None:
        if not request.user.is_superuser:
            obj.is_staff = roles.is_staff_for(group.name for group in form.cleaned_data["groups"])
        super().save_model(request, obj, form, change)

    def user_change_password(self, request, id, form_url=""):
        # Setting another person's password without knowing the old one is taking over their
        # account: superusers only. Everyone changes their own on the admin's password page,
        # which asks for the old one.
        if not request.user.is_superuser:
            raise PermissionDenied
        with transaction.atomic(using=router.db_for_write(self.model)):
            user = self.get_object(request, unquote(id))
            before = None if user is None else snapshot(user)
            response = super().user_change_password(request, id, form_url)
            if before is not None and request.method == "POST":
                record_config_change(actor=request.user, before=before, after=stored_snapshot(user))
        return response


def _is_out_of_reach(request, user) -> bool:
    """A superuser's account is changed by superusers only."""
    return user is not None and user.is_superuser and not request.user.is_superuser


class AuditedGroupAdmin(AuditedAdminMixin, GroupAdmin):
    pass


class AuditedTokenAdmin(AuditedAdminMixin, AuthTokenAdmin):
    """API tokens (django-rest-knox; the key is shown once, on adding): the trail names the
    token's user, creation time and expiry, never its digest or key. Listed by user and dates."""

    list_display = ("user", "created", "expiry")
    search_fields = ("user__username",)


admin.site.unregister(User)
admin.site.register(User, RestrictedUserAdmin)
admin.site.unregister(Group)
admin.site.register(Group, AuditedGroupAdmin)
admin.site.unregister(AuthToken)
admin.site.register(AuthToken, AuditedTokenAdmin)
