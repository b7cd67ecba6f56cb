"""A week of operations on the demo data: events arrive daily, scores are refreshed, queues
stay within the team's capacity.

    .venv/bin/python bench/week.py --households 500 --analyst-capacity 25 --expert-capacity 10

On a fresh database (DATABASE_URL; a new SQLite file under var/ by default): The Complete
Journey's first N households, less their last --days days of events, which are held back.
Both models are trained and promoted on what is left (`ensure_active_versions`), every member
is scored (the first refresh: a full run) and routed, and the policies get the capacities
given. Then, day by day:
1. that day's events arrive through the CSV import (which marks their members);
2. the daily refresh re-scores the members due (`freshness.refresh_scores`, chunks in this
   process) and routing makes their cases (a newer case supersedes the pending one);
3. the team decides a day's capacity from the top of each queue (an analyst and an expert
   approve; a contact-rule breach is sent anyway with a comment, as a person may);
4. the backlog drains into the room the decisions freed (`capacity.drain_backlog`).
It prints, per day: events, members changed, members re-scored and the clock's reading,
new cases by route, decisions, superseded cases, and the queues and backlogs at the end of the
day, and says whether any queue ever held more than its capacity.
"""

import argparse
import csv
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ["member_external_id", "occurred_at", "kind", "amount", "quantity", "category"]
COLUMNS += ["channel", "session_id", "dwell_seconds", "product_id"]


def setup_django(database: str) -> None:
    os.environ.setdefault("DATABASE_URL", database)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty.settings.base")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def hold_back(days: int) -> dict:
    """The last `days` days of events, by day, deleted from the database (they arrive later)."""
    from loyalty.clock import scoring_clock
    from loyalty.models import Event

    end = scoring_clock()
    start = end - timedelta(days=days)
    held = Event.objects.filter(occurred_at__gte=start).order_by("occurred_at", "pk")
    by_day: dict = {start + timedelta(days=d): [] for d in range(days)}
    for row in held.values("member__external_id", "occurred_at", *COLUMNS[2:]):
        day = start + timedelta(days=(row["occurred_at"] - start).days)
        by_day[day].append([row["member__external_id"], row["occurred_at"].isoformat()])
        by_day[day][-1] += ["" if row[name] is None else row[name] for name in COLUMNS[2:]]
    held.delete()
    return by_day


def import_day(rows: list[list]) -> None:
    from loyalty.services.imports.members_and_events import import_events

    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    try:
        import_events(source=Path(handle.name))
    finally:
        os.unlink(handle.name)


def refresh_and_route() -> tuple[int, Counter]:
    from predictions.services.scoring.freshness import refresh_scores
    from predictions.services.scoring.runs import score_chunk
    from reviews.services.routing import route_new_predictions

    refresh = refresh_scores(enqueue=False)
    for run in refresh.runs:
        for chunk_id in run.chunks.order_by("index").values_list("pk", flat=True):
            score_chunk(chunk_id=chunk_id)
    routed = route_new_predictions(kind="churn")
    return refresh.due, Counter(routed.by_route)


def set_capacities(analyst: int, expert: int) -> None:
    from dataclasses import replace

    from reviews.policy_settings import PolicySettings
    from reviews.selectors.policy import current_policy
    from reviews.services.policy import change_policy

    for kind in ("churn", "next_action"):
        settings = PolicySettings.of(current_policy(kind))
        settings = replace(settings, analyst_daily_capacity=analyst, expert_daily_capacity=expert)
        change_policy(kind=kind, settings=settings, actor=None, reason="the team's week")


def work_the_queues(people: dict, capacity: dict) -> int:
    """Each person decides up to their queue's capacity, highest priority first."""
    from reviews.exceptions import InvalidDecision
    from reviews.models import Review
    from reviews.services.decisions import approve_prediction

    decided = 0
    for route, person in people.items():
        top = Review.objects.queued(route).order_by("-priority", "pk")[: capacity[route]]
        for review_id in list(top.values_list("pk", flat=True)):
            answer_blind_items_as_the_model(review_id, person)
            try:
                approve_prediction(review_id=review_id, actor=person, reason_code="model-correct")
            except InvalidDecision:  # a contact rule: a person may send it anyway, saying why
                approve_prediction(
                    review_id=review_id,
                    actor=person,
                    reason_code="model-correct",
                    override_contact_rules=True,
                    comment="Reviewed: worth contacting again.",
                )
            decided += 1
    return decided


