"""Does the learning loop help? Rounds of score, route, review, label, retrain on generated members.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_loop .venv/bin/python bench/loop.py \\
        --members 3000 --rounds 4 --reviews-per-round 150 --reviewer-accuracy 0.9 --seed 11

The database named in DATABASE_URL (its name must start with "bench") and its copies
<name>_a ... <name>_e are the bench's own: dropped and recreated on every run, then migrated.

Data and time. `generate_members` writes a year of events up to its cutoff C and the 90-day
horizon after it, and each member's realized churn over [C, C + 90 d) in `SyntheticTruth`. The
bench then DELETES every event at or after C: the database looks exactly like the present at C,
when nobody can see yet how the horizon turns out, and the truth stays apart (the simulated
reviewers and the bench's own measurements read it; no model, gate or service does). Every
service then runs unchanged on its own clock: the data end at C, so the scoring clock reads
C and retraining's default training cutoff is C - 90 d (the out-of-time evaluation that the gate
compares uses [C - 90 d, C): outcomes that are observable at C).

One cutoff for every round. A round is one review cycle inside the horizon (a week, say): the
members are scored at C, routed, people decide some reviews, their decisions become labeled
examples, retraining runs, a promoted version re-scores everyone at C. No round moves the
cutoff: the generator knows the truth at C only, and a later cutoff would hand every model the
realized outcomes of earlier rounds, the very information that makes human labels worth having
before the horizon has passed. So the only new information between rounds is what people said,
which is the question. A member already decided in an arm is not decided again there (a new
version's prediction of that member at the same C gets a fresh review, but the team has made
that call already).

Simulated reviewers know each member's realized churn and report it with probability
`--reviewer-accuracy`, the opposite otherwise; whether a reviewer is right about a member is a
fixed hash of (seed, member), the same in every arm (common random numbers). An answer equal to
the model's call (churn when p >= 0.5) is an approval ("model-correct"), any other an override
("wrong-churn-call" with the answer): the labeled example is the answer either way.

Arms, each in its own copy of one prepared database (`CREATE DATABASE <name>_a TEMPLATE <name>`
...: the same members, events, first version (v0), its predictions at C and their reviews), each
run in a child process:
- loop: the K highest-priority open reviews routed to people (the analyst and expert queues'
  order: priority, then id) are decided; then retraining as built (`request_retraining` +
  `run_retraining`: labeled examples as weighted rows, 20 % of them held out by a stable hash,
  the gate, auto-promotion). A promotion starts a scoring run (`rescore=True`) whose chunks
  would go to Celery after commit; the bench scores exactly that run's chunks inline
  (`score_chunk`) and routes the new predictions (`route_new_predictions`): no second run.
- no_feedback: the same scoring, routing and K decisions (labeled too), never retrained
  (retraining on history alone at the same cutoff refits v0 exactly: same data, seeded).
- random: K reviews drawn uniformly among every undecided current prediction (any route,
  auto-approved ones too), then the same retraining as the loop.
Every churn decision example weighs the same as a history row (labels.DECISION_LABEL_WEIGHT).
Earlier builds weighed overrides twice as much as approvals, then every decision 2.5; this
bench showed both costing the candidates out-of-time AUC (the docstring of reviews/services/
labels.py has the figures).
Holdout: 20 % of the scored members by a stable hash of their external id, never reviewed in
any arm. Per round: the active version's ROC AUC and ECE (10 bins, the gate's definition) on
them against their realized churn, beside the oracle's AUC (the true probability); over all
current reviews, the auto-approval rate and the error among auto-approved items (the model's
call vs realized churn); labels gathered and how many decisions were overrides; the gate's
verdict with its failing checks; seconds. Then the change from v0 per 100 reviews, and paired
bootstrap intervals (over holdout members) of the final AUC and ECE differences between arms,
per seed and pooled over `--repeats` seeds (seed, seed+1, ...).

Celery: the bench forces CELERY_BROKER_URL=memory://localhost/ so that the tasks services queue
on commit (labeling, re-scoring chunks, routing) stay in this process and never reach a shared
broker whose workers read another database; the bench runs those steps inline itself. Models:
trees only, small (`fast_churn_config`, the tests' FAST_CHURN); artifacts in a temporary
folder removed at the end.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
START = date(2025, 1, 1)
DAYS = 365
HORIZON = 90
HOLDOUT_SHARE = 0.2
ARMS = ("loop", "no_feedback", "random")
ARM_SUFFIX = {"loop": "a", "no_feedback": "b", "random": "c"}
EXPERT_USERNAME = "bench-loop-expert"
RESULT_MARK = "LOOP-RESULT "
BOOTSTRAP_SAMPLES = 2000
# A database this bench drops and recreates must say it is a bench's.
DATABASE_PREFIX = "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--reviews-per-round", type=int, default=150)
    parser.add_argument("--reviewer-accuracy", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--repeats", type=int, default=3, help="run the whole bench for seeds seed, seed+1, ..."
    )
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)  # one arm, in a child
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("Set DATABASE_URL to a PostgreSQL database, e.g. postgres://...:5432/bench_loop")
    args.arm_names = list(ARMS)
    if args.arm:
        _setup_django()
        result = run_arm(args)
        print(RESULT_MARK + json.dumps(result), flush=True)
        return
    name = urlsplit(url).path.lstrip("/")
    if not name.startswith(DATABASE_PREFIX):
        sys.exit(f"The bench drops and recreates {name!r}: use a name starting with 'bench'.")
    artifacts = tempfile.mkdtemp(prefix="bench_loop_models_")
    os.environ["MODEL_ARTIFACT_DIR"] = artifacts
    _setup_django()
    started = time.perf_counter()
    try:
        runs = [run_seed(args, args.seed + repeat, url) for repeat in range(args.repeats)]
    finally:
        from django.db import connections

        connections.close_all()
        shutil.rmtree(artifacts, ignore_errors=True)
    summarize(args, runs)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


def _setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty.settings.base")
    # Forced, not defaulted: a shared broker's workers would take these tasks to their database.
    os.environ["CELERY_BROKER_URL"] = "memory://localhost/"
    os.environ.setdefault("EMAIL_URL", "dummymail://")
    os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")
    import django

    django.setup()


def fast_churn_config():
    """Small and fast, as the tests' FAST_CHURN: trees only, few cutoffs and bootstrap refits."""
    from predictions.ml.contracts import BoosterParams, ChurnConfig

    return ChurnConfig(
        seed=0,
        bootstrap_models=3,
        max_training_cutoffs=4,
        booster=BoosterParams(num_boost_round=60, early_stopping_rounds=10, n_jobs=1),
        sequence=False,
    )


