"""Evidence bench: do the product's review-quality figures find planted reviewer accuracies and
flag the automation-biased reviewer, and only that one?

    .venv/bin/python bench/evidence.py --json
    .venv/bin/python bench/evidence.py --members 3000 --seed 11     # a table instead
    .venv/bin/python bench/evidence.py --seeds 10 --jobs 2          # coverage over 10 seeds

About 45 s a seed for 3,000 members on one core. `--seeds K` runs seeds seed ... seed+K-1, each
in its own process and database, and lists every seed's reviewers (with their "seed"): four
intervals a seed say little about coverage, forty do.

A fresh SQLite file in a temporary folder (removed at the end), unless DATABASE_URL names a
database whose name starts with "bench" (it is migrated, not dropped: use a new one).

Members and model, as bench/review_value.py and bench/loop.py: `generate_members` (which knows
each member's realized churn over the 90-day horizon after its cutoff C, in `SyntheticTruth`), a
churn version trained at C - 90 d (bench/loop.py's fast configuration: its out-of-time window
ends at C, so it never sees the horizon) and promoted, every member scored at C. The events of
the horizon stay in the database, unread until the outcomes are recorded: scoring and training
take their cutoffs explicitly, and the features stop at them.

Then the product's own path, nothing written around it:
- a churn policy version with `blind_share` BLIND_SHARE (0.5: half of the items for people open
  blind, so that each reviewer's blind figures rest on enough items) and no audit sample change
  otherwise (`change_policy`); routing (`route_new_predictions`) marks every other item for
  people blind;
- simulated reviewers (experts, who may decide any route) share the items for people, each item
  given to one of them by a fixed hash of (seed, member). Whether a reviewer is right about a
  member is bench/loop.py's fixed hash (`reviewer_is_right`):
  - "planted-0.60", "planted-0.75", "planted-0.90": the realized churn with that probability, the
    opposite otherwise, whether the item is blind or shown;
  - "automation-biased": own skill BIASED_SKILL (0.75) when blind (`commit_blind_answer`); shown
    the model's answer (an item that never opened blind, or a blind one after its answer), the
    model's call with probability BIASED_DEFERENCE (0.9), its own answer otherwise;
  a blind item gets `commit_blind_answer`, then the decision (`approve_prediction` when the call
  is the model's, else `override_prediction` with the call); a shown item the decision alone;
- outcomes recorded by `record_outcomes` at C + 90 d (the product's outcome labels);
- the Review quality page's blind-review computation (`learning.blind_agreement`), for everyone.

Output (`--json`): {"reviewers": [{"reviewer", "true_accuracy", "estimated_accuracy", "ci_low",
"ci_high", "flagged_biased", ...}], ...}. The estimate is the product's blind accuracy: the
reviewer's blind answers against the recorded outcomes, with its 95 % Wilson interval. For the
honest reviewers the accuracy of their shown decisions measures the same skill (it is given
beside, `shown_accuracy`); for the biased one only the blind answers do (its shown decisions
are mostly the model's). `flagged_biased` is the page's "possible rubber-stamping" flag.
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
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import loop  # noqa: E402  (bench/loop.py: the same members, cutoff, configuration and hash)

BLIND_SHARE = 0.5
BIASED_SKILL = 0.75
BIASED_DEFERENCE = 0.9
DATABASE_PREFIX = "bench"
FLAG_WORDS = "possible rubber-stamping"


@dataclass(frozen=True)
class Reviewer:
    name: str
    accuracy: float  # the planted skill: how often its own answer is the realized churn
    deference: float = 0.0  # how often, shown the model's answer, it takes it instead

    @property
    def is_biased(self) -> bool:
        return self.deference > 0


REVIEWERS = (
    Reviewer("planted-0.60", 0.60),
    Reviewer("planted-0.75", 0.75),
    Reviewer("planted-0.90", 0.90),
    Reviewer("automation-biased", BIASED_SKILL, deference=BIASED_DEFERENCE),
)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _uniform(*parts) -> float:
    """A fixed draw in [0, 1) for the key (no random stream: the same run gives the same)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def prepare(members: int, seed: int) -> int:
    """Members, model, scores and routing under the blind policy; the version's id."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from loyalty import roles
    from loyalty.services.synthetic.generation import generate_members
    from loyalty.services.users import assign_role
    from predictions.services.registry import promote_model_version
    from predictions.services.training import train_churn_version
    from reviews.policy_settings import PolicySettings
    from reviews.selectors.policy import current_policy
    from reviews.services.policy import change_policy
    from reviews.services.reason_codes import seed_reason_codes
    from reviews.services.routing import route_new_predictions

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    seed_reason_codes()
    for reviewer in REVIEWERS:
        user = get_user_model().objects.create_user(username=reviewer.name)
        assign_role(user=user, role=roles.EXPERT)
    generated = generate_members(
        members=members, seed=seed, start=loop.START, days=loop.DAYS, horizon_days=loop.HORIZON
    )
    cutoff = loop.generator_cutoff()
    _say(
        f"generated {members:,} members ({generated.churned:,} churn in the horizon) "
        f"[{time.perf_counter() - started:.0f} s]"
    )
    outcome = train_churn_version(
        cutoff=cutoff - timedelta(days=loop.HORIZON),
        horizon_days=loop.HORIZON,
        config=loop.fast_churn_config(),
    )
    version = promote_model_version(version_id=outcome.version.pk, actor=None)
    loop.score_inline(cutoff=cutoff)
    change_policy(
        kind="churn",
        settings=replace(PolicySettings.of(current_policy("churn")), blind_share=BLIND_SHARE),
        actor=None,
        reason=f"evidence bench: {BLIND_SHARE:.0%} of the items for people open blind",
    )
    routed = route_new_predictions(kind="churn", model_version_id=version.pk)
    routes = {str(route): count for route, count in routed.by_route.items()}
    _say(f"trained, scored at C and routed {routes} [{time.perf_counter() - started:.0f} s]")
    return version.pk


def decide_all(seed: int) -> dict[str, dict[str, int]]:
    """Every item for people decided by its simulated reviewer through the product's services;
    per reviewer, how many items it got and how many of them opened blind."""
    from django.contrib.auth import get_user_model

    from loyalty.models import SyntheticTruth
    from predictions.calls import model_churn_call
    from reviews.models import Review
    from reviews.services.blind import commit_blind_answer
    from reviews.services.decisions import approve_prediction, override_prediction

    users = {user.username: user for user in get_user_model().objects.all()}
    churned = dict(SyntheticTruth.objects.values_list("member_id", "churned"))
    items = (
        Review.objects.filter(state=Review.State.PENDING, in_backlog=False)
        .exclude(route=Review.Route.AUTO)
        .order_by("pk")
        .values_list("pk", "member_id", "prediction__score", "is_blind")
    )
    counts = {reviewer.name: {"items": 0, "blind": 0} for reviewer in REVIEWERS}
    for review_id, member_id, score, is_blind in items:
        reviewer = REVIEWERS[int(_uniform("evidence-assign", seed, member_id) * len(REVIEWERS))]
        user = users[reviewer.name]
        truth = bool(churned[member_id])
        own = truth if loop.reviewer_is_right(seed, member_id, reviewer.accuracy) else not truth
        model = bool(model_churn_call(score))
        if is_blind:
            commit_blind_answer(review_id=review_id, user=user, churn_label=own)
        defers = _uniform("evidence-defer", seed, member_id) < reviewer.deference
        call = model if defers else own
        if call == model:
            approve_prediction(review_id=review_id, actor=user, reason_code="model-correct")
        else:
            override_prediction(
                review_id=review_id, actor=user, reason_code="wrong-churn-call", churn_label=call
            )
        counts[reviewer.name]["items"] += 1
        counts[reviewer.name]["blind"] += is_blind
    return counts


def record_and_measure(version_id: int) -> tuple[list, dict]:
    """Outcomes recorded by the product; its blind-review figures per reviewer, and how the
    recorded outcomes compare with the generator's truth."""
    from learning.blind_agreement import blind_agreement
    from learning.models import LabeledExample
    from learning.review_quality import EVERYONE
    from learning.services.labels import record_outcomes
    from loyalty.models import SyntheticTruth

    result = record_outcomes(clock=loop.generator_cutoff() + timedelta(days=loop.HORIZON))
    truth = dict(SyntheticTruth.objects.values_list("member_id", "churned"))
    recorded = LabeledExample.objects.filter(
        source=LabeledExample.Source.OUTCOME, kind="churn", model_version_id=version_id
    ).values_list("member_id", "churn_label")
    matches = [bool(truth[member_id]) == label for member_id, label in recorded]
    check = {
        "outcomes_recorded": result.recorded,
        "outcomes_matching_truth": sum(matches),
    }
    return blind_agreement(None, EVERYONE), check


