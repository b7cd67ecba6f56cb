"""The admin role cannot raise itself above its role, and every change made in the admin is
audited with its before and after values (never a password hash or a token key)."""

import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from knox.models import AuthToken
from rest_framework.test import APIClient

from learning.models import GatePolicy
from loyalty.models import Action, AuditRecord
from predictions.models import ScoringSetting
from reviews.models import ReasonCode
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Another-long-pass-82"
CONFIG_CHANGE = AuditRecord.Kind.CONFIG_CHANGE


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser(
        username="root", email="root@example.com", password=TEST_PASSWORD
    )


def _group(name: str) -> Group:
    return Group.objects.get(name=name)


def _permission(code: str) -> Permission:
    app_label, codename = code.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def _user_form(user, **overrides) -> dict:
    """Everything Django's stock user change form needs, so that a request the old admin
    would have accepted reaches the new one too."""
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on",
        "groups": [group.pk for group in user.groups.all()],
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "last_login_0": "",
        "last_login_1": "",
    }
    data.update(overrides)
    return data


def _config_records() -> list[AuditRecord]:
    return list(AuditRecord.objects.filter(kind=CONFIG_CHANGE).order_by("pk"))


def _only_config_record() -> AuditRecord:
    records = _config_records()
    assert len(records) == 1, [(record.subject, record.details) for record in records]
    return records[0]


def _all_audit_details() -> str:
    return json.dumps(
        [[record.subject, record.details] for record in AuditRecord.objects.all()],
    )


# The security findings: each request below was accepted by Django's stock user admin.


def test_admin_posting_superuser_status_to_own_page_stays_a_plain_admin(client, make_user):
    admin = make_user("admin")
    client.force_login(admin)

    response = client.post(
        reverse("admin:auth_user_change", args=[admin.pk]),
        _user_form(admin, is_superuser="on", is_staff="on"),
    )

    assert response.status_code == 302
    admin.refresh_from_db()
    assert admin.is_superuser is False
    assert admin.is_staff is True
    assert list(admin.groups.values_list("name", flat=True)) == ["admin"]


def test_admin_cannot_grant_direct_permissions(client, make_user):
    admin = make_user("admin")
    analyst = make_user("analyst")
    client.force_login(admin)
    delete_user = _permission("auth.delete_user")

    for user in (admin, analyst):
        response = client.post(
            reverse("admin:auth_user_change", args=[user.pk]),
            _user_form(user, user_permissions=[delete_user.pk]),
        )
        assert response.status_code == 302

    assert list(admin.user_permissions.all()) == []
    assert list(analyst.user_permissions.all()) == []
    admin.refresh_from_db()
    assert admin.has_perm("auth.delete_user") is False


def test_admin_cannot_give_a_group_that_is_not_a_role(client, make_user):
    admin = make_user("admin")
    analyst = make_user("analyst")
    powerful = Group.objects.create(name="user-managers")
    powerful.permissions.add(_permission("auth.delete_user"))
    client.force_login(admin)

    response = client.post(
        reverse("admin:auth_user_change", args=[analyst.pk]),
        _user_form(analyst, groups=[powerful.pk]),
    )

    assert response.status_code == 200
    assert "groups" in response.context["adminform"].form.errors
    assert list(analyst.groups.values_list("name", flat=True)) == ["analyst"]


def test_groups_that_are_not_roles_survive_an_admins_edit(client, make_user):
    admin = make_user("admin")
    analyst = make_user("analyst")
    auditors = Group.objects.create(name="auditors")
    analyst.groups.add(auditors)
    client.force_login(admin)

    response = client.post(
        reverse("admin:auth_user_change", args=[analyst.pk]),
        _user_form(analyst, groups=[_group("expert").pk]),
    )

    assert response.status_code == 302
    assert sorted(analyst.groups.values_list("name", flat=True)) == ["auditors", "expert"]


def test_admin_cannot_open_or_post_another_users_password_form(client, make_user):
    admin = make_user("admin")
    analyst = make_user("analyst")
    client.force_login(admin)
    url = reverse("admin:auth_user_password_change", args=[analyst.pk])

    shown = client.get(url)
    posted = client.post(
        url,
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )

    assert (shown.status_code, posted.status_code) == (403, 403)
    analyst.refresh_from_db()
    assert analyst.check_password(TEST_PASSWORD) is True
    assert _config_records() == []


def test_admin_cannot_open_the_password_form_of_their_own_account_either(client, make_user):
    admin = make_user("admin")
    client.force_login(admin)

    response = client.get(reverse("admin:auth_user_password_change", args=[admin.pk]))

    assert response.status_code == 403
    assert client.get(reverse("admin:password_change")).status_code == 200


