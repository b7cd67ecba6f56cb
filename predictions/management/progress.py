"""Training progress in a terminal: a line per stage, a bar under a stage that counts its steps.

Everything goes to the command's stderr, so that stdout (`train --json`) stays one JSON
object. Lines are written wherever stderr goes (a log keeps the stages and their times); bars
only when stderr is a terminal, and they vanish when their stage ends.
"""

import sys
import time
from collections.abc import Callable

from tqdm import tqdm

from predictions.ml.progress import ProgressEvent


class TrainingProgress:
    """A `ProgressCallback` that draws a training for people (see the module docstring)."""

    def __init__(
        self,
        write: Callable[[str], object],
        *,
        bars: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self._bars = bars
        self._clock = clock
        self._started = clock()
        self._stage: str | None = None
        self._bar: tqdm | None = None

    def __call__(self, event: ProgressEvent) -> None:
        if event.stage != self._stage:
            self.close()
            self._stage = event.stage
            self._write(f"[{event.fraction:4.0%} {self._elapsed()}] {event.stage}")
        if self._bars and event.total and self._bar is None:
            self._bar = tqdm(
                total=event.total, desc=f"  {event.stage}", file=sys.stderr, leave=False
            )
        if self._bar is not None:
            if event.detail:  # shown by the update that follows
                self._bar.set_postfix_str(event.detail, refresh=False)
            self._bar.update(event.done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _elapsed(self) -> str:
        minutes, seconds = divmod(int(self._clock() - self._started), 60)
        return f"{minutes}:{seconds:02d}"


def training_progress(command, options: dict) -> TrainingProgress | None:
    """The progress a training command shows: none with --no-progress or --verbosity 0; bars
    when its stderr is a terminal."""
    if options.get("no_progress") or options.get("verbosity", 1) == 0:
        return None
    return TrainingProgress(command.stderr.write, bars=command.stderr.isatty())


def add_progress_argument(parser) -> None:
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="do not show the stages of training on stderr (also with --verbosity 0)",
    )
