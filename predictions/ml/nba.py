"""Next best action: a multiclass XGBoost over the action catalog, trained on weighted labels.

Labels come from three sources, each row weighted: people's decisions (most trusted),
observed outcomes, and bootstrap business rules (a cold start, least trusted). A member-cutoff
may carry several rows (a rule said one thing, an analyst another): they stay separate
weighted examples, so the model learns the weighted mix and decisions dominate.

Classes are the action codes passed in, in that order. A class no training row carries keeps
its slot but always gets probability 0 (the rest renormalized): the model never recommends an
action nobody has chosen yet, and never crashes on it. Label rows whose code is not in the
catalog (a retired action) are dropped and counted in the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from . import conformal, frames
from .confidence import confidence_from
from .contracts import (
    LABEL_COLUMNS,
    InsufficientHistoryError,
    NextActionBundle,
    NextActionConfig,
    NextActionPrediction,
    NextActionTrainingResult,
)
from .explain import top_contributions
from .features import FEATURE_CODES, PreparedEvents
from .metrics import multiclass_metrics
from .progress import Progress, ProgressCallback
from .row_budget import budget_report, rows_per_cutoff, within_budget
from .scorers import booster_settings, fit_booster, training_matrix

DECISION = "decision"
OUTCOME = "outcome"
RULE = "rule"
SOURCES = (DECISION, OUTCOME, RULE)
DECISION_WEIGHT = 5.0
OUTCOME_WEIGHT = 2.0
RULE_WEIGHT = 0.5

NO_ACTION = "no_action"
BONUS_POINTS = "bonus_points"
PERSONAL_DISCOUNT = "personal_discount"
WIN_BACK_EMAIL = "win_back_email"
PERSONAL_OUTREACH = "personal_outreach"

# Rule thresholds, relative to the population scored so that they adapt to any data set.
HIGH_VALUE_QUANTILE = 0.75
HEAVY_BUYER_QUANTILE = 0.9
# Lapsing: the next purchase is twice overdue, or (without a usual gap) no purchase for this long.
OVERDUE_RATIO = 2.0
LAPSED_WITHOUT_GAP_DAYS = 60.0
COUPON_RESPONSE_RATE = 0.5

# Observed outcome -> action it vindicates. A member who received a campaign and redeemed a
# coupon after it within the window responded to an offer: the discount was the right action.
COUPON_AFTER_CAMPAIGN = "coupon_after_campaign"
DEFAULT_OUTCOME_ACTIONS: Mapping[str, str] = {COUPON_AFTER_CAMPAIGN: PERSONAL_DISCOUNT}
DEFAULT_TOP_K = 5
# Training's stages in the order they run, with their expected shares of its time
# (`progress` of train_next_action): the two boosting fits dominate.
JOINING = "joining labels"
FITTING = "fitting"
CALIBRATION = "calibration"
EVALUATION = "evaluation"
PROGRESS_PLAN = {JOINING: 0.1, FITTING: 0.7, CALIBRATION: 0.1, EVALUATION: 0.1}
# Member-cutoffs of history (rules and outcomes) trained on at most, as churn's
# `max_training_rows`: each snapshot keeps a stable sample of its members beyond its share
# (`row_budget`), so the fit's memory and time stay bounded on big programs. People's
# decisions always train.
MAX_TRAINING_ROWS = 2_000_000


def bootstrap_rule_labels(
    *,
    features: pd.DataFrame,
    action_codes: Sequence[str],
    cutoff: object,
    weight: float = RULE_WEIGHT,
) -> pd.DataFrame:
    """Cold-start labels from simple business rules on one cutoff's feature matrix.

    First rule that applies wins; an action not in `action_codes` falls through to the next
    choice of that rule, and a member with no available choice gets no row:
    1. lapsing (overdue ratio >= 2, or no purchase for 60+ days without a usual gap) and high
       value (spend per month in the top quarter of members who buy) -> personal_outreach,
       else win_back_email;
    2. lapsing, not high value -> win_back_email;
    3. frequent couponer (>= 0.5 coupons per campaign, or coupons redeemed in the top quarter
       of redeemers) -> personal_discount;
    4. heavy buyer (baskets per month in the top tenth of buyers) -> bonus_points;
    5. everyone else -> no_action.
    Returns LABEL_COLUMNS with source "rule".
    """
    codes = set(action_codes)
    recency = features["days_since_last_purchase"].to_numpy()
    overdue = features["purchase_overdue_ratio"].to_numpy()
    spend = features["spend_per_30d"].to_numpy()
    baskets = features["baskets_per_30d"].to_numpy()
    coupons = features["coupons_redeemed_365"].to_numpy()
    response = features["coupon_response_rate_365"].to_numpy()
    buyers = spend > 0
    lapsing = (overdue >= OVERDUE_RATIO) | (
        np.isnan(overdue) & (recency >= LAPSED_WITHOUT_GAP_DAYS)
    )
    high_value = buyers & (spend >= _quantile(spend[buyers], HIGH_VALUE_QUANTILE))
    couponer = (response >= COUPON_RESPONSE_RATE) | (
        (coupons > 0) & (coupons >= _quantile(coupons[coupons > 0], HIGH_VALUE_QUANTILE))
    )
    heavy = buyers & (baskets >= _quantile(baskets[buyers], HEAVY_BUYER_QUANTILE))
    rules = [
        (lapsing & high_value, (PERSONAL_OUTREACH, WIN_BACK_EMAIL)),
        (lapsing, (WIN_BACK_EMAIL,)),
        (couponer, (PERSONAL_DISCOUNT,)),
        (heavy, (BONUS_POINTS,)),
        (np.ones(len(features), dtype=bool), (NO_ACTION,)),
    ]
    chosen = np.full(len(features), "", dtype=object)
    decided = np.zeros(len(features), dtype=bool)
    for applies, choices in rules:
        available = next((code for code in choices if code in codes), "")
        # When none of a rule's actions is in the catalog its members stay unlabeled rather
        # than falling into a later rule that does not describe them.
        chosen[applies & ~decided] = available
        decided |= applies
    keep = chosen != ""
    return _label_frame(
        member_id=features.index.to_numpy(dtype="int64")[keep],
        cutoff=frames.to_utc_timestamp(cutoff),
        action_code=chosen[keep],
        source=RULE,
        weight=weight,
    )


def observed_outcome_labels(
    *,
    events: pd.DataFrame,
    cutoff: object,
    window_days: int,
    outcome_actions: Mapping[str, str] = DEFAULT_OUTCOME_ACTIONS,
    weight: float = OUTCOME_WEIGHT,
) -> pd.DataFrame:
    """Labels at `cutoff` from what members did in [cutoff, cutoff + window_days).

    Outcome "coupon_after_campaign": a campaign received in the window and a coupon redeemed
    after it, still in the window. `outcome_actions` maps each outcome to the action it
    vindicates (default: personal_discount); an outcome missing from the map is not used.
    """
    start = frames.to_utc_timestamp(cutoff)
    end = start + pd.Timedelta(days=window_days)
    if isinstance(events, PreparedEvents):
        raise TypeError("observed_outcome_labels reads an events DataFrame")
    relevant = events["kind"].isin([frames.CAMPAIGN_RECEIVED, frames.COUPON_REDEEMED]).to_numpy()
    stamps = pd.to_datetime(events["occurred_at"][relevant], utc=True)
    in_window = ((stamps >= start) & (stamps < end)).to_numpy()
    frame = pd.DataFrame(
        {
            "member_id": events["member_id"].to_numpy(dtype="int64")[relevant][in_window],
            "t": stamps[in_window].reset_index(drop=True),
            "kind": events["kind"].to_numpy()[relevant][in_window],
        }
    )
    parts = []
    action = outcome_actions.get(COUPON_AFTER_CAMPAIGN)
    if action is not None:
        first_campaign = (
            frame[frame["kind"] == frames.CAMPAIGN_RECEIVED].groupby("member_id")["t"].min()
        )
        last_coupon = frame[frame["kind"] == frames.COUPON_REDEEMED].groupby("member_id")["t"].max()
        both = pd.concat([first_campaign.rename("campaign"), last_coupon.rename("coupon")], axis=1)
        responded = both.index[(both["coupon"] >= both["campaign"]).to_numpy()]
        parts.append(
            _label_frame(
                member_id=np.asarray(responded, dtype="int64"),
                cutoff=start,
                action_code=np.full(len(responded), action, dtype=object),
                source=OUTCOME,
                weight=weight,
            )
        )
    if not parts:
        return _label_frame(
            member_id=np.zeros(0, dtype="int64"),
            cutoff=start,
            action_code=np.zeros(0, dtype=object),
            source=OUTCOME,
            weight=weight,
        )
    return pd.concat(parts, ignore_index=True)


def train_next_action(
    *,
    features: pd.DataFrame,
    labels: pd.DataFrame,
    action_codes: Sequence[str],
    config: NextActionConfig | None = None,
    progress: ProgressCallback | None = None,
    max_training_rows: int = MAX_TRAINING_ROWS,
) -> NextActionTrainingResult:
    """Fit the multiclass model, its conformal threshold, and held-out metrics.

    `features`: a panel indexed by (cutoff, member_id) from `build_feature_panel`.
    `labels`: LABEL_COLUMNS rows; their (cutoff, member_id) must be in the panel (others are
    dropped and counted). Split by time: rows sorted by cutoff (ties in a seeded random order,
    a member-cutoff's rows kept together); oldest `train_share` train, next `validation_share`
    stop boosting early (on the `validation_member_share` of members held out of that fit),
    the rest calibrate the LAC set and measure held-out metrics. `progress` hears the stages
    (PROGRESS_PLAN) and each boosting fit. Beyond `max_training_rows` member-cutoffs, each
    cutoff keeps the members `snapshot_members` keeps there (decisions are never dropped);
    the report's `row_budget` says how many.
    """
    config = config or NextActionConfig()
    tracker = Progress(progress, PROGRESS_PLAN)
    tracker.stage(JOINING)
    codes = tuple(dict.fromkeys(action_codes))
    if not codes:
        raise ValueError("action_codes is empty")
    rows, dropped = _join(features, labels, codes)
    rows, budget = _within_row_budget(rows, max_training_rows, config.seed)
    if len(rows) < config.min_rows:
        raise InsufficientHistoryError(
            f"{len(rows)} usable label rows, at least {config.min_rows} are needed"
        )
    feature_codes = tuple(code for code in FEATURE_CODES if code in features.columns)
    x = np.ascontiguousarray(rows[list(feature_codes)].to_numpy(dtype="float32"))
    y = rows["class_index"].to_numpy(dtype="int64")
    w = rows["weight"].to_numpy(dtype="float64")
    train, valid, calib = _time_split(rows, config)
    trained = np.zeros(len(codes), dtype=bool)
    trained[np.unique(y[train])] = True

    settings = booster_settings(
        config.booster,
        seed=config.seed,
        objective="multi:softprob",
        num_class=len(codes),
        eval_metric="mlogloss",
    )
    # As for churn: early stopping validates on members the fit never saw (the same members
    # at nearby cutoffs would reward memorizing them), then all training rows are refit.
    members = np.unique(rows["member_id"].to_numpy())
    rng = np.random.default_rng(config.seed)
    held = np.isin(
        rows["member_id"].to_numpy(),
        members[rng.random(len(members)) < config.validation_member_share],
    )
    fit, stop = train & ~held, valid & held
    if not (fit.any() and stop.any()):
        fit, stop = train, valid
    tracker.stage(FITTING, total=2)  # early stopping, then every training row
    dfit = training_matrix(params=config.booster, x=x[fit], y=y[fit], weights=w[fit])
    dstop = training_matrix(
        params=config.booster, x=x[stop], y=y[stop], weights=w[stop], reference=dfit
    )
    stopped = fit_booster(params=config.booster, settings=settings, train=dfit, valid=dstop)
    tracker.step(detail=f"early stopping: {stopped.num_boosted_rounds()} rounds")
    dtrain = training_matrix(params=config.booster, x=x[train], y=y[train], weights=w[train])
    booster = fit_booster(
        params=config.booster,
        settings=settings,
        train=dtrain,
        valid=None,
        rounds=stopped.num_boosted_rounds(),
    )
    tracker.step(detail="every training row")
    tracker.stage(CALIBRATION)
    bundle_draft = NextActionBundle(
        feature_codes=feature_codes,
        action_codes=codes,
        trained_classes=tuple(bool(v) for v in trained),
        booster=booster,
        set_threshold=1.0,
        config=config,
    )
    calib_probs = class_probabilities(bundle_draft, x[calib])
    lac = conformal.fit_lac(
        probabilities=calib_probs, labels=y[calib], coverage=config.set_coverage
    )
    bundle = replace(bundle_draft, set_threshold=lac.threshold)
    tracker.stage(EVALUATION)
    report = _report(rows, calib, calib_probs, y, lac, codes, trained, dropped, config)
    report["rows"].update(
        train=int(train.sum()), early_stopping_train=int(fit.sum()), validation=int(stop.sum())
    )
    report["boosting_rounds"] = int(booster.num_boosted_rounds())
    report["row_budget"] = budget
    tracker.finish()
    return NextActionTrainingResult(bundle=bundle, report=report)


def snapshot_members(
    member_ids: np.ndarray,
    *,
    snapshots: int,
    seed: int = 0,
    max_training_rows: int = MAX_TRAINING_ROWS,
) -> np.ndarray:
    """The members (of `member_ids`, distinct) to build snapshot features for, so that no
    snapshot holds more than its share of the row budget: the budget's stable sample over all
    of them (`row_budget.within_budget`), which `train_next_action` then keeps whole."""
    ids = np.asarray(member_ids, dtype="int64")
    budget = rows_per_cutoff(max_training_rows, snapshots)
    return ids[within_budget(ids, budget=budget, seed=seed)]


def _within_row_budget(
    rows: pd.DataFrame, max_training_rows: int, seed: int
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The joined rows with each cutoff's history cut to its budget (`snapshot_members`)."""
    cutoffs = pd.to_datetime(rows["cutoff"], utc=True)
    member = rows["member_id"].to_numpy(dtype="int64")
    history = (rows["source"] != DECISION).to_numpy()
    keep = np.ones(len(rows), dtype=bool)
    counts = {}
    distinct = sorted(cutoffs.unique())
    for cutoff in distinct:
        at = (cutoffs == cutoff).to_numpy() & history
        members = np.unique(member[at])
        kept = snapshot_members(
            members, snapshots=len(distinct), seed=seed, max_training_rows=max_training_rows
        )
        keep[at] = np.isin(member[at], kept)
        counts[cutoff.isoformat()] = {"active": int(len(members)), "kept": int(len(kept))}
    report = budget_report(
        max_rows=max_training_rows,
        per_cutoff=rows_per_cutoff(max_training_rows, max(len(distinct), 1)),
        counts=counts,
    )
    report["rule"] += "; people's decisions always train"
    return rows[keep].reset_index(drop=True), report


def class_probabilities(bundle: NextActionBundle, x: np.ndarray) -> np.ndarray:
    """(n, K) probabilities; classes never seen in training get exactly 0, rows sum to 1."""
    raw = bundle.booster.inplace_predict(x).astype("float64").reshape(len(x), -1)
    raw = raw * np.asarray(bundle.trained_classes, dtype="float64")
    return raw / raw.sum(axis=1, keepdims=True)


def predict_next_action(
    *,
    bundle: NextActionBundle,
    features: pd.DataFrame,
    eligibility: pd.DataFrame | np.ndarray | None = None,
    explain_top_k: int = DEFAULT_TOP_K,
) -> NextActionPrediction:
    """Score one feature matrix (index member_id).

    `eligibility`: booleans, members x actions: a DataFrame indexed by member_id with action
    code columns (missing columns count as ineligible), or an array aligned with `features`
    rows and `bundle.action_codes`; None means every action is allowed. The recommendation is
    the most probable eligible action ('' when none is eligible or all eligible ones have
    probability 0). Explanations are the SHAP margins of the recommended class.
    """
    x = np.ascontiguousarray(features.loc[:, list(bundle.feature_codes)].to_numpy(dtype="float32"))
    n, k = len(x), len(bundle.action_codes)
    probs = class_probabilities(bundle, x)
    allowed = _eligibility(eligibility, features.index, bundle.action_codes, n)
    masked = np.where(allowed, probs, -1.0)
    best = masked.argmax(axis=1)
    has_answer = masked[np.arange(n), best] > 0
    recommended = np.where(has_answer, np.asarray(bundle.action_codes, dtype=object)[best], "")
    sets = conformal.LacSets(
        coverage=bundle.config.set_coverage, threshold=bundle.set_threshold
    ).sets(probs)
    in_set = has_answer & sets[np.arange(n), best]
    confidence = confidence_from(set_sizes=sets.sum(axis=1), n_labels=k, answer_in_set=in_set)
    explanation = None
    if explain_top_k > 0 and n:
        contributions = bundle.booster.predict(xgb.DMatrix(x), pred_contribs=True)
        contributions = np.asarray(contributions, dtype="float64").reshape(n, k, -1)
        explanation = top_contributions(
            contributions=contributions[np.arange(n), best],
            values=x,
            feature_codes=bundle.feature_codes,
            k=explain_top_k,
        )
    return NextActionPrediction(
        member_ids=features.index.to_numpy(dtype="int64"),
        action_codes=bundle.action_codes,
        probabilities=probs,
        recommended=recommended,
        recommended_probability=np.where(has_answer, probs[np.arange(n), best], 0.0),
        action_sets=sets,
        confidence=confidence,
        set_coverage=bundle.config.set_coverage,
        explanation=explanation,
    )


def _label_frame(
    *,
    member_id: np.ndarray,
    cutoff: pd.Timestamp,
    action_code: np.ndarray,
    source: str,
    weight: float,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "member_id": np.asarray(member_id, dtype="int64"),
            "cutoff": pd.Series([cutoff] * len(member_id), dtype="datetime64[ns, UTC]"),
            "action_code": np.asarray(action_code, dtype=object),
            "source": source,
            "weight": float(weight),
        },
        columns=list(LABEL_COLUMNS),
    )


