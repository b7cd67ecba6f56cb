"""Blind review (issue 17 §2): a share of the items for people open without the model's
answer, nothing leaks it (queue rows, filters, quick and bulk approve, the member page, the
what-if, the API), and the person's own answer is stored once before they decide."""

from dataclasses import replace

import pytest
from django.urls import reverse

from reviews.models import BlindAnswer, Decision, Review
from reviews.policy_settings import PolicySettings
from reviews.selectors.policy import current_policy
from reviews.selectors.queue import BLIND_REASON
from reviews.services.blind import BlindAnswerError, blind_draws, commit_blind_answer
from reviews.services.decisions import BLIND_ANSWER_FIRST, decide_review, override_prediction
from reviews.services.policy import change_policy
from reviews.services.routing import NEUTRAL_CONFIDENCE, priority, route_new_predictions
from tests.conftest import TEST_PASSWORD
from tests.factories import ModelVersionFactory, PredictionFactory
from tests.tokens import token_client

pytestmark = pytest.mark.django_db


def _set_blind_share(share: float, **changes) -> None:
    settings = PolicySettings.of(current_policy("churn"))
    change_policy(
        kind="churn",
        settings=replace(settings, blind_share=share, audit_sample_rate=0.0, **changes),
        actor=None,
        reason="blind review test",
    )


def _client(client, make_user, role: str):
    client.login(username=make_user(role).username, password=TEST_PASSWORD)
    return client


@pytest.fixture
def blind_item(reason_codes):
    """One analyst item that opens blind (blind share 100 %) and one that does not (a second
    policy version with none): its model says 'will churn' at 0.7 with confidence 0.8."""
    version = ModelVersionFactory()
    _set_blind_share(1.0, human_risk_low=None, human_risk_high=None)
    blind = PredictionFactory(model_version=version, confidence=0.8, score=0.7)
    route_new_predictions(kind="churn")
    _set_blind_share(0.0, human_risk_low=None, human_risk_high=None)
    shown = PredictionFactory(model_version=version, confidence=0.8, score=0.7)
    route_new_predictions(kind="churn")
    return {
        "blind": Review.objects.get(prediction=blind),
        "shown": Review.objects.get(prediction=shown),
    }


def test_every_twentieth_item_for_people_opens_blind_at_five_percent():
    for_people = [True] * 40
    for_people[5] = False  # an auto-approval is not counted

    draws = blind_draws(for_people=for_people, share=0.05, already=0)

    # Items for people number 20 and 40 are the 21st and 41st rows: no 41st here.
    assert [i for i, blind in enumerate(draws) if blind] == [20]
    assert blind_draws(for_people=[True, True], share=0.05, already=19) == [True, False]
    assert blind_draws(for_people=[True] * 10, share=0.0, already=0) == [False] * 10
    assert blind_draws(for_people=[True] * 3, share=1.0, already=7) == [True] * 3


def test_routing_opens_the_policy_s_share_blind_with_a_neutral_priority(reason_codes):
    _set_blind_share(0.05, human_risk_low=None, human_risk_high=None)
    version = ModelVersionFactory()
    for score in [0.9, 0.1] * 20:  # 40 analyst items (confidence 0.8), of two risks
        PredictionFactory(model_version=version, confidence=0.8, score=score, spend=0.0)

    route_new_predictions(kind="churn")

    reviews = Review.objects.filter(route=Review.Route.ANALYST)
    assert reviews.count() == 40
    blind = list(reviews.filter(is_blind=True))
    assert len(blind) == 2  # the 20th and the 40th
    # Neither risk nor confidence weighs in: every member is worth 0, the percentile the same.
    neutral = {round(review.priority, 12) for review in blind}
    others = {round(review.priority, 12) for review in reviews.filter(is_blind=False)}
    assert len(neutral) == 1 and len(others) == 2
    (value,) = neutral
    percentile = (value / (0.5 * (1.1 - NEUTRAL_CONFIDENCE))) - 1
    assert value == pytest.approx(
        priority(risk=None, value_percentile=percentile, confidence=NEUTRAL_CONFIDENCE)
    )
    assert value not in others


def test_the_queue_row_shows_nothing_of_the_model_and_offers_no_approve(
    client, make_user, blind_item
):
    analyst = _client(client, make_user, "analyst")

    response = analyst.get(reverse("reviews:queue"))

    rows = {row.review_id: row for row in response.context["page"].rows}
    blind, shown = rows[blind_item["blind"].pk], rows[blind_item["shown"].pk]
    assert (blind.call, blind.call_detail, blind.risk_band, blind.confidence, blind.reason) == (
        "Blind",
        "",
        "",
        "—",
        BLIND_REASON,
    )
    assert (shown.call, shown.is_blind) == ("70 %", False)
    html = response.content.decode()
    blind_row = html.split(f'id="review-row-{blind_item["blind"].pk}"')[1].split("</tr>")[0]
    assert "70 %" not in blind_row and "between expert" not in blind_row
    assert 'name="review"' not in blind_row  # no bulk checkbox
    assert 'data-action="approve"' not in blind_row and 'data-action="answer"' in blind_row