def generator_cutoff() -> datetime:
    return datetime.combine(START + timedelta(days=DAYS), datetime.min.time(), tzinfo=UTC)


# --- databases -------------------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin(url: str, *statements) -> None:
    """Run statements on the server's maintenance database (CREATE/DROP DATABASE)."""
    import psycopg2

    connection = psycopg2.connect(_with_database(url, "postgres"))
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


def _recreate(url: str, name: str, template: str | None = None) -> None:
    from psycopg2 import sql

    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        create = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    _admin(
        url,
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)),
        create,
    )


# --- one seed: the shared start, then each arm in its own copy ---------------------------------


def run_seed(args, seed: int, url: str) -> dict:
    from django.db import connections

    base = urlsplit(url).path.lstrip("/")
    connections.close_all()
    _recreate(url, base)
    print(f"\n== seed {seed}: preparing {base} ==", flush=True)
    prepare_base(args, seed)
    connections.close_all()
    arms = {}
    for arm in args.arm_names:
        name = f"{base}_{ARM_SUFFIX[arm]}"
        started = time.perf_counter()
        _recreate(url, name, template=base)
        print(f"-- arm {arm} in {name}", flush=True)
        arms[arm] = _run_child(args, seed, arm, _with_database(url, name))
        print(f"   arm {arm} done in {time.perf_counter() - started:.0f} s", flush=True)
    return {"seed": seed, "arms": arms}


