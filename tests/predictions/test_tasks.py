"""Scoring tasks in real workers on the configured broker: parallel chunks, and recovery from
a worker killed in the middle of a chunk."""

import os
import signal
from datetime import timedelta

import pytest

from loyalty.models import Member
from predictions.models import Prediction, ScoringChunk
from predictions.services.scoring.runs import resend_stale_chunks, start_scoring_run
from predictions.tasks import score_chunk_task
from tests.predictions.conftest import CUTOFF
from tests.workers import start_worker_process, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
KILL_QUEUE = "stalling-worker"


def test_worker_scores_every_chunk_of_a_run(active_churn_version, celery_worker):
    scorable = Member.objects.filter(consent_profiling=True).count()

    run = start_scoring_run(kind="churn", cutoff=CUTOFF, chunk_size=100)

    wait_until(lambda: not run.chunks.exclude(status="done").exists(), what="chunks done")
    run.refresh_from_db()
    assert run.chunks.count() == -(-scorable // 100)
    assert (run.status, run.members_scored) == ("done", scorable)
    assert Prediction.objects.filter(model_version=active_churn_version).count() == scorable


def test_a_worker_killed_mid_chunk_loses_nothing_and_duplicates_nothing(
    active_churn_version, celery_worker, tmp_path
):
    scorable = Member.objects.filter(consent_profiling=True).count()
    run = start_scoring_run(kind="churn", cutoff=CUTOFF, chunk_size=10_000, enqueue=False)
    chunk = run.chunks.get()
    marker = tmp_path / "stalled"
    log = (tmp_path / "worker.log").open("w")
    worker = start_worker_process(
        "tests.predictions.stalling_worker",
        queue=KILL_QUEUE,
        log=log,
        env={"STALL_MARKER": str(marker)},
    )
    try:
        score_chunk_task.apply_async(args=[chunk.pk], queue=KILL_QUEUE)
        try:
            wait_until(marker.exists, what="the worker to reach the write")
        except AssertionError as error:
            log_text = (tmp_path / "worker.log").read_text()
            raise AssertionError(f"{error}; worker log:\n{log_text}") from error
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)

    chunk.refresh_from_db()
    assert (chunk.status, chunk.attempts) == ("pending", 1)
    assert Prediction.objects.count() == 0

    assert resend_stale_chunks(older_than=timedelta(0)) == 1
    wait_until(lambda: ScoringChunk.objects.get(pk=chunk.pk).status == "done", what="redo")

    run.refresh_from_db()
    assert (run.status, run.members_scored) == ("done", scorable)
    assert Prediction.objects.count() == scorable
    assert Prediction.objects.values("member").distinct().count() == scorable
