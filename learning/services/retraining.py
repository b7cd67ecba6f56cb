"""Retraining with people's labels, behind a gate.

A run (`RetrainingRun`) is requested by the schedule (django-celery-beat, weekly by default,
editable in the admin) or by an admin's "retrain now"; at most one per kind is open at a time.
The Celery task then:
1. gathers the labeled examples of the kind (excluded ones, and those of members who may not
   be profiled, left out) and splits them by a hash of their prediction: HUMAN_HOLDOUT_SHARE
   is held out of every training, so that the gate can compare versions on human labels that
   neither trained on;
2. trains a candidate on the history plus the other examples with their weights, registering
   the version and the run's `candidate` in one transaction; training's stages move the run's
   `stage` and `progress` (TrainingBeats) as they go;
3. gates it against the active version (`GatePolicy`): both are evaluated on the same
   out-of-time holdout (churn: the members active before the candidate's evaluation cutoff,
   labeled by what they did over the horizon after it) and on the held-out human labels;
4. promotes a passing candidate at once (auto mode; the members are then re-scored and the
   undecided reviews replaced), or leaves it waiting for an admin; a failing one stays a
   candidate with its failing figures on the run. Admins are notified either way.

A worker killed mid-run leaves the run "running" with a stale heartbeat: the message is
redelivered (acks late) or the periodic `recover_stalled_runs` sends it again; a lost database
connection is retried by the task. Each start counts an attempt and after MAX_ATTEMPTS the run
is marked failed. Because the version and the run's candidate commit together, there is never a
half-registered version, and a run resumed after registering goes straight to the gate.
"""

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.urls import reverse
from django.utils import timezone

from learning.exceptions import NotAwaitingApproval, RetrainingRunNotFound
from learning.models import GatePolicy, LabeledExample, RetrainingRun
from learning.selectors import gate_policy
from loyalty.exceptions import require_permission
from loyalty.selectors import scorable_members
from predictions.ml.churn.model import LabeledRows
from predictions.ml.progress import ProgressEvent
from predictions.models import ModelVersion, PredictionKind
from predictions.services.evaluation import (
    ExampleSet,
    bundle_of,
    evaluate_churn_out_of_time,
    evaluate_on_examples,
)
from predictions.services.registry import PROMOTE_PERMISSION, promote_model_version
from predictions.services.training import (
    default_training_cutoff,
    train_churn_version,
    train_next_action_version,
)
from reviews.services.notifications import notify, users_with_permission

logger = logging.getLogger(__name__)

HUMAN_HOLDOUT_SHARE = 0.2
MAX_ATTEMPTS = 2
# A running run whose heartbeat is older than this has lost its worker (training beats at
# every stage; the longest stage, fitting, stays well under the Celery time limit).
STALLED_AFTER = timedelta(minutes=70)
# The churn horizon of a first retraining with no version active and no admin setting.
DEFAULT_HORIZON_DAYS = 90
ADMIN_PERMISSION = PROMOTE_PERMISSION
# Errors that pass with time (a dropped connection, a locked database): the task retries them.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)
# The run's progress (percent) while training: the engine's stages fill the span between
# these two; the gate and the promotion come after.
TRAINING_STARTS = 10
TRAINING_ENDS = 75
# Within a stage the row is written at most this often (a new stage is written at once): a
# boosting refit or an epoch may end every few milliseconds on small data.
PROGRESS_WRITE_SECONDS = 2.0
STAGE_LENGTH = RetrainingRun._meta.get_field("stage").max_length


@dataclass(frozen=True)
class GateResult:
    passed: bool
    checks: list[dict]
    figures: dict


# --- requesting and running ---------------------------------------------------------------


def request_retraining(
    *,
    kind: str,
    trigger: str,
    actor: AbstractBaseUser | None = None,
    enqueue: bool = True,
) -> RetrainingRun:
    """A new queued run, or the run of this kind that is already queued or running."""
    if actor is not None:
        require_permission(actor, ADMIN_PERMISSION)
    try:
        with transaction.atomic():
            run = RetrainingRun.objects.create(
                kind=kind,
                trigger=trigger,
                requested_by=actor if actor is not None and actor.is_authenticated else None,
            )
    except IntegrityError:
        return RetrainingRun.objects.get(kind=kind, status__in=["queued", "running"])
    if enqueue:
        _enqueue_after_commit(run.pk)
    return run


def _enqueue_after_commit(run_id: int) -> None:
    from learning import tasks

    transaction.on_commit(lambda: tasks.retrain_task.delay(run_id), robust=True)