def prepare_base(args, seed: int) -> None:
    """Migrate, generate, cut the data at C, train and promote v0, score at C and route."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from loyalty import roles
    from loyalty.clock import scoring_clock
    from loyalty.models import Event
    from loyalty.services.synthetic.generation import generate_members
    from loyalty.services.users import assign_role
    from predictions.services.registry import promote_model_version
    from predictions.services.training import default_training_cutoff, train_churn_version
    from reviews.services.reason_codes import seed_reason_codes
    from reviews.services.routing import route_new_predictions

    step = _Stopwatch()
    call_command("migrate", verbosity=0)
    seed_reason_codes()
    step.lap("migrated")
    result = generate_members(
        members=args.members, seed=seed, start=START, days=DAYS, horizon_days=HORIZON
    )
    cutoff = generator_cutoff()
    assert result.spec.cutoff == cutoff
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Event._meta.db_table} WHERE occurred_at >= %s", [cutoff])
        removed = cursor.rowcount
    step.lap(
        f"generated {args.members:,} members ({result.churned:,} churn in the horizon); "
        f"removed {removed:,} events at or after C = {cutoff:%Y-%m-%d}"
    )
    if scoring_clock() != cutoff:
        raise SystemExit(f"the scoring clock reads {scoring_clock()}, not C")
    user = get_user_model().objects.create_user(username=EXPERT_USERNAME)
    assign_role(user=user, role=roles.EXPERT)
    training_cutoff = default_training_cutoff(kind="churn", horizon_days=HORIZON)
    outcome = train_churn_version(
        cutoff=training_cutoff, horizon_days=HORIZON, config=fast_churn_config()
    )
    version = promote_model_version(version_id=outcome.version.pk, actor=None)
    step.lap(
        f"first version trained at {training_cutoff:%Y-%m-%d} "
        f"(selected {version.algorithm}) and promoted"
    )
    scored = score_inline(cutoff=cutoff)
    routed = route_new_predictions(kind="churn", model_version_id=version.pk)
    routes = {str(route): count for route, count in routed.by_route.items()}
    step.lap(f"scored {scored:,} members at C, routed {routes}")


def _run_child(args, seed: int, arm: str, url: str) -> dict:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--arm",
        arm,
        "--seed",
        str(seed),
        "--rounds",
        str(args.rounds),
        "--reviews-per-round",
        str(args.reviews_per_round),
        "--reviewer-accuracy",
        str(args.reviewer_accuracy),
    ]
    process = subprocess.Popen(
        command,
        env={**os.environ, "DATABASE_URL": url},
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    result = None
    for line in process.stdout:
        if line.startswith(RESULT_MARK):
            result = json.loads(line[len(RESULT_MARK) :])
        else:
            print("   " + line.rstrip(), flush=True)
    if process.wait() != 0 or result is None:
        raise SystemExit(f"arm {arm} failed (exit {process.returncode})")
    return result


# --- one arm ----------------------------------------------------------------------------------


def run_arm(args) -> dict:
    import numpy as np
    from django.contrib.auth import get_user_model

    from loyalty.models import Member, SyntheticTruth

    cutoff = generator_cutoff()
    truth = {
        member_id: (probability, churned)
        for member_id, probability, churned in SyntheticTruth.objects.values_list(
            "member_id", "churn_probability", "churned"
        )
    }
    holdout = {
        member_id
        for member_id, external_id in Member.objects.values_list("pk", "external_id")
        if holdout_bucket(external_id) < HOLDOUT_SHARE
    }
    expert = get_user_model().objects.get(username=EXPERT_USERNAME)
    decided: set[int] = set()
    totals = {"reviews": 0, "overrides": 0}
    rounds = [{"round": 0, **measure(cutoff, truth, holdout), "gate": "", "seconds": 0.0, **totals}]
    _print_round(args.arm, rounds[-1])
    for number in range(1, args.rounds + 1):
        started = time.perf_counter()
        if args.arm == "random":
            rng = np.random.default_rng([args.seed, number])
            picked = random_reviews(cutoff, args.reviews_per_round, holdout | decided, rng)
        else:
            picked = priority_reviews(cutoff, args.reviews_per_round, holdout | decided)
        overrides = decide(picked, expert, truth, args.seed, args.reviewer_accuracy)
        decided |= {member_id for _, member_id, _ in picked}
        totals["reviews"] += len(picked)
        totals["overrides"] += overrides
        decided_seconds = time.perf_counter() - started
        gate = "" if args.arm == "no_feedback" else retrain(cutoff)
        rounds.append(
            {
                "round": number,
                **measure(cutoff, truth, holdout),
                "gate": gate,
                "decide_seconds": decided_seconds,
                "seconds": time.perf_counter() - started,
                **totals,
            }
        )
        _print_round(args.arm, rounds[-1])
    final = holdout_scores(cutoff, truth, holdout)
    return {"arm": args.arm, "rounds": rounds, "holdout": final}


def holdout_bucket(external_id: str) -> float:
    digest = hashlib.blake2b(f"loop-holdout:{external_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def reviewer_is_right(seed: int, member_id: int, accuracy: float) -> bool:
    """The same answer for the same member in every arm: a fixed hash, not a random stream."""
    digest = hashlib.blake2b(f"reviewer:{seed}:{member_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < accuracy


def _current_reviews(cutoff: datetime):
    from predictions.services.scoring.predict import active_version
    from reviews.models import Review

    version = active_version("churn")
    return Review.objects.filter(
        kind="churn", prediction__model_version=version, prediction__cutoff=cutoff
    )


def priority_reviews(cutoff: datetime, count: int, skip: set[int]) -> list[tuple]:
    """The first `count` open reviews of the people's queues (analyst and expert), in queue
    order, skipping members in `skip`."""
    from reviews.models import Review

    ordered = (
        _current_reviews(cutoff)
        .filter(state=Review.State.PENDING, route__in=[Review.Route.ANALYST, Review.Route.EXPERT])
        .order_by("-priority", "pk")
        .values_list("pk", "member_id", "prediction__score")
    )
    picked = []
    for row in ordered.iterator(chunk_size=2000):
        if row[1] not in skip:
            picked.append(row)
            if len(picked) == count:
                break
    return picked


def random_reviews(cutoff: datetime, count: int, skip: set[int], rng) -> list[tuple]:
    """`count` reviews drawn uniformly among every undecided current prediction, any route
    (an auto-approval is the policy's decision: no person decides it again)."""
    from reviews.models import Review

    rows = [
        row
        for row in _current_reviews(cutoff)
        .filter(state=Review.State.PENDING)
        .order_by("pk")
        .values_list("pk", "member_id", "prediction__score")
        if row[1] not in skip
    ]
    chosen = rng.choice(len(rows), size=min(count, len(rows)), replace=False)
    return [rows[i] for i in sorted(chosen)]


def decide(picked: list[tuple], expert, truth: dict, seed: int, accuracy: float) -> int:
    """Each review decided by a simulated reviewer, then labeled; returns the overrides."""
    from learning.services.labels import label_decision, model_churn_call
    from reviews.models import Review
    from reviews.services.blind import commit_blind_answer
    from reviews.services.decisions import approve_prediction, override_prediction

    blind = set(
        Review.objects.filter(pk__in=[row[0] for row in picked], is_blind=True).values_list(
            "pk", flat=True
        )
    )
    overrides = 0
    for review_id, member_id, score in picked:
        churned = truth[member_id][1]
        answer = churned if reviewer_is_right(seed, member_id, accuracy) else not churned
        if review_id in blind:  # the policy's blind share: the reviewer's own answer first
            commit_blind_answer(review_id=review_id, user=expert, churn_label=answer)
        if answer == model_churn_call(score):
            decision = approve_prediction(
                review_id=review_id, actor=expert, reason_code="model-correct"
            )
        else:
            decision = override_prediction(
                review_id=review_id,
                actor=expert,
                reason_code="wrong-churn-call",
                churn_label=answer,
            )
            overrides += 1
        # The label task was queued on commit (to the in-process broker): run it inline.
        label_decision(decision_id=decision.pk)
    return overrides


def retrain(cutoff: datetime) -> str:
    """Retraining as built; a promotion's scoring run is scored inline and routed. Returns
    the verdict, with the failing gate checks."""
    from learning.models import RetrainingRun
    from learning.services.retraining import request_retraining, run_retraining
    from predictions.models import ScoringRun
    from predictions.services.scoring.predict import active_version
    from reviews.services.routing import route_new_predictions

    run = request_retraining(kind="churn", trigger=RetrainingRun.Trigger.MANUAL, enqueue=False)
    run = run_retraining(run_id=run.pk)
    if run.status != RetrainingRun.Status.SUCCEEDED:
        return f"failed: {run.error}"[:120]
    failing = [
        f"{_short_rule(check['rule'])}: {check['detail']}"
        for check in (run.gate or {}).get("checks", [])
        if not check["passed"]
    ]
    if run.verdict != RetrainingRun.Verdict.PROMOTED:
        return f"{run.verdict} ({'; '.join(failing)})"
    version = active_version("churn")
    runs = list(ScoringRun.objects.filter(model_version=version))
    for scoring_run in runs:
        if scoring_run.cutoff != cutoff:
            raise SystemExit(f"the re-scoring run's cutoff is {scoring_run.cutoff}, not C")
    if not runs:  # promotion did not start one: score ourselves, once
        score_inline(cutoff=cutoff)
    else:
        score_pending_chunks(runs)
    route_new_predictions(kind="churn", model_version_id=version.pk)
    return "promoted"


def _short_rule(rule: str) -> str:
    return rule.split(" not ")[0].split(" at most")[0].split(" within")[0]


def score_inline(*, cutoff: datetime) -> int:
    from predictions.services.scoring.runs import start_scoring_run

    run = start_scoring_run(kind="churn", cutoff=cutoff, enqueue=False)
    return score_pending_chunks([run])


def score_pending_chunks(runs) -> int:
    from predictions.models import ScoringChunk
    from predictions.services.scoring.runs import score_chunk

    scored = 0
    chunks = ScoringChunk.objects.filter(run__in=runs, status=ScoringChunk.Status.PENDING)
    for chunk_id in chunks.order_by("pk").values_list("pk", flat=True):
        scored += score_chunk(chunk_id=chunk_id).scored
    return scored


def holdout_scores(cutoff: datetime, truth: dict, holdout: set[int]) -> dict:
    from predictions.models import Prediction
    from predictions.services.scoring.predict import active_version

    version = active_version("churn")
    rows = sorted(
        (member_id, score)
        for member_id, score in Prediction.objects.filter(
            kind="churn", model_version=version, cutoff=cutoff
        ).values_list("member_id", "score")
        if member_id in holdout
    )
    return {
        "member_id": [member_id for member_id, _ in rows],
        "score": [score for _, score in rows],
        "churned": [bool(truth[member_id][1]) for member_id, _ in rows],
        "truth": [truth[member_id][0] for member_id, _ in rows],
    }


def measure(cutoff: datetime, truth: dict, holdout: set[int]) -> dict:
    import numpy as np

    from learning.models import LabeledExample
    from learning.services.labels import model_churn_call
    from predictions.ml.metrics import binary_metrics
    from predictions.services.scoring.predict import active_version
    from reviews.models import Review

    version = active_version("churn")
    scores = holdout_scores(cutoff, truth, holdout)
    churned = np.array(scores["churned"], dtype=int)
    model = binary_metrics(labels=churned, probability=np.array(scores["score"]))
    oracle = binary_metrics(labels=churned, probability=np.array(scores["truth"]))
    reviews = list(_current_reviews(cutoff).values_list("route", "member_id", "prediction__score"))
    auto = [(member, score) for route, member, score in reviews if route == Review.Route.AUTO]
    errors = [model_churn_call(score) != bool(truth[member][1]) for member, score in auto]

    return {
        "version": version.pk,
        "algorithm": version.algorithm,
        "auc": model["roc_auc"],
        "ece": model["ece"],
        "log_loss": model["log_loss"],
        "oracle_auc": oracle["roc_auc"],
        "holdout_n": model["n"],
        "current_reviews": len(reviews),
        "auto_rate": len(auto) / len(reviews) if reviews else None,
        "auto_error": float(np.mean(errors)) if errors else None,
        "labels": LabeledExample.objects.filter(
            kind="churn", source=LabeledExample.Source.DECISION, excluded=False
        ).count(),
    }


def _print_round(arm: str, row: dict) -> None:
    print(
        f"{arm:<12} round {row['round']}: reviews {row['reviews']:>4}, labels {row['labels']:>4},"
        f" overrides {row['overrides']:>3}; v{row['version']} {row['algorithm']:<13}"
        f" AUC {row['auc']:.4f} ECE {row['ece']:.4f} auto {row['auto_rate']:.1%}"
        f" auto-err {_pct(row['auto_error'])}  {row['seconds']:.0f} s  {row['gate']}",
        flush=True,
    )


def _pct(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:.1%}"


class _Stopwatch:
    def __init__(self) -> None:
        self.last = time.perf_counter()

    def lap(self, what: str) -> None:
        now = time.perf_counter()
        print(f"   {what} [{now - self.last:.1f} s]", flush=True)
        self.last = now


# --- the comparison ---------------------------------------------------------------------------


def summarize(args, runs: list[dict]) -> None:
    import numpy as np

    arms = args.arm_names
    print("\n== per round (holdout: never-reviewed members; AUC and ECE against realized churn) ==")
    print(
        f"{'seed':>4} {'arm':<12}{'round':>5}{'reviews':>8}{'labels':>7}{'overr':>6}"
        f"{'version':>8} {'model':<9}{'AUC':>7}{'ECE':>7}{'auto':>7}{'autoErr':>8}"
        f"{'sec':>5}  gate"
    )
    for run in runs:
        for arm in arms:
            for row in run["arms"][arm]["rounds"]:
                print(
                    f"{run['seed']:>4} {arm:<12}{row['round']:>5}{row['reviews']:>8}"
                    f"{row['labels']:>7}{row['overrides']:>6}{'v' + str(row['version']):>8} "
                    f"{row['algorithm']:<9}{row['auc']:>7.4f}{row['ece']:>7.4f}"
                    f"{row['auto_rate']:>7.1%}{_pct(row['auto_error']):>8}{row['seconds']:>5.0f}"
                    f"  {row['gate']}"
                )
        first = run["arms"]["loop"]["rounds"][0]
        print(
            f"{'':>4} holdout {first['holdout_n']} members; oracle AUC (the true probability) "
            f"{first['oracle_auc']:.4f}"
        )

    print(
        "\n== comparison: round 0 (the first version, no review yet) to the end; per 100 reviews =="
    )
    print(
        f"{'seed':>4} {'arm':<12}{'reviews':>8}{'overr':>6}{'AUC 0':>8}{'AUC end':>8}"
        f"{'dAUC/100':>9}{'ECE 0':>8}{'ECE end':>8}{'dECE/100':>9}{'auto 0':>8}{'auto end':>9}"
        f"{'err 0':>7}{'err end':>8}{'promoted':>9}"
    )
    per_arm: dict[str, list[list[float]]] = {arm: [] for arm in arms}
    for run in runs:
        for arm in arms:
            rounds = run["arms"][arm]["rounds"]
            first, last = rounds[0], rounds[-1]
            per = 100 / last["reviews"] if last["reviews"] else float("nan")
            figures = [
                last["reviews"],
                last["overrides"],
                first["auc"],
                last["auc"],
                (last["auc"] - first["auc"]) * per,
                first["ece"],
                last["ece"],
                (last["ece"] - first["ece"]) * per,
                first["auto_rate"],
                last["auto_rate"],
                first["auto_error"] if first["auto_error"] is not None else float("nan"),
                last["auto_error"] if last["auto_error"] is not None else float("nan"),
                sum(row["gate"] == "promoted" for row in rounds),
            ]
            per_arm[arm].append(figures)
            _print_comparison(str(run["seed"]), arm, figures, len(rounds) - 1)
    if len(runs) > 1:
        for arm in arms:
            _print_comparison("mean", arm, list(np.mean(per_arm[arm], axis=0)), args.rounds)

    print(
        f"\n== final differences on the holdout (left arm - right arm): paired bootstrap over "
        f"its members ({BOOTSTRAP_SAMPLES} resamples), 95 % interval; pooled = mean over seeds =="
    )
    pairs = [("loop", "random"), ("loop", "no_feedback"), ("random", "no_feedback")]
    pooled = {}
    print(f"{'':<10} {'arms':<22} {'AUC':<44} ECE")
    for left, right in pairs:
        by_seed = [
            paired_differences(
                run["arms"][left]["holdout"], run["arms"][right]["holdout"], seed=run["seed"]
            )
            for run in runs
        ]
        for run, figures in zip(runs, by_seed, strict=True):
            if len(runs) > 1:
                print(
                    f"seed {run['seed']:<5} {left + ' - ' + right:<22} "
                    f"{_interval(*figures['auc']):<44} {_interval(*figures['ece'])}"
                )
        pooled[(left, right)] = {
            metric: (
                float(np.mean([figures[metric][0] for figures in by_seed])),
                np.mean([figures[metric][1] for figures in by_seed], axis=0),
            )
            for metric in ("auc", "ece")
        }
        label = "pooled" if len(runs) > 1 else f"seed {runs[0]['seed']}"
        print(
            f"{label:<10} {left + ' - ' + right:<22} "
            f"{_interval(*pooled[(left, right)]['auc']):<44} "
            f"{_interval(*pooled[(left, right)]['ece'])}"
        )

    print("\n== seconds per round, mean: deciding K reviews / retraining, gate, re-scoring ==")
    for arm in arms:
        rows = [row for run in runs for row in run["arms"][arm]["rounds"][1:]]
        decide = float(np.mean([row["decide_seconds"] for row in rows]))
        rest = float(np.mean([row["seconds"] - row["decide_seconds"] for row in rows]))
        print(f"{arm:<12} {decide:5.1f} / {rest:5.1f}")
    print("\nverdict: " + _verdict(pooled, per_arm, len(runs)))


def _print_comparison(seed: str, arm: str, figures: list[float], rounds: int) -> None:
    (reviews, overrides, auc0, auc1, dauc, ece0, ece1, dece, auto0, auto1, err0, err1, promoted) = (
        figures
    )
    print(
        f"{seed:>4} {arm:<12}{reviews:>8.0f}{overrides:>6.0f}{auc0:>8.4f}{auc1:>8.4f}{dauc:>+9.4f}"
        f"{ece0:>8.4f}{ece1:>8.4f}{dece:>+9.4f}{auto0:>8.1%}{auto1:>9.1%}{_pct(err0):>7}"
        f"{_pct(err1):>8}{promoted:>6.1f}/{rounds}"
    )


def _interval(point: float, samples) -> str:
    import numpy as np

    low, high = np.percentile(samples, [2.5, 97.5])
    noise = "within noise" if low <= 0 <= high else "beyond noise"
    return f"{point:+.4f}  [{low:+.4f}, {high:+.4f}]  {noise}"


def _verdict(pooled: dict, per_arm: dict, seeds: int) -> str:
    import numpy as np

    def said(pair) -> str:
        point, samples = pooled[pair]["auc"]
        low, high = np.percentile(samples, [2.5, 97.5])
        if low <= 0 <= high:
            how = "neither beats nor trails random routing beyond noise"
        else:
            how = "beats random routing" if point > 0 else "does WORSE than random routing"
        return f"{how} (final AUC {point:+.4f}, 95 % [{low:+.4f}, {high:+.4f}])"

    gain = {arm: float(np.mean([row[4] for row in rows])) for arm, rows in per_arm.items()}
    text = (
        f"over {seeds} seed(s), uncertainty-first routing as built {said(('loop', 'random'))}; "
        f"AUC change per 100 reviews: loop {gain['loop']:+.4f}, random {gain['random']:+.4f}, "
        f"no feedback {gain['no_feedback']:+.4f}"
    )
    never = [arm for arm in ("random",) if not any(row[12] for row in per_arm[arm])]
    if never:
        text += (
            f" ({' and '.join(never)}: every candidate failed the gate, "
            "its final model is the first)"
        )
    return text + "."


def paired_differences(left: dict, right: dict, *, seed: int) -> dict:
    """{"auc"|"ece": (left - right on the same members, BOOTSTRAP_SAMPLES paired resamples)}."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from predictions.ml.metrics import expected_calibration_error

    if left["member_id"] != right["member_id"]:
        raise ValueError("the arms' holdouts differ")
    y = np.array(left["churned"], dtype=int)
    a, b = np.array(left["score"]), np.array(right["score"])

    def figures(index) -> tuple[float, float]:
        yy, aa, bb = y[index], a[index], b[index]
        auc = roc_auc_score(yy, aa) - roc_auc_score(yy, bb)
        ece = expected_calibration_error(labels=yy, probability=aa) - expected_calibration_error(
            labels=yy, probability=bb
        )
        return auc, ece

    rng = np.random.default_rng(seed)
    samples = np.empty((BOOTSTRAP_SAMPLES, 2))
    filled = 0
    while filled < BOOTSTRAP_SAMPLES:
        index = rng.integers(0, len(y), len(y))
        if 0 < y[index].sum() < len(index):  # both classes, or no AUC
            samples[filled] = figures(index)
            filled += 1
    point = figures(np.arange(len(y)))
    return {
        "auc": (float(point[0]), samples[:, 0]),
        "ece": (float(point[1]), samples[:, 1]),
    }


if __name__ == "__main__":
    main()
