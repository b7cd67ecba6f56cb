"""Member attributes an admin marks as protected: the fairness reports measure and judge them
beside age band and region (checked against fairlearn on the planted-bias populations of
test_fairness.py and test_fairness_actions.py), from real decisions in one query, in the daily
check; marking and unmarking (admins, audited); and analysts never see them."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from learning.fairness import action_frame, fairness_frame, kind_fairness
from learning.fairness_actions import action_fairness_report
from learning.fairness_attributes import BUILT_IN, group_order, with_marked
from learning.fairness_stats import NOT_RECORDED, Limits, fairness_report
from learning.models import ProtectedAttribute
from learning.services.fairness import check_fairness
from learning.services.protected_attributes import (
    mark_protected_attribute,
    unmark_protected_attribute,
)
from loyalty.exceptions import PermissionDeniedError
from loyalty.models import AuditRecord, Member
from reviews.models import Notification
from tests.learning.test_fairness import people, planted_decisions, planted_population
from tests.learning.test_fairness_actions import _fairlearn_shares, planted_action_decisions
from tests.learning.test_fairness_actions import planted_population as action_population
from tests.tokens import token_client

__all__ = ["people", "planted_action_decisions", "planted_decisions"]  # fixtures

AUDITED = with_marked({"income": "Income band"})
# The planted region's bias, carried by a marked attribute: the north's members have a high
# income, the south's a low one, the east's (6 decisions) none recorded.
INCOME_OF_REGION = {"north": "high", "south": "low"}


def _with_income(frame):
    return frame.assign(income=frame["region"].map(INCOME_OF_REGION).fillna(""))


def _by_group(frame, metric, *, y_true, y_pred) -> dict:
    return (
        MetricFrame(
            metrics=metric,
            y_true=frame[y_true].astype(int),
            y_pred=frame[y_pred].astype(int),
            sensitive_features=frame["income"],
        )
        .by_group.astype(float)
        .to_dict()
    )


# --- the arithmetic, against fairlearn -------------------------------------------------------


@pytest.mark.parametrize("decider", ["model", "final"])
def test_a_marked_attribute_s_churn_figures_are_fairlearn_s(decider):
    frame = _with_income(planted_population())
    recorded = frame[frame["income"] != ""]

    report = fairness_report(frame, Limits(min_group_size=30), AUDITED)

    income = report.attribute("income")
    assert (income.label, income.is_protected) == ("Income band", True)
    assert [attribute.attribute for attribute in report.attributes] == [
        "age_band", "region", "tier", "income",
    ]  # fmt: skip
    rows = {row.group: row for row in income.groups}
    assert {group: (row.n, row.too_small) for group, row in rows.items()} == {
        "high": (240, False),
        "low": (240, False),
        NOT_RECORDED: (6, True),
    }
    expected = {
        "selection": _by_group(recorded, selection_rate, y_true=decider, y_pred=decider),
        "true_positive": _by_group(recorded, true_positive_rate, y_true="outcome", y_pred=decider),
        "false_positive": _by_group(
            recorded, false_positive_rate, y_true="outcome", y_pred=decider
        ),
    }
    for rate, by_group in expected.items():
        assert set(by_group) == {"high", "low"}
        for group, value in by_group.items():
            assert getattr(rows[group].rates[decider], rate).value == pytest.approx(value)
    assert rows[NOT_RECORDED].rates[decider].selection.value is None  # too small, not zero
    calls, outcomes = recorded[decider].astype(int), recorded["outcome"].astype(int)
    groups = recorded["income"]
    parity = income.disparity(decider, "demographic_parity")
    odds = income.disparity(decider, "equalized_odds")
    assert (parity.highest, parity.lowest, parity.groups_compared) == ("low", "high", 2)
    assert parity.difference.value == pytest.approx(
        demographic_parity_difference(outcomes, calls, sensitive_features=groups)
    )
    assert parity.ratio.value == pytest.approx(
        demographic_parity_ratio(outcomes, calls, sensitive_features=groups)
    )
    assert odds.difference.value == pytest.approx(
        equalized_odds_difference(outcomes, calls, sensitive_features=groups)
    )


def test_a_marked_attribute_is_judged_and_named_by_its_label():
    frame = _with_income(planted_population())

    report = fairness_report(frame, Limits(min_group_size=30), AUDITED)

    assert {breach.attribute for breach in report.breaches} == {"region", "income"}
    assert report.breached("income") == report.breached("region")
    shown = [breach.shown for breach in report.breaches if breach.attribute == "income"]
    assert shown[0].startswith("Income band, Model: Demographic parity (share called churn)")
    # Unmarked, the same frame reports the built-in attributes only.
    assert [a.attribute for a in fairness_report(frame, Limits(min_group_size=30)).attributes] == [
        "age_band", "region", "tier",
    ]  # fmt: skip


def test_groups_are_listed_by_the_numbers_in_their_names_and_not_recorded_last():
    bands = ["100-124K", "not recorded", "Under 15K", "15-24K", "250K+", "25-34K", "35-49K"]
    frame = _with_income(planted_population()).assign(
        income=[bands[i % len(bands)] for i in range(len(planted_population()))]
    )

    report = fairness_report(frame, Limits(min_group_size=30), AUDITED)
    income = next(a for a in report.attributes if a.attribute == "income")

    assert [row.group for row in income.groups] == [
        "15-24K", "25-34K", "35-49K", "100-124K", "250K+", "Under 15K", NOT_RECORDED,
    ]  # fmt: skip
    assert sorted(["10", "2", "five", "East", "1"], key=group_order) == [
        "1", "2", "10", "East", "five",
    ]  # fmt: skip


@pytest.mark.parametrize("decider", ["model", "final"])
def test_a_marked_attribute_s_shares_of_each_action_are_fairlearn_s(decider):
    frame = _with_income(action_population())
    recorded = frame[frame["income"] != ""]

    report = action_fairness_report(frame, Limits(min_group_size=30), AUDITED)

    income = report.attribute("income")
    assert income.is_protected
    rows = {row.group: row for row in income.groups}
    assert set(rows) == {"high", "low", NOT_RECORDED}
    for action in report.actions:
        expected = _fairlearn_shares(recorded, "income", decider, action)
        for group, value in expected.items():
            assert rows[group].share(decider, action).value == pytest.approx(value)
    assert "income" in {breach.attribute for breach in report.breaches}


def test_a_reserved_key_cannot_be_marked():
    with pytest.raises(ValidationError):
        ProtectedAttribute(key="region", label="Region again").full_clean()
    with pytest.raises(ValidationError):
        ProtectedAttribute(key="Income Band", label="Income").full_clean()

    assert with_marked({"score": "Score", "tier": "Tier"}) == BUILT_IN


# --- from real decisions ---------------------------------------------------------------------

# The planted members' incomes: the west's (called churn) high, the east's low; e4 has none.
INCOMES = {"w1": "high", "w2": "high", "w3": "high", "w4": "high", "e1": "low", "e2": "low",
           "e3": "low"}  # fmt: skip


@pytest.fixture
def incomes(planted_decisions):
    for name, income in INCOMES.items():
        Member.objects.filter(external_id=f"M-{name}").update(
            attributes={"income": income, "kids": "0"}
        )
    return planted_decisions


@pytest.mark.django_db
def test_the_frame_reads_marked_attributes_in_its_one_query(incomes, django_assert_num_queries):
    with django_assert_num_queries(1):  # one query, whatever the number of decisions
        frame = fairness_frame(timezone.now() - timedelta(days=1), ("income", "kids"))

    assert list(frame.columns)[-2:] == ["income", "kids"]
    assert sorted(zip(frame["region"], frame["income"], strict=True)) == [
        ("east", ""), ("east", "low"), ("east", "low"), ("east", "low"),
        ("west", "high"), ("west", "high"), ("west", "high"), ("west", "high"),
    ]  # fmt: skip


@pytest.mark.django_db
def test_the_daily_check_judges_a_marked_attribute_until_it_is_unmarked(incomes, people):
    mark_protected_attribute(key="income", label="Income band", actor=people["boss"])

    report = kind_fairness("churn").report
    check = check_fairness(kind="churn")

    income = report.attribute("income")
    assert {row.group: row.n for row in income.groups} == {"high": 4, "low": 3, NOT_RECORDED: 1}
    high = next(row for row in income.groups if row.group == "high")
    assert (high.rates["model"].selection.hits, high.rates["model"].selection.n) == (4, 4)
    keys = {breach["key"] for breach in check.breaches}
    assert "income.model.demographic_parity.max" in keys
    note = Notification.objects.get(subject="Fairness limits breached: Churn risk")
    assert "Income band, Model: Demographic parity (share called churn) difference 1.000" in (
        note.body
    )

    unmark_protected_attribute(key="income", actor=people["boss"])

    again = check_fairness(kind="churn")
    assert not any(breach["key"].startswith("income.") for breach in again.breaches)
    assert "income" not in {a.attribute for a in kind_fairness("churn").report.attributes}


@pytest.mark.django_db
def test_next_actions_are_measured_on_a_marked_attribute(planted_action_decisions, people):
    for review in planted_action_decisions.values():
        member = review.member
        member.attributes = {"income": "high" if member.region == "west" else "low"}
        member.save(update_fields=["attributes"])
    mark_protected_attribute(key="income", actor=people["boss"])

    frame = action_frame(timezone.now() - timedelta(days=1), ("income",))
    income = kind_fairness("next_action").report.attribute("income")

    assert sorted(zip(frame["region"], frame["income"], strict=True)) == sorted(
        [("west", "high")] * 4 + [("east", "low")] * 4
    )
    assert (income.label, income.is_protected) == ("Income", True)  # the key, in words
    assert {row.group: row.n for row in income.groups} == {"high": 4, "low": 4}


# --- marking, and who may --------------------------------------------------------------------


@pytest.mark.django_db
def test_an_admin_marks_and_unmarks_on_the_fairness_page_audited(client, incomes, people):
    boss = people["boss"]
    client.force_login(boss)

    page = client.get(reverse("learning:fairness")).content.decode()
    marked = client.post(
        reverse("learning:mark_protected_attribute"),
        {"key": "income", "label": "Income band", "kind": "next_action"},
    )
    after = client.get(reverse("learning:fairness")).content.decode()

    assert 'data-testid="protected-attributes"' in page
    assert '<option value="income">income (7 members)</option>' in page
    assert '<option value="kids">kids (7 members)</option>' in page
    assert marked.status_code == 302
    assert marked.url == "/reviews/manage/loop/fairness/?kind=next_action#protected-attributes"
    row = ProtectedAttribute.objects.get()
    assert (row.key, row.label, row.created_by) == ("income", "Income band", boss)
    assert 'data-testid="fairness-income"' in after
    assert 'data-testid="marked-income"' in after
    assert '<option value="income">' not in after  # marked: no longer offered
    added = AuditRecord.objects.get(kind="config_change", details__change="add")
    assert (added.actor, added.subject) == (boss, f"learning.protectedattribute:{row.pk}")
    assert {k: added.details["after"][k] for k in ("key", "label", "created_by")} == {
        "key": "income",
        "label": "Income band",
        "created_by": boss.pk,
    }

    removed = client.post(reverse("learning:unmark_protected_attribute", args=["income"]))

    assert removed.status_code == 302
    assert not ProtectedAttribute.objects.exists()
    deleted = AuditRecord.objects.get(kind="config_change", details__change="delete")
    assert (deleted.actor, deleted.details["before"]["key"]) == (boss, "income")


@pytest.mark.django_db
def test_marking_a_key_no_member_has_is_a_400_that_marks_nothing(client, incomes, people):
    client.force_login(people["boss"])
    audits = AuditRecord.objects.count()

    response = client.post(reverse("learning:mark_protected_attribute"), {"key": "shoe_size"})

    assert response.status_code == 400
    assert "Select a valid choice. shoe_size is not one of the available choices." in (
        response.content.decode()
    )
    assert not ProtectedAttribute.objects.exists()
    assert AuditRecord.objects.count() == audits


@pytest.mark.django_db
def test_marking_twice_keeps_the_first_mark_and_audits_once(incomes, people):
    first = mark_protected_attribute(key="income", label="Income band", actor=people["boss"])
    second = mark_protected_attribute(key="income", label="Other", actor=people["boss"])

    assert second == first
    assert second.label == "Income band"
    assert AuditRecord.objects.filter(kind="config_change").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["ann", "eve", "feed"])
def test_only_admins_may_mark_or_unmark(client, incomes, people, role):
    mark_protected_attribute(key="kids", actor=None)
    client.force_login(people[role])
    audits = AuditRecord.objects.count()

    marked = client.post(reverse("learning:mark_protected_attribute"), {"key": "income"})
    removed = client.post(reverse("learning:unmark_protected_attribute", args=["kids"]))

    assert (marked.status_code, removed.status_code) == (403, 403)
    assert list(ProtectedAttribute.objects.values_list("key", flat=True)) == ["kids"]
    assert AuditRecord.objects.count() == audits
    with pytest.raises(PermissionDeniedError):
        mark_protected_attribute(key="income", actor=people[role])
    with pytest.raises(PermissionDeniedError):
        unmark_protected_attribute(key="kids", actor=people[role])


@pytest.mark.django_db
def test_an_expert_sees_marked_attributes_but_not_the_marking_form(client, incomes, people):
    mark_protected_attribute(key="income", label="Income band", actor=people["boss"])
    client.force_login(people["eve"])

    page = client.get(reverse("learning:fairness")).content.decode()
    api = token_client(people["eve"]).get(reverse("learning-api:fairness")).json()

    assert 'data-testid="fairness-income"' in page
    assert 'data-testid="protected-attributes"' not in page
    income = next(a for a in api["attributes"] if a["attribute"] == "income")
    assert (income["label"], income["is_protected"]) == ("Income band", True)
    assert {group["group"]: group["n"] for group in income["groups"]} == {
        "high": 4,
        "low": 3,
        NOT_RECORDED: 1,
    }


@pytest.mark.django_db
def test_the_admin_site_marks_audited_with_who_marked(client, incomes, people):
    client.force_login(people["boss"])

    response = client.post(
        reverse("admin:learning_protectedattribute_add"), {"key": "kids", "label": "Kids"}
    )

    assert response.status_code == 302
    row = ProtectedAttribute.objects.get()
    assert (row.key, row.created_by) == ("kids", people["boss"])
    record = AuditRecord.objects.get(kind="config_change")
    assert (record.actor, record.details["change"]) == (people["boss"], "add")


@pytest.mark.django_db
def test_an_analyst_sees_no_attribute_value_anywhere(client, incomes, people):
    Member.objects.filter(external_id="M-e2").update(
        attributes={"income": "VALUE-XYZ", "kids": "KIDS-XYZ"}
    )
    mark_protected_attribute(key="income", actor=people["boss"])
    ann = people["ann"]
    client.force_login(ann)

    fairness_page = client.get(reverse("learning:fairness"))
    fairness_api = token_client(ann).get(reverse("learning-api:fairness"))
    member_page = client.get(reverse("reviews:review", args=[incomes["e2"].pk]))
    member_api = token_client(ann).get("/api/members/M-e2/")
    members_api = token_client(ann).get("/api/members/")
    queue_export = client.get(reverse("integrations:export_queue", args=["analyst"]))

    assert (fairness_page.status_code, fairness_api.status_code) == (403, 403)
    assert (member_page.status_code, member_api.status_code) == (200, 200)
    assert (members_api.status_code, queue_export.status_code) == (200, 200)
    for response in (fairness_page, fairness_api, member_page, member_api, members_api):
        assert "XYZ" not in response.content.decode()
    assert "XYZ" not in b"".join(queue_export.streaming_content).decode()
    assert "attributes" not in member_api.json()
