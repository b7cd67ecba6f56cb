"""Role groups made by the data migration, and the audit trail of role changes."""

import pytest
from django.contrib.auth.models import Group

from loyalty.models import AuditRecord
from loyalty.roles import ROLE_PERMISSIONS, ROLES

pytestmark = pytest.mark.django_db


def _permissions(group_name: str) -> set[str]:
    group = Group.objects.get(name=group_name)
    return {
        f"{app_label}.{codename}"
        for app_label, codename in group.permissions.values_list(
            "content_type__app_label", "codename"
        )
    }


def test_migration_created_the_four_role_groups():
    assert set(Group.objects.filter(name__in=ROLES).values_list("name", flat=True)) == {
        "analyst",
        "expert",
        "admin",
        "integrator",
    }


@pytest.mark.parametrize("role", ROLES)
def test_each_role_holds_its_listed_permissions(role):
    assert set(ROLE_PERMISSIONS[role]) <= _permissions(role)


def test_analyst_and_expert_read_but_do_not_write_members():
    for role in ("analyst", "expert"):
        permissions = _permissions(role)
        assert "loyalty.view_member" in permissions
        assert "loyalty.view_event" in permissions
        assert "loyalty.change_member" not in permissions
        assert "loyalty.add_event" not in permissions
        assert "loyalty.erase_member" not in permissions


def test_only_admin_may_erase_and_integrator_may_push_data():
    assert "loyalty.erase_member" in _permissions("admin")
    assert {"loyalty.add_member", "loyalty.change_member", "loyalty.add_event"} <= _permissions(
        "integrator"
    )
    assert "loyalty.erase_member" not in _permissions("integrator")


def test_role_permissions_reach_the_user(make_user):
    analyst = make_user("analyst")
    admin = make_user("admin")

    assert analyst.has_perm("loyalty.view_member")
    assert not analyst.has_perm("loyalty.change_member")
    assert admin.has_perm("loyalty.erase_member")


def test_adding_and_removing_a_role_is_audited(django_user_model):
    user = django_user_model.objects.create_user(username="maria")
    analyst = Group.objects.get(name="analyst")
    expert = Group.objects.get(name="expert")

    user.groups.add(analyst, expert)
    user.groups.remove(expert)

    records = list(AuditRecord.objects.filter(kind="role_change").order_by("pk"))
    assert [(record.subject, record.details) for record in records] == [
        ("user:maria", {"change": "add", "groups": ["analyst", "expert"]}),
        ("user:maria", {"change": "remove", "groups": ["expert"]}),
    ]
    assert [record.actor for record in records] == [None, None]


def test_adding_users_from_the_group_side_is_audited_per_user(django_user_model):
    first = django_user_model.objects.create_user(username="ana")
    second = django_user_model.objects.create_user(username="ben")
    admin = Group.objects.get(name="admin")

    admin.user_set.add(first, second)

    records = AuditRecord.objects.filter(kind="role_change")
    assert sorted((record.subject, record.details["change"]) for record in records) == [
        ("user:ana", "add"),
        ("user:ben", "add"),
    ]
    assert {tuple(record.details["groups"]) for record in records} == {("admin",)}


def test_clearing_roles_is_audited(django_user_model):
    user = django_user_model.objects.create_user(username="carl")
    user.groups.add(Group.objects.get(name="integrator"))

    user.groups.clear()

    last = AuditRecord.objects.filter(kind="role_change").order_by("pk").last()
    assert (last.subject, last.details) == ("user:carl", {"change": "clear", "groups": []})
