"""Training a model version from the imported data and storing it in the registry."""

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from loyalty.clock import scoring_clock
from loyalty.models import Action
from loyalty.selectors import scorable_members
from predictions.exceptions import TrainingDataError
from predictions.ml import artifacts
from predictions.ml.churn.model import LabeledRows, train_churn
from predictions.ml.clusters import fit_clusters
from predictions.ml.contracts import ChurnConfig, MLError, NextActionConfig
from predictions.ml.features import FEATURES, build_feature_panel, build_features, prepare_events
from predictions.ml.nba import (
    bootstrap_rule_labels,
    observed_outcome_labels,
    snapshot_members,
    train_next_action,
)
from predictions.ml.progress import Progress, ProgressCallback, labelled
from predictions.ml.segments import fit_rfm_scale
from predictions.models import ModelVersion, PredictionKind
from predictions.selectors import profiling_frames

LIBRARIES = ("xgboost-cpu", "scikit-learn", "numpy", "pandas", "shap", "torch", "Django")
# Next action: one labeled snapshot every four weeks over the last year of history; an outcome
# counts when it happens within four weeks of the snapshot.
NEXT_ACTION_SNAPSHOTS = 12
NEXT_ACTION_SNAPSHOT_STEP = timedelta(days=28)
OUTCOME_WINDOW_DAYS = 28

# A training's stages around the engine's own (which run as TRAINING), with their shares of
# its time on The Complete Journey in SQLite: reading the history from the database (a fifth
# of a churn training, half of a next-action one), features and labels of next action's
# snapshots, saving the artifacts and registering the version.
LOADING = "loading data"
SNAPSHOT_FEATURES = "features"
SNAPSHOT_LABELS = "labels"
TRAINING = "training"
REGISTERING = "registering"
CHURN_PROGRESS_PLAN = {LOADING: 0.2, TRAINING: 0.78, REGISTERING: 0.02}
NEXT_ACTION_PROGRESS_PLAN = {
    LOADING: 0.45,
    SNAPSHOT_FEATURES: 0.1,
    SNAPSHOT_LABELS: 0.08,
    TRAINING: 0.35,
    REGISTERING: 0.02,
}


@dataclass(frozen=True)
class TrainingOutcome:
    version: ModelVersion
    report: dict[str, Any]


def train_churn_version(
    *,
    cutoff: datetime,
    horizon_days: int,
    actor: AbstractBaseUser | None = None,
    config: ChurnConfig | None = None,
    labeled: LabeledRows | None = None,
    on_registered: Callable[[ModelVersion], None] | None = None,
    progress: ProgressCallback | None = None,
) -> TrainingOutcome:
    """Train churn models on label windows that end by `cutoff`, evaluate them out of time at
    `cutoff`, and register the winner as a candidate version. `labeled`: people's decisions
    and observed outcomes, trained on with their weights beside the history. `progress`
    hears CHURN_PROGRESS_PLAN's stages, the engine's own in place of TRAINING."""
    tracker = Progress(progress, CHURN_PROGRESS_PLAN)
    tracker.stage(LOADING)
    events, members = training_frames()
    try:
        result = train_churn(
            events=events,
            members=members,
            cutoff=cutoff,
            horizon_days=horizon_days,
            config=config,
            labeled=labeled,
            progress=tracker.nest(TRAINING),
        )
    except MLError as error:
        raise TrainingDataError(str(error)) from error
    tracker.stage(REGISTERING)
    directory = _new_artifact_directory(PredictionKind.CHURN)
    # The trees' files, and the sequence model's under sequence/, in one checksum mapping.
    checksums = artifacts.save_churn_bundle(bundle=result.bundle, directory=directory)
    report = {
        **result.report,
        "member_budget": member_budget(len(members)),
        **segment_reports(prepared=prepare_events(events), members=members, cutoff=cutoff),
    }
    version = _register(
        kind=PredictionKind.CHURN,
        # The ensemble when it won the selection; the registry shows both side by side.
        algorithm=report["selected"],
        cutoff=cutoff,
        training_cutoffs=report["cutoffs"],
        horizon_days=horizon_days,
        row_counts=report["rows"],
        fingerprint=data_fingerprint(events=events, members=members, cutoff=cutoff),
        feature_codes=result.bundle.feature_codes,
        hyperparameters=report["config"],
        report=report,
        importance=report["feature_importance"],
        directory=directory,
        checksums=checksums,
        actor=actor,
        on_registered=on_registered,
    )
    tracker.finish(detail=f"version {version.pk}")
    return TrainingOutcome(version=version, report=report)


