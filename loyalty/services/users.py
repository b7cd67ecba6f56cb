"""Users and their roles."""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from loyalty import roles


@dataclass(frozen=True)
class DemoUser:
    role: str
    username: str
    password: str


# Known passwords on purpose: these accounts exist only in the demo that `make run` starts.
DEMO_USERS = (
    DemoUser(roles.ANALYST, "analyst", "analyst-demo"),
    DemoUser(roles.EXPERT, "expert", "expert-demo"),
    DemoUser(roles.ADMIN, "admin", "admin-demo"),
)


@transaction.atomic
def assign_role(*, user, role: str) -> None:
    """Put a user in exactly one role group; admins are staff (they may open the admin)."""
    user.groups.set([Group.objects.get(name=role)])
    is_staff = roles.is_staff_for([role])
    if user.is_staff != is_staff:
        user.is_staff = is_staff
        user.save(update_fields=["is_staff"])


@transaction.atomic
def create_demo_users() -> list:
    """Create or reset the demo accounts. Safe to run on every `make run`."""
    User = get_user_model()
    users = []
    for demo in DEMO_USERS:
        user, _ = User.objects.get_or_create(username=demo.username)
        user.set_password(demo.password)
        user.save(update_fields=["password"])
        if list(user.groups.values_list("name", flat=True)) != [demo.role]:
            assign_role(user=user, role=demo.role)
        users.append(user)
    return users


def sync_role_groups(*, using: str = "default") -> None:
    """Make sure every role group exists with at least its listed permissions.

    Runs after every `migrate` and test-database flush (post_migrate), so that a permission a
    later app adds to `loyalty.roles` reaches the groups, and so that the groups survive the
    table flush of transactional tests. It only adds: permissions an admin granted by hand stay.
    Permissions of an app not migrated yet are skipped; the next post_migrate adds them.
    """
    from django.contrib.auth.models import Permission

    for role, codes in roles.ROLE_PERMISSIONS.items():
        group, _ = Group.objects.using(using).get_or_create(name=role)
        wanted = Permission.objects.using(using).none()
        for code in codes:
            app_label, codename = code.split(".")
            wanted |= Permission.objects.using(using).filter(
                content_type__app_label=app_label, codename=codename
            )
        group.permissions.add(*wanted)
