"""Fresh scores: the daily refresh re-scores the members whose inputs changed or whose scores
aged out on the scoring clock, and only them; a real worker runs it from beat's entry."""

from datetime import timedelta
from decimal import Decimal

import pytest
from celery.schedules import crontab
from django.conf import settings
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from loyalty.beat import SeedingDatabaseScheduler
from loyalty.celery import app
from loyalty.clock import scoring_clock
from loyalty.models import Event, Member
from loyalty.services.events import EventInput, record_event_batch
from loyalty.services.members import set_consent, update_member
from predictions.models import Prediction, ScoringRun
from predictions.services.scoring.freshness import members_due, refresh_scores
from predictions.services.scoring.runs import VALUE_POINTS, score_chunk
from predictions.tasks import refresh_scores_task
from tests.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _finish(refresh) -> list[ScoringRun]:
    for run in refresh.runs:
        for chunk_id in run.chunks.order_by("index").values_list("pk", flat=True):
            score_chunk(chunk_id=chunk_id)
    return [ScoringRun.objects.get(pk=run.pk) for run in refresh.runs]


def _scorable() -> list[Member]:
    return list(Member.objects.filter(consent_profiling=True).order_by("external_id"))


def _buy(members: list[Member], *, days_after_the_data: int) -> None:
    """A purchase by each member, `days_after_the_data` after the last event: the clock moves."""
    last = Event.objects.order_by("-occurred_at").values_list("occurred_at", flat=True).first()
    record_event_batch(
        events=[
            EventInput(
                index=i,
                member_external_id=member.external_id,
                occurred_at=last + timedelta(days=days_after_the_data),
                kind="purchase",
                amount=Decimal("12.50"),
            )
            for i, member in enumerate(members)
        ],
        actor=None,
    )


def _predicted_at(cutoff) -> set[int]:
    return set(Prediction.objects.filter(cutoff=cutoff).values_list("member_id", flat=True))


def test_the_first_refresh_scores_everyone_as_a_full_run(active_churn_version):
    scorable = _scorable()

    refresh = refresh_scores(enqueue=False)
    (run,) = _finish(refresh)

    assert refresh.due == len(scorable)
    assert (run.scope, run.status, run.cutoff) == ("full", "done", scoring_clock())
    assert _predicted_at(run.cutoff) == {member.pk for member in scorable}
    # The population's figures for routing partial runs later.
    assert len(run.value_points) == VALUE_POINTS
    assert run.value_points == sorted(run.value_points)
    assert not members_due(clock=scoring_clock(), every_days=7).exists()
    assert set(
        Member.objects.filter(consent_profiling=True).values_list("scored_through", flat=True)
    ) == {run.cutoff}
    assert refresh_scores(enqueue=False).skipped == "every score is up to date"


def test_a_refresh_rescores_only_the_members_whose_inputs_changed(active_churn_version):
    _finish(refresh_scores(enqueue=False))
    scorable = _scorable()
    buyers, tiered = scorable[:3], scorable[3]
    _buy(buyers, days_after_the_data=1)
    update_member(member=tiered, actor=None, data={"tier": "platinum"})
    newcomer = Member.objects.filter(consent_profiling=False).order_by("external_id").first()
    set_consent(member=newcomer, consent=True, actor=None)
    clock = scoring_clock()

    refresh = refresh_scores(enqueue=False)
    (run,) = _finish(refresh)

    changed = {member.pk for member in [*buyers, tiered, newcomer]}
    assert (refresh.due, run.scope, run.cutoff) == (4 + 1, "refresh", clock)
    assert _predicted_at(clock) == changed
    assert not Member.objects.filter(
        inputs_changed_at__isnull=False, consent_profiling=True
    ).exists()
    assert set(Member.objects.filter(pk__in=changed).values_list("scored_through", flat=True)) == {
        clock
    }


def test_scores_that_aged_out_on_the_clock_are_refreshed_changed_or_not(active_churn_version):
    _finish(refresh_scores(enqueue=False))
    scorable = _scorable()
    _buy(scorable[:1], days_after_the_data=8)  # the clock moves 8 days on

    # A week's limit: every score is older than 7 days now.
    assert members_due(clock=scoring_clock(), every_days=7).count() == len(scorable)
    # A 30-day limit: only the buyer.
    assert list(members_due(clock=scoring_clock(), every_days=30)) == scorable[:1]
    refresh = refresh_scores(every_days=30, enqueue=False)
    assert refresh.due == 1


