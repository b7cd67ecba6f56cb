"""Progress of long engine work: its stages in order and the fraction done, told to a callback.

Training functions take `progress: ProgressCallback | None` and call it at stage boundaries and
after each step of a long loop (a cutoff's features, a bootstrap refit, an epoch). The caller
decides what progress means: a command draws lines and bars, a retraining run writes its row
now and then. Plain Python: the engine never learns who is listening.

Each computation keeps a `Progress` with a plan, its stages in the order they run and the share
of the work each is expected to take; a stage that does not run (no sequence model) is jumped
over. Fractions are of the whole computation, in [0, 1], never lower than the previous event's,
and the last event says 1.0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ProgressEvent:
    """Where a computation is: `stage`, the fraction of the whole done, and within the stage
    `done` of `total` steps (`total` None when the stage does not count steps); `detail` is
    for people (which cutoff, which candidate, an epoch's validation loss)."""

    stage: str
    fraction: float
    done: int = 0
    total: int | None = None
    detail: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


class Progress:
    """The stages of one computation, reported to `callback` (nothing is reported when it is
    None, but the stages are still checked against the plan, so that a test without a
    listener catches a stage out of order too)."""

    def __init__(self, callback: ProgressCallback | None, plan: Mapping[str, float]) -> None:
        if not plan or any(share < 0 for share in plan.values()):
            raise ValueError("a progress plan needs stages with non-negative shares")
        whole = float(sum(plan.values())) or 1.0
        self._callback = callback
        self._order = {name: position for position, name in enumerate(plan)}
        self._share = {name: share / whole for name, share in plan.items()}
        self._start: dict[str, float] = {}
        before = 0.0
        for name in plan:
            self._start[name] = before
            before += self._share[name]
        self._stage: str | None = None
        self._done = 0
        self._total: int | None = None
        self._fraction = 0.0

    def stage(self, name: str, *, total: int | None = None, detail: str = "") -> None:
        """Start stage `name` (of `total` steps, when it counts them)."""
        self._enter(name, total)
        self._emit(self._start[name], detail)

    def step(self, *, detail: str = "") -> None:
        """One more step of the current stage done."""
        if self._stage is None:
            raise ValueError("a step before any stage")
        self._done += 1
        within = min(self._done / self._total, 1.0) if self._total else 0.0
        self._emit(self._start[self._stage] + self._share[self._stage] * within, detail)

    def part(self, name: str) -> ProgressCallback:
        """Start stage `name` and return the callback for a computation that reports its own
        progress inside it (the sequence model's epochs): its steps and details become this
        stage's, its fractions are scaled into the stage's share."""
        self.stage(name)
        start, share = self._start[name], self._share[name]

        def forward(event: ProgressEvent) -> None:
            self._done, self._total = event.done, event.total
            self._emit(start + share * min(max(event.fraction, 0.0), 1.0), event.detail)

        return forward

    def nest(self, name: str) -> ProgressCallback:
        """Enter stage `name` without an event of its own and return the callback for a
        computation that runs as that stage and has stages of its own (the engine inside a
        training service): they pass through under their own names, fractions scaled into
        the stage's share."""
        self._enter(name, None)
        start, share = self._start[name], self._share[name]

        def forward(event: ProgressEvent) -> None:
            self._fraction = max(self._fraction, start + share * min(max(event.fraction, 0.0), 1.0))
            if self._callback is not None:
                self._callback(replace(event, fraction=self._fraction))

        return forward

    def finish(self, *, detail: str = "") -> None:
        """The whole computation is done: the last stage at 1.0."""
        if self._stage is None:
            raise ValueError("finished before any stage")
        self._done = self._total if self._total is not None else self._done
        self._emit(1.0, detail)

    def _enter(self, name: str, total: int | None) -> None:
        if name not in self._order:
            raise ValueError(f"stage {name!r} is not in the plan {list(self._order)}")
        if self._stage is not None and self._order[name] <= self._order[self._stage]:
            raise ValueError(f"stage {name!r} after {self._stage!r}: stages run in plan order")
        self._stage, self._done, self._total = name, 0, total

    def _emit(self, fraction: float, detail: str) -> None:
        self._fraction = max(self._fraction, min(max(fraction, 0.0), 1.0))
        if self._callback is not None:
            self._callback(
                ProgressEvent(
                    stage=self._stage or "",
                    fraction=self._fraction,
                    done=self._done,
                    total=self._total,
                    detail=detail,
                )
            )


def labelled(callback: ProgressCallback | None, label: str) -> ProgressCallback | None:
    """The callback for one of several computations told to one listener: `label: ` before
    each stage name (a command that trains two kinds of model one after the other)."""
    if callback is None:
        return None

    def forward(event: ProgressEvent) -> None:
        callback(replace(event, stage=f"{label}: {event.stage}"))

    return forward
