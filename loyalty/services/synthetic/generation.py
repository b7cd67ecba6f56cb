"""Synthetic members and events at any scale, each member's true churn probability known.

Members are drawn with latent habits (`members`), act by one mechanism before and after the
cutoff (`events`), and their true churn probability given those habits and their history is
stored apart from everything a model reads (`truth`). Members and events go through the import
services (same validation and writer), so the same seed always gives the same data and a run
with the same arguments changes nothing.
"""

import time
from dataclasses import dataclass
from datetime import date

import pandas as pd
from django.db import connection, transaction

from loyalty.exceptions import ConflictError
from loyalty.models import Member, SyntheticTruth
from loyalty.services.imports.members_and_events import (
    ImportResult,
    ProgressCallback,
    import_events,
    import_members,
)
from loyalty.services.imports.staging import load_staging_table, staging_table
from loyalty.services.imports.validation import ColumnKind
from loyalty.services.synthetic.events import event_frames, simulate_activity
from loyalty.services.synthetic.members import (
    MIN_HISTORY_DAYS,
    SyntheticSpec,
    latent_chunks,
    member_frames,
)
from loyalty.services.synthetic.truth import true_churn

_TRUTH_STAGE = "loyalty_synthetic_truth_import"
_TRUTH_STAGE_COLUMNS = (
    ("external_id", ColumnKind.TEXT),
    ("churn_probability", ColumnKind.FLOAT),
    ("churned", ColumnKind.BOOLEAN),
)


@dataclass(frozen=True)
class SyntheticResult:
    spec: SyntheticSpec
    members: ImportResult
    events: ImportResult
    truths_created: int
    churned: int
    mean_churn_probability: float
    seconds: float

    def summary_lines(self) -> list[str]:
        spec = self.spec
        return [
            f"seed {spec.seed}: {spec.members:,} members, events from {spec.start} to the "
            f"cutoff {spec.cutoff:%Y-%m-%d} and {spec.horizon_days} days after, "
            f"in {self.seconds:.1f} s",
            self.members.summary(),
            self.events.summary(),
            f"truth: {self.truths_created:,} rows created; {self.churned:,} members churned "
            f"in the horizon; mean true churn probability {self.mean_churn_probability:.3f}",
        ]


def generate_members(
    *,
    members: int,
    seed: int,
    start: date = date(2025, 1, 1),
    days: int = 365,
    horizon_days: int = 90,
    progress: ProgressCallback | None = None,
) -> SyntheticResult:
    """Generate and store `members` synthetic members, their events and their truth.

    Running it again with the same arguments changes nothing. A seed already used with another
    window or horizon raises ConflictError: one seed is one dataset.
    """
    if members < 1 or days < MIN_HISTORY_DAYS or horizon_days < 1:
        raise ValueError(
            f"members must be positive, days at least {MIN_HISTORY_DAYS}, horizon positive."
        )
    spec = SyntheticSpec(
        seed=seed, members=members, start=start, days=days, horizon_days=horizon_days
    )
    started = time.perf_counter()
    clash = SyntheticTruth.objects.filter(seed=seed).exclude(
        cutoff=spec.cutoff, horizon_days=horizon_days
    )
    if clash.exists():
        raise ConflictError(
            f"Seed {seed} was generated with another window or horizon; use a new seed.",
            seed=seed,
        )
    member_result = import_members(
        source=member_frames(spec),
        source_name=f"synthetic seed={seed}",
        progress=progress,
    )
    event_result = import_events(
        source=event_frames(spec),
        source_name=f"synthetic seed={seed}",
        progress=progress,
    )
    created, churned, probability_sum = _store_truth(spec)
    return SyntheticResult(
        spec=spec,
        members=member_result,
        events=event_result,
        truths_created=created,
        churned=churned,
        mean_churn_probability=probability_sum / members,
        seconds=time.perf_counter() - started,
    )


def _store_truth(spec: SyntheticSpec) -> tuple[int, int, float]:
    """Write each member's truth once: (rows created, members churned, sum of probabilities)."""
    truths, members = SyntheticTruth._meta.db_table, Member._meta.db_table
    cutoff = connection.ops.adapt_datetimefield_value(spec.cutoff)
    created = churned = 0
    probability_sum = 0.0
    with transaction.atomic(), connection.cursor() as cursor:
        with staging_table(cursor=cursor, table=_TRUTH_STAGE, columns=_TRUTH_STAGE_COLUMNS):
            for index, latent, wanted in latent_chunks(spec):
                probability, churned_now = true_churn(
                    spec, latent, simulate_activity(spec, index, latent)
                )
                frame = pd.DataFrame(
                    {
                        "external_id": spec.external_id(latent["number"].to_numpy()[:wanted]),
                        "churn_probability": probability[:wanted],
                        "churned": churned_now[:wanted],
                    }
                )
                load_staging_table(
                    cursor=cursor, table=_TRUTH_STAGE, columns=_TRUTH_STAGE_COLUMNS, frame=frame
                )
                cursor.execute(
                    f"INSERT INTO {truths} "
                    "(member_id, seed, cutoff, horizon_days, churn_probability, churned) "
                    f"SELECT m.id, %s, %s, %s, s.churn_probability, s.churned "
                    f"FROM {_TRUTH_STAGE} s JOIN {members} m ON m.external_id = s.external_id "
                    "WHERE TRUE ON CONFLICT (member_id) DO NOTHING",
                    [spec.seed, cutoff, spec.horizon_days],
                )
                created += cursor.rowcount
                churned += int(frame["churned"].sum())
                probability_sum += float(frame["churn_probability"].sum())
    return created, churned, probability_sum
