"""The webhook endpoint API: admins make, change, re-key and delete endpoints; the secret is
shown once, kept encrypted, never audited; everyone else is refused."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations import secrets
from integrations.models import WebhookEndpoint
from integrations.services.endpoints import signing_secrets
from loyalty.models import AuditRecord

pytestmark = pytest.mark.django_db

LIST_URL = reverse("integrations-api:endpoint-list")
RECEIVER = "https://receiver.example.com/hooks"


def _detail_url(endpoint_id: int) -> str:
    return reverse("integrations-api:endpoint-detail", kwargs={"endpoint_id": endpoint_id})


def _rotate_url(endpoint_id: int) -> str:
    return reverse("integrations-api:endpoint-rotate", kwargs={"endpoint_id": endpoint_id})


@pytest.fixture
def admin_api(api_client, make_user):
    api_client.force_authenticate(make_user("admin"))
    return api_client


@pytest.fixture(autouse=True)
def _day_long_overlap(settings):
    settings.WEBHOOK_SECRET_ROTATION_OVERLAP_HOURS = 24


def _create(client, **fields) -> dict:
    payload = {"url": RECEIVER, "description": "CRM", "event_types": ["decision.created"]}
    response = client.post(LIST_URL, {**payload, **fields}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _audit_text() -> str:
    return json.dumps(list(AuditRecord.objects.values_list("details", flat=True)))


def _config_changes():
    return AuditRecord.objects.filter(kind=AuditRecord.Kind.CONFIG_CHANGE)


# --- create --------------------------------------------------------------------------------


def test_admin_creates_an_endpoint_and_gets_its_secret_once(admin_api):
    made = _create(admin_api)

    endpoint = WebhookEndpoint.objects.get()
    assert made["id"] == endpoint.pk
    assert made["url"] == RECEIVER
    assert made["description"] == "CRM"
    assert made["event_types"] == ["decision.created"]
    assert made["is_enabled"] is True
    assert made["previous_secret_expires_at"] is None
    assert made["secret"].startswith("whsec_")
    assert len(made["secret"]) > len("whsec_") + 40  # 32 random bytes in base64

    listed = admin_api.get(LIST_URL)
    detail = admin_api.get(_detail_url(endpoint.pk))

    assert listed.status_code == 200
    assert detail.status_code == 200
    assert [row["id"] for row in listed.json()] == [endpoint.pk]
    assert "secret" not in listed.json()[0]
    assert "secret" not in detail.json()
    assert made["secret"] not in listed.content.decode()
    assert made["secret"] not in detail.content.decode()
    assert endpoint.secret_encrypted not in listed.content.decode() + detail.content.decode()


def test_the_secret_is_stored_encrypted(admin_api):
    made = _create(admin_api)

    stored = WebhookEndpoint.objects.values_list("secret_encrypted", flat=True).get()

    assert made["secret"] not in stored
    assert made["secret"].removeprefix("whsec_") not in stored
    assert secrets.decrypt(stored) == made["secret"]


def test_creating_is_audited_without_the_secret(admin_api):
    made = _create(admin_api)
    endpoint = WebhookEndpoint.objects.get()

    record = _config_changes().get()

    assert record.kind == AuditRecord.Kind.CONFIG_CHANGE
    assert record.actor_name == "admin-user"
    assert record.subject == f"integrations.webhookendpoint:{endpoint.pk}"
    assert record.details["change"] == "add"
    assert record.details["after"]["url"] == RECEIVER
    assert record.details["after"]["event_types"] == ["decision.created"]
    assert "secret_encrypted" not in record.details["after"]
    assert made["secret"] not in _audit_text()
    assert endpoint.secret_encrypted not in _audit_text()


def test_event_types_are_kept_sorted_without_repeats_and_empty_means_every_type(admin_api):
    made = _create(
        admin_api, event_types=["review.escalated", "decision.created", "review.escalated"]
    )
    every = _create(admin_api, url="https://other.example.com/", event_types=[])

    assert made["event_types"] == ["decision.created", "review.escalated"]
    assert every["event_types"] == []
    assert WebhookEndpoint.objects.get(pk=every["id"]).wants("model.promoted") is True


# --- rotate --------------------------------------------------------------------------------


def test_rotating_returns_a_new_secret_and_keeps_the_old_one_for_a_day(admin_api):
    first = _create(admin_api)["secret"]
    endpoint_id = WebhookEndpoint.objects.get().pk
    before = timezone.now()

    response = admin_api.post(_rotate_url(endpoint_id))

    after = timezone.now()
    assert response.status_code == 200
    second = response.json()["secret"]
    assert second.startswith("whsec_")
    assert second != first
    endpoint = WebhookEndpoint.objects.get()
    expires = endpoint.previous_secret_expires_at
    assert before + timedelta(hours=24) <= expires <= after + timedelta(hours=24)
    assert response.json()["previous_secret_expires_at"] == expires.isoformat().replace(
        "+00:00", "Z"
    )
    assert secrets.decrypt(endpoint.secret_encrypted) == second
    assert secrets.decrypt(endpoint.previous_secret_encrypted) == first
    # Both sign during the overlap, the new one first; only the new one from its end on.
    assert signing_secrets(endpoint, now=after) == [second, first]
    assert signing_secrets(endpoint, now=expires - timedelta(seconds=1)) == [second, first]
    assert signing_secrets(endpoint, now=expires) == [second]
    assert signing_secrets(endpoint, now=expires + timedelta(days=1)) == [second]
    # Neither secret reaches the audit trail; the rotation itself does.
    rotation = _config_changes().filter(details__change="change").get()
    assert rotation.subject == f"integrations.webhookendpoint:{endpoint.pk}"
    assert "previous_secret_expires_at" in rotation.details["after"]
    assert first not in _audit_text()
    assert second not in _audit_text()
    assert second not in admin_api.get(_detail_url(endpoint.pk)).content.decode()


def test_rotating_twice_drops_the_oldest_secret_at_once(admin_api):
    first = _create(admin_api)["secret"]
    endpoint_id = WebhookEndpoint.objects.get().pk
    second = admin_api.post(_rotate_url(endpoint_id)).json()["secret"]

    third = admin_api.post(_rotate_url(endpoint_id)).json()["secret"]

    endpoint = WebhookEndpoint.objects.get()
    now = timezone.now()
    assert signing_secrets(endpoint, now=now) == [third, second]
    assert first not in signing_secrets(endpoint, now=now)


def test_a_fresh_endpoint_signs_with_its_one_secret(admin_api):
    secret = _create(admin_api)["secret"]

    assert signing_secrets(WebhookEndpoint.objects.get(), now=timezone.now()) == [secret]


# --- change and delete -----------------------------------------------------------------------


def test_patch_changes_url_event_types_and_enabled_state(admin_api):
    _create(admin_api)
    endpoint = WebhookEndpoint.objects.get()
    secret_before = endpoint.secret_encrypted

    response = admin_api.patch(
        _detail_url(endpoint.pk),
        {
            "url": "https://new.example.com/in",
            "event_types": ["member.erased", "decision.held_out"],
            "is_enabled": False,
        },
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["url"] == "https://new.example.com/in"
    assert response.json()["event_types"] == ["decision.held_out", "member.erased"]
    assert response.json()["is_enabled"] is False
    assert response.json()["disabled_reason"] == "Disabled by an admin."
    assert "secret" not in response.json()
    endpoint.refresh_from_db()
    assert endpoint.url == "https://new.example.com/in"
    assert endpoint.event_types == ["decision.held_out", "member.erased"]
    assert endpoint.is_enabled is False
    assert endpoint.secret_encrypted == secret_before
    change = _config_changes().filter(details__change="change").get()
    assert change.details["before"]["url"] == RECEIVER
    assert change.details["after"]["url"] == "https://new.example.com/in"
    assert change.details["after"]["is_enabled"] is False


def test_re_enabling_clears_the_failure_record(admin_api):
    _create(admin_api)
    endpoint = WebhookEndpoint.objects.get()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        is_enabled=False,
        disabled_reason="Failing for 5 days.",
        failing_since=timezone.now() - timedelta(days=5),
    )

    response = admin_api.patch(_detail_url(endpoint.pk), {"is_enabled": True}, format="json")

    assert response.status_code == 200
    endpoint.refresh_from_db()
    assert (endpoint.is_enabled, endpoint.disabled_reason, endpoint.failing_since) == (
        True,
        "",
        None,
    )


def test_patch_with_only_a_description_keeps_everything_else(admin_api):
    _create(admin_api)
    endpoint = WebhookEndpoint.objects.get()

    response = admin_api.patch(_detail_url(endpoint.pk), {"description": "ERP"}, format="json")

    assert response.status_code == 200
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.description, endpoint.event_types, endpoint.is_enabled) == (
        RECEIVER,
        "ERP",
        ["decision.created"],
        True,
    )


def test_delete_answers_204_and_removes_the_endpoint(admin_api):
    _create(admin_api)
    endpoint_id = WebhookEndpoint.objects.get().pk

    response = admin_api.delete(_detail_url(endpoint_id))

    assert response.status_code == 204
    assert WebhookEndpoint.objects.count() == 0
    assert admin_api.get(_detail_url(endpoint_id)).status_code == 404
    deletion = _config_changes().filter(details__change="delete").get()
    assert deletion.subject == f"integrations.webhookendpoint:{endpoint_id}"
    assert "secret_encrypted" not in deletion.details["before"]


# --- refused input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        (
            {"url": RECEIVER, "event_types": ["decision.exploded"]},
            "event_types",
            "not a valid choice",
        ),
        ({"url": "ftp://files.example.com/in"}, "url", "must start with http:// or https://"),
        (
            {"url": "https://user:hunter2@receiver.example.com/"},
            "url",
            "may not carry a user name or password",
        ),
        ({"url": "https:///no-host"}, "url", "has no host"),
        ({"description": "no url"}, "url", "This field is required."),
        ({"url": "https://example.com/" + "a" * 500}, "url", "no more than 500 characters"),
    ],
    ids=["unknown-event-type", "ftp-url", "url-with-credentials", "no-host", "no-url", "long"],
)
def test_bad_payloads_answer_400_with_a_clear_message_and_save_nothing(
    admin_api, payload, field, message
):
    response = admin_api.post(LIST_URL, payload, format="json")

    assert response.status_code == 400
    assert message in json.dumps(response.json()[field])
    assert "hunter2" not in response.content.decode()
    assert WebhookEndpoint.objects.count() == 0
    assert _config_changes().count() == 0


def test_unknown_event_type_from_the_service_names_the_known_ones(make_user):
    from integrations.exceptions import InvalidEndpoint
    from integrations.services.endpoints import create_endpoint

    with pytest.raises(InvalidEndpoint) as refused:
        create_endpoint(actor=make_user("admin"), url=RECEIVER, event_types=["decision.maybe"])

    assert refused.value.message.startswith("Unknown event types: decision.maybe. Known: ")
    assert "decision.created" in refused.value.message
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.parametrize(
    "payload",
    [
        {"url": "ftp://files.example.com/in"},
        {"event_types": ["nope"]},
        {"is_enabled": "maybe"},
    ],
    ids=["ftp-url", "unknown-event-type", "not-a-boolean"],
)
def test_a_refused_patch_changes_nothing(admin_api, payload):
    _create(admin_api)
    endpoint = WebhookEndpoint.objects.get()
    records = _config_changes().count()

    response = admin_api.patch(_detail_url(endpoint.pk), payload, format="json")

    assert response.status_code == 400
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.event_types, endpoint.is_enabled) == (
        RECEIVER,
        ["decision.created"],
        True,
    )
    assert _config_changes().count() == records


# --- who may ---------------------------------------------------------------------------------


@pytest.fixture
def endpoint(make_user):
    from integrations.services.endpoints import create_endpoint

    return create_endpoint(actor=None, url=RECEIVER).endpoint


@pytest.mark.parametrize("role", ["analyst", "expert", "integrator"])
def test_other_roles_get_403_and_change_nothing(api_client, make_user, endpoint, role):
    api_client.force_authenticate(make_user(role))
    secret_before = endpoint.secret_encrypted

    answers = [
        api_client.get(LIST_URL).status_code,
        api_client.post(LIST_URL, {"url": "https://x.example.com/"}, format="json").status_code,
        api_client.get(_detail_url(endpoint.pk)).status_code,
        api_client.patch(
            _detail_url(endpoint.pk), {"is_enabled": False}, format="json"
        ).status_code,
        api_client.post(_rotate_url(endpoint.pk)).status_code,
        api_client.delete(_detail_url(endpoint.pk)).status_code,
    ]

    assert answers == [403] * 6
    endpoint.refresh_from_db()
    assert WebhookEndpoint.objects.count() == 1
    assert endpoint.is_enabled is True
    assert endpoint.secret_encrypted == secret_before


def test_anonymous_gets_401(api_client, endpoint):
    answers = [
        api_client.get(LIST_URL).status_code,
        api_client.post(LIST_URL, {"url": "https://x.example.com/"}, format="json").status_code,
        api_client.get(_detail_url(endpoint.pk)).status_code,
        api_client.patch(_detail_url(endpoint.pk), {"url": RECEIVER}, format="json").status_code,
        api_client.post(_rotate_url(endpoint.pk)).status_code,
        api_client.delete(_detail_url(endpoint.pk)).status_code,
    ]

    assert answers == [401] * 6
    assert WebhookEndpoint.objects.count() == 1


def test_an_unknown_id_answers_404(admin_api, endpoint):
    unknown = endpoint.pk + 1000

    answers = [
        admin_api.get(_detail_url(unknown)),
        admin_api.patch(_detail_url(unknown), {"is_enabled": False}, format="json"),
        admin_api.post(_rotate_url(unknown)),
        admin_api.delete(_detail_url(unknown)),
    ]

    assert [answer.status_code for answer in answers] == [404] * 4
    assert {answer.json()["detail"] for answer in answers} == {"No such webhook endpoint."}
    assert WebhookEndpoint.objects.count() == 1