def _quantile(values: np.ndarray, q: float) -> float:
    values = values[~np.isnan(values)]
    return float(np.quantile(values, q)) if len(values) else np.inf


def _join(
    features: pd.DataFrame, labels: pd.DataFrame, codes: tuple[str, ...]
) -> tuple[pd.DataFrame, dict[str, int]]:
    missing = [column for column in LABEL_COLUMNS if column not in labels.columns]
    if missing:
        raise ValueError(f"labels lack columns: {missing}")
    if list(features.index.names) != ["cutoff", "member_id"]:
        raise ValueError("features must be indexed by (cutoff, member_id): use build_feature_panel")
    table = labels.loc[:, list(LABEL_COLUMNS)].copy()
    table["cutoff"] = pd.to_datetime(table["cutoff"], utc=True)
    table["member_id"] = table["member_id"].astype("int64")
    known = table["action_code"].isin(codes)
    table = table[known]
    keys = pd.MultiIndex.from_arrays([table["cutoff"], table["member_id"]])
    panel = features.copy()
    panel.index = pd.MultiIndex.from_arrays(
        [
            pd.to_datetime(panel.index.get_level_values("cutoff"), utc=True),
            panel.index.get_level_values("member_id").astype("int64"),
        ],
        names=["cutoff", "member_id"],
    )
    found = keys.isin(panel.index)
    table = table[found]
    joined = pd.concat(
        [table.reset_index(drop=True), panel.loc[keys[found]].reset_index(drop=True)], axis=1
    )
    joined["class_index"] = joined["action_code"].map({c: i for i, c in enumerate(codes)})
    return joined, {"unknown_action": int((~known).sum()), "no_features": int((~found).sum())}