@pytest.mark.parametrize("params", [{"risk": "high"}, {"reason": "confidence"}])
def test_filters_on_what_the_model_said_never_list_a_blind_item(
    client, make_user, blind_item, params
):
    analyst = _client(client, make_user, "analyst")

    listed = {
        row.review_id for row in analyst.get(reverse("reviews:queue"), params).context["page"].rows
    }

    assert listed == {blind_item["shown"].pk}


def test_quick_and_bulk_approve_never_decide_a_blind_item(client, make_user, blind_item):
    analyst = _client(client, make_user, "analyst")
    blind = blind_item["blind"]

    quick = analyst.post(reverse("reviews:quick_decide", args=[blind.pk]), {"verdict": "approve"})
    bulk = analyst.post(
        reverse("reviews:bulk_approve"),
        {"route": "analyst", "review": [blind.pk, blind_item["shown"].pk]},
        follow=True,
    )

    assert quick.status_code == 409
    assert not Decision.objects.filter(review=blind).exists()
    assert Decision.objects.filter(review=blind_item["shown"]).exists()
    assert any("blind" in str(message) for message in bulk.context["messages"])


def test_deciding_needs_the_blind_answer_first_and_the_answer_is_never_overwritten(
    make_user, blind_item
):
    analyst = make_user("analyst")
    blind = blind_item["blind"]

    with pytest.raises(Exception, match="blind") as refused:
        override_prediction(
            review_id=blind.pk, actor=analyst, reason_code="wrong-churn-call", churn_label=False
        )
    assert refused.value.message == BLIND_ANSWER_FIRST
    answer = commit_blind_answer(review_id=blind.pk, user=analyst, churn_label=False)
    again = commit_blind_answer(review_id=blind.pk, user=analyst, churn_label=False)
    with pytest.raises(BlindAnswerError):
        commit_blind_answer(review_id=blind.pk, user=analyst, churn_label=True)
    # Shown the model's 'will churn', the analyst changes their mind and approves it.
    decision, created = decide_review(
        review_id=blind.pk, actor=analyst, verdict="approve", reason_code="model-correct"
    )

    assert again.pk == answer.pk and created
    stored = BlindAnswer.objects.get(review=blind)
    assert (stored.churn_label, stored.model_churn_call, stored.user_id) == (
        False,
        True,
        analyst.pk,
    )
    assert decision.verdict == "approve"
    with pytest.raises(ValueError, match="immutable"):
        stored.save()


def test_only_blind_pending_items_take_an_answer_and_only_from_who_may_decide_them(
    make_user, blind_item, routed
):
    analyst, admin = make_user("analyst"), make_user("admin")

    with pytest.raises(BlindAnswerError, match="not blind"):
        commit_blind_answer(review_id=blind_item["shown"].pk, user=analyst, churn_label=True)
    with pytest.raises(Exception, match="No such review"):  # an expert's item: not visible
        commit_blind_answer(review_id=routed["expert"].pk, user=analyst, churn_label=True)
    with pytest.raises(Exception) as refused:
        commit_blind_answer(review_id=blind_item["blind"].pk, user=admin, churn_label=True)
    with pytest.raises(Exception, match="settles only the churn call"):
        commit_blind_answer(
            review_id=blind_item["blind"].pk,
            user=analyst,
            churn_label=True,
            action_code="bonus_points",
        )

    assert refused.value.status == 403
    assert not BlindAnswer.objects.exists()


def test_the_member_page_hides_the_model_until_the_answer_then_shows_both(
    client, make_user, blind_item
):
    analyst = _client(client, make_user, "analyst")
    blind = blind_item["blind"]
    url = reverse("reviews:review", args=[blind.pk])

    before = analyst.get(url)
    what_if = analyst.post(reverse("reviews:what_if", args=[blind.pk]), {"f_recency_days": "5"})
    decide = analyst.post(
        reverse("reviews:decide", args=[blind.pk]),
        {"verdict": "approve", "reason": "model-correct"},
    )
    committed = analyst.post(reverse("reviews:blind_answer", args=[blind.pk]), {"churn": "stay"})
    after = analyst.get(url)

    page = before.content.decode()
    assert before.status_code == 200 and 'data-testid="blind-form"' in page
    for shown in ("70 %", "The model", "Why a person looks", "between expert", "waterfall"):
        assert shown not in page
    assert what_if.status_code == 409
    assert decide.status_code == 409 and "blind-form" in decide.content.decode()
    assert committed.status_code == 302 and committed["Location"] == url
    revealed = after.content.decode()
    assert 'data-testid="blind-answer"' in revealed and "70 %" in revealed
    assert "The blind answer disagreed with it on the churn call." in revealed


def test_a_blind_answer_form_without_a_call_is_a_clear_400_and_stores_nothing(
    client, make_user, blind_item
):
    analyst = _client(client, make_user, "analyst")

    response = analyst.post(reverse("reviews:blind_answer", args=[blind_item["blind"].pk]), {})

    assert response.status_code == 400
    assert "Say whether this member will churn or stay." in response.content.decode()
    assert not BlindAnswer.objects.exists()