def train_next_action_version(
    *,
    cutoff: datetime,
    actor: AbstractBaseUser | None = None,
    config: NextActionConfig | None = None,
    extra_labels: pd.DataFrame | None = None,
    extra_features: pd.DataFrame | None = None,
    on_registered: Callable[[ModelVersion], None] | None = None,
    progress: ProgressCallback | None = None,
) -> TrainingOutcome:
    """Train the next-best-action model over the active catalog and register a candidate.

    Labels: observed outcomes and bootstrap rules at monthly snapshots before `cutoff`, plus
    `extra_labels` (people's decisions and observed outcomes of past predictions), each row
    with its source's weight. `extra_features` (indexed by cutoff and member id, like the
    panel) holds what the model saw for those rows, when they are not at a snapshot.
    `progress` hears NEXT_ACTION_PROGRESS_PLAN's stages, the engine's own in place of TRAINING.
    """
    codes = list(Action.objects.filter(is_active=True).values_list("code", flat=True))
    if not codes:
        raise TrainingDataError("The action catalog has no active action to recommend.")
    tracker = Progress(progress, NEXT_ACTION_PROGRESS_PLAN)
    tracker.stage(LOADING)
    events, members = training_frames()
    before_cutoff = events[events["occurred_at"] < pd.Timestamp(cutoff)]
    prepared = prepare_events(before_cutoff)
    snapshots = _next_action_snapshots(cutoff=cutoff, events=events)
    if not snapshots:
        raise TrainingDataError("No history before the cutoff to build training snapshots from.")
    tracker.stage(SNAPSHOT_FEATURES, total=len(snapshots))
    # Features only for the members the trainer's row budget keeps (nba.snapshot_members):
    # the panel never outgrows the budget, whatever the number of members.
    seed = (config or NextActionConfig()).seed
    kept_ids = snapshot_members(
        members["member_id"].to_numpy(), snapshots=len(snapshots), seed=seed
    )
    panel_members = members[members["member_id"].isin(kept_ids)]
    parts = []
    for snapshot in snapshots:
        parts.append(
            build_feature_panel(events=prepared, members=panel_members, cutoffs=[snapshot])
        )
        tracker.step(detail=f"snapshot {snapshot.date()}")
    panel = pd.concat(parts)
    if extra_features is not None and len(extra_features):
        extra = extra_features[~extra_features.index.isin(panel.index)]
        extra = extra[~extra.index.duplicated()]
        panel = pd.concat([panel, extra.reindex(columns=panel.columns)])
    tracker.stage(SNAPSHOT_LABELS, total=len(snapshots))
    labels = []
    for snapshot in snapshots:
        labels.append(
            bootstrap_rule_labels(features=panel.loc[snapshot], action_codes=codes, cutoff=snapshot)
        )
        labels.append(
            observed_outcome_labels(
                events=before_cutoff, cutoff=snapshot, window_days=OUTCOME_WINDOW_DAYS
            )
        )
        tracker.step(detail=f"snapshot {snapshot.date()}")
    if extra_labels is not None:
        labels.append(extra_labels)
    try:
        result = train_next_action(
            features=panel,
            labels=pd.concat(labels, ignore_index=True),
            action_codes=codes,
            config=config,
            progress=tracker.nest(TRAINING),
        )
    except MLError as error:
        raise TrainingDataError(str(error)) from error
    tracker.stage(REGISTERING)
    directory = _new_artifact_directory(PredictionKind.NEXT_ACTION)
    checksums = artifacts.save_next_action_bundle(bundle=result.bundle, directory=directory)
    report = {
        **result.report,
        "member_budget": member_budget(len(members)),
        **segment_reports(prepared=prepared, members=members, cutoff=cutoff),
    }
    version = _register(
        kind=PredictionKind.NEXT_ACTION,
        algorithm="xgboost",
        cutoff=cutoff,
        training_cutoffs=[stamp.isoformat() for stamp in snapshots],
        horizon_days=OUTCOME_WINDOW_DAYS,
        row_counts=report.get("rows", {}),
        fingerprint=data_fingerprint(events=events, members=members, cutoff=cutoff),
        feature_codes=result.bundle.feature_codes,
        hyperparameters=report.get("config", {}),
        report=report,
        importance=report.get("feature_importance", {}),
        directory=directory,
        checksums=checksums,
        actor=actor,
        on_registered=on_registered,
    )
    tracker.finish(detail=f"version {version.pk}")
    return TrainingOutcome(version=version, report=report)


