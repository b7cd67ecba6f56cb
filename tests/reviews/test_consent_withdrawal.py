"""A withdrawn consent to profiling takes the member's undecided reviews out of the queues,
whether it comes from the member services (API, admin) or from a CSV member import."""

from pathlib import Path

import pytest

from loyalty.exceptions import MemberErasedError
from loyalty.models import Member
from loyalty.services.erasure import erase_member
from loyalty.services.imports.members_and_events import import_members
from loyalty.services.members import set_consent, update_member
from reviews.consent import CONSENT_WITHDRAWN_REASON
from reviews.models import Review
from reviews.services.decisions import approve_prediction

pytestmark = pytest.mark.django_db


def _states() -> dict[str, tuple[str, str]]:
    """Each review's (state, route reason), keyed by its member's external id."""
    return {
        review.member.external_id: (review.state, review.route_reason)
        for review in Review.objects.select_related("member")
    }


@pytest.fixture
def queues(routed):
    """The three routed reviews under readable member ids."""
    for name, review in routed.items():
        Member.objects.filter(pk=review.member_id).update(external_id=f"M-{name}")
    return {name: Review.objects.get(pk=review.pk) for name, review in routed.items()}


def test_withdrawing_consent_takes_the_pending_review_out_of_the_queue(queues):
    before = _states()

    set_consent(member=queues["analyst"].member, consent=False, actor=None)

    assert _states() == {
        **before,
        "M-analyst": ("withdrawn", CONSENT_WITHDRAWN_REASON),
    }
    assert before["M-expert"][0] == "pending"
    assert before["M-auto"][0] == "auto_approved"


def test_an_update_that_withdraws_consent_withdraws_the_review(queues, make_user):
    update_member(
        member=queues["expert"].member,
        actor=make_user("admin"),
        data={"consent_profiling": False},
    )

    assert Review.objects.get(pk=queues["expert"].pk).state == "withdrawn"
    assert Review.objects.get(pk=queues["analyst"].pk).state == "pending"


def test_a_decided_review_stays_decided_when_consent_is_withdrawn(queues, make_user):
    review = queues["analyst"]
    approve_prediction(review_id=review.pk, actor=make_user("analyst"), reason_code="model-correct")
    decided = _states()

    set_consent(member=review.member, consent=False, actor=None)

    assert _states() == decided
    assert decided["M-analyst"][0] == "decided"


def test_granting_consent_or_repeating_a_withdrawal_withdraws_nothing_more(queues):
    member = queues["analyst"].member
    Member.objects.filter(pk=member.pk).update(consent_profiling=False)
    before = _states()

    set_consent(member=member, consent=False, actor=None)  # the same value: nothing happens
    set_consent(member=member, consent=True, actor=None)

    assert _states() == before
    assert before["M-analyst"][0] == "pending"


def test_a_refused_consent_change_of_an_erased_member_changes_no_review(queues):
    member = queues["expert"].member
    erase_member(member_id=member.pk, actor=None)
    before = _states()

    with pytest.raises(MemberErasedError):
        set_consent(member=member, consent=True, actor=None)

    assert _states() == before


def test_an_import_that_withdraws_consent_withdraws_those_members_reviews(queues, tmp_path):
    source = Path(tmp_path) / "consent.csv"
    source.write_text(
        "external_id,consent_profiling\nM-analyst,no\nM-expert,yes\nM-new,no\n", encoding="utf-8"
    )
    before = _states()

    result = import_members(source=source)

    assert (result.created, result.updated, result.unchanged) == (1, 1, 1)
    assert _states() == {
        **before,
        "M-analyst": ("withdrawn", CONSENT_WITHDRAWN_REASON),
    }
    assert before["M-expert"][0] == "pending"


@pytest.mark.parametrize("role", ["analyst", "expert"])
def test_nobody_decides_a_review_withdrawn_with_the_consent(queues, make_user, role):
    from reviews.exceptions import ReviewNotOpen

    set_consent(member=queues["analyst"].member, consent=False, actor=None)

    with pytest.raises(ReviewNotOpen, match="withdrew consent to profiling"):
        approve_prediction(
            review_id=queues["analyst"].pk, actor=make_user(role), reason_code="model-correct"
        )
    review = Review.objects.get(pk=queues["analyst"].pk)
    assert (review.state, hasattr(review, "decision")) == ("withdrawn", False)
