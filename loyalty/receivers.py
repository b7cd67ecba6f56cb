"""How the loyalty layer reacts to changes to users and groups: role changes made anywhere
(admin, shell, services) land in the audit trail, and make every cached permission set stale
(`loyalty.access`).

Group membership is a many-to-many on Django's own User model, so a signal receiver is the one
place that sees every change to it.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from loyalty.access import forget_all_access
from loyalty.middleware import current_user
from loyalty.models import AuditRecord
from loyalty.services.audit import record_audit

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