def run_retraining(*, run_id: int) -> RetrainingRun:
    """Carry a run out (the Celery task's body). A finished run is returned as it is.
    A transient database error propagates, for the task to retry: the run stays running and the
    retry resumes it (`_claim` gives up after MAX_ATTEMPTS). Any other error ends the run as
    failed, with why."""
    run = _claim(run_id)
    if run.status != RetrainingRun.Status.RUNNING:
        return run
    try:
        _carry_out(run)
    except TRANSIENT_ERRORS:
        logger.warning("retraining run %s lost the database; the task retries", run_id)
        raise
    except Exception as error:
        logger.exception("retraining run %s failed", run_id)
        _finish(
            run_id, status=RetrainingRun.Status.FAILED, error=f"{type(error).__name__}: {error}"
        )
    return RetrainingRun.objects.get(pk=run_id)


def _claim(run_id: int) -> RetrainingRun:
    with transaction.atomic():
        run = RetrainingRun.objects.select_for_update().get(pk=run_id)
        if run.status in (RetrainingRun.Status.SUCCEEDED, RetrainingRun.Status.FAILED):
            return run
        # A run killed after registering its candidate goes on to the gate whatever its count.
        if run.candidate_id is None and run.attempts >= MAX_ATTEMPTS:
            run.status = RetrainingRun.Status.FAILED
            run.error = (
                f"gave up after {run.attempts} attempts: each lost its worker or the database"
            )
            run.finished_at = timezone.now()
            run.save(update_fields=["status", "error", "finished_at"])
            _notify_admins(run)
            return run
        now = timezone.now()
        run.status = RetrainingRun.Status.RUNNING
        run.attempts += 1
        run.started_at = run.started_at or now
        run.heartbeat_at = now
        run.save(update_fields=["status", "attempts", "started_at", "heartbeat_at"])
        return run


def retraining_horizon(kind: str, active: ModelVersion | None) -> tuple[int | None, str]:
    """The churn horizon a retraining of `kind` trains for, and where it comes from: the
    admin's setting (the kind's gate policy), else the active version's own horizon, else
    DEFAULT_HORIZON_DAYS. (None, "") for next action, which has no horizon to choose."""
    if kind != PredictionKind.CHURN:
        return None, ""
    setting = gate_policy(kind).retraining_horizon_days
    if setting:
        return setting, "the admin's setting"
    if active is not None and active.horizon_days:
        return active.horizon_days, f"the active version's (v{active.pk})"
    return DEFAULT_HORIZON_DAYS, "the default: no active version"


def _carry_out(run: RetrainingRun) -> None:
    active = ModelVersion.objects.filter(kind=run.kind, status=ModelVersion.Status.ACTIVE).first()
    examples = training_examples(run.kind)
    held = held_out_mask(examples)
    horizon, source = retraining_horizon(run.kind, active)
    RetrainingRun.objects.filter(pk=run.pk).update(
        examples_used=int((~held).sum()),
        examples_held_out=int(held.sum()),
        compared_with=active,
        horizon_days=horizon,
        horizon_source=source,
    )
    run.refresh_from_db()
    candidate = run.candidate
    if candidate is None:
        _beat(run.pk, "training", 10)
        candidate = _train(run, examples[~held])
    _beat(run.pk, "gate", 75)
    policy = gate_policy(run.kind)
    result = evaluate_gate(
        candidate=candidate, active=active, held_out=examples[held], policy=policy
    )
    verdict = RetrainingRun.Verdict.REJECTED
    if result.passed and (policy.auto_promote or active is None):
        _beat(run.pk, "promotion", 90)
        promote_model_version(version_id=candidate.pk, actor=None, rescore=True)
        verdict = RetrainingRun.Verdict.PROMOTED
    elif result.passed:
        verdict = RetrainingRun.Verdict.AWAITING_APPROVAL
    _finish(
        run.pk,
        status=RetrainingRun.Status.SUCCEEDED,
        gate={"passed": result.passed, "checks": result.checks, "figures": result.figures},
        verdict=verdict,
    )