def report(rows, counts: dict, check: dict, *, members: int, seed: int, seconds: float) -> dict:
    by_name = {row.reviewer: row.scores for row in rows}
    reviewers = []
    for reviewer in REVIEWERS:
        scores = by_name[reviewer.name]
        estimate = scores.blind_accuracy
        reviewers.append(
            {
                "reviewer": reviewer.name,
                "true_accuracy": reviewer.accuracy,
                "estimated_accuracy": estimate.value,
                "ci_low": estimate.low,
                "ci_high": estimate.high,
                "flagged_biased": scores.flagged,
                "estimate": "blind answers against recorded outcomes",
                "n": estimate.n,
                "covers_truth": estimate.low <= reviewer.accuracy <= estimate.high,
                "planted_biased": reviewer.is_biased,
                "items": counts[reviewer.name]["items"],
                "blind_items": counts[reviewer.name]["blind"],
                "shown_accuracy": scores.shown_accuracy.value,
                "shown_accuracy_ci": [scores.shown_accuracy.low, scores.shown_accuracy.high],
                "shown_agreement": scores.shown_agreement.value,
                "blind_agreement": scores.blind_agreement.value,
                "agreement_gap": scores.gap.value,
                "agreement_gap_ci": [scores.gap.low, scores.gap.high],
                "revisions": scores.revisions.value,
                "model_accuracy_same_items": scores.model_accuracy.value,
            }
        )
    return {
        "reviewers": reviewers,
        "covered": sum(row["covers_truth"] for row in reviewers),
        "flagged": [row["reviewer"] for row in reviewers if row["flagged_biased"]],
        "only_the_biased_flagged": all(
            row["flagged_biased"] == row["planted_biased"] for row in reviewers
        ),
        "settings": {
            "members": members,
            "seed": seed,
            "blind_share": BLIND_SHARE,
            "biased_skill": BIASED_SKILL,
            "biased_deference": BIASED_DEFERENCE,
            "confidence": 0.95,
        },
        **check,
        "seconds": round(seconds, 1),
    }


