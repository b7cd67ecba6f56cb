"""Importing the valid rows of a source and setting the others aside (`--skip-invalid`): each
rejected row is written, as it was given, with its line and what was wrong, to a CSV file that
can be fixed and imported again once those three columns are dropped."""

from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from loyalty.services.imports.validation import LINE, Chunk

# Added after the source's own columns in a rejects file.
REJECT_COLUMNS = ("line", "column", "reason")
# Several errors of one row share its one line in the rejects file.
SEPARATOR = "; "
REJECTS_SUFFIX = ".rejected.csv"
# Carried with each parked row in skip mode: its cells as given and what is wrong with it.
_RAW = "_raw:"
_COLUMNS, _REASONS = "_rejected_columns", "_rejected_reasons"


def rejects_path_for(source: Path) -> Path:
    """Where the rows skipped from `source` go: beside it, `events.csv.rejected.csv`."""
    return source.with_name(source.name + REJECTS_SUFFIX)


def with_reasons(parsed: pd.DataFrame, chunk: Chunk, errors: pd.DataFrame) -> pd.DataFrame:
    """A checked chunk with, on each row, its cells as given and its errors so far."""
    marked = parsed.copy()
    lines = parsed[LINE].to_numpy()
    for column in chunk.columns:
        marked[_RAW + column] = chunk.given(column, lines).astype("string").fillna("").to_numpy()
    return _add_reasons(marked, errors)


class RejectedRows:
    """The rows an import skips, written in file order to `path` as they are found.

    The file is written under a temporary name and takes its own only with `keep`, once the
    import has committed; a failed import leaves no half-written rejects behind.
    """

    def __init__(self, *, path: Path, columns: tuple[str, ...]) -> None:
        self.path = Path(path)
        self.count = 0
        self._columns = columns
        self._partial = self.path.with_name(self.path.name + ".partial")
        self._handle: TextIO | None = None

    def __enter__(self) -> "RejectedRows":
        self._handle = self._partial.open("w", newline="", encoding="utf-8")
        pd.DataFrame(columns=[*self._columns, *REJECT_COLUMNS]).to_csv(self._handle, index=False)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self._partial.unlink(missing_ok=True)

    def split(self, frame: pd.DataFrame, late: pd.DataFrame) -> pd.DataFrame:
        """Write the rows of a parked frame that have errors (its own, or `late` ones found
        once the whole source was read); return the others as the checks left them."""
        frame = _add_reasons(frame, late)
        bad = (frame[_REASONS] != "").to_numpy()
        if bad.any():
            rejected = frame[bad]
            out = pd.DataFrame(
                {column: rejected.get(_RAW + column, "") for column in self._columns},
                index=rejected.index,
            )
            out["line"] = rejected[LINE].to_numpy()
            out["column"] = rejected[_COLUMNS].to_numpy()
            out["reason"] = rejected[_REASONS].to_numpy()
            out.to_csv(self._handle, header=False, index=False)
            self.count += len(out)
        extras = [name for name in frame.columns if name.startswith(_RAW)]
        return frame[~bad].drop(columns=[LINE, _COLUMNS, _REASONS, *extras])

    def keep(self) -> None:
        """The import committed: the rejects file takes its name."""
        self._handle.close()
        self._handle = None
        self._partial.replace(self.path)


def _add_reasons(frame: pd.DataFrame, errors: pd.DataFrame) -> pd.DataFrame:
    """Append the errors of `errors` (LINE, column, reason) to the rows they name."""
    if _REASONS not in frame:
        frame[_COLUMNS] = ""
        frame[_REASONS] = ""
    if errors.empty:
        return frame
    lines = frame[LINE].to_numpy()
    if not len(lines):
        return frame
    # Errors come in file order: those of this frame's lines are one stretch of them.
    error_lines = errors[LINE]
    start = error_lines.searchsorted(lines.min(), side="left")
    errors = errors.iloc[start : error_lines.searchsorted(lines.max(), side="right")]
    errors = errors[np.isin(errors[LINE].to_numpy(), lines)]
    if errors.empty:
        return frame
    joined = errors.groupby(LINE, sort=False).agg(
        {"column": SEPARATOR.join, "reason": SEPARATOR.join}
    )
    for target, source in ((_COLUMNS, "column"), (_REASONS, "reason")):
        found = pd.Series(lines).map(joined[source]).fillna("")
        before = pd.Series(frame[target].to_numpy(dtype=object))
        between = np.where((before != "") & (found != ""), SEPARATOR, "")
        frame[target] = (before + between + found).to_numpy(dtype=object)
    return frame
