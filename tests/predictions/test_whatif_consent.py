"""A what-if profiles its member: refused once consent is withdrawn or the member erased."""

import pytest

from loyalty.services.erasure import erase_member
from loyalty.services.members import set_consent
from predictions.exceptions import ProfilingNotAllowedError
from predictions.models import ModelVersion, Prediction
from predictions.services.scoring.runs import score_chunk, start_scoring_run
from predictions.services.whatif import what_if
from tests.predictions.conftest import CUTOFF

pytestmark = pytest.mark.django_db(transaction=True)

WITHDRAWN_MESSAGE = (
    "This member withdrew consent to profiling; a what-if would profile them, so it cannot be "
    "computed."
)
ERASED_MESSAGE = "This member's personal data was erased; a what-if cannot be computed."


@pytest.fixture
def prediction(active_churn_version):
    run = start_scoring_run(kind="churn", cutoff=CUTOFF, member_limit=5, enqueue=False)
    for chunk_id in run.chunks.values_list("pk", flat=True):
        score_chunk(chunk_id=chunk_id)
    return Prediction.objects.select_related("member").order_by("member__external_id").first()


def _counts() -> tuple[int, int]:
    return Prediction.objects.count(), ModelVersion.objects.count()


def test_what_if_answers_for_a_member_who_may_be_profiled(prediction):
    result = what_if(prediction=prediction, changes={})

    assert result.score == pytest.approx(prediction.score, abs=1e-6)


def test_what_if_refuses_a_member_who_withdrew_consent(prediction):
    set_consent(member=prediction.member, consent=False, actor=None)
    before = _counts()

    with pytest.raises(ProfilingNotAllowedError) as caught:
        what_if(prediction=prediction, changes={"days_since_last_event": "400"})

    assert (caught.value.status, caught.value.message) == (409, WITHDRAWN_MESSAGE)
    assert caught.value.context == {"member_id": prediction.member_id}
    assert _counts() == before


def test_what_if_refuses_an_erased_member(prediction):
    member_id = prediction.member_id
    erase_member(member_id=member_id, actor=None)
    before = _counts()

    with pytest.raises(ProfilingNotAllowedError) as caught:
        what_if(prediction=prediction, changes={})

    assert (caught.value.status, caught.value.message) == (409, ERASED_MESSAGE)
    assert _counts() == before