def _time_split(rows: pd.DataFrame, config: NextActionConfig) -> tuple[np.ndarray, ...]:
    keys = pd.to_datetime(rows["cutoff"], utc=True).astype("int64").to_numpy()
    pairs = pd.DataFrame({"cutoff": keys, "member_id": rows["member_id"].to_numpy()})
    unique = pairs.drop_duplicates().reset_index(drop=True)
    unique["tie"] = np.random.default_rng(config.seed).permutation(len(unique))
    unique = unique.sort_values(["cutoff", "tie"]).reset_index(drop=True)
    unique["rank"] = np.arange(len(unique))
    rank = pairs.merge(unique, on=["cutoff", "member_id"], how="left")["rank"].to_numpy()
    position = rank / max(len(unique), 1)
    train = position < config.train_share
    valid = (position >= config.train_share) & (
        position < config.train_share + config.validation_share
    )
    calib = ~(train | valid)
    if not (train.any() and valid.any() and calib.any()):
        raise InsufficientHistoryError("too few member-cutoffs for train/validation/calibration")
    return train, valid, calib


def _eligibility(
    eligibility: pd.DataFrame | np.ndarray | None, index: pd.Index, codes: tuple[str, ...], n: int
) -> np.ndarray:
    if eligibility is None:
        return np.ones((n, len(codes)), dtype=bool)
    if isinstance(eligibility, pd.DataFrame):
        table = eligibility.reindex(index=index, columns=list(codes), fill_value=False)
        return table.astype("boolean").fillna(False).to_numpy(dtype=bool)
    allowed = np.asarray(eligibility, dtype=bool)
    if allowed.shape != (n, len(codes)):
        raise ValueError(f"eligibility has shape {allowed.shape}, expected {(n, len(codes))}")
    return allowed


