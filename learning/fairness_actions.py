"""Fairness of next actions per group: the arithmetic of `learning.fairness_stats`, applied
to the actions decisions settle. One row of the frame of `action_fairness_report` is one
decided review that settles an action (a next-action review, or a case's action side): the
groups, the action the model recommended (`model`) and the one the decision settled on
(`final`), as action codes ("no_action" is an action like any other), whether a person decided
it and whether it was held out (a control group). Per group and per decider, the share offered
each action; for people's decisions alone, how often they changed the action. Between groups,
per action: demographic parity (difference, ratio), and the difference of the override rates.
Actions have no outcome to set them against here (which action would have kept a member is not
observed), so there are no true or false positive rates and no calibration.
"""

from dataclasses import dataclass, field

import pandas as pd

from learning.fairness_attributes import (
    ATTRIBUTES,
    BUILT_IN,
    NOT_RECORDED,
    AuditedAttributes,
    ordered_counts,
)
from learning.fairness_stats import (
    CALIBRATION,
    DECIDERS,
    ODDS,
    OVERRIDE_RATE,
    OVERRIDES,
    PARITY,
    SELECTION,
    AttributeFairness,
    Breach,
    GroupRate,
    Limits,
    ReportLookups,
    breaches,
    disparity,
    measure,
)

ACTION_FRAME_COLUMNS = (*ATTRIBUTES, "model", "final", "by_person", "held_out")
# What the limits judge of next actions: the equalized-odds and calibration limits need an
# outcome per action, which is not observed.
ACTION_METRICS = (PARITY, OVERRIDE_RATE)
NOT_APPLICABLE_TO_ACTIONS = (ODDS, CALIBRATION)


@dataclass(frozen=True)
class ActionShares:
    """One action's share of a group's decisions: as the model recommended it, as decided."""

    action: str
    model: GroupRate
    final: GroupRate


@dataclass(frozen=True)
class ActionGroupRow:
    """A group: the share offered each action (in the report's order of actions), and the
    share of its people's decisions that changed the recommended action."""

    group: str
    n: int
    too_small: bool
    actions: list[ActionShares]
    override_rate: GroupRate

    def share(self, decider: str, action: str) -> GroupRate:
        shares = next(item for item in self.actions if item.action == action)
        return getattr(shares, decider)


@dataclass(frozen=True)
class ActionAttributeFairness(AttributeFairness):
    """An attribute's groups with their shares of each action (`ActionGroupRow`)."""

    groups: list[ActionGroupRow]


@dataclass(frozen=True)
class ActionFairnessReport(ReportLookups):
    decisions: int
    by_person: int
    held_out: int
    actions: list[str]
    limits: Limits
    attributes: list[ActionAttributeFairness]
    breaches: list[Breach] = field(default_factory=list)


def empty_action_frame(audited: AuditedAttributes = BUILT_IN) -> pd.DataFrame:
    return pd.DataFrame({column: [] for column in (*ACTION_FRAME_COLUMNS, *audited.marked)})


def _offered(decider: str, action: str) -> str:
    """The column (added by `_action_columns`) saying whether `decider` chose `action`."""
    return f"{decider}={action}"


def _action_columns(frame: pd.DataFrame, actions: list[str]) -> pd.DataFrame:
    """One boolean column per decider and action ("model=discount"), and `override_rate`: the
    decision settled on another action than the model's."""
    columns = {
        _offered(decider, action): frame[decider] == action
        for decider in DECIDERS
        for action in actions
    }
    columns[OVERRIDE_RATE] = frame["model"] != frame["final"]
    return frame.assign(**columns)


def action_attribute_fairness(
    frame: pd.DataFrame,
    attribute: str,
    actions: list[str],
    limits: Limits,
    audited: AuditedAttributes = BUILT_IN,
) -> ActionAttributeFairness:
    """Every group of `attribute` (the frame with `_action_columns`) and, per action, the
    comparisons between them; then the override rates'."""
    size = limits.min_group_size
    frame = frame.assign(**{attribute: frame[attribute].fillna("").replace("", NOT_RECORDED)})
    measured = {
        (decider, action): measure(
            frame,
            attribute,
            SELECTION,
            y_true=_offered(decider, action),
            y_pred=_offered(decider, action),
            min_size=size,
        )
        for decider in DECIDERS
        for action in actions
    }
    people = frame[frame["by_person"].astype(bool)]
    overrides = measure(
        people, attribute, SELECTION, y_true=OVERRIDE_RATE, y_pred=OVERRIDE_RATE, min_size=size
    )
    rows = [
        ActionGroupRow(
            group=str(group),
            n=int(n),
            too_small=n < size,
            actions=[
                ActionShares(
                    action,
                    model=measured[("model", action)].of(str(group)),
                    final=measured[("final", action)].of(str(group)),
                )
                for action in actions
            ],
            override_rate=overrides.of(str(group)),
        )
        for group, n in ordered_counts(frame[attribute])
    ]
    disparities = [
        disparity(measured[(decider, action)], decider=decider, metric=PARITY, action=action)
        for action in actions
        for decider in DECIDERS
    ]
    disparities.append(disparity(overrides, decider=OVERRIDES, metric=OVERRIDE_RATE))
    return ActionAttributeFairness(
        attribute=attribute,
        label=audited.labels[attribute],
        is_protected=attribute in audited.protected,
        groups=rows,
        disparities=disparities,
    )


def action_fairness_report(
    frame: pd.DataFrame, limits: Limits | None = None, audited: AuditedAttributes = BUILT_IN
) -> ActionFairnessReport:
    """Per attribute, the share offered each action (every action that the model recommended
    or a decision settled on, in code order) and the override rates, and the breaches of
    `limits` (parity per action, overrides; equalized odds and calibration do not apply)."""
    limits = limits or Limits()
    frame = frame if not frame.empty else empty_action_frame(audited)
    actions = sorted(set(frame["model"]) | set(frame["final"]))
    wide = _action_columns(frame, actions)
    attributes = [
        action_attribute_fairness(wide, name, actions, limits, audited) for name in audited.labels
    ]
    return ActionFairnessReport(
        decisions=len(frame),
        by_person=int(frame["by_person"].astype(bool).sum()),
        held_out=int(frame["held_out"].astype(bool).sum()),
        actions=actions,
        limits=limits,
        attributes=attributes,
        breaches=breaches(attributes, limits),
    )
