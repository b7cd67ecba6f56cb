"""Pages of the loyalty app, through Django's test client."""

import pytest
from django.urls import reverse

from loyalty.models import AuditRecord
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db


def test_django_admin_is_staff_only(client, make_user):
    analyst = make_user("analyst")
    client.login(username=analyst.username, password=TEST_PASSWORD)

    assert client.get("/admin/").status_code == 302

    admin = make_user("admin")
    client.login(username=admin.username, password=TEST_PASSWORD)
    assert client.get("/admin/").status_code == 200


def test_role_change_in_the_admin_is_audited_with_who_made_it(client, make_user):
    admin = make_user("admin", is_superuser=True)
    analyst = make_user("analyst")
    client.login(username=admin.username, password=TEST_PASSWORD)
    page = client.get(reverse("admin:auth_user_change", args=[analyst.pk]))
    form = page.context["adminform"].form
    data = {key: value for key, value in form.initial.items() if value is not None}
    data.update(
        username=analyst.username,
        groups=[group.pk for group in type(analyst.groups.first()).objects.filter(name="expert")],
        user_permissions=[],
        date_joined_0="2026-01-01",
        date_joined_1="00:00:00",
        last_login_0="",
        last_login_1="",
    )
    before = AuditRecord.objects.filter(kind=AuditRecord.Kind.ROLE_CHANGE).count()

    response = client.post(reverse("admin:auth_user_change", args=[analyst.pk]), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    records = AuditRecord.objects.filter(kind=AuditRecord.Kind.ROLE_CHANGE).order_by("id")
    new = list(records)[before:]
    assert [(r.subject, r.actor_name, r.details) for r in new] == [
        (f"user:{analyst.username}", admin.username, {"change": "remove", "groups": ["analyst"]}),
        (f"user:{analyst.username}", admin.username, {"change": "add", "groups": ["expert"]}),
    ]