def training_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events, members) training reads: only members who may be profiled, at most
    LOYALTY_TRAINING_MAX_MEMBERS of them (`predictions.selectors.profiling_frames`)."""
    return profiling_frames()


def segment_reports(*, prepared, members: pd.DataFrame, cutoff: datetime) -> dict:
    """What a version stores to segment the members it scores, from the features of the
    members training read at its cutoff: every score of the version reads them, so a refresh
    of a few members segments each as a full run would.

    "rfm_scale": the RFM scale (`predictions.ml.segments`; None when too few members have a
    purchase). "behavior_clusters": the k-means clustering (`predictions.ml.clusters`; None
    when too few members), refitted with every version."""
    features = build_features(events=prepared, members=members, cutoff=cutoff)
    scale = fit_rfm_scale(features)
    clusters = fit_clusters(features)
    stamp = pd.Timestamp(cutoff).isoformat()
    return {
        "rfm_scale": None if scale is None else {**scale.to_json(), "cutoff": stamp},
        "behavior_clusters": None if clusters is None else {**clusters.to_json(), "cutoff": stamp},
    }


def member_budget(members_read: int) -> dict:
    """What a training report says about the member budget: how many members may be
    profiled, how many were read, and the rule."""
    return {
        "max_members": settings.LOYALTY_TRAINING_MAX_MEMBERS,
        "profiled": scorable_members().count(),
        "read": members_read,
        "rule": "beyond max_members, the members with the lowest stable hash of (member id, "
        "seed 0) are read, and only their events (LOYALTY_TRAINING_MAX_MEMBERS)",
    }


def default_training_cutoff(*, kind: str, horizon_days: int) -> datetime:
    """Where a model trained now should be evaluated: the end of the data (the scoring clock,
    `loyalty.clock`), less the churn horizon so that the out-of-time window after the cutoff
    is complete."""
    end = scoring_clock()
    return end - timedelta(days=horizon_days) if kind == PredictionKind.CHURN else end


@dataclass(frozen=True)
class BootstrapOutcome:
    trained: tuple[ModelVersion, ...]
    already_active: tuple[str, ...]


def ensure_active_versions(
    *, horizon_days: int = 90, progress: ProgressCallback | None = None
) -> BootstrapOutcome:
    """Train and promote a first version of each kind that has no active one (a new install:
    the system needs a model before anyone has reviewed anything). `progress` hears each
    training's stages, named after its kind (`churn: features`)."""
    from predictions.services.registry import promote_model_version

    trained, already = [], []
    for kind in PredictionKind.values:
        if ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.ACTIVE).exists():
            already.append(kind)
            continue
        cutoff = default_training_cutoff(kind=kind, horizon_days=horizon_days)
        told = labelled(progress, kind)
        if kind == PredictionKind.CHURN:
            outcome = train_churn_version(cutoff=cutoff, horizon_days=horizon_days, progress=told)
        else:
            outcome = train_next_action_version(cutoff=cutoff, progress=told)
        trained.append(promote_model_version(version_id=outcome.version.pk, actor=None))
    return BootstrapOutcome(trained=tuple(trained), already_active=tuple(already))


