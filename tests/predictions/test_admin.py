"""The model registry's admin actions go the way `manage.py promote` goes: a promotion or a
rollback re-scores every member with the version now active."""

import pytest
from django.urls import reverse

from loyalty.models import AuditRecord
from predictions.models import ModelVersion, ScoringRun
from predictions.services.registry import promote_model_version
from tests.factories import MemberFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_client(client, make_user):
    admin = make_user("admin")
    client.force_login(admin)
    return client


@pytest.fixture
def older_and_newer():
    """Two churn versions, the older one active (promoted without re-scoring), three members."""
    older, newer = ModelVersionFactory(), ModelVersionFactory()
    promote_model_version(version_id=older.pk, actor=None)
    MemberFactory.create_batch(3)
    return older, newer


def _run_action(client, action: str, version: ModelVersion):
    return client.post(
        reverse("admin:predictions_modelversion_changelist"),
        {"action": action, "_selected_action": [version.pk]},
        follow=True,
    )


def test_promoting_in_the_admin_rescores_every_member_with_the_new_version(
    admin_client, older_and_newer
):
    older, newer = older_and_newer

    response = _run_action(admin_client, "promote", newer)

    assert response.status_code == 200
    statuses = dict(ModelVersion.objects.values_list("pk", "status"))
    assert statuses == {older.pk: "retired", newer.pk: "active"}
    assert list(ScoringRun.objects.values_list("model_version_id", "members_total")) == [
        (newer.pk, 3)
    ]
    assert "Scoring every member with it in the background." in response.content.decode()


def test_rolling_back_in_the_admin_rescores_every_member_with_the_restored_version(
    admin_client, older_and_newer
):
    older, newer = older_and_newer
    promote_model_version(version_id=newer.pk, actor=None)

    response = _run_action(admin_client, "roll_back", newer)

    assert response.status_code == 200
    assert ModelVersion.objects.get(status="active").pk == older.pk
    assert AuditRecord.objects.filter(kind="rollback").count() == 1
    assert list(ScoringRun.objects.values_list("model_version_id", "members_total")) == [
        (older.pk, 3)
    ]
    assert "is active again. Scoring every member" in response.content.decode()


def test_promoting_two_versions_at_once_changes_nothing(admin_client, older_and_newer):
    older, newer = older_and_newer

    response = admin_client.post(
        reverse("admin:predictions_modelversion_changelist"),
        {"action": "promote", "_selected_action": [older.pk, newer.pk]},
        follow=True,
    )

    assert "Select exactly one version." in response.content.decode()
    assert ModelVersion.objects.get(status="active").pk == older.pk
    assert not ScoringRun.objects.exists()