def test_admin_sees_a_superuser_read_only_and_cannot_change_them(client, make_user, superuser):
    admin = make_user("admin")
    client.force_login(admin)
    url = reverse("admin:auth_user_change", args=[superuser.pk])

    shown = client.get(url)
    posted = client.post(url, _user_form(superuser, email="taken@example.com", is_active=""))

    assert shown.status_code == 200
    assert shown.context["has_change_permission"] is False
    assert posted.status_code == 403
    superuser.refresh_from_db()
    assert (superuser.email, superuser.is_active, superuser.is_superuser) == (
        "root@example.com",
        True,
        True,
    )
    assert _config_records() == []


def test_admin_adds_an_analyst_with_a_password_and_a_role(client, make_user, django_user_model):
    admin = make_user("admin")
    client.force_login(admin)

    response = client.post(
        reverse("admin:auth_user_add"),
        {
            "username": "nadia",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
            "groups": [_group("analyst").pk],
            "is_superuser": "on",
            "is_staff": "on",
            "user_permissions": [_permission("auth.delete_user").pk],
        },
    )

    assert response.status_code == 302
    nadia = django_user_model.objects.get(username="nadia")
    assert nadia.check_password(NEW_PASSWORD) is True
    assert list(nadia.groups.values_list("name", flat=True)) == ["analyst"]
    assert (nadia.is_superuser, nadia.is_staff, nadia.is_active) == (False, False, True)
    assert list(nadia.user_permissions.all()) == []


def test_staff_status_follows_the_admin_role(client, make_user):
    admin = make_user("admin")
    analyst = make_user("analyst")
    client.force_login(admin)
    url = reverse("admin:auth_user_change", args=[analyst.pk])

    client.post(url, _user_form(analyst, groups=[_group("admin").pk]))
    analyst.refresh_from_db()
    promoted = analyst.is_staff
    client.post(url, _user_form(analyst, groups=[_group("expert").pk], is_staff="on"))
    analyst.refresh_from_db()

    assert (promoted, analyst.is_staff) == (True, False)


def test_admin_role_cannot_change_groups(client, make_user):
    admin = make_user("admin")
    client.force_login(admin)
    analyst_group = _group("analyst")
    before = set(analyst_group.permissions.values_list("pk", flat=True))

    response = client.post(
        reverse("admin:auth_group_change", args=[analyst_group.pk]),
        {"name": "analyst", "permissions": [_permission("auth.delete_user").pk]},
    )

    assert response.status_code == 403
    assert set(analyst_group.permissions.values_list("pk", flat=True)) == before


def test_superuser_keeps_the_stock_user_admin(client, make_user, superuser):
    analyst = make_user("analyst")
    client.force_login(superuser)

    form = (
        client.get(reverse("admin:auth_user_change", args=[analyst.pk])).context["adminform"].form
    )
    password_page = client.get(reverse("admin:auth_user_password_change", args=[analyst.pk]))

    assert {"is_superuser", "is_staff", "user_permissions", "password"} <= set(form.fields)
    assert password_page.status_code == 200


# Every change made in the admin leaves one config_change record with before and after.


def test_adding_a_user_is_audited_with_every_field_and_no_password_hash(
    client, make_user, django_user_model
):
    admin = make_user("admin")
    client.force_login(admin)

    client.post(
        reverse("admin:auth_user_add"),
        {
            "username": "nadia",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
            "groups": [_group("analyst").pk],
        },
    )

    record = _only_config_record()
    nadia = django_user_model.objects.get(username="nadia")
    assert (record.kind, record.subject, record.actor) == (
        CONFIG_CHANGE,
        f"auth.user:{nadia.pk}",
        admin,
    )
    assert record.details == {
        "change": "add",
        "model": "auth.user",
        "before": {},
        "after": {
            "id": nadia.pk,
            "password": "<set>",
            "last_login": None,
            "is_superuser": False,
            "username": "nadia",
            "first_name": "",
            "last_name": "",
            "email": "",
            "is_staff": False,
            "is_active": True,
            "date_joined": nadia.date_joined.isoformat(),
            "groups": ["analyst"],
            "user_permissions": [],
        },
    }
    assert nadia.password not in _all_audit_details()


