"""Blind review's evidence: agreement with the model shown vs blind, its gap and the
rubber-stamping flag, blind accuracy, revisions; by hand on plain calls, then from real blind
answers and decisions, who sees what, and the page."""

import pytest
from django.urls import reverse

from learning.blind_agreement import (
    RUBBER_STAMP_MARGIN,
    BlindCall,
    BlindRow,
    ShownCall,
    blind_agreement,
    score_blind,
)
from learning.quality_stats import SMALL_SAMPLE
from learning.review_quality import EVERYONE, OWN
from reviews.models import BlindAnswer, Review
from reviews.services.blind import commit_blind_answer
from tests.conftest import TEST_PASSWORD
from tests.learning import test_review_quality

people = test_review_quality.people  # the fixture: ann and bob (analysts), eve (expert), ...
_outcome = test_review_quality._outcome
decide = test_review_quality.decide
route_by_confidence = test_review_quality.route_by_confidence
routed_reviews = test_review_quality.routed_reviews

# Wilson 95 % bounds, from scipy.stats.binomtest(hits, n).proportion_ci(method="wilson").
WILSON_40_OF_40_LOW = 0.9123783988027133
WILSON_20_OF_40 = (0.35199526933465386, 0.6480047306653461)
WILSON_34_OF_40_HIGH = 0.9293881228267964
WILSON_4_OF_5 = (0.3755346297625253, 0.9637758913675698)
WILSON_3_OF_5 = (0.23072428127601297, 0.8823792257673521)


def _agreeing(count: int, n: int) -> list:
    """n calls on items the model calls churn, `count` of them the model's call."""
    return [(i < count, True) for i in range(n)]


# --- the arithmetic, by hand -----------------------------------------------------------------


def test_a_reviewer_agreeing_far_more_when_shown_is_flagged():
    shown = [ShownCall(person=p, model=m) for p, m in _agreeing(40, 40)]
    blind = [BlindCall(person=p, model=m) for p, m in _agreeing(20, 40)]

    scores = score_blind(shown, blind)

    assert (scores.shown_agreement.value, scores.shown_agreement.n) == (1.0, 40)
    assert (scores.blind_agreement.value, scores.blind_agreement.n) == (0.5, 40)
    # Newcombe: 0.5 - hypot(1 - 0.9124, 0.6480 - 0.5), 0.5 + hypot(1 - 1, 0.5 - 0.3520).
    assert scores.gap.value == pytest.approx(0.5)
    assert scores.gap.low == pytest.approx(
        0.5 - ((1 - WILSON_40_OF_40_LOW) ** 2 + (WILSON_20_OF_40[1] - 0.5) ** 2) ** 0.5
    )
    assert scores.gap.low == pytest.approx(0.328003066, abs=1e-8)
    assert scores.gap.high == pytest.approx(WILSON_20_OF_40[1], abs=1e-9)
    assert scores.gap.low > RUBBER_STAMP_MARGIN
    assert scores.flagged is True


def test_a_point_gap_above_the_margin_is_not_flagged_while_its_interval_reaches_below():
    shown = [ShownCall(person=p, model=m) for p, m in _agreeing(40, 40)]
    blind = [BlindCall(person=p, model=m) for p, m in _agreeing(34, 40)]

    scores = score_blind(shown, blind)

    assert scores.gap.value == pytest.approx(0.15)
    # 0.15 - hypot(1 - 0.9124, 0.9294 - 0.85)
    assert scores.gap.low == pytest.approx(0.031762869, abs=1e-8)
    assert scores.gap.low == pytest.approx(
        0.15 - ((1 - WILSON_40_OF_40_LOW) ** 2 + (WILSON_34_OF_40_HIGH - 0.85) ** 2) ** 0.5
    )
    assert scores.flagged is False


def test_a_handful_of_items_is_never_flagged_however_large_the_gap():
    # The interval alone would flag it: Wilson(3 of 3) from 0.4385, Wilson(0 of 3) to 0.5615.
    shown = [ShownCall(person=True, model=True)] * 3
    blind = [BlindCall(person=False, model=True)] * 3

    scores = score_blind(shown, blind)

    assert scores.gap.value == 1.0
    assert scores.gap.low == pytest.approx(0.205923282, abs=1e-8)
    assert (scores.flagged, scores.is_small) == (False, True)


def test_the_flag_needs_small_sample_items_on_both_sides():
    blind = [BlindCall(person=p, model=m) for p, m in _agreeing(20, 40)]

    just_under = score_blind([ShownCall(person=True, model=True)] * (SMALL_SAMPLE - 1), blind)
    enough = score_blind([ShownCall(person=True, model=True)] * SMALL_SAMPLE, blind)

    assert just_under.gap.low > RUBBER_STAMP_MARGIN
    assert (just_under.flagged, enough.flagged) == (False, True)


