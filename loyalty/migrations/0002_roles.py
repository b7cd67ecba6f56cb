"""Create the role groups with the permissions they had when this migration was written.

The list is frozen here on purpose: a migration must not change meaning when code moves on.
Permissions added later (loyalty.roles) reach the groups through `sync_role_groups`, which
runs after every migrate.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations


_READ = ["loyalty.view_member", "loyalty.view_event", "loyalty.view_action"]
ROLE_PERMISSIONS = {
    "analyst": _READ,
    "expert": _READ,
    "admin": _READ
    + [
        "loyalty.add_member",
        "loyalty.change_member",
        "loyalty.erase_member",
        "loyalty.add_event",
        "loyalty.add_action",
        "loyalty.change_action",
        "loyalty.delete_action",
        "loyalty.view_auditrecord",
        "auth.view_user",
        "auth.add_user",
        "auth.change_user",
        "django_celery_beat.view_periodictask",
        "django_celery_beat.change_periodictask",
    ],
    "integrator": _READ + ["loyalty.add_member", "loyalty.change_member", "loyalty.add_event"],
}


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, codes in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        for code in codes:
            app_label, codename = code.split(".")
            permission = Permission.objects.get(
                content_type__app_label=app_label, codename=codename
            )
            group.permissions.add(permission)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLE_PERMISSIONS)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