def test_changing_a_user_is_audited_with_the_changed_fields_only(client, make_user):
    admin = make_user("admin")
    analyst = make_user("analyst")
    client.force_login(admin)

    client.post(
        reverse("admin:auth_user_change", args=[analyst.pk]),
        _user_form(analyst, email="ana@example.com", groups=[_group("admin").pk]),
    )

    record = _only_config_record()
    assert (record.subject, record.actor) == (f"auth.user:{analyst.pk}", admin)
    assert record.details == {
        "change": "change",
        "model": "auth.user",
        "before": {"email": "", "is_staff": False, "groups": ["analyst"]},
        "after": {"email": "ana@example.com", "is_staff": True, "groups": ["admin"]},
    }
    # Role membership keeps its own trail beside it.
    assert AuditRecord.objects.filter(kind="role_change", actor=admin).count() == 2


def test_a_password_set_by_a_superuser_is_audited_as_changed_without_the_hash(
    client, make_user, superuser
):
    analyst = make_user("analyst")
    old_hash = analyst.password
    client.force_login(superuser)

    response = client.post(
        reverse("admin:auth_user_password_change", args=[analyst.pk]),
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )

    assert response.status_code == 302
    analyst.refresh_from_db()
    record = _only_config_record()
    assert (record.subject, record.actor) == (f"auth.user:{analyst.pk}", superuser)
    assert record.details == {
        "change": "change",
        "model": "auth.user",
        "before": {"password": "<set>"},
        "after": {"password": "<changed>"},
    }
    audit_text = _all_audit_details()
    assert old_hash not in audit_text
    assert analyst.password not in audit_text


def test_deleting_a_user_is_audited_with_its_last_values(client, make_user, superuser):
    analyst = make_user("analyst", email="ana@example.com")
    client.force_login(superuser)

    response = client.post(reverse("admin:auth_user_delete", args=[analyst.pk]), {"post": "yes"})

    assert response.status_code == 302
    record = _only_config_record()
    assert (record.subject, record.actor) == (f"auth.user:{analyst.pk}", superuser)
    assert record.details["change"] == "delete"
    assert record.details["after"] == {}
    assert {
        key: record.details["before"][key]
        for key in ("username", "email", "password", "groups", "is_superuser")
    } == {
        "username": "analyst-user",
        "email": "ana@example.com",
        "password": "<set>",
        "groups": ["analyst"],
        "is_superuser": False,
    }


def test_adding_and_changing_a_group_is_audited_with_its_permissions(client, superuser):
    client.force_login(superuser)
    view_member = _permission("loyalty.view_member")
    view_event = _permission("loyalty.view_event")

    client.post(
        reverse("admin:auth_group_add"), {"name": "auditors", "permissions": [view_member.pk]}
    )
    auditors = Group.objects.get(name="auditors")
    client.post(
        reverse("admin:auth_group_change", args=[auditors.pk]),
        {"name": "auditors", "permissions": [view_member.pk, view_event.pk]},
    )

    added, changed = _config_records()
    assert (added.subject, added.actor, added.details) == (
        f"auth.group:{auditors.pk}",
        superuser,
        {
            "change": "add",
            "model": "auth.group",
            "before": {},
            "after": {
                "id": auditors.pk,
                "name": "auditors",
                "permissions": ["loyalty.view_member"],
            },
        },
    )
    assert changed.details == {
        "change": "change",
        "model": "auth.group",
        "before": {"permissions": ["loyalty.view_member"]},
        "after": {"permissions": ["loyalty.view_event", "loyalty.view_member"]},
    }


def test_a_token_is_audited_by_its_user_and_dates_never_its_key_or_digest(
    client, make_user, superuser
):
    integrator = make_user("integrator")
    client.force_login(superuser)

    added = client.post(
        reverse("admin:knox_authtoken_add"),
        {"user": integrator.pk, "expiry_0": "2031-01-02", "expiry_1": "03:04:05"},
        follow=True,
    )
    token = AuthToken.objects.get(user=integrator)
    [shown] = [str(message) for message in added.context["messages"] if "TOKEN " in str(message)]
    key = shown.split("TOKEN ", 1)[1]
    authenticated = APIClient()
    authenticated.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert authenticated.get(reverse("api:member-list")).status_code == 200
    client.post(reverse("admin:knox_authtoken_delete", args=[token.digest]), {"post": "yes"})

    assert AuthToken.objects.filter(user=integrator).exists() is False
    added_record, deleted_record = _config_records()
    token_values = {
        "user": integrator.pk,
        "created": token.created.isoformat(),
        "expiry": "2031-01-02T03:04:05+00:00",
    }
    assert [
        (record.subject, record.actor, record.details) for record in (added_record, deleted_record)
    ] == [
        (
            f"knox.authtoken:{integrator.pk}",
            superuser,
            {"change": "add", "model": "knox.authtoken", "before": {}, "after": token_values},
        ),
        (
            f"knox.authtoken:{integrator.pk}",
            superuser,
            {"change": "delete", "model": "knox.authtoken", "before": token_values, "after": {}},
        ),
    ]
    trail = _all_audit_details()
    assert key not in trail
    assert key[:15] not in trail
    assert token.digest not in trail


