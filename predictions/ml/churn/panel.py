"""The churn training panel under a row budget: every cutoff training reads (the training
cutoffs, the season's twins, the evaluation cutoff) holds at most `rows_per_cutoff` members,
a stable sample of those active there (`predictions.ml.row_budget`), drawn before any feature
is built. Memory then stays bounded whatever the number of members: the panel never holds
more than `config.max_training_rows` rows, and no cutoff builds features for more members
than it keeps. Below the budget every active member has a row, as without one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from predictions.ml.churn.rows import Rows, active_at, member_rows
from predictions.ml.contracts import ChurnConfig
from predictions.ml.features import PreparedEvents
from predictions.ml.row_budget import budget_report, rows_per_cutoff, within_budget


@dataclass(frozen=True)
class Panel:
    """The rows of each training cutoff (oldest first) and each one's active and kept
    member counts, keyed by the cutoff's date."""

    rows: list[Rows]
    counts: dict[str, dict[str, int]]
    rows_per_cutoff: int


def cutoff_budget(config: ChurnConfig, cutoffs: Sequence[pd.Timestamp]) -> int:
    """Members per cutoff: `max_training_rows` spread over the training cutoffs."""
    return rows_per_cutoff(config.max_training_rows, len(cutoffs))


def budgeted_rows(
    prepared: PreparedEvents,
    roster: pd.DataFrame,
    cutoff: pd.Timestamp,
    horizon_days: int,
    config: ChurnConfig,
    codes: tuple[str, ...],
    budget: int,
) -> tuple[Rows, dict[str, int]]:
    """One cutoff's rows within `budget`, and how many members were active and kept."""
    active = active_at(prepared, roster, cutoff, config)
    kept = active[within_budget(active, budget=budget, seed=config.seed)]
    rows = member_rows(prepared, roster, cutoff, horizon_days, config, codes, kept)
    return rows, {"active": int(len(active)), "kept": int(len(kept))}


def build_panel(
    *,
    prepared: PreparedEvents,
    roster: pd.DataFrame,
    cutoffs: Sequence[pd.Timestamp],
    horizon_days: int,
    config: ChurnConfig,
    codes: tuple[str, ...],
    on_cutoff: Callable[[pd.Timestamp], None] | None = None,
) -> Panel:
    """Each training cutoff's rows within the budget (`on_cutoff` hears each one built)."""
    budget = cutoff_budget(config, cutoffs)
    rows, counts = [], {}
    for cutoff in cutoffs:
        part, counts[cutoff.date().isoformat()] = budgeted_rows(
            prepared, roster, cutoff, horizon_days, config, codes, budget
        )
        rows.append(part)
        if on_cutoff is not None:
            on_cutoff(cutoff)
    return Panel(rows=rows, counts=counts, rows_per_cutoff=budget)


def panel_report(
    panel: Panel, config: ChurnConfig, evaluation: dict[str, int] | None
) -> dict[str, Any]:
    """`report["row_budget"]`: the rule, the limits, the training cutoffs' active and kept
    members and the evaluation cutoff's (None when there was no evaluation)."""
    report = budget_report(
        max_rows=config.max_training_rows, per_cutoff=panel.rows_per_cutoff, counts=panel.counts
    )
    report["training_rows"] = int(sum(c["kept"] for c in panel.counts.values()))
    report["evaluation"] = evaluation
    report["sampled"] = report["sampled"] or bool(
        evaluation and evaluation["kept"] < evaluation["active"]
    )
    return report
