"""How the loyalty layer reacts to changes to users and groups: role changes made anywhere
(admin, shell, services) land in the audit trail, and make every cached permission set stale
(`loyalty.access`); a login lockout (django-axes) lands there too.

Group membership is a many-to-many on Django's own User model, so a signal receiver is the one
place that sees every change to it.
"""

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from loyalty.access import forget_all_access
from loyalty.middleware import current_user
from loyalty.models import AuditRecord, Member
from loyalty.services.audit import record_audit
from loyalty.services.logins import record_lockout
from loyalty.services.members import emit_consent_withdrawn
from loyalty.signals import consent_withdrawn

User = get_user_model()


@receiver(m2m_changed, sender=User.groups.through)
def audit_role_change(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if reverse:  # group.user_set changed: instance is the group, pk_set the users
        users = User.objects.filter(pk__in=pk_set or [])
        group_names = [instance.name]
    else:
        users = [instance]
        group_names = sorted(
            Group.objects.filter(pk__in=pk_set or []).values_list("name", flat=True)
        )
    for user in users:
        record_audit(
            kind=AuditRecord.Kind.ROLE_CHANGE,
            actor=current_user(),
            subject=f"user:{user.get_username()}",
            details={"change": action.removeprefix("post_"), "groups": group_names},
        )


@receiver(m2m_changed, sender=User.groups.through)
@receiver(m2m_changed, sender=User.user_permissions.through)
@receiver(m2m_changed, sender=Group.permissions.through)
def forget_access_after_a_grant(sender, action, **kwargs) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        forget_all_access()


@receiver([post_save, post_delete], sender=User)
@receiver([post_save, post_delete], sender=Group)
def forget_access_after_a_save(sender, **kwargs) -> None:
    """is_active or is_superuser may have changed, or a group gone: every user's entry goes."""
    forget_all_access()


@receiver(consent_withdrawn)
def announce_consent_withdrawn(sender, member_ids, **kwargs) -> None:
    """Every withdrawal of consent to profiling, from the member page, the API or an import,
    leaves as one event per member (`member.consent_withdrawn` with `"consent": "profiling"`),
    in the withdrawal's transaction. A marketing withdrawal emits its own event
    (`services.members.announce_consent_withdrawal`) without this signal."""
    emit_consent_withdrawn(member_ids=member_ids, consent=Member.Consent.PROFILING)


@receiver(user_locked_out)
def audit_lockout(sender, request, username, **kwargs) -> None:
    """One record when an account becomes locked; django-axes announces every refused attempt
    during the lockout too, which are not new lockouts."""
    failures = getattr(request, "axes_failures_since_start", None)
    if failures == settings.AXES_FAILURE_LIMIT:
        record_lockout(username=username, failures=failures)
