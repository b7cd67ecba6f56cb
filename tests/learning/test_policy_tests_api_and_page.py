"""Policy tests through the API (`/api/policy-tests/`) and the page (`/reviews/manage/loop/
policy-test/<kind>/`), admins only: start, read the readout, end by adopting a version, and
bad input answered 400 with what is wrong, changing nothing."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reviews.models import EscalationPolicy, PolicyExperiment
from reviews.policy_settings import PolicySettings
from reviews.selectors.policy import current_policy
from reviews.services.policy import change_policy
from tests.tokens import token_client

pytestmark = pytest.mark.django_db

PLAIN = PolicySettings(
    expert_value_quantile=0.99,
    human_risk_low=None,
    human_risk_high=None,
    audit_sample_rate=0.0,
    segment_overrides={},
    blind_share=0.0,
)
START = {
    "kind": "churn",
    "challenger": {"auto_approve_confidence": 0.8},
    "challenger_share": 0.3,
    "max_decisions": 500,
    "hypothesis": "Auto-approving from 0.8 sends fewer items to people.",
}


@pytest.fixture
def plain(db):
    return change_policy(kind="churn", settings=PLAIN, actor=None, reason="plain")


@pytest.fixture
def admin_api(plain, make_user):
    return token_client(make_user("admin", "boss"))


def _counts() -> tuple[int, int]:
    return EscalationPolicy.objects.count(), PolicyExperiment.objects.count()


def test_an_admin_starts_reads_and_ends_a_test_through_the_api(admin_api, plain):
    started = admin_api.post(reverse("learning-api:policy-test-list"), START, format="json")

    assert started.status_code == 201, started.content
    body = started.json()
    assert (body["kind"], body["state"], body["challenger_share"]) == ("churn", "collecting", 0.3)
    assert (body["champion"]["version"], body["challenger"]["version"]) == (
        plain.version,
        plain.version + 1,
    )
    # What the request left out stays as the version in force has it.
    assert body["challenger"]["auto_approve_confidence"] == 0.8
    assert body["challenger"]["expert_value_quantile"] == 0.99
    assert (body["started_by"], body["adopted_version"], body["adopted_arm"]) == (
        "boss",
        None,
        None,
    )
    listed = admin_api.get(reverse("learning-api:policy-test-list")).json()
    assert [test["id"] for test in listed] == [body["id"]]

    readout = admin_api.get(reverse("learning-api:policy-test-detail", args=[body["id"]]))

    assert readout.status_code == 200
    data = readout.json()
    assert data["test"]["id"] == body["id"]
    assert [arm["arm"] for arm in data["arms"]] == ["champion", "challenger"]
    assert data["arms"][1]["outcome_rate"] == {
        "value": None,
        "low": None,
        "high": None,
        "n": 0,
        "hits": 0,
        "is_small": True,
    }
    assert data["plan"]["needed"] is None
    assert data["plan"]["reason"] == "no outcomes are known yet"

    ended = admin_api.post(
        reverse("learning-api:policy-test-end", args=[body["id"]]),
        {"adopt": "challenger", "reason": "fewer items"},
        format="json",
    )
    again = admin_api.post(
        reverse("learning-api:policy-test-end", args=[body["id"]]),
        {"adopt": "challenger", "reason": "fewer items"},
        format="json",
    )
    other = admin_api.post(
        reverse("learning-api:policy-test-end", args=[body["id"]]),
        {"adopt": "champion", "reason": "changed my mind"},
        format="json",
    )

    assert ended.status_code == 200
    assert (ended.json()["state"], ended.json()["adopted_arm"]) == ("ended", "challenger")
    adopted = ended.json()["adopted_version"]
    assert current_policy("churn").version == adopted == plain.version + 2
    assert (again.status_code, again.json()["adopted_version"]) == (200, adopted)
    assert other.status_code == 409
    assert "adopted the challenger" in other.json()["detail"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"challenger_share": 1.0}, "challenger_share", "strictly between 0 and 1"),
        ({"challenger_share": 0}, "challenger_share", "strictly between 0 and 1"),
        ({"max_decisions": None}, "ends_at", "Give the test an end"),
        ({"max_decisions": 0}, "max_decisions", "greater than or equal to 1"),
        ({"kind": "loyalty"}, "kind", "not a valid choice"),
        ({"hypothesis": ""}, "hypothesis", "may not be blank"),
        (
            {"challenger": {"expert_confidence": 0.95}},
            "challenger",
            "Must not exceed the auto-approve threshold",
        ),
        ({"challenger": {"audit_sample_rate": 2}}, "challenger", "less than or equal to 1"),
        (
            {"challenger": {"segment_overrides": {"gold": {"auto_approve_confidence": 0.3}}}},
            "challenger",
            "exceeds its auto-approve threshold",
        ),
        (
            {"challenger": {"segment_overrides": {"cluster:2": {"auto_approve_confidence": 0.95}}}},
            "challenger",
            "Only tiers and RFM segments can key an override, not cluster:2",
        ),
    ],
)
def test_a_bad_start_answers_400_naming_the_field_and_changes_nothing(
    admin_api, change, field, message
):
    before = _counts()

    response = admin_api.post(
        reverse("learning-api:policy-test-list"), {**START, **change}, format="json"
    )

    assert response.status_code == 400
    assert message in str(response.json()[field])
    assert _counts() == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"challenger": {}}, "holds the current settings"),
        ({"ends_at": "2020-01-01T00:00:00Z"}, "has passed already"),
    ],
)
def test_a_start_the_service_refuses_answers_400_with_the_reason(admin_api, change, message):
    before = _counts()

    response = admin_api.post(
        reverse("learning-api:policy-test-list"), {**START, **change}, format="json"
    )

    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert _counts() == before


def test_a_second_start_of_the_kind_is_a_conflict_and_a_bad_end_a_400(admin_api):
    first = admin_api.post(reverse("learning-api:policy-test-list"), START, format="json").json()
    before = _counts()

    second = admin_api.post(reverse("learning-api:policy-test-list"), START, format="json")
    bad_end = admin_api.post(
        reverse("learning-api:policy-test-end", args=[first["id"]]),
        {"adopt": "both", "reason": ""},
        format="json",
    )
    unknown = admin_api.get(reverse("learning-api:policy-test-detail", args=[first["id"] + 99]))

    assert second.status_code == 409
    assert "end it first" in second.json()["detail"]
    assert bad_end.status_code == 400
    assert set(bad_end.json()) == {"adopt", "reason"}
    assert unknown.status_code == 404
    assert _counts() == before
    assert PolicyExperiment.objects.get().ended_at is None


def test_only_admins_reach_the_policy_test_api(plain, make_user):
    for role in ("analyst", "expert", "integrator"):
        client = token_client(make_user(role))
        listed = client.get(reverse("learning-api:policy-test-list"))
        started = client.post(reverse("learning-api:policy-test-list"), START, format="json")
        assert (listed.status_code, started.status_code) == (403, 403)
    assert PolicyExperiment.objects.count() == 0


# --- the page ------------------------------------------------------------------------------


def _start_form(**changes) -> dict:
    form = {
        "auto_approve_confidence": "0.8",
        "expert_confidence": "0.5",
        "expert_value_quantile": "0.99",
        "audit_sample_rate": "0",
        "blind_share": "0",
        "sla_hours": "48",
        "challenger_share": "0.5",
        "days": "14",
        "max_decisions": "",
        "hypothesis": "Fewer items for people.",
    }
    return {**form, **changes}


@pytest.fixture
def admin_client(plain, client, make_user):
    client.force_login(make_user("admin", "boss"))
    return client


def test_the_page_offers_the_current_thresholds_and_the_policy_page_links_to_it(admin_client):
    page = admin_client.get(reverse("learning:policy_test", args=["churn"]))
    policy_page = admin_client.get(reverse("reviews:policy", args=["churn"])).content.decode()

    assert page.status_code == 200
    form = page.context["start_form"]
    assert form["auto_approve_confidence"].value() == 0.9
    assert form["challenger_share"].value() == 0.5
    assert 'data-testid="policy-test-start"' in page.content.decode()
    assert reverse("learning:policy_test", args=["churn"]) in policy_page


def test_an_admin_starts_and_ends_a_test_from_the_page(admin_client, plain):
    started = admin_client.post(
        reverse("learning:policy_test_start", args=["churn"]), _start_form(), follow=True
    )

    assert started.status_code == 200
    test = PolicyExperiment.objects.get()
    assert (test.challenger.auto_approve_confidence, test.challenger_share) == (0.8, 0.5)
    assert test.ends_at - timezone.now() == pytest.approx(
        timedelta(days=14), abs=timedelta(minutes=1)
    )
    page = started.content.decode()
    assert f"Policy test {test.pk} started" in page
    assert 'data-testid="policy-test-readout"' in page
    assert 'data-testid="policy-test-end"' in page
    assert "Collecting" in page

    ended = admin_client.post(
        reverse("learning:policy_test_end", args=[test.pk]),
        {"adopt": "champion", "reason": "no gain"},
        follow=True,
    )

    test.refresh_from_db()
    assert ended.status_code == 200
    assert PolicySettings.of(test.adopted) == PolicySettings.of(plain)
    assert current_policy("churn") == test.adopted
    page = ended.content.decode()
    assert f"Policy test {test.pk} ended" in page
    assert 'data-testid="policy-test-start"' in page  # a new test may start
    earlier = admin_client.get(reverse("learning:policy_test", args=["churn"]), {"test": test.pk})
    assert "Ended on" in earlier.content.decode()


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"challenger_share": "1"}, "strictly between 0 and 1"),
        ({"days": ""}, "Give the test an end"),
        ({"auto_approve_confidence": "0.9"}, "These are the current settings"),
        ({"expert_confidence": "0.95"}, "Must not exceed the auto-approve threshold"),
        ({"hypothesis": ""}, "This field is required"),
    ],
)
def test_a_bad_start_form_shows_the_page_again_with_its_errors(admin_client, change, error):
    before = _counts()

    response = admin_client.post(
        reverse("learning:policy_test_start", args=["churn"]), _start_form(**change)
    )

    assert response.status_code == 400
    assert error in response.content.decode()
    assert _counts() == before


def test_a_second_start_from_the_page_is_a_conflict_shown_in_the_page(admin_client):
    admin_client.post(reverse("learning:policy_test_start", args=["churn"]), _start_form())
    before = _counts()

    # A page opened before the first start, posted after it.
    response = admin_client.post(
        reverse("learning:policy_test_start", args=["churn"]),
        _start_form(auto_approve_confidence="0.85"),
    )

    assert response.status_code == 409
    assert "end it first" in response.content.decode()
    assert _counts() == before


def test_an_end_without_a_reason_is_refused(admin_client):
    admin_client.post(reverse("learning:policy_test_start", args=["churn"]), _start_form())
    test = PolicyExperiment.objects.get()

    response = admin_client.post(
        reverse("learning:policy_test_end", args=[test.pk]), {"adopt": "challenger"}
    )

    assert response.status_code == 400
    assert "This field is required" in response.content.decode()
    test.refresh_from_db()
    assert test.ended_at is None


def test_an_earlier_test_that_is_not_there_is_not_found(admin_client):
    url = reverse("learning:policy_test", args=["churn"])

    assert admin_client.get(url, {"test": "12345"}).status_code == 404
    assert admin_client.get(url, {"test": "x"}).status_code == 404
    # A Unicode digit is a digit to str.isdigit, not to int().
    assert admin_client.get(url, {"test": "²"}).status_code == 404
    assert admin_client.get(reverse("learning:policy_test", args=["loyalty"])).status_code == 404