def test_without_blind_answers_there_is_no_gap_and_no_flag():
    scores = score_blind([ShownCall(person=True, model=True)] * 50, [])

    assert scores.blind_agreement.value is None
    assert (scores.gap.value, scores.gap.low, scores.gap.high) == (None, None, None)
    assert scores.flagged is False


def test_the_blind_answer_counts_and_the_decision_after_it_is_a_revision():
    blind = [
        # answered "stays" against the model's "churns", then went with the model
        BlindCall(person=False, model=True, outcome=False, final=True),
        # answered with the model and kept it; the member churned
        BlindCall(person=True, model=True, outcome=True, final=True),
        # answered against the model, not decided yet, outcome not known
        BlindCall(person=True, model=False),
    ]

    scores = score_blind([], blind)

    assert (scores.blind_agreement.hits, scores.blind_agreement.n) == (1, 3)
    assert (scores.blind_accuracy.hits, scores.blind_accuracy.n) == (2, 2)
    assert (scores.model_accuracy.hits, scores.model_accuracy.n) == (1, 2)
    assert (scores.revisions.hits, scores.revisions.n) == (1, 2)
    assert (scores.shown_agreement.value, scores.shown_accuracy.value) == (None, None)


# --- from blind answers and decisions ----------------------------------------------------------


@pytest.fixture
def answered(reason_codes, people):
    """Blind items (policy blind share 1), (blind answer / model's call / decision / outcome):

    ann-b1 0.3: churns / stays / ann approves: stays (revised) / churned;
    ann-b2 0.7: stays / churns / ann overrides to stays (kept) / stayed;
    ann-b3 0.2: stays / stays / ann approves (kept) / churned;
    ann-b4 0.8: churns / churns / not decided / none;
    ann-b5 0.4: stays / stays / eve overrides to churns (not ann's revision) / stayed;
    eve-b1 0.6 (expert): stays / churns / not decided / none.
    Shown items (blind share 0), (decision / model's call / outcome):
    ann-s1 0.3 approve / stays / stayed; ann-s2 0.7 approve / churns / churned;
    ann-s3 0.2 approve / stays / churned; ann-s4 0.6 override to stays / churns / stayed;
    ann-s5 0.1 approve / stays / none; bob-s1 0.2 approve / stays / stayed;
    bob-s2 0.9 approve / churns / none; auto 0.1: the policy's auto-approval / stayed.
    """
    route_by_confidence(blind_share=1.0)
    blind = routed_reviews(
        [
            ("ann-b1", "analyst", 0.3),
            ("ann-b2", "analyst", 0.7),
            ("ann-b3", "analyst", 0.2),
            ("ann-b4", "analyst", 0.8),
            ("ann-b5", "analyst", 0.4),
            ("eve-b1", "expert", 0.6),
        ]
    )
    route_by_confidence(blind_share=0.0)
    shown = routed_reviews(
        [
            ("ann-s1", "analyst", 0.3),
            ("ann-s2", "analyst", 0.7),
            ("ann-s3", "analyst", 0.2),
            ("ann-s4", "analyst", 0.6),
            ("ann-s5", "analyst", 0.1),
            ("bob-s1", "analyst", 0.2),
            ("bob-s2", "analyst", 0.9),
            ("auto", "auto", 0.1),
        ]
    )
    reviews = {**blind, **shown}
    assert {name for name, review in reviews.items() if review.is_blind} == set(blind)
    assert reviews["auto"].route == Review.Route.AUTO

    def commit(name, who, churns):
        commit_blind_answer(review_id=reviews[name].pk, user=people[who], churn_label=churns)

    def approve(name, who):
        decide(reviews[name], people[who])

    def override(name, who, churns):
        decide(reviews[name], people[who], churns)

    commit("ann-b1", "ann", True)
    approve("ann-b1", "ann")
    commit("ann-b2", "ann", False)
    override("ann-b2", "ann", False)
    commit("ann-b3", "ann", False)
    approve("ann-b3", "ann")
    commit("ann-b4", "ann", True)
    commit("ann-b5", "ann", False)
    override("ann-b5", "eve", True)
    commit("eve-b1", "eve", False)
    for name in ("ann-s1", "ann-s2", "ann-s3", "ann-s5", "bob-s1", "bob-s2"):
        approve(name, "ann" if name.startswith("ann") else "bob")
    override("ann-s4", "ann", False)
    outcomes = {
        "ann-b1": True,
        "ann-b2": False,
        "ann-b3": True,
        "ann-b5": False,
        "ann-s1": False,
        "ann-s2": True,
        "ann-s3": True,
        "ann-s4": False,
        "bob-s1": False,
        "auto": False,
    }
    for name, churned in outcomes.items():
        _outcome(reviews[name], churned)
    return reviews


