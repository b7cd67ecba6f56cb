"""Fairness of the model and of the decisions, per group of a protected attribute (and of the
tier): the arithmetic, on a DataFrame, with fairlearn's `MetricFrame`. No Django, so that the
figures can be checked against fairlearn on a planted population without a database
(`learning.fairness` reads the decisions into that frame).

One row of the frame is one decided churn review: the member's groups (`age_band`, `region`,
`tier`, and one column per marked attribute: `learning.fairness_attributes`), the model's
score and churn call, the call the decision settled on (`final`: the policy's auto-approvals
and people's decisions alike), whether a person decided it, and the observed churn once the
prediction's horizon has passed (None before).

Per group and per decider (the model; the final decisions): the selection rate (share called
churn), true and false positive rates against outcomes; for the model, calibration (mean
predicted probability against observed churn). For people's decisions alone: how often they
overrode the model's call, and in which direction. Every rate carries its Wilson interval and
its n; a rate resting on fewer than `min_group_size` items is reported as too small (no value),
never as zero, and left out of the comparisons between groups. Between the groups of an
attribute (its "not recorded" group left out): the highest minus the lowest rate (demographic
parity, equalized odds: the larger of the TPR and FPR differences) with Newcombe's interval,
and the lowest over the highest (Katz's log interval). Next actions: `learning.fairness_actions`.
"""

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    false_positive_rate,
    mean_prediction,
    selection_rate,
    true_positive_rate,
)

from learning.fairness_attributes import (
    ATTRIBUTES,
    BUILT_IN,
    NOT_RECORDED,
    AuditedAttributes,
    ordered_counts,
)
from learning.quality_stats import Difference, Estimate, Z, share_difference, wilson

FRAME_COLUMNS = (*ATTRIBUTES, "score", "model", "final", "by_person", "outcome")

DECIDERS = {"model": "Model", "final": "Final decisions (auto + people)"}
OVERRIDES = "overrides"
DECIDER_LABELS = {**DECIDERS, OVERRIDES: "People's overrides"}
# The comparisons between groups, as the limits and the API name them.
PARITY, ODDS, CALIBRATION = "demographic_parity", "equalized_odds", "calibration"
OVERRIDE_RATE, TOWARD_CHURN, TOWARD_STAY = "override_rate", "toward_churn", "toward_stay"
# What a comparison of one action's share is called (`Disparity.action` names the action).
ACTION_METRIC_LABELS = {PARITY: "Demographic parity (share offered {action})"}
METRIC_LABELS = {
    PARITY: "Demographic parity (share called churn)",
    ODDS: "Equalized odds (TPR, FPR against outcomes)",
    CALIBRATION: "Calibration (predicted − observed churn)",
    OVERRIDE_RATE: "Override rate",
    TOWARD_CHURN: "Overrides toward churn",
    TOWARD_STAY: "Overrides toward stay",
}


@dataclass(frozen=True)
class Limits:
    """What the check tolerates (None: that comparison is not judged)."""

    min_group_size: int = 30
    max_parity_difference: float | None = 0.1
    min_parity_ratio: float | None = 0.8
    max_equalized_odds_difference: float | None = 0.1
    max_calibration_difference: float | None = 0.1
    max_override_difference: float | None = 0.1


@dataclass(frozen=True)
class GroupRate:
    """One group's rate with its Wilson interval; `too_small`: its n is under the minimum
    group size, so it has no value here and no part in the comparisons."""

    estimate: Estimate
    too_small: bool

    @property
    def value(self) -> float | None:
        return None if self.too_small else self.estimate.value

    @property
    def n(self) -> int:
        return self.estimate.n

    @property
    def low(self) -> float | None:
        return None if self.too_small else self.estimate.low

    @property
    def high(self) -> float | None:
        return None if self.too_small else self.estimate.high

    @property
    def hits(self) -> int | None:
        return None if self.too_small else self.estimate.hits

    @property
    def shown(self) -> str:
        if self.too_small:
            return f"too small (n={self.n})"
        return f"{self.estimate.shown} n={self.n}"


@dataclass(frozen=True)
class DeciderRates:
    selection: GroupRate
    true_positive: GroupRate
    false_positive: GroupRate


@dataclass(frozen=True)
class Calibration:
    """Among the group's items with an outcome: the mean predicted churn probability, the
    observed churn, and predicted − observed (interval: the observed share's)."""

    predicted: float | None
    observed: GroupRate
    gap: Difference

    @property
    def predicted_shown(self) -> str:
        return "–" if self.predicted is None else f"{self.predicted * 100:.1f} %"


