"""Benchmark of churn scoring, stage by stage, on the configured DATABASE_URL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_score \\
        .venv/bin/python bench/score.py --members 100000 --repeat 3

Uses generated members (generate_members, seed BENCH_SEED) unless the database already holds
at least N members; trains and promotes a churn version if none is active. Then prints, in
members per second: loading events (the feature columns, as scoring loads them), building
features, predicting, SHAP, the interval, the prediction rows (predict_churn without SHAP and
the row mappings, as scoring builds them), the database write (write_predictions, rolled
back), bare XGBoost `pred_contribs` on every member, and end to end over the whole
population: the real `score_chunk` path over a real run, then `route_new_predictions` with
the escalation policy in force (the default one unless someone changed it; an open automation
pause is closed first), which explains the predictions it routes to people (exact SHAP,
`predictions.services.explanations`), commits included. It states the share routed to people,
checks that every routed item's stored explanation equals the engine's on the same members
(predict_churn over them at once, as scoring explained before), and prints the ratio of
end-to-end throughput to bare `pred_contribs` throughput (targets: >= 1.5 on PostgreSQL,
>= 1.0 on SQLite) at that share. It then says why items went to people (by routing rule, and
how many label sets hold both outcomes) and what bounds the ratio at that share: exact SHAP of
a share s of the members costs about s bare `pred_contribs` runs, so the ratio cannot exceed
about 1 / s however fast scoring and routing are; the ratio is also extrapolated to other
shares from the measured parts.
`--repeat N` runs every stage N times and reports the median, for a shared, noisy machine.
`--served ensemble` scores with the tree + sequence ensemble (the admin's scoring setting, set
here for the run): the prediction rows then come from the ensemble, the routed items'
explanations with the stored sequence attribution, and two stages are added: encoding the
sequences and the ensemble rows.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_SEED = 4242
START = date(2025, 1, 1)
DAYS = 365
HORIZON = 90


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty.settings.base")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)  # a fresh database works too


def ensure_members(count: int) -> None:
    from loyalty.models import Member
    from loyalty.services.catalog import seed_action_catalog
    from loyalty.services.synthetic.generation import generate_members

    seed_action_catalog()
    if Member.objects.count() >= count:
        return
    started = time.perf_counter()
    generate_members(members=count, seed=BENCH_SEED, start=START, days=DAYS, horizon_days=HORIZON)
    print(f"generated {count:,} members in {time.perf_counter() - started:.1f} s")


def ensure_churn_version(cutoff: datetime):
    from predictions.models import ModelVersion
    from predictions.services.registry import promote_model_version
    from predictions.services.training import train_churn_version

    active = ModelVersion.objects.filter(kind="churn", status="active").first()
    if active is not None:
        return active
    started = time.perf_counter()
    outcome = train_churn_version(cutoff=cutoff, horizon_days=HORIZON)
    print(f"trained churn version in {time.perf_counter() - started:.1f} s")
    return promote_model_version(version_id=outcome.version.pk, actor=None)


def timed(label: str, rows: int, fn, results: dict, repeat: int = 1):
    """Run fn `repeat` times; keep the median time (the machine may be shared and noisy)."""
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        value = fn()
        seconds.append(time.perf_counter() - started)
    results[label] = (rows, statistics.median(seconds))
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument(
        "--repeat", type=int, default=1, help="run each stage this many times, report the median"
    )
    parser.add_argument(
        "--served",
        choices=["trees", "ensemble"],
        default="trees",
        help="which model scores (sets the churn scoring setting for this run)",
    )
    parser.add_argument(
        "--attribution-events",
        default=None,
        help="ensemble: occlude each member's latest N events for the stored sequence events, "
        "or 'all' (default: scoring's SEQUENCE_ATTRIBUTION_RECENT_EVENTS)",
    )
    args = parser.parse_args()
    setup_django()

    import numpy as np
    import xgboost as xgb
    from django.db import connection, transaction

    from loyalty.selectors import scorable_members
    from predictions.ml.confidence import probability_interval
    from predictions.ml.explain import top_contributions
    from predictions.ml.features import build_features
    from predictions.models import Prediction
    from predictions.selectors import FEATURE_EVENT_COLUMNS, events_frame, members_frame
    from predictions.services import explanations
    from predictions.services.prediction_writer import write_predictions
    from predictions.services.scoring import predict, runs
    from predictions.services.scoring.settings import set_scoring_model
    from reviews.policy_settings import DEFAULT_SETTINGS, PolicySettings
    from reviews.selectors.policy import current_policy
    from reviews.services import routing
    from reviews.services.automation import resume_auto_approval

    ensure_members(args.members)
    cutoff = datetime.combine(START + timedelta(days=DAYS), datetime.min.time(), tzinfo=UTC)
    version = ensure_churn_version(cutoff - timedelta(days=HORIZON))
    bundle = predict.load_bundle(version.pk, tuple(sorted(version.artifact_checksums.items())))
    chosen = bundle.candidates[bundle.selected]
    ids = list(scorable_members().order_by("pk").values_list("pk", flat=True)[: args.members])
    n = len(ids)
    print(
        f"{connection.vendor}: {n:,} scorable members, model {bundle.selected}, "
        f"cutoff {cutoff:%Y-%m-%d}"
    )

    stages: dict[str, tuple[int, float]] = {}
    # What score_chunk loads: the feature columns of these members' events (COPY on PostgreSQL).
    events = timed(
        "load events",
        n,
        lambda: events_frame(
            before=cutoff,
            member_id_range=(ids[0], ids[-1]),
            member_ids=ids,
            columns=FEATURE_EVENT_COLUMNS,
        ),
        stages,
        args.repeat,
    )
    members = timed("load members", n, lambda: members_frame(member_ids=ids), stages, args.repeat)
    features = timed(
        "features",
        n,
        lambda: build_features(events=events, members=members, cutoff=cutoff),
        stages,
        args.repeat,
    )
    x = np.ascontiguousarray(features.loc[:, list(bundle.feature_codes)].to_numpy("float32"))
    timed(
        "predict",
        n,
        lambda: chosen.calibrator.probability(chosen.scorer.margin(x)),
        stages,
        args.repeat,
    )
    contributions = timed("SHAP", n, lambda: chosen.scorer.contributions(x), stages, args.repeat)
    timed(
        "top-k explanation",
        n,
        lambda: top_contributions(
            contributions=contributions, values=x, feature_codes=bundle.feature_codes, k=5
        ),
        stages,
        args.repeat,
    )

    def interval():
        probability = chosen.calibrator.probability(chosen.scorer.margin(x))
        replicas = np.stack([c.probability(s.margin(x)) for s, c in chosen.bootstrap])
        return probability_interval(
            probability=probability, replicas=replicas, coverage=bundle.config.interval_coverage
        )

    timed("interval", n, interval, stages, args.repeat)
    # predict_churn (margin, interval, conformal set; no SHAP) and the row mappings.
    rows = timed(
        "prediction rows (no SHAP)",
        n,
        lambda: predict._churn_rows(version, bundle, features, cutoff),
        stages,
        args.repeat,
    )
    set_scoring_model(kind="churn", model=args.served, actor=None)
    if args.attribution_events is not None:
        recent = None if args.attribution_events == "all" else int(args.attribution_events)
        explanations.SEQUENCE_ATTRIBUTION_RECENT_EVENTS = recent
    if args.served == "ensemble":
        if bundle.ensemble is None:
            raise SystemExit(f"version {version.pk} has no ensemble: train a new one first")
        from predictions.ml.churn.sequence import encode_members
        from predictions.selectors import feature_event_frame

        frame, _ = feature_event_frame(cutoff=cutoff, member_ids=ids)
        sequences = timed(
            "sequence encoding",
            n,
            lambda: encode_members(
                ensemble=bundle.ensemble, events=frame, member_ids=features.index, cutoff=cutoff
            ),
            stages,
            args.repeat,
        )
        # The ensemble's score, interval and set (SHAP and occlusion come with routing).
        rows = timed(
            "ensemble prediction rows (no SHAP)",
            n,
            lambda: predict._churn_rows(version, bundle, features, cutoff, sequences=sequences),
            stages,
            args.repeat,
        )

    def write_and_roll_back():
        with transaction.atomic():
            write_predictions(rows=rows)
            transaction.set_rollback(True)

    timed("database write", n, write_and_roll_back, stages, args.repeat)
    booster = getattr(chosen.scorer, "booster", None)
    if booster is not None:
        timed(
            "bare pred_contribs",
            n,
            lambda: booster.predict(xgb.DMatrix(x), pred_contribs=True),
            stages,
            args.repeat,
        )
    else:
        timed(
            "bare pred_contribs (linear model: exact contributions)",
            n,
            lambda: chosen.scorer.contributions(x),
            stages,
            args.repeat,
        )

    resume_auto_approval(kind="churn", actor=None, reason="bench/score.py: no pause")
    policy = PolicySettings.of(current_policy("churn"))
    explaining = {"seconds": 0.0, "predictions": 0}
    explain = routing.explain_predictions

    def timed_explain(*, prediction_ids):
        ids = list(prediction_ids)
        started = time.perf_counter()
        stored = explain(prediction_ids=ids)
        explaining["seconds"] += time.perf_counter() - started
        explaining["predictions"] += len(ids)
        return stored

    routing.explain_predictions = timed_explain  # the same call, timed
    repeats = iter(range(1, args.repeat + 1))
    outcome = {}

    def end_to_end():
        # A new cutoff each time: a repeat at the same cutoff would find every row written.
        # The previous repeat's predictions and reviews go, outside the timing below.
        Prediction.objects.filter(cutoff__gt=cutoff, model_version=version).delete()
        at = cutoff + timedelta(seconds=next(repeats))
        explaining.update(seconds=0.0, predictions=0)
        started = time.perf_counter()
        run = runs.start_scoring_run(
            kind="churn",
            cutoff=at,
            member_limit=n,
            enqueue=False,
            chunk_size=args.chunk_size or runs.DEFAULT_CHUNK_SIZE,
        )
        for chunk_id in run.chunks.values_list("pk", flat=True):
            runs.score_chunk(chunk_id=chunk_id)
        scored = time.perf_counter()
        result = routing.route_new_predictions(kind="churn", model_version_id=version.pk)
        outcome.update(
            at=at,
            result=result,
            scoring=scored - started,
            routing=time.perf_counter() - scored - explaining["seconds"],
            explaining=explaining["seconds"],
        )

    seconds, parts = [], []
    for _ in range(args.repeat):
        end_to_end()
        parts.append((outcome["scoring"], outcome["routing"], outcome["explaining"]))
        seconds.append(sum(parts[-1]))
    stages["end to end (scoring + routing + routed SHAP)"] = (n, statistics.median(seconds))
    for index, label in enumerate(
        ("  of which scoring", "  of which routing", "  of which routed SHAP")
    ):
        stages[label] = (n, statistics.median(part[index] for part in parts))

    # The routed items' explanations against the engine on the same members, at once.
    result = outcome["result"]
    for_people = [route for route in result.by_route if routing.is_for_people(route)]
    routed = dict(
        Prediction.objects.filter(
            cutoff=outcome["at"], model_version=version, review__route__in=for_people
        ).values_list("member_id", "explanation")
    )
    reference, members = {}, sorted(routed)
    for start in range(0, len(members), runs.DEFAULT_CHUNK_SIZE):
        some = members[start : start + runs.DEFAULT_CHUNK_SIZE]
        reference |= _engine_explanations(
            predict, explanations, version, some, outcome["at"], args.served
        )
    equal = sum(routed[member_id] == reference[member_id] for member_id in routed)
    why = _routing_reasons(outcome["at"], version, for_people)
    Prediction.objects.filter(cutoff__gt=cutoff, model_version=version).delete()

    print(f"{'stage':<48}{'seconds':>10}{'members/s':>14}")
    for label, (count, seconds_taken) in stages.items():
        print(f"{label:<48}{seconds_taken:>10.2f}{count / seconds_taken:>14,.0f}")
    share = sum(result.by_route.get(route, 0) for route in for_people) / max(result.routed, 1)
    is_default = policy.as_fields() == DEFAULT_SETTINGS["churn"].as_fields()
    routes = {str(route): count for route, count in sorted(result.by_route.items())}
    print(
        f"routed to people: {share:.1%} of {result.routed:,} ({routes}), "
        f"{'the default' if is_default else 'a changed'} policy (auto-approve confidence >= "
        f"{policy.auto_approve_confidence}, expert below {policy.expert_confidence}, risk "
        f"band {policy.human_risk_low}-{policy.human_risk_high}, audit sample "
        f"{policy.audit_sample_rate:.0%}, top value {1 - policy.expert_value_quantile:.0%}), "
        "no automation pause"
    )
    print(
        f"routed items' SHAP (computed for {explaining['predictions']:,} predictions) equal "
        f"to the engine's on the same members: {equal:,} of {len(routed):,}"
    )
    print(f"why routed to people: {why}")
    bare = next(v for k, v in stages.items() if k.startswith("bare"))
    e2e = stages["end to end (scoring + routing + routed SHAP)"]
    ratio = (e2e[0] / e2e[1]) / (bare[0] / bare[1])
    target = 1.5 if connection.vendor == "postgresql" else 1.0
    print(
        f"end-to-end / bare pred_contribs throughput: {ratio:.2f} at {share:.1%} routed to "
        f"people (target >= {target} on {connection.vendor})"
    )
    _print_ratio_bounds(stages, bare_seconds=bare[1], share=share, target=target)
    print(
        f"served by: {args.served} (sequence events from the latest "
        f"{explanations.SEQUENCE_ATTRIBUTION_RECENT_EVENTS or 'all'} events)"
    )


# Routing reasons, by the words that open them (`reviews.services.routing_rules.choose_route`).
REASON_GROUPS = (
    ("confidence below the expert threshold", " < expert threshold"),
    ("confidence between the thresholds", " between expert "),
    ("top member value", "member value in top"),
    ("churn risk band", "churn risk "),
    ("audit sample", "audit sample"),
    ("automation pause", "auto-approval paused"),
)


def _routing_reasons(at, version, for_people) -> str:
    """The reviews of the last repeat routed to people, counted by the rule that sent them,
    and how many of those predictions hold both outcomes in their conformal label set (their
    confidence is at most half of 1 - interval width, below the default expert threshold)."""
    from predictions.models import Prediction
    from reviews.models import Review

    reviews = Review.objects.filter(prediction__cutoff=at, prediction__model_version=version)
    reasons = list(reviews.filter(route__in=for_people).values_list("route_reason", flat=True))
    counts = dict.fromkeys([label for label, _ in REASON_GROUPS], 0)
    for reason in reasons:
        label = next((label for label, text in REASON_GROUPS if text in reason), "other")
        counts[label] = counts.get(label, 0) + 1
    total = max(reviews.count(), 1)
    both = sum(
        len(label_set) == 2
        for label_set in Prediction.objects.filter(cutoff=at, model_version=version).values_list(
            "label_set", flat=True
        )
    )
    parts = [f"{label} {n:,} ({n / total:.1%})" for label, n in counts.items() if n]
    return "; ".join(parts) + f". Label sets holding both outcomes: {both:,} ({both / total:.1%})"


def _print_ratio_bounds(stages: dict, *, bare_seconds: float, share: float, target: float):
    """What bounds the ratio at the share measured: the routed SHAP alone (scoring and routing
    free) and the rest alone, and the ratio extrapolated to other shares from the measured
    parts (the routed SHAP scales with the share; scoring and routing do not)."""
    scoring = stages["  of which scoring"][1]
    routing_seconds = stages["  of which routing"][1]
    shap = stages["  of which routed SHAP"][1]
    ceiling = bare_seconds / shap if shap else float("inf")
    without_shap = bare_seconds / (scoring + routing_seconds)
    print(
        f"ratio bounds at {share:.1%} routed: routed SHAP alone caps it at {ceiling:.2f} "
        f"(explaining {share:.0%} of members exactly costs about {share:.0%} of a bare "
        f"pred_contribs on all of them, so no speed-up elsewhere can lift the ratio above about "
        f"{1 / share if share else float('inf'):.2f}); scoring + routing alone, without SHAP: "
        f"{without_shap:.2f}"
    )
    if share:
        per_share = shap / share
        estimates = ", ".join(
            f"{other:.0%}: {bare_seconds / (scoring + routing_seconds + per_share * other):.2f}"
            for other in (0.1, 0.2, 0.5)
        )
        print(f"ratio extrapolated to other shares routed to people: {estimates}")
    if ceiling < target:
        print(
            f"target {target} is out of reach at this share: the exact SHAP of the routed "
            "predictions alone takes longer than the target allows for the whole run"
        )


def _engine_explanations(predict, explanations, version, member_ids, at, served) -> dict:
    """What the engine explains for these members at `at`, all at once, straight from
    predict_churn on scoring's inputs (the reference the stored explanations must equal)."""
    from predictions.ml.churn.model import ENSEMBLE, predict_churn
    from predictions.ml.features import FEATURE_NAMES

    bundle = predict.version_bundle(version)
    inputs = predict.model_inputs(
        member_ids=member_ids, cutoff=at, in_stored_order=served == "ensemble"
    )
    features = inputs.features.loc[member_ids]
    if served != "ensemble":
        result = predict_churn(bundle=bundle, features=features, with_interval=False)
    else:
        sequences = predict.ensemble_sequences(
            version=version,
            bundle=bundle,
            events=inputs.events,
            member_ids=features.index,
            cutoff=at,
        )
        result = predict_churn(
            bundle=bundle,
            features=features,
            candidate=ENSEMBLE,
            sequences=sequences,
            with_interval=False,
            sequence_events=explanations.SEQUENCE_EVENTS_STORED,
            attribution_recent_events=explanations.SEQUENCE_ATTRIBUTION_RECENT_EVENTS,
        )
    columns = result.columns(names=FEATURE_NAMES)
    if served == "ensemble":
        for explanation in columns["explanation"]:
            explanation["model"] = ENSEMBLE
    return dict(zip(columns["member_id"], columns["explanation"], strict=True))


if __name__ == "__main__":
    main()