def test_the_member_history_hides_a_blind_item_s_call(client, make_user, blind_item):
    """The member's other review lists the blind one without its score or confidence."""
    blind = blind_item["blind"]
    other = PredictionFactory(
        member=blind.member,
        model_version=blind.prediction.model_version,
        confidence=0.99,
        cutoff=blind.prediction.cutoff.replace(year=2025),  # an older cycle's prediction
    )
    route_new_predictions(kind="churn")
    expert = _client(client, make_user, "expert")

    response = expert.get(reverse("reviews:review", args=[Review.objects.get(prediction=other).pk]))

    (item,) = [i for i in response.context["review_page"].history if i.review_id == blind.pk]
    assert (item.call, item.confidence) == ("blind review", "—")


def test_the_api_withholds_the_model_on_a_blind_item_until_answered(make_user, blind_item):
    api = token_client(make_user("analyst"))
    blind = blind_item["blind"]

    listed = {item["id"]: item for item in api.get("/api/reviews/").json()["results"]}
    filtered = [
        item["id"] for item in api.get("/api/reviews/?min_confidence=0.5").json()["results"]
    ]
    detail = api.get(f"/api/reviews/{blind.pk}/").json()
    approve = api.post(f"/api/reviews/{blind.pk}/approve/", {"reason_code": "model-correct"})
    bad = api.post(f"/api/reviews/{blind.pk}/blind-answer/", {"churn_label": "maybe"})
    first = api.post(f"/api/reviews/{blind.pk}/blind-answer/", {"churn_label": True})
    repeat = api.post(f"/api/reviews/{blind.pk}/blind-answer/", {"churn_label": True})
    other = api.post(f"/api/reviews/{blind.pk}/blind-answer/", {"churn_label": False})
    revealed = api.get(f"/api/reviews/{blind.pk}/").json()

    for item in (listed[blind.pk], detail):
        assert (item["is_blind"], item["model_hidden"]) == (True, True)
        assert item["route_reason"].startswith("Blind review")
        for field in ("priority", "confidence", "risk", "prediction", "action_prediction"):
            assert item[field] is None, field
    assert listed[blind_item["shown"].pk]["prediction"]["score"] == 0.7
    assert filtered == [blind_item["shown"].pk]
    assert approve.status_code == 409
    assert bad.status_code == 400 and "churn_label" in bad.json()
    assert (first.status_code, repeat.status_code, other.status_code) == (201, 200, 409)
    assert first.json()["model_churn_call"] is True and first.json()["churn_label"] is True
    assert revealed["model_hidden"] is False and revealed["prediction"]["score"] == 0.7
    assert "between expert" in revealed["route_reason"]


def test_a_blind_case_asks_for_the_person_s_action_too(make_user, case_versions):
    settings = PolicySettings.of(current_policy("churn"))
    change_policy(
        kind="churn", settings=replace(settings, blind_share=1.0), actor=None, reason="all blind"
    )
    churn = PredictionFactory(model_version=case_versions["churn"], confidence=0.8, score=0.7)
    PredictionFactory(
        member=churn.member,
        model_version=case_versions["next_action"],
        kind="next_action",
        confidence=0.9,
        score=0.6,
        probabilities={"bonus_points": 0.6},
        cutoff=churn.cutoff,
    )
    route_new_predictions(kind="churn")
    case = Review.objects.get(prediction=churn)
    analyst = make_user("analyst")

    assert case.is_case and case.is_blind
    with pytest.raises(Exception, match="Name the action"):
        commit_blind_answer(review_id=case.pk, user=analyst, churn_label=True)
    answer = commit_blind_answer(
        review_id=case.pk, user=analyst, churn_label=True, action_code="bonus_points"
    )
    assert answer.action.code == "bonus_points"


@pytest.mark.django_db(transaction=True)
def test_a_blind_answer_commits_from_outside_any_transaction(make_user, reason_codes):
    """As a script or a worker calls it (on PostgreSQL its row lock needs the transaction the
    service opens itself)."""
    _set_blind_share(1.0, human_risk_low=None, human_risk_high=None)
    prediction = PredictionFactory(confidence=0.8, score=0.7)
    route_new_predictions(kind="churn")
    review = Review.objects.get(prediction=prediction)

    answer = commit_blind_answer(review_id=review.pk, user=make_user("analyst"), churn_label=True)

    assert BlindAnswer.objects.get(review=review).pk == answer.pk


def test_the_member_s_export_holds_the_blind_answer_and_erasure_deletes_it(make_user, blind_item):
    from loyalty.services.erasure import erase_member
    from loyalty.services.export import export_member

    blind = blind_item["blind"]
    commit_blind_answer(review_id=blind.pk, user=make_user("analyst"), churn_label=False)

    exported = export_member(member_id=blind.member_id, actor=None)["blind_answers"]
    erase_member(member_id=blind.member_id, actor=None)

    assert [(row["review"], row["churn_label"], row["model_churn_call"]) for row in exported] == [
        (blind.pk, False, True)
    ]
    assert not BlindAnswer.objects.filter(review__member_id=blind.member_id).exists()
    assert Review.objects.filter(pk=blind.pk).exists()  # that the review existed is kept