def print_table(result: dict) -> None:
    def pct(value) -> str:
        return "   –" if value is None else f"{value * 100:5.1f}"

    print(
        f"{'reviewer':<22} {'true':>5} {'blind acc (95 % CI)':>22} {'n':>4} {'covers':>6} "
        f"{'shown acc':>9} {'agree shown':>11} {'agree blind':>11} {'gap (95 % CI)':>22} "
        f"{'revised':>7}  flag"
    )
    for row in result["reviewers"]:
        gap_low, gap_high = row["agreement_gap_ci"]
        name = f"{row['reviewer']}" + (f" s{row['seed']}" if "seed" in row else "")
        print(
            f"{name:<22} {pct(row['true_accuracy'])} "
            f"{pct(row['estimated_accuracy'])} ({pct(row['ci_low'])}–{pct(row['ci_high'])}) "
            f"{row['n']:>4} {'yes' if row['covers_truth'] else 'NO':>6} "
            f"{pct(row['shown_accuracy']):>9} {pct(row['shown_agreement']):>11} "
            f"{pct(row['blind_agreement']):>11} "
            f"{pct(row['agreement_gap'])} ({pct(gap_low)}–{pct(gap_high)}) "
            f"{pct(row['revisions']):>7}  {FLAG_WORDS if row['flagged_biased'] else ''}"
        )
    settings = result["settings"]
    print(
        f"\n{result['covered']} of {len(result['reviewers'])} intervals cover the planted "
        f"accuracy; flagged: {', '.join(result['flagged']) or 'nobody'}; only the biased "
        f"reviewer flagged: {result['only_the_biased_flagged']}. Blind share "
        f"{settings['blind_share']:.0%}, {settings['members']:,} members, seed {settings['seed']}; "
        f"{result['outcomes_matching_truth']:,} of {result['outcomes_recorded']:,} recorded "
        f"outcomes match the generator's truth; {result['seconds']:.0f} s."
    )