@dataclass(frozen=True)
class Overrides:
    """People's decisions in the group: the share that changed the model's churn call, and the
    shares that changed it toward churn and toward stay (all of the group's people's decisions:
    the two directions add up to the override rate)."""

    override_rate: GroupRate
    toward_churn: GroupRate
    toward_stay: GroupRate


@dataclass(frozen=True)
class GroupRow:
    group: str
    n: int
    too_small: bool
    rates: dict[str, DeciderRates]
    calibration: Calibration
    overrides: Overrides


@dataclass(frozen=True)
class Ratio:
    """Lowest over highest rate, with Katz's log interval (None where a count is 0)."""

    value: float | None
    low: float | None = None
    high: float | None = None

    @property
    def shown(self) -> str:
        if self.value is None:
            return "–"
        if self.low is None:
            return f"{self.value:.2f}"
        return f"{self.value:.2f} ({self.low:.2f}–{self.high:.2f})"


@dataclass(frozen=True)
class Disparity:
    """The spread of one rate between an attribute's groups that are large enough: highest −
    lowest with Newcombe's interval, lowest / highest, and which groups those are."""

    metric: str
    decider: str
    difference: Difference
    ratio: Ratio
    highest: str | None
    lowest: str | None
    groups_compared: int
    # The action whose share is compared (next actions); None for churn and for overrides.
    action: str | None = None

    @property
    def key(self) -> str:
        return _key(self.decider, self.metric, self.action)

    @property
    def label(self) -> str:
        return metric_label(self.metric, self.action)


def _key(decider: str, metric: str, action: str | None) -> str:
    return f"{decider}.{metric}" + ("" if action is None else f".{action}")


def metric_label(metric: str, action: str | None = None) -> str:
    if action is None:
        return METRIC_LABELS[metric]
    return ACTION_METRIC_LABELS[metric].format(action=action)


@dataclass(frozen=True)
class AttributeFairness:
    attribute: str
    label: str
    is_protected: bool
    groups: list[GroupRow]
    disparities: list[Disparity]

    def disparity(self, decider: str, metric: str, action: str | None = None) -> Disparity:
        return next(
            d
            for d in self.disparities
            if (d.decider, d.metric, d.action) == (decider, metric, action)
        )


@dataclass(frozen=True)
class Breach:
    attribute: str
    decider: str
    metric: str
    value: float
    limit: float
    bound: str  # "max" or "min": which side of the limit is allowed
    action: str | None = None  # the action whose share breached (next actions)
    attribute_label: str = ""  # how the report names the attribute (a marked one's label)

    @property
    def key(self) -> str:
        """Which limit: attribute, decider, comparison (and action) and side."""
        return f"{self.attribute}.{self.disparity_key}.{self.bound}"

    @property
    def disparity_key(self) -> str:
        """The `Disparity.key` of the comparison that breached."""
        return _key(self.decider, self.metric, self.action)

    @property
    def shown(self) -> str:
        what = "ratio" if self.bound == "min" else "difference"
        side = "below" if self.bound == "min" else "above"
        return (
            f"{self.attribute_label or ATTRIBUTES.get(self.attribute, self.attribute)}, "
            f"{DECIDER_LABELS[self.decider]}: "
            f"{metric_label(self.metric, self.action)} {what} {self.value:.3f} {side} the "
            f"limit {self.limit:.3f}"
        )


class ReportLookups:
    """What a report (churn's, next actions') answers about its `attributes` and `breaches`."""

    attributes: list
    breaches: list

    def attribute(self, name: str):
        return next(a for a in self.attributes if a.attribute == name)

    def breached(self, attribute: str) -> set[str]:
        """The `Disparity.key`s of `attribute` past a limit."""
        return {b.disparity_key for b in self.breaches if b.attribute == attribute}


@dataclass(frozen=True)
class FairnessReport(ReportLookups):
    decisions: int
    with_outcome: int
    by_person: int
    limits: Limits
    attributes: list[AttributeFairness]
    breaches: list[Breach] = field(default_factory=list)


def empty_frame(audited: AuditedAttributes = BUILT_IN) -> pd.DataFrame:
    return pd.DataFrame({column: [] for column in (*FRAME_COLUMNS, *audited.marked)})


# --- per group, with MetricFrame -------------------------------------------------------------
# MetricFrame hands a metric its group's rows one element at a time (an `np.stack` of each):
# on 100,000 decisions the report's few dozen metrics took half a minute. So the rows are
# first counted into cells of equal (group, truth, prediction), and fairlearn weighs each cell
# by its count (`sample_weight`): the same rates, from a handful of rows per group.