def _report(
    rows: pd.DataFrame,
    calib: np.ndarray,
    calib_probs: np.ndarray,
    y: np.ndarray,
    lac: conformal.LacSets,
    codes: tuple[str, ...],
    trained: np.ndarray,
    dropped: dict[str, int],
    config: NextActionConfig,
) -> dict[str, Any]:
    """Held-out metrics on the calibration rows, overall and per source.

    Coverage is measured honestly by 2-fold cross-conformal on those rows (threshold from one
    half, coverage on the other, and back), since the deployed threshold was fitted on all.
    """
    y_cal = y[calib]
    halves = np.random.default_rng(config.seed).permutation(len(y_cal)) % 2 == 0
    sets = np.zeros_like(calib_probs, dtype=bool)
    for fit_half in (halves, ~halves):
        if fit_half.sum() == 0 or (~fit_half).sum() == 0:
            sets[:] = lac.sets(calib_probs)
            break
        half = conformal.fit_lac(
            probabilities=calib_probs[fit_half],
            labels=y_cal[fit_half],
            coverage=config.set_coverage,
        )
        sets[~fit_half] = half.sets(calib_probs[~fit_half])
    sources = rows["source"].to_numpy()[calib]
    by_source = {
        source: multiclass_metrics(
            labels=y_cal[sources == source],
            probabilities=calib_probs[sources == source],
            sets=sets[sources == source],
            nominal_coverage=config.set_coverage,
        )
        for source in SOURCES
        if (sources == source).any()
    }
    return {
        "metrics": multiclass_metrics(
            labels=y_cal, probabilities=calib_probs, sets=sets, nominal_coverage=config.set_coverage
        ),
        "by_source": by_source,
        "set_threshold": lac.threshold,
        "action_codes": list(codes),
        "trained_classes": [code for code, seen in zip(codes, trained, strict=True) if seen],
        "absent_classes": [code for code, seen in zip(codes, trained, strict=True) if not seen],
        "rows": {"total": len(rows), "calibration": int(calib.sum()), "dropped": dropped},
        "class_counts": {code: int((y == i).sum()) for i, code in enumerate(codes)},
        "config": asdict(config),
    }