def run_seeds(args) -> dict:
    """Each seed in a child process of its own (each its own fresh database), merged."""
    from concurrent.futures import ThreadPoolExecutor

    def child(seed: int) -> dict:
        command = [sys.executable, str(Path(__file__).resolve()), "--json"]
        command += ["--seed", str(seed), "--members", str(args.members)]
        env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"seed {seed} failed:\n{done.stderr[-2000:]}")
        _say(f"seed {seed} done")
        return json.loads(done.stdout)

    seeds = [args.seed + offset for offset in range(args.seeds)]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(child, seeds))
    reviewers = [
        {"seed": result["settings"]["seed"], **row}
        for result in results
        for row in result["reviewers"]
    ]
    return {
        "reviewers": reviewers,
        "covered": sum(row["covers_truth"] for row in reviewers),
        "flagged": sorted({row["reviewer"] for row in reviewers if row["flagged_biased"]}),
        "only_the_biased_flagged": all(result["only_the_biased_flagged"] for result in results),
        "settings": {**results[0]["settings"], "seed": seeds},
        "outcomes_recorded": sum(result["outcomes_recorded"] for result in results),
        "outcomes_matching_truth": sum(result["outcomes_matching_truth"] for result in results),
        "seconds": round(sum(result["seconds"] for result in results), 1),
    }


def _database(url: str | None, folder: str) -> str:
    if not url:
        return f"sqlite:///{folder}/bench-evidence.sqlite3"
    name = Path(urlsplit(url).path).name
    if not name.startswith(DATABASE_PREFIX):
        sys.exit(f"DATABASE_URL names {name!r}: the bench writes members there; name it bench…")
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--seeds", type=int, default=1, help="run seeds seed ... seed+K-1")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at once (--seeds)")
    args = parser.parse_args()
    if args.seeds > 1:
        if os.environ.get("DATABASE_URL"):
            sys.exit("--seeds gives each seed a fresh SQLite database: unset DATABASE_URL.")
        _print(run_seeds(args), as_json=args.json)
        return
    started = time.perf_counter()
    folder = tempfile.mkdtemp(prefix="bench_evidence_")
    os.environ["DATABASE_URL"] = _database(os.environ.get("DATABASE_URL"), folder)
    os.environ["MODEL_ARTIFACT_DIR"] = str(Path(folder) / "models")
    try:
        loop._setup_django()
        version_id = prepare(args.members, args.seed)
        counts = decide_all(args.seed)
        _say(f"decided {sum(c['items'] for c in counts.values()):,} items")
        rows, check = record_and_measure(version_id)
        result = report(
            rows,
            counts,
            check,
            members=args.members,
            seed=args.seed,
            seconds=time.perf_counter() - started,
        )
    finally:
        from django.db import connections

        connections.close_all()
        shutil.rmtree(folder, ignore_errors=True)
    _print(result, as_json=args.json)


def _print(result: dict, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