OVERRIDE_NAMES = (OVERRIDE_RATE, TOWARD_CHURN, TOWARD_STAY)
RATE_NAMES = ("selection", "true_positive", "false_positive")


def _weight(y_true, y_pred, sample_weight) -> float:
    return float(np.sum(sample_weight))


def _positives(y_true, y_pred, sample_weight) -> float:
    return float(np.sum(sample_weight[np.asarray(y_true) == 1]))


def _negatives(y_true, y_pred, sample_weight) -> float:
    return float(np.sum(sample_weight[np.asarray(y_true) == 0]))


def _observed(y_true, y_pred, sample_weight) -> float:
    return float(np.average(y_true, weights=sample_weight))


@dataclass(frozen=True)
class _Rate:
    """A fairlearn rate and what its n counts (every item, the churners, the stayers)."""

    metric: Callable
    n: Callable


SELECTION = _Rate(selection_rate, _weight)
TRUE_POSITIVE = _Rate(true_positive_rate, _positives)
FALSE_POSITIVE = _Rate(false_positive_rate, _negatives)
NOTHING = GroupRate(wilson(0, 0), too_small=True)


def _metric_frame(cells: pd.DataFrame, metrics: dict[str, Callable]) -> MetricFrame:
    weights = cells["weight"].to_numpy(dtype=float)
    return MetricFrame(
        metrics=metrics,
        y_true=cells["y_true"].to_numpy(),
        y_pred=cells["y_pred"].to_numpy(),
        sensitive_features=cells["group"].rename("group"),
        sample_params={name: {"sample_weight": weights} for name in metrics},
    )


def _cells(frame: pd.DataFrame, attribute: str, *, y_true: str, y_pred: str) -> pd.DataFrame:
    """(group, y_true, y_pred, weight): the rows of `frame` counted by their values."""
    values = pd.DataFrame(
        {
            "group": frame[attribute].to_numpy(dtype=object),
            "y_true": frame[y_true].astype(bool).astype(int).to_numpy(),
            "y_pred": frame[y_pred].astype(bool).astype(int).to_numpy(),
        }
    )
    counted = values.groupby(["group", "y_true", "y_pred"]).size()
    return counted.rename("weight").reset_index()


def _rate(value, n, min_size: int) -> GroupRate:
    """A fairlearn rate on n items as a Wilson estimate (its hits are rate × n)."""
    n = round(float(n))
    hits = 0 if n == 0 or pd.isna(value) else round(float(value) * n)
    return GroupRate(wilson(hits, n), too_small=n < min_size)


@dataclass(frozen=True)
class _Measured:
    """One rate of every group of a population, and the cells it was measured on."""

    rate: _Rate
    cells: pd.DataFrame
    by_group: dict[str, GroupRate]

    def of(self, group: str) -> GroupRate:
        return self.by_group.get(group, NOTHING)


def measure(frame, attribute, rate: _Rate, *, y_true, y_pred, min_size) -> _Measured:
    cells = _cells(frame, attribute, y_true=y_true, y_pred=y_pred)
    if cells.empty:
        return _Measured(rate, cells, {})
    table = _metric_frame(cells, {"rate": rate.metric, "n": rate.n}).by_group
    return _Measured(
        rate,
        cells,
        {str(group): _rate(row["rate"], row["n"], min_size) for group, row in table.iterrows()},
    )


def _calibrations(known: pd.DataFrame, attribute: str, min_size: int) -> dict[str, Calibration]:
    """Per group: fairlearn's mean prediction (on cells of equal outcome holding their mean
    score, weighed by their count) and the observed churn."""
    if known.empty:
        return {}
    cells = (
        known.assign(group=known[attribute], y_true=known["outcome"].astype(bool).astype(int))
        .groupby(["group", "y_true"])
        .agg(y_pred=("score", "mean"), weight=("score", "size"))
        .reset_index()
    )
    metrics = {"predicted": mean_prediction, "observed": _observed, "n": _weight}
    table = _metric_frame(cells, metrics).by_group
    found = {}
    for group, row in table.iterrows():
        observed = _rate(row["observed"], row["n"], min_size)
        predicted = None if observed.too_small else float(row["predicted"])
        found[str(group)] = Calibration(predicted, observed, _gap(predicted, observed))
    return found


def _gap(predicted: float | None, observed: GroupRate) -> Difference:
    estimate = observed.estimate
    if predicted is None:
        return Difference(None, None, None)
    return Difference(
        predicted - estimate.value, predicted - estimate.high, predicted - estimate.low
    )


NO_CALIBRATION = Calibration(None, NOTHING, Difference(None, None, None))