def _counts(estimate) -> tuple:
    return (estimate.hits, estimate.n)


def test_each_reviewer_s_figures_from_their_blind_answers_and_shown_decisions(answered, people):
    rows = {row.reviewer: row.scores for row in blind_agreement(people["eve"], EVERYONE)}

    assert list(rows) == ["ann", "bob", "eve"]
    ann = rows["ann"]
    assert _counts(ann.shown_agreement) == (4, 5)
    # The blind answers: b3, b4, b5 agree. Counting the decisions instead would make it 2 of 4
    # (b1 went with the model, b5 was overridden away from it, b4 is undecided).
    assert _counts(ann.blind_agreement) == (3, 5)
    assert ann.gap.value == pytest.approx(0.2)
    # 0.2 - hypot(0.8 - 0.3755, 0.8824 - 0.6); 0.2 + hypot(0.9638 - 0.8, 0.6 - 0.2307)
    assert ann.gap.low == pytest.approx(-0.309812591, abs=1e-8)
    assert ann.gap.high == pytest.approx(0.603964230, abs=1e-8)
    assert ann.gap.low == pytest.approx(
        0.2 - ((0.8 - WILSON_4_OF_5[0]) ** 2 + (WILSON_3_OF_5[1] - 0.6) ** 2) ** 0.5
    )
    assert _counts(ann.blind_accuracy) == (3, 4)  # b1, b2, b5 right; b3 wrong
    assert _counts(ann.model_accuracy) == (1, 4)  # only b5
    assert _counts(ann.shown_accuracy) == (3, 4)  # s1, s2, s4 right; s3 wrong
    assert _counts(ann.revisions) == (1, 3)  # b1 of b1-b3 (eve decided b5)
    assert (ann.flagged, ann.is_small) == (False, True)
    assert _counts(rows["bob"].shown_agreement) == (2, 2)
    assert rows["bob"].blind_agreement.n == 0
    assert rows["bob"].gap.value is None
    # eve decided b5 after ann's answer: neither eve's shown decision nor her blind answer.
    assert _counts(rows["eve"].shown_agreement) == (0, 0)
    assert _counts(rows["eve"].blind_agreement) == (0, 1)
    assert BlindAnswer.objects.count() == 6


def test_an_analyst_sees_only_their_own_row(answered, people):
    rows = blind_agreement(people["bob"], OWN)

    assert [row.reviewer for row in rows] == ["bob"]
    assert _counts(rows[0].scores.shown_agreement) == (2, 2)
    assert [row.reviewer for row in blind_agreement(people["ann"], OWN)] == ["ann"]


# --- the page ---------------------------------------------------------------------------------


def _page(client, user) -> str:
    client.login(username=user.username, password=TEST_PASSWORD)
    response = client.get(reverse("learning:review_quality"))
    assert response.status_code == 200
    return response.content.decode()


def test_the_page_shows_the_blind_section_with_its_chart(answered, people, client):
    page = _page(client, people["eve"])

    assert "Blind review: agreement shown vs blind" in page
    assert 'data-testid="blind-row-ann"' in page
    assert 'data-testid="blind-row-bob"' in page
    assert 'data-testid="blind-row-eve"' in page
    assert "+20.0 points (-31.0 to +60.4)" in page
    assert 'id="quality-blind-fig"' in page
    assert 'data-testid="rubber-stamp-rule"' in page
    assert 'data-testid="rubber-stamp"' not in page  # nobody is flagged


def test_the_analyst_page_shows_only_their_blind_row(answered, people, client):
    page = _page(client, people["ann"])

    assert 'data-testid="blind-row-ann"' in page
    assert 'data-testid="blind-row-bob"' not in page
    assert 'data-testid="blind-row-eve"' not in page


def test_the_page_marks_a_flagged_reviewer(people, client, monkeypatch):
    flagged = score_blind(
        [ShownCall(person=p, model=m) for p, m in _agreeing(40, 40)],
        [BlindCall(person=p, model=m) for p, m in _agreeing(20, 40)],
    )
    honest = score_blind(
        [ShownCall(person=p, model=m) for p, m in _agreeing(30, 40)],
        [BlindCall(person=p, model=m) for p, m in _agreeing(30, 40)],
    )
    monkeypatch.setattr(
        "learning.views.blind_agreement",
        lambda user, scope: [BlindRow("carla", flagged), BlindRow("dan", honest)],
    )

    page = _page(client, people["eve"])

    assert page.count('data-testid="rubber-stamp"') == 1
    carla = page.split('data-testid="blind-row-carla"')[1].split("</tr>")[0]
    assert "possible rubber-stamping" in carla
    dan = page.split('data-testid="blind-row-dan"')[1].split("</tr>")[0]
    assert "possible rubber-stamping" not in dan