def test_admin_role_holds_no_token_permissions(client, make_user):
    admin = make_user("admin")
    integrator = make_user("integrator")
    client.force_login(admin)

    response = client.post(reverse("admin:knox_authtoken_add"), {"user": integrator.pk})

    assert response.status_code == 403
    assert AuthToken.objects.count() == 0


def test_changing_the_gate_policy_is_audited(client, make_user):
    admin = make_user("admin")
    policy = GatePolicy.objects.get(kind="churn")  # seeded by a migration
    client.force_login(admin)

    response = client.post(
        reverse("admin:learning_gatepolicy_change", args=[policy.pk]),
        {
            "kind": "churn",
            "max_auc_drop": "0.01",
            "max_ece": "0.05",
            "coverage_tolerance": "0.03",
            "max_human_log_loss_increase": "0.0",
            "min_human_examples": "30",
            # auto_promote left out: unchecked
            "monitor_max_ece": "0.1",
            "monitor_max_psi": "0.25",
            "monitor_min_outcomes": "200",
        },
    )

    assert response.status_code == 302
    record = _only_config_record()
    assert (record.subject, record.actor) == (f"learning.gatepolicy:{policy.pk}", admin)
    assert record.details == {
        "change": "change",
        "model": "learning.gatepolicy",
        "before": {"max_auc_drop": 0.005, "auto_promote": True},
        "after": {"max_auc_drop": 0.01, "auto_promote": False},
    }


def test_adding_and_changing_a_reason_code_is_audited(client, make_user):
    admin = make_user("admin")
    client.force_login(admin)

    client.post(
        reverse("admin:reviews_reasoncode_add"),
        {"code": "stale-data", "label": "Stale data", "treatment": "exclude", "is_active": "on"},
    )
    reason = ReasonCode.objects.get(code="stale-data")
    client.post(
        reverse("admin:reviews_reasoncode_change", args=[reason.pk]),
        {"code": "stale-data", "label": "Stale data", "treatment": "exclude"},
    )

    added, changed = _config_records()
    assert (added.subject, added.actor, added.details) == (
        f"reviews.reasoncode:{reason.pk}",
        admin,
        {
            "change": "add",
            "model": "reviews.reasoncode",
            "before": {},
            "after": {
                "id": reason.pk,
                "code": "stale-data",
                "label": "Stale data",
                "treatment": "exclude",
                "is_active": True,
            },
        },
    )
    assert changed.details == {
        "change": "change",
        "model": "reviews.reasoncode",
        "before": {"is_active": True},
        "after": {"is_active": False},
    }


def test_adding_changing_and_deleting_an_action_is_audited(client, make_user):
    admin = make_user("admin")
    client.force_login(admin)
    form = {
        "code": "bonus-500",
        "name": "500 bonus points",
        "description": "",
        "cost": "4.50",
        "min_tier": "",
        "requires_consent": "on",
        "is_active": "on",
        "retention_gain": "0.05",
        "budget_count": "",
        "budget_amount": "250.00",
        "cooldown_days": "30",
    }

    client.post(reverse("admin:loyalty_action_add"), form)
    action = Action.objects.get(code="bonus-500")
    client.post(reverse("admin:loyalty_action_change", args=[action.pk]), {**form, "cost": "6"})
    client.post(reverse("admin:loyalty_action_delete", args=[action.pk]), {"post": "yes"})

    assert Action.objects.filter(code="bonus-500").exists() is False
    added, changed, deleted = _config_records()
    stored = {
        "id": action.pk,
        "code": "bonus-500",
        "name": "500 bonus points",
        "description": "",
        "cost": "4.50",
        "min_tier": "",
        "requires_consent": True,
        "is_active": True,
        "holdout_share": None,  # blank: the program's default holdout share
        "retention_gain": 0.05,
        "budget_count": None,  # blank: no limit
        "budget_amount": "250.00",
        "cooldown_days": 30,
    }
    assert [record.subject for record in (added, changed, deleted)] == [
        f"loyalty.action:{action.pk}"
    ] * 3
    assert [record.actor for record in (added, changed, deleted)] == [admin] * 3
    assert added.details == {
        "change": "add",
        "model": "loyalty.action",
        "before": {},
        "after": stored,
    }
    assert changed.details == {
        "change": "change",
        "model": "loyalty.action",
        "before": {"cost": "4.50"},
        "after": {"cost": "6.00"},
    }
    assert deleted.details == {
        "change": "delete",
        "model": "loyalty.action",
        "before": {**stored, "cost": "6.00"},
        "after": {},
    }