def _train(run: RetrainingRun, examples: pd.DataFrame) -> ModelVersion:
    def record(version: ModelVersion) -> None:
        RetrainingRun.objects.filter(pk=run.pk).update(candidate=version)

    actor = run.requested_by
    # The same model settings as the version in use: retraining changes the data, not the model.
    config = bundle_of(run.compared_with).config if run.compared_with_id else None
    horizon = run.horizon_days or DEFAULT_HORIZON_DAYS
    cutoff = default_training_cutoff(kind=run.kind, horizon_days=horizon)
    if run.kind == PredictionKind.CHURN:
        outcome = train_churn_version(
            cutoff=cutoff,
            horizon_days=horizon,
            actor=actor,
            config=config,
            labeled=churn_rows(examples),
            on_registered=record,
            progress=TrainingBeats(run.pk),
        )
    else:
        labels, features = next_action_rows(examples)
        outcome = train_next_action_version(
            cutoff=cutoff,
            actor=actor,
            config=config,
            extra_labels=labels,
            extra_features=features,
            on_registered=record,
            progress=TrainingBeats(run.pk),
        )
    return outcome.version


class TrainingBeats:
    """A training's progress on its run: `stage` ("training: features"), `progress` between
    TRAINING_STARTS and TRAINING_ENDS, and the heartbeat. A new stage is written at once,
    progress within a stage when its percent moved and PROGRESS_WRITE_SECONDS have passed."""

    def __init__(self, run_id: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.run_id = run_id
        self._clock = clock
        self._stage = ""
        self._percent = TRAINING_STARTS
        self._written_at = -float("inf")

    def __call__(self, event: ProgressEvent) -> None:
        stage = f"training: {event.stage}"[:STAGE_LENGTH]
        span = TRAINING_ENDS - TRAINING_STARTS
        percent = TRAINING_STARTS + int(span * min(max(event.fraction, 0.0), 1.0))
        now = self._clock()
        if stage == self._stage and (
            percent == self._percent or now - self._written_at < PROGRESS_WRITE_SECONDS
        ):
            return
        _beat(self.run_id, stage, percent)
        self._stage, self._percent, self._written_at = stage, percent, now


def _beat(run_id: int, stage: str, progress: int) -> None:
    RetrainingRun.objects.filter(pk=run_id).update(
        stage=stage, progress=progress, heartbeat_at=timezone.now()
    )


def _finish(run_id: int, *, status: str, **fields) -> None:
    RetrainingRun.objects.filter(pk=run_id).update(
        status=status,
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
        progress=100,
        stage="",
        **fields,
    )
    _notify_admins(RetrainingRun.objects.get(pk=run_id))


def recover_stalled_runs(*, older_than: timedelta = STALLED_AFTER) -> int:
    """Send again every run whose worker was lost (queued or running, heartbeat too old);
    `run_retraining` marks it failed once it has used up its attempts."""
    limit = timezone.now() - older_than
    stalled = RetrainingRun.objects.filter(status__in=["queued", "running"]).filter(
        heartbeat_at__lt=limit
    ) | RetrainingRun.objects.filter(
        status="queued", heartbeat_at__isnull=True, created_at__lt=limit
    )
    ids = list(stalled.values_list("pk", flat=True))
    from learning import tasks

    for run_id in ids:
        tasks.retrain_task.delay(run_id)
    return len(ids)


def approve_candidate(*, run_id: int, actor: AbstractBaseUser) -> RetrainingRun:
    """An admin promotes a candidate that passed the gate and waited for approval."""
    require_permission(actor, ADMIN_PERMISSION)
    with transaction.atomic():
        run = RetrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            raise RetrainingRunNotFound("No such retraining run.", run_id=run_id)
        if run.verdict != RetrainingRun.Verdict.AWAITING_APPROVAL or run.candidate_id is None:
            raise NotAwaitingApproval(
                "Only a candidate that passed the gate and waits for approval can be approved.",
                run_id=run.pk,
            )
        promote_model_version(version_id=run.candidate_id, actor=actor, rescore=True)
        run.verdict = RetrainingRun.Verdict.APPROVED
        run.save(update_fields=["verdict"])
    return run


def _notify_admins(run: RetrainingRun) -> None:
    messages = {
        RetrainingRun.Verdict.PROMOTED: "passed the gate and is now active",
        RetrainingRun.Verdict.AWAITING_APPROVAL: "passed the gate and waits for your approval",
        RetrainingRun.Verdict.REJECTED: "failed the gate and stays a candidate",
    }
    what = messages.get(run.verdict) if run.status == "succeeded" else f"failed: {run.error}"
    notify(
        recipients=users_with_permission(ADMIN_PERMISSION),
        subject=f"{run.get_kind_display()} retraining: {what}"[:200],
        body=_gate_summary(run),
        link=reverse("learning:loop"),
    )


def _gate_summary(run: RetrainingRun) -> str:
    checks = (run.gate or {}).get("checks", [])
    return "\n".join(
        f"{'pass' if check['passed'] else 'FAIL'}: {check['rule']} ({check['detail']})"
        for check in checks
    )


# --- labeled examples as training rows ----------------------------------------------------


EXAMPLE_COLUMNS = (
    "pk",
    "prediction_id",
    "member_id",
    "cutoff",
    "churn_label",
    "action__code",
    "weight",
    "source",
    "feature_values",
    "model_version__features",
)


def training_examples(kind: str) -> pd.DataFrame:
    """The kind's examples that may train (not excluded, of members who may be profiled: not
    one who withdrew consent or was erased), one row each, oldest first."""
    rows = (
        LabeledExample.objects.filter(kind=kind, excluded=False)
        .filter(member_id__in=scorable_members().values("pk"))
        .order_by("observed_at", "pk")
        .values_list(*EXAMPLE_COLUMNS)
    )
    frame = pd.DataFrame.from_records(list(rows), columns=list(EXAMPLE_COLUMNS))
    return frame


def held_out_mask(examples: pd.DataFrame) -> np.ndarray:
    """Which examples no version trains on: a stable hash of the prediction, so a decision
    and the outcome of the same prediction fall on the same side, every time."""
    return np.array(
        [
            _bucket(int(prediction)) < HUMAN_HOLDOUT_SHARE
            for prediction in examples["prediction_id"]
        ],
        dtype=bool,
    )


def _bucket(prediction_id: int) -> float:
    digest = hashlib.blake2b(f"holdout:{prediction_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def example_features(examples: pd.DataFrame) -> pd.DataFrame:
    """Each example's stored feature values as a row keyed by feature code."""
    records = [
        dict(zip([f["code"] for f in features], values or [], strict=False))
        for features, values in zip(
            examples["model_version__features"], examples["feature_values"], strict=True
        )
    ]
    return pd.DataFrame.from_records(records, index=examples.index).astype("float64")


def churn_rows(examples: pd.DataFrame) -> LabeledRows | None:
    examples = examples[examples["churn_label"].notna()]
    if examples.empty:
        return None
    return LabeledRows(
        features=example_features(examples),
        churned=examples["churn_label"].astype(bool).to_numpy(),
        weight=examples["weight"].to_numpy(dtype="float64"),
        member_id=examples["member_id"].to_numpy(dtype="int64"),
        cutoff=examples["cutoff"].astype(str).to_numpy(dtype=object),
    )


def next_action_rows(examples: pd.DataFrame) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """Label rows and their features for next-action training (panel-style index)."""
    from predictions.ml import nba

    examples = examples[examples["action__code"].notna()]
    if examples.empty:
        return None, None
    cutoffs = pd.to_datetime(examples["cutoff"], utc=True).astype("datetime64[ns, UTC]")
    labels = pd.DataFrame(
        {
            "member_id": examples["member_id"].to_numpy(dtype="int64"),
            "cutoff": cutoffs.to_numpy(),
            "action_code": examples["action__code"].to_numpy(dtype=object),
            "source": np.where(examples["source"] == "decision", nba.DECISION, nba.OUTCOME),
            "weight": examples["weight"].to_numpy(dtype="float64"),
        },
        columns=list(nba.LABEL_COLUMNS),
    )
    features = example_features(examples)
    features.index = pd.MultiIndex.from_arrays(
        [cutoffs.to_numpy(), examples["member_id"].to_numpy(dtype="int64")],
        names=["cutoff", "member_id"],
    )
    return labels, features


# --- the gate -----------------------------------------------------------------------------


def evaluate_gate(
    *,
    candidate: ModelVersion,
    active: ModelVersion | None,
    held_out: pd.DataFrame,
    policy: GatePolicy,
) -> GateResult:
    """The candidate against the active version on the same rows, by the policy's rules."""
    versions = [candidate] + ([active] if active is not None else [])
    figures: dict = {"candidate": candidate.pk, "active": active.pk if active else None}
    checks: list[dict] = []
    if candidate.kind == PredictionKind.CHURN:
        holdout = evaluate_churn_out_of_time(
            versions=versions,
            cutoff=candidate.evaluation_cutoff,
            horizon_days=candidate.horizon_days or DEFAULT_HORIZON_DAYS,
        )
    else:
        holdout = {version.pk: _own_next_action_figures(version) for version in versions}
    figures["holdout"] = {str(pk): metrics for pk, metrics in holdout.items()}
    checks += _holdout_checks(candidate, active, holdout, policy)
    human = _human_figures(versions, held_out)
    figures["human"] = {str(pk): metrics for pk, metrics in human.items()}
    checks += _human_checks(candidate, active, human, policy)
    return GateResult(passed=all(c["passed"] for c in checks), checks=checks, figures=figures)


def _own_next_action_figures(version: ModelVersion) -> dict:
    """Next action: the version's own held-out figures from training (its time-latest split).
    Unlike churn, the two versions are not re-scored on one holdout (a known gap)."""
    overall = (version.metrics or {}).get("metrics") or {}
    return overall if isinstance(overall, dict) else {}


def _holdout_checks(candidate, active, holdout: dict, policy: GatePolicy) -> list[dict]:
    mine = holdout.get(candidate.pk, {})
    checks = []
    if not mine.get("n"):
        return [
            {
                "rule": "out-of-time holdout available",
                "passed": False,
                "detail": "the data do not reach past the candidate's evaluation window",
            }
        ]
    theirs = holdout.get(active.pk, {}) if active else {}
    if candidate.kind == PredictionKind.CHURN:
        checks += _not_worse_check("roc_auc", "ROC AUC", mine, theirs, policy.max_auc_drop)
        if mine.get("ece") is not None:
            checks.append(
                {
                    "rule": f"calibration error (ECE) at most {policy.max_ece:.3f}",
                    "passed": mine["ece"] <= policy.max_ece,
                    "detail": f"candidate {mine['ece']:.4f}",
                }
            )
    else:
        checks += _not_worse_check("top1", "top-1 accuracy", mine, theirs, policy.max_auc_drop)
    coverage, nominal = mine.get("coverage"), mine.get("nominal_coverage")
    if coverage is not None and nominal is not None:
        checks.append(
            {
                "rule": f"set coverage within {nominal:.0%} ± {policy.coverage_tolerance:.0%}",
                "passed": abs(coverage - nominal) <= policy.coverage_tolerance,
                "detail": f"candidate {coverage:.3f}",
            }
        )
    return checks


def _not_worse_check(metric: str, name: str, mine: dict, theirs: dict, max_drop: float) -> list:
    """The candidate's `metric` may fall below the active version's by at most `max_drop`; no
    check when either figure is missing."""
    if theirs.get(metric) is None or mine.get(metric) is None:
        return []
    return [
        {
            "rule": f"{name} not worse than the active version's by more than {max_drop:.3f}",
            "passed": theirs[metric] - mine[metric] <= max_drop,
            "detail": f"candidate {mine[metric]:.4f}, active {theirs[metric]:.4f}",
        }
    ]


def _human_figures(versions: list[ModelVersion], held_out: pd.DataFrame) -> dict:
    kind = versions[0].kind
    if held_out.empty:
        return {version.pk: {"n": 0} for version in versions}
    if kind == PredictionKind.CHURN:
        held_out = held_out[held_out["churn_label"].notna()]
        examples = ExampleSet(
            features=example_features(held_out).reset_index(drop=True),
            churned=held_out["churn_label"].astype(bool).to_numpy(),
        )
    else:
        held_out = held_out[held_out["action__code"].notna()]
        examples = ExampleSet(
            features=example_features(held_out).reset_index(drop=True),
            action_codes=held_out["action__code"].tolist(),
        )
    if not len(examples):
        return {version.pk: {"n": 0} for version in versions}
    return evaluate_on_examples(versions=versions, examples=examples)


def _human_checks(candidate, active, human: dict, policy: GatePolicy) -> list[dict]:
    mine = human.get(candidate.pk, {})
    theirs = human.get(active.pk, {}) if active else {}
    n = mine.get("n") or 0
    if active is None or n < policy.min_human_examples:
        return [
            {
                "rule": "held-out human labels",
                "passed": True,
                "detail": f"{n} held-out human labels, fewer than {policy.min_human_examples}: "
                "not judged",
            }
        ]
    increase = mine["log_loss"] - theirs["log_loss"]
    return [
        {
            "rule": f"log loss on held-out human labels not above the active version's by more "
            f"than {policy.max_human_log_loss_increase:.3f}",
            "passed": increase <= policy.max_human_log_loss_increase,
            "detail": f"candidate {mine['log_loss']:.4f}, active {theirs['log_loss']:.4f} "
            f"on {n} labels",
        }
    ]