def test_a_change_made_while_a_refresh_runs_stays_marked_for_the_next(active_churn_version):
    _finish(refresh_scores(enqueue=False))
    member = _scorable()[0]
    _buy([member], days_after_the_data=1)
    refresh = refresh_scores(enqueue=False)
    update_member(member=member, actor=None, data={"tier": "platinum"})  # after the run began

    _finish(refresh)

    member.refresh_from_db()
    assert member.inputs_changed_at is not None
    assert member.scored_through == refresh.runs[0].cutoff


def test_no_refresh_starts_while_a_run_is_still_scoring(active_churn_version):
    running = refresh_scores(enqueue=False)

    second = refresh_scores(enqueue=False)

    assert (second.runs, second.skipped) == ((), "a scoring run is still running")
    _finish(running)
    assert refresh_scores(enqueue=False).skipped == "every score is up to date"


def test_a_refresh_scores_both_kinds_next_action_first(
    active_churn_version, active_next_action_version
):
    refresh = refresh_scores(enqueue=False)

    assert [run.model_version.kind for run in refresh.runs] == ["next_action", "churn"]
    assert [run.closes_cycle for run in refresh.runs] == [False, True]
    next_action, churn = _finish(refresh)
    assert next_action.cutoff == churn.cutoff


@pytest.mark.worker
def test_beat_s_refresh_task_scores_in_a_real_worker(active_churn_version, celery_worker):
    scorable = len(_scorable())

    refresh_scores_task.delay()

    wait_until(
        lambda: ScoringRun.objects.filter(status="done", members_scored=scorable).exists(),
        what="the refresh's run done",
    )
    assert not members_due(clock=scoring_clock(), every_days=7).exists()


def test_beat_runs_the_refresh_daily_and_keeps_an_admin_s_change():
    entry = settings.CELERY_BEAT_SCHEDULE["refresh-scores"]
    assert entry["task"] == refresh_scores_task.name
    assert entry["schedule"] == crontab(minute="0", hour="2")
    # An admin moved the refresh to 05:30 with a 3-day limit; beat restarts.
    schedule = CrontabSchedule.objects.create(minute="30", hour="5")
    PeriodicTask.objects.create(
        name="refresh-scores",
        task=refresh_scores_task.name,
        crontab=schedule,
        kwargs='{"every_days": 3}',
    )

    SeedingDatabaseScheduler(app=app).setup_schedule()

    task = PeriodicTask.objects.get(name="refresh-scores")
    assert (task.crontab.hour, task.crontab.minute, task.kwargs) == ("5", "30", '{"every_days": 3}')
    # The entries the database lacked are seeded.
    assert set(settings.CELERY_BEAT_SCHEDULE) <= set(
        PeriodicTask.objects.values_list("name", flat=True)
    )


def test_a_refresh_supersedes_a_pending_case_and_leaves_a_decided_one_as_it_was(
    active_churn_version, active_next_action_version, make_user, reason_codes
):
    from reviews.models import Review
    from reviews.services.decisions import approve_prediction
    from reviews.services.routing import route_new_predictions

    _finish(refresh_scores(enqueue=False))
    route_new_predictions(kind="churn")
    decided, waiting = Review.objects.filter(state="pending").order_by("member__external_id")[:2]
    decision = approve_prediction(
        review_id=decided.pk, actor=make_user("analyst"), reason_code="model-correct"
    )
    emitted = _events_of(decision)
    _buy([decided.member, waiting.member], days_after_the_data=1)

    _finish(refresh_scores(enqueue=False))
    route_new_predictions(kind="churn")

    decided.refresh_from_db()
    waiting.refresh_from_db()
    assert (decided.state, decided.decision.pk) == ("decided", decision.pk)
    assert waiting.state == "superseded"
    newer = Review.objects.filter(member__in=[decided.member, waiting.member]).exclude(
        pk__in=[decided.pk, waiting.pk]
    )
    assert sorted(review.member_id for review in newer) == sorted(
        [decided.member_id, waiting.member_id]
    )
    assert all(review.is_case for review in newer)
    # The decision already emitted is not emitted again.
    assert _events_of(decision) == emitted == 1


def _events_of(decision) -> int:
    from loyalty.models import OutboxEvent

    return sum(
        1
        for data in OutboxEvent.objects.filter(member_id=decision.review.member_id).values_list(
            "data", flat=True
        )
        if data.get("decision_id") == decision.pk
    )