def test_saving_without_a_change_records_nothing(client, make_user):
    admin = make_user("admin")
    action = Action.objects.create(code="outreach", name="Personal outreach", cost=Decimal("20"))
    client.force_login(admin)

    response = client.post(
        reverse("admin:loyalty_action_change", args=[action.pk]),
        {
            "code": "outreach",
            "name": "Personal outreach",
            "description": "",
            "cost": "20.00",
            "min_tier": "",
            "requires_consent": "on",
            "is_active": "on",
            "retention_gain": "0.0",
            "budget_count": "",
            "budget_amount": "",
            "cooldown_days": "30",
        },
    )

    assert response.status_code == 302
    assert _config_records() == []


def _periodic_task() -> PeriodicTask:
    every_hour = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    return PeriodicTask.objects.create(
        name="rescore changed members", task="predictions.tasks.example", interval=every_hour
    )


def test_changing_a_periodic_task_is_audited(client, make_user):
    admin = make_user("admin")
    task = _periodic_task()
    client.force_login(admin)

    response = client.post(
        reverse("admin:django_celery_beat_periodictask_change", args=[task.pk]),
        {
            "name": "rescore changed members",
            "regtask": "",
            "task": "predictions.tasks.example",
            # enabled left out: unchecked
            "description": "Paused during the migration",
            "interval": task.interval_id,
            "crontab": "",
            "solar": "",
            "clocked": "",
            "start_time_0": "",
            "start_time_1": "",
            "args": "[]",
            "kwargs": "{}",
            "expires_0": "",
            "expires_1": "",
            "expire_seconds": "",
            "queue": "",
            "exchange": "",
            "routing_key": "",
            "priority": "",
            "headers": "{}",
        },
    )

    assert response.status_code == 302
    record = _only_config_record()
    assert (record.subject, record.actor) == (f"django_celery_beat.periodictask:{task.pk}", admin)
    assert record.details == {
        "change": "change",
        "model": "django_celery_beat.periodictask",
        "before": {"enabled": True, "description": ""},
        "after": {"enabled": False, "description": "Paused during the migration"},
    }


def test_disabling_periodic_tasks_with_the_bulk_action_is_audited_per_task(client, make_user):
    admin = make_user("admin")
    task = _periodic_task()
    client.force_login(admin)

    response = client.post(
        reverse("admin:django_celery_beat_periodictask_changelist"),
        {"action": "disable_tasks", "_selected_action": [task.pk]},
    )

    assert response.status_code == 302
    task.refresh_from_db()
    assert task.enabled is False
    record = _only_config_record()
    assert (record.subject, record.actor) == (f"django_celery_beat.periodictask:{task.pk}", admin)
    assert record.details == {
        "change": "change",
        "model": "django_celery_beat.periodictask",
        "before": {"enabled": True},
        "after": {"enabled": False},
    }


def test_adding_an_interval_schedule_is_audited(client, superuser):
    client.force_login(superuser)

    client.post(
        reverse("admin:django_celery_beat_intervalschedule_add"),
        {
            "every": "15",
            "period": "minutes",
            "periodictask_set-TOTAL_FORMS": "0",
            "periodictask_set-INITIAL_FORMS": "0",
        },
    )

    schedule = IntervalSchedule.objects.get(every=15)
    record = _only_config_record()
    assert (record.subject, record.actor, record.details) == (
        f"django_celery_beat.intervalschedule:{schedule.pk}",
        superuser,
        {
            "change": "add",
            "model": "django_celery_beat.intervalschedule",
            "before": {},
            "after": {"id": schedule.pk, "every": 15, "period": "minutes"},
        },
    )


def test_a_scoring_setting_change_is_audited_once_by_its_service(client, make_user):
    admin = make_user("admin")
    setting = ScoringSetting.objects.get(kind="churn")
    client.force_login(admin)

    response = client.post(
        reverse("admin:predictions_scoringsetting_change", args=[setting.pk]), {"model": "trees"}
    )

    assert response.status_code == 302
    setting.refresh_from_db()
    assert setting.model == "trees"
    records = list(AuditRecord.objects.filter(actor=admin))
    assert [(record.kind, record.subject, record.details) for record in records] == [
        (
            "policy_change",
            "scoring_setting:churn",
            {"kind": "churn", "from": "selected", "to": "trees", "reason": ""},
        )
    ]
