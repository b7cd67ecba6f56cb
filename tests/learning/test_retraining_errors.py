"""Retraining errors: a lost database is retried by the task, a real failure ends the run."""

import pytest
from django.db import OperationalError

from learning.models import RetrainingRun
from learning.services import retraining
from learning.services.retraining import MAX_ATTEMPTS, request_retraining, run_retraining
from reviews.models import Notification

LOST_DATABASE = "server closed the connection unexpectedly"


def _run() -> RetrainingRun:
    return request_retraining(kind="churn", trigger="manual", enqueue=False)


def _state(run: RetrainingRun) -> tuple:
    run.refresh_from_db()
    return run.status, run.attempts, run.error, run.finished_at


def _carry_out_failing(error: Exception, *, times: int):
    """A stand-in for the training: raises `error` the first `times` calls, then finishes the
    run as a rejected candidate would. The calls are counted in `.calls`."""

    def carry_out(run: RetrainingRun) -> None:
        carry_out.calls += 1
        if carry_out.calls <= times:
            raise error
        retraining._finish(
            run.pk,
            status=RetrainingRun.Status.SUCCEEDED,
            verdict=RetrainingRun.Verdict.REJECTED,
            gate={"passed": False, "checks": [], "figures": {}},
        )

    carry_out.calls = 0
    return carry_out


@pytest.mark.django_db
def test_a_lost_database_propagates_and_leaves_the_run_for_the_retry(monkeypatch):
    run = _run()
    monkeypatch.setattr(
        retraining, "_carry_out", _carry_out_failing(OperationalError(LOST_DATABASE), times=1)
    )

    with pytest.raises(OperationalError, match=LOST_DATABASE):
        run_retraining(run_id=run.pk)

    assert _state(run) == ("running", 1, "", None)
    assert not Notification.objects.exists()

    retried = run_retraining(run_id=run.pk)

    assert (retried.status, retried.attempts, retried.verdict, retried.error) == (
        "succeeded",
        2,
        "rejected",
        "",
    )


@pytest.mark.django_db
def test_a_database_lost_on_every_attempt_fails_the_run_once_attempts_are_used_up(monkeypatch):
    run = _run()
    monkeypatch.setattr(
        retraining,
        "_carry_out",
        _carry_out_failing(OperationalError(LOST_DATABASE), times=MAX_ATTEMPTS),
    )

    for _ in range(MAX_ATTEMPTS):
        with pytest.raises(OperationalError):
            run_retraining(run_id=run.pk)
    given_up = run_retraining(run_id=run.pk)

    assert (given_up.status, given_up.attempts) == ("failed", MAX_ATTEMPTS)
    assert given_up.error == (
        f"gave up after {MAX_ATTEMPTS} attempts: each lost its worker or the database"
    )
    assert given_up.finished_at is not None


@pytest.mark.django_db
def test_a_real_failure_ends_the_run_with_its_error_and_tells_the_admins(monkeypatch, make_user):
    make_user("admin")
    run = _run()
    carry_out = _carry_out_failing(ValueError("no labeled churn examples"), times=1)
    monkeypatch.setattr(retraining, "_carry_out", carry_out)

    failed = run_retraining(run_id=run.pk)

    assert (failed.status, failed.attempts, failed.error) == (
        "failed",
        1,
        "ValueError: no labeled churn examples",
    )
    assert failed.finished_at is not None
    assert list(Notification.objects.values_list("subject", flat=True)) == [
        "Churn risk retraining: failed: ValueError: no labeled churn examples"
    ]
    # Finished: running it again (a redelivered message) changes nothing.
    assert run_retraining(run_id=run.pk).status == "failed"
    assert carry_out.calls == 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_worker_retries_a_run_that_lost_the_database(monkeypatch, celery_worker):
    from learning.tasks import retrain_task
    from tests.workers import wait_until

    run = _run()
    carry_out = _carry_out_failing(OperationalError(LOST_DATABASE), times=1)
    monkeypatch.setattr(retraining, "_carry_out", carry_out)

    retrain_task.delay(run.pk)

    wait_until(
        lambda: RetrainingRun.objects.get(pk=run.pk).status == "succeeded",
        timeout=60,
        what="the retried run to finish",
    )
    run.refresh_from_db()
    assert (run.status, run.attempts, run.verdict, carry_out.calls) == (
        "succeeded",
        2,
        "rejected",
        2,
    )