def _override_columns(people: pd.DataFrame) -> pd.DataFrame:
    model, final = people["model"].astype(bool), people["final"].astype(bool)
    return people.assign(
        override_rate=model != final, toward_churn=final & ~model, toward_stay=model & ~final
    )


# --- between groups --------------------------------------------------------------------------


def _finite(value) -> float | None:
    """A ratio of two zero rates is undefined (fairlearn: NaN): None, which JSON can carry."""
    value = float(value)
    return value if math.isfinite(value) else None


def _katz(low: Estimate, high: Estimate) -> Ratio:
    if high.value in (None, 0):
        return Ratio(None)
    value = low.value / high.value
    if not low.hits or not high.hits:
        return Ratio(value)
    spread = Z * math.sqrt(1 / low.hits - 1 / low.n + 1 / high.hits - 1 / high.n)
    return Ratio(value, value * math.exp(-spread), value * math.exp(spread))


def _no_disparity(metric: str, decider: str) -> Disparity:
    return Disparity(metric, decider, Difference(None, None, None), Ratio(None), None, None, 0)


def disparity(
    measured: _Measured, *, decider: str, metric: str, action: str | None = None
) -> Disparity:
    """fairlearn's between-groups difference and ratio over the groups large enough (not
    "not recorded"), with the intervals of the highest and lowest group's rates."""
    groups = sorted(
        group
        for group, rate in measured.by_group.items()
        if group != NOT_RECORDED and not rate.too_small
    )
    if len(groups) < 2:
        return replace(_no_disparity(metric, decider), action=action)
    cells = measured.cells[measured.cells["group"].isin(groups)]
    metric_frame = _metric_frame(cells, {"rate": measured.rate.metric})
    by_group = metric_frame.by_group["rate"]
    highest, lowest = str(by_group.idxmax()), str(by_group.idxmin())
    top, bottom = measured.by_group[highest].estimate, measured.by_group[lowest].estimate
    newcombe = share_difference(top, bottom)
    katz = _katz(bottom, top)
    return Disparity(
        metric,
        decider,
        Difference(float(metric_frame.difference()["rate"]), newcombe.low, newcombe.high),
        Ratio(_finite(metric_frame.ratio()["rate"]), katz.low, katz.high),
        highest,
        lowest,
        len(groups),
        action,
    )


def _odds(tpr: Disparity, fpr: Disparity, *, decider: str) -> Disparity:
    """Equalized odds: the larger of the two differences, the smaller of the two ratios
    (fairlearn's `equalized_odds_difference` and `_ratio`), each with its own interval."""
    parts = [d for d in (tpr, fpr) if d.difference.value is not None]
    if not parts:
        return _no_disparity(ODDS, decider)
    widest = max(parts, key=lambda d: d.difference.value)
    ratios = [d.ratio for d in parts if d.ratio.value is not None]
    narrowest = min(ratios, key=lambda r: r.value) if ratios else Ratio(None)
    return Disparity(
        ODDS,
        decider,
        widest.difference,
        narrowest,
        widest.highest,
        widest.lowest,
        min(d.groups_compared for d in parts),
    )


def _calibration_disparity(rows: list[GroupRow]) -> Disparity:
    """Highest − lowest calibration gap (predicted − observed) between groups with enough
    outcomes; its interval: the predicted difference minus Newcombe's interval of the observed
    difference (the predicted means are taken as known)."""
    shown = [
        row for row in rows if row.group != NOT_RECORDED and row.calibration.gap.value is not None
    ]
    if len(shown) < 2:
        return _no_disparity(CALIBRATION, "model")
    top = max(shown, key=lambda row: (row.calibration.gap.value, row.group))
    bottom = min(shown, key=lambda row: (row.calibration.gap.value, row.group))
    predicted = top.calibration.predicted - bottom.calibration.predicted
    observed = share_difference(
        top.calibration.observed.estimate, bottom.calibration.observed.estimate
    )
    return Disparity(
        CALIBRATION,
        "model",
        Difference(
            top.calibration.gap.value - bottom.calibration.gap.value,
            predicted - observed.high,
            predicted - observed.low,
        ),
        Ratio(None),
        top.group,
        bottom.group,
        len(shown),
    )


# --- the report ------------------------------------------------------------------------------