def _next_action_snapshots(*, cutoff: datetime, events: pd.DataFrame) -> list[pd.Timestamp]:
    """Snapshots whose outcome window ends by the cutoff, none before the first event."""
    if events.empty:
        return []
    first = events["occurred_at"].min()
    last_snapshot = pd.Timestamp(cutoff) - pd.Timedelta(days=OUTCOME_WINDOW_DAYS)
    snapshots = [
        last_snapshot - i * pd.Timedelta(NEXT_ACTION_SNAPSHOT_STEP)
        for i in range(NEXT_ACTION_SNAPSHOTS)
    ]
    return sorted(stamp for stamp in snapshots if stamp > first)


def data_fingerprint(*, events: pd.DataFrame, members: pd.DataFrame, cutoff: datetime) -> str:
    """SHA-256 over what training read: row counts, id and time ranges, sums of amounts.

    Cheap to compute on millions of rows and changes when any import adds or alters data.
    """
    summary = {
        "cutoff": pd.Timestamp(cutoff).isoformat(),
        "events": len(events),
        "members": len(members),
        "event_members": int(events["member_id"].nunique()) if len(events) else 0,
        "first": str(events["occurred_at"].min()) if len(events) else None,
        "last": str(events["occurred_at"].max()) if len(events) else None,
        "amount": round(float(events["amount"].sum()), 2) if len(events) else 0.0,
        "kinds": events["kind"].value_counts().sort_index().to_dict() if len(events) else {},
        "member_ids": int(members["member_id"].sum()) if len(members) else 0,
    }
    return hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()


def _new_artifact_directory(kind: str) -> Path:
    directory = Path(settings.MODEL_ARTIFACT_DIR) / kind / uuid.uuid4().hex
    directory.mkdir(parents=True, exist_ok=False)
    return directory


def _library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@transaction.atomic
def _register(
    *,
    kind: str,
    algorithm: str,
    cutoff: datetime,
    training_cutoffs: list[str],
    horizon_days: int,
    row_counts: dict,
    fingerprint: str,
    feature_codes: tuple[str, ...],
    hyperparameters: dict,
    report: dict,
    importance: dict,
    directory: Path,
    checksums: dict[str, str],
    actor: AbstractBaseUser | None,
    on_registered: Callable[[ModelVersion], None] | None = None,
) -> ModelVersion:
    """Create the candidate version (its artifacts are written already). `on_registered` runs
    in the same transaction: a caller that records the version elsewhere (a retraining run)
    records it together with the version or not at all."""
    info = {feature.code: feature for feature in FEATURES}
    with transaction.atomic():
        version = ModelVersion.objects.create(
            kind=kind,
            algorithm=algorithm,
            evaluation_cutoff=cutoff,
            training_cutoffs=training_cutoffs,
            horizon_days=horizon_days,
            row_counts=row_counts,
            data_fingerprint=fingerprint,
            features=[
                {"code": code, "name": info[code].name, "description": info[code].description}
                for code in feature_codes
            ],
            hyperparameters=hyperparameters,
            library_versions=_library_versions(),
            metrics=report,
            global_importance=importance,
            artifact_path=str(directory),
            artifact_checksums=checksums,
            created_by=actor if actor is not None and actor.is_authenticated else None,
        )
        if on_registered is not None:
            on_registered(version)
    return version
