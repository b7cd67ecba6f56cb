"""A running retraining's row moves while it trains: stage, progress and heartbeat, written
at each stage and now and then within one, never once per tree."""

from itertools import groupby, pairwise

import pytest
from django.urls import reverse

from learning.models import RetrainingRun
from learning.services import retraining
from learning.services.retraining import (
    TRAINING_ENDS,
    TRAINING_STARTS,
    TrainingBeats,
    request_retraining,
    run_retraining,
)
from predictions.ml.progress import ProgressEvent
from tests.conftest import TEST_PASSWORD
from tests.predictions.conftest import (  # noqa: F401  (fixtures)
    active_churn_version,
    generated_members,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def row_writes(monkeypatch):
    """Every (stage, progress, heartbeat) the run's row holds right after a beat wrote it."""
    written = []
    beat = retraining._beat

    def recording(run_id: int, stage: str, progress: int) -> None:
        beat(run_id, stage, progress)
        written.append(
            RetrainingRun.objects.values_list("stage", "progress", "heartbeat_at").get(pk=run_id)
        )

    monkeypatch.setattr(retraining, "_beat", recording)
    return written


def test_a_retraining_run_moves_through_the_engine_stages_between_10_and_75(
    active_churn_version,  # noqa: F811
    row_writes,
):
    run = request_retraining(kind="churn", trigger="manual", enqueue=False)

    run = run_retraining(run_id=run.pk)

    assert run.status == "succeeded"
    stages = [stage for stage, _, _ in row_writes]
    progress = [percent for _, percent, _ in row_writes]
    # A long stage may be written more than once (a pause within it); each in its turn.
    training = [stage for stage, _ in groupby(stages) if stage.startswith("training: ")]
    assert training == [
        "training: loading data",
        "training: preparing events",
        "training: features",
        "training: fitting candidates",
        "training: calibration and bootstrap refits",
        "training: evaluation",
        "training: registering",
    ]
    assert stages[0] == "training" and stages[-1] in ("gate", "promotion")
    assert progress[0] == TRAINING_STARTS
    assert [p for p in progress if TRAINING_STARTS < p < TRAINING_ENDS]  # it moved inside
    assert all(later >= earlier for earlier, later in pairwise(progress))
    assert all(beat is not None for _, _, beat in row_writes)
    assert RetrainingRun.objects.get(pk=run.pk).progress == 100


def test_within_a_stage_the_row_is_written_only_after_a_pause(row_writes):
    run = request_retraining(kind="churn", trigger="manual", enqueue=False)
    now = [0.0]
    beats = TrainingBeats(run.pk, clock=lambda: now[0])

    beats(ProgressEvent(stage="features", fraction=0.0, total=8))
    for done in range(1, 5):  # four cutoffs within a second: the first write stands
        now[0] += 0.25
        beats(ProgressEvent(stage="features", fraction=0.1 * done, done=done, total=8))
    now[0] += retraining.PROGRESS_WRITE_SECONDS
    beats(ProgressEvent(stage="features", fraction=0.5, done=5, total=8))
    beats(ProgressEvent(stage="fitting candidates", fraction=0.5))

    assert [(stage, percent) for stage, percent, _ in row_writes] == [
        ("training: features", 10),
        ("training: features", 42),
        ("training: fitting candidates", 42),
    ]


def test_the_loop_page_shows_a_running_runs_progress_and_polls_for_it(make_user, client):
    run = request_retraining(kind="churn", trigger="manual", enqueue=False)
    RetrainingRun.objects.filter(pk=run.pk).update(
        status="running", stage="training: features", progress=23
    )
    client.login(username=make_user("admin").username, password=TEST_PASSWORD)

    page = client.get(reverse("learning:loop")).content.decode()
    fragment = client.get(
        reverse("learning:loop"), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="retraining-runs"
    )

    assert '<progress max="100" value="23"' in page
    assert "training: features · 23 %" in page
    assert 'hx-trigger="every 3s"' in page
    assert fragment.status_code == 200
    body = fragment.content.decode()
    assert 'id="retraining-runs"' in body
    assert "<h1>" not in body  # the table alone, not the page
    assert '<progress max="100" value="23"' in body


def test_once_no_run_is_open_the_table_stops_polling(make_user, client):
    run = request_retraining(kind="churn", trigger="manual", enqueue=False)
    RetrainingRun.objects.filter(pk=run.pk).update(status="succeeded", progress=100)
    client.login(username=make_user("admin").username, password=TEST_PASSWORD)

    fragment = client.get(
        reverse("learning:loop"), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="retraining-runs"
    ).content.decode()

    assert "hx-trigger" not in fragment
    assert "<progress" not in fragment