def _measurements(frame, attribute, size) -> dict[tuple[str, str], _Measured]:
    """Every rate of every group: per decider, the share called churn over all decisions and
    the error rates over those with an outcome; the override rates over people's decisions."""
    known = frame[frame["outcome"].notna()]
    people = _override_columns(frame[frame["by_person"].astype(bool)])
    found = {}
    for decider in DECIDERS:
        plan = (
            ("selection", frame, SELECTION, decider),
            ("true_positive", known, TRUE_POSITIVE, "outcome"),
            ("false_positive", known, FALSE_POSITIVE, "outcome"),
        )
        for name, population, rate, y_true in plan:
            found[(decider, name)] = measure(
                population, attribute, rate, y_true=y_true, y_pred=decider, min_size=size
            )
    for name in OVERRIDE_NAMES:
        found[(OVERRIDES, name)] = measure(
            people, attribute, SELECTION, y_true=name, y_pred=name, min_size=size
        )
    return found


def attribute_fairness(
    frame: pd.DataFrame, attribute: str, limits: Limits, audited: AuditedAttributes = BUILT_IN
) -> AttributeFairness:
    """Every group of `attribute` (one of `audited`'s) and the comparisons between them."""
    size = limits.min_group_size
    frame = frame.assign(**{attribute: frame[attribute].fillna("").replace("", NOT_RECORDED)})
    measured = _measurements(frame, attribute, size)
    calibrations = _calibrations(frame[frame["outcome"].notna()], attribute, size)
    rows = [
        GroupRow(
            group=str(group),
            n=int(n),
            too_small=n < size,
            rates={
                decider: DeciderRates(
                    **{name: measured[(decider, name)].of(str(group)) for name in RATE_NAMES}
                )
                for decider in DECIDERS
            },
            calibration=calibrations.get(str(group), NO_CALIBRATION),
            overrides=Overrides(
                **{name: measured[(OVERRIDES, name)].of(str(group)) for name in OVERRIDE_NAMES}
            ),
        )
        for group, n in ordered_counts(frame[attribute])
    ]
    disparities = []
    for decider in DECIDERS:
        disparities.append(
            disparity(measured[(decider, "selection")], decider=decider, metric=PARITY)
        )
        tpr, fpr = (
            disparity(measured[(decider, name)], decider=decider, metric=name)
            for name in ("true_positive", "false_positive")
        )
        disparities.append(_odds(tpr, fpr, decider=decider))
    disparities.append(_calibration_disparity(rows))
    disparities += [
        disparity(measured[(OVERRIDES, name)], decider=OVERRIDES, metric=name)
        for name in OVERRIDE_NAMES
    ]
    return AttributeFairness(
        attribute=attribute,
        label=audited.labels[attribute],
        is_protected=attribute in audited.protected,
        groups=rows,
        disparities=disparities,
    )


def breaches(attributes: Iterable, limits: Limits) -> list[Breach]:
    """The comparisons of the protected attributes past their limits (point estimates, over
    groups large enough to compare)."""
    checks = [
        (PARITY, "max", lambda d: d.difference.value, limits.max_parity_difference),
        (PARITY, "min", lambda d: d.ratio.value, limits.min_parity_ratio),
        (ODDS, "max", lambda d: d.difference.value, limits.max_equalized_odds_difference),
        (CALIBRATION, "max", lambda d: d.difference.value, limits.max_calibration_difference),
        (OVERRIDE_RATE, "max", lambda d: d.difference.value, limits.max_override_difference),
        (TOWARD_CHURN, "max", lambda d: d.difference.value, limits.max_override_difference),
        (TOWARD_STAY, "max", lambda d: d.difference.value, limits.max_override_difference),
    ]
    found = []
    for attribute in attributes:
        if not attribute.is_protected:
            continue
        for disparity in attribute.disparities:
            for metric, bound, figure, limit in checks:
                value = figure(disparity)
                if disparity.metric != metric or limit is None or value is None:
                    continue
                if (value > limit) if bound == "max" else (value < limit):
                    found.append(
                        Breach(
                            attribute.attribute,
                            disparity.decider,
                            metric,
                            value,
                            limit,
                            bound,
                            disparity.action,
                            attribute.label,
                        )
                    )
    return found


def fairness_report(
    frame: pd.DataFrame, limits: Limits | None = None, audited: AuditedAttributes = BUILT_IN
) -> FairnessReport:
    """Every attribute's groups and comparisons (`audited`'s: the built-in ones unless told
    otherwise), and the breaches of `limits`."""
    limits = limits or Limits()
    frame = frame if not frame.empty else empty_frame(audited)
    attributes = [attribute_fairness(frame, name, limits, audited) for name in audited.labels]
    return FairnessReport(
        decisions=len(frame),
        with_outcome=int(frame["outcome"].notna().sum()),
        by_person=int(frame["by_person"].astype(bool).sum()),
        limits=limits,
        attributes=attributes,
        breaches=breaches(attributes, limits),
    )