def answer_blind_items_as_the_model(review_id: int, person) -> None:
    """A blind item (the policy's blind share) needs the person's own answer before the
    decision: this team answers what the model says, as it then approves."""
    from loyalty.services.catalog import NO_ACTION
    from predictions.calls import model_churn_call
    from reviews.models import Review
    from reviews.services.blind import commit_blind_answer

    review = Review.objects.select_related("prediction", "recommended_action").get(pk=review_id)
    if not review.is_blind:
        return
    action = review.recommended_action.code if review.recommended_action else NO_ACTION
    commit_blind_answer(
        review_id=review_id,
        user=person,
        churn_label=bool(model_churn_call(review.prediction.score)),
        action_code=action if review.recommends_action else None,
    )


def queue_sizes() -> dict:
    from reviews.models import Review

    return {
        route: (Review.objects.queued(route).count(), Review.objects.backlogged(route).count())
        for route in ("analyst", "expert")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=500)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--analyst-capacity", type=int, default=25)
    parser.add_argument("--expert-capacity", type=int, default=10)
    parser.add_argument("--database", default=f"sqlite:///{ROOT}/var/week-{os.getpid()}.sqlite3")
    args = parser.parse_args()
    setup_django(args.database)

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from loyalty.clock import scoring_clock
    from loyalty.models import Member
    from predictions.services.training import ensure_active_versions
    from reviews.models import Review
    from reviews.services.capacity import drain_backlog

    started = time.perf_counter()
    call_command("load_complete_journey", households=args.households, verbosity=0)
    call_command("create_demo_users", verbosity=0)
    by_day = hold_back(args.days)
    ensure_active_versions()
    users = get_user_model().objects
    people = {"analyst": users.get(username="analyst"), "expert": users.get(username="expert")}
    capacity = {"analyst": args.analyst_capacity, "expert": args.expert_capacity}
    set_capacities(args.analyst_capacity, args.expert_capacity)
    due, routed = refresh_and_route()
    print(
        f"{Member.objects.count()} members; first refresh: {due} scored at {scoring_clock():%F}, "
        f"routed {dict((str(route), n) for route, n in routed.items())}; "
        f"set up in {time.perf_counter() - started:.0f} s"
    )
    print(
        "day         events changed rescored clock       auto analyst expert backlogged "
        "decided superseded  queue a/e  backlog a/e"
    )
    over = []
    for day, rows in by_day.items():
        superseded_before = Review.objects.filter(state="superseded").count()
        import_day(rows)
        changed = Member.objects.filter(inputs_changed_at__isnull=False).count()
        due, routed = refresh_and_route()
        backlogged = sum(waiting for _, waiting in queue_sizes().values())
        for route, (queued, _) in queue_sizes().items():
            if queued > capacity[route]:
                over.append((day, route, queued))
        decided = work_the_queues(people, capacity)
        drain_backlog()
        sizes = queue_sizes()
        superseded = Review.objects.filter(state="superseded").count() - superseded_before
        print(
            f"{day:%Y-%m-%d} {len(rows):>7} {changed:>7} {due:>8} {scoring_clock():%Y-%m-%d} "
            f"{routed['auto']:>5} {routed['analyst']:>7} {routed['expert']:>6} {backlogged:>10} "
            f"{decided:>7} {superseded:>10} {sizes['analyst'][0]:>5}/{sizes['expert'][0]:<4} "
            f"{sizes['analyst'][1]:>6}/{sizes['expert'][1]:<4}"
        )
    print("every queue stayed within its capacity" if not over else f"over capacity: {over}")
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
