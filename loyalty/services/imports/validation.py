"""Reading import sources in chunks and checking them column by column, vectorised."""

import csv
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from loyalty.exceptions import DomainError
from loyalty.services.imports.timestamps import parse_timestamps

# Large enough for pandas to work at vectorised speed, small enough that a chunk of wide string
# rows stays well under 100 MB.
CHUNK_ROWS = 100_000
# The first errors, in file order, are shown in full; the rest are only counted.
ERROR_DETAIL_LIMIT = 50
# A rejected value is quoted in the error, cut to this length (an over-long value may be huge).
ERROR_VALUE_CHARS = 80
HEADER_LINE = 1
FIRST_DATA_LINE = 2
# Django's IntegerField: 32 bits in every database.
INTEGER_FIELD_MIN = -(2**31)
INTEGER_FIELD_MAX = 2**31 - 1
# A float from a DataFrame has as many decimals as the nearest decimal within this many units in
# the last place: reading or computing a float leaves an error of about one.
FLOAT_DECIMAL_ULPS = 8
TRUE_WORDS = frozenset({"true", "1", "yes"})
FALSE_WORDS = frozenset({"false", "0", "no", ""})
LINE = "_line"
# Arrow-backed strings: strip, length, regex and membership run in C++, not per value in Python.
TEXT_DTYPE = "string[pyarrow]"

_INTEGER_TEXT = r"[+-]?\d+"
_PANDAS_LINE = re.compile(r"line (\d+)")


class ColumnKind(StrEnum):
    TEXT = "text"
    CHOICE = "choice"
    DATETIME = "datetime"
    DATE = "date"
    INTEGER = "integer"
    DECIMAL = "decimal"
    FLOAT = "float"
    BOOLEAN = "boolean"


@dataclass(frozen=True)
class ColumnSpec:
    """One column of an import file: how to parse it and what makes a value bad."""

    name: str
    kind: ColumnKind
    required: bool = False
    max_length: int | None = None
    choices: frozenset[str] = frozenset()
    minimum: float | None = None
    max_digits: int | None = None
    decimal_places: int | None = None
    lowercase: bool = False


@dataclass(frozen=True)
class RowError:
    """One bad cell (or a bad header, on line 1). `line` is the file line; the header is 1."""

    line: int
    column: str
    value: str
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}"
        if self.column:
            where += f", column {self.column!r}"
        if self.value:
            where += f", value {self.value!r}"
        return f"{where}: {self.reason}"


class ImportValidationError(DomainError):
    """The source has bad rows; nothing was imported. Carries the first errors and the total."""

    def __init__(self, *, source: str, errors: tuple[RowError, ...], error_count: int) -> None:
        noun = "error" if error_count == 1 else "errors"
        super().__init__(
            f"{source}: {error_count} {noun}, nothing was imported.",
            source=source,
            error_count=error_count,
        )
        self.source = source
        self.errors = errors
        self.error_count = error_count

    def describe(self) -> list[str]:
        """One line per shown error, then how many more there are."""
        lines = [str(error) for error in self.errors]
        hidden = self.error_count - len(self.errors)
        if hidden > 0:
            lines.append(f"... and {hidden} more errors")
        return lines


# How a column beyond the specs is read to tell whether a row is blank.
_ANY_TEXT = ColumnSpec("", ColumnKind.TEXT)


class ErrorCollector:
    """Counts every error and keeps the first ERROR_DETAIL_LIMIT of them in file order.

    Errors of the file as a whole (its header, a line that is not CSV) come through `add` and
    are counted apart in `file_errors`: no row of such a file can be trusted. With
    `keep_rows`, every row error is also kept until `take_rows` hands it over, so that an
    import that skips bad rows can say why each one was skipped.
    """

    def __init__(self, specs: Iterable[ColumnSpec], *, keep_rows: bool = False) -> None:
        self.count = 0
        self.file_errors = 0
        self._details: list[RowError] = []
        self._column_order = {spec.name: index for index, spec in enumerate(specs)}
        self._rows: list[pd.DataFrame] | None = [] if keep_rows else None

    @property
    def errors(self) -> tuple[RowError, ...]:
        return tuple(self._details)

    def add(self, error: RowError) -> None:
        """An error of the file as a whole."""
        self.count += 1
        self.file_errors += 1
        self._details.append(error)
        self._trim()

    def take_rows(self) -> pd.DataFrame:
        """The row errors kept since the last call: LINE, column and reason, in file order."""
        found = self._rows or []
        if self._rows is not None:
            self._rows = []
        if not found:
            return pd.DataFrame({LINE: pd.Series(dtype="int64"), "column": [], "reason": []})
        rows = pd.concat(found, ignore_index=True)
        unknown = len(self._column_order)
        rows["_order"] = rows["column"].map(self._column_order).fillna(unknown)
        rows = rows.sort_values([LINE, "_order"], kind="stable")
        return rows.drop(columns="_order").reset_index(drop=True)

    def add_cells(
        self,
        *,
        mask: pd.Series,
        lines: np.ndarray,
        values: pd.Series,
        column: str,
        reason: str | pd.Series,
    ) -> None:
        """Record an error for every row where `mask` holds (`reason` may differ per row)."""
        flags = mask.to_numpy(dtype=bool, na_value=False)
        found = int(flags.sum())
        if not found:
            return
        self.count += found
        positions = np.flatnonzero(flags)
        if self._rows is not None:
            reasons = reason if isinstance(reason, str) else reason.iloc[positions].to_numpy()
            self._rows.append(
                pd.DataFrame(
                    {LINE: np.asarray(lines)[positions], "column": column, "reason": reasons}
                )
            )
        # Later lines can never displace these, so the first few per check are enough.
        for position in positions[:ERROR_DETAIL_LIMIT]:
            self._details.append(
                RowError(
                    line=int(lines[position]),
                    column=column,
                    value=_shown(values.iat[position]),
                    reason=reason if isinstance(reason, str) else str(reason.iat[position]),
                )
            )
        self._trim()

    def _trim(self) -> None:
        unknown = len(self._column_order)
        self._details.sort(key=lambda e: (e.line, self._column_order.get(e.column, unknown)))
        del self._details[ERROR_DETAIL_LIMIT:]


@dataclass(frozen=True)
class Chunk:
    """Consecutive rows of a source, with the file line of each row and the columns present."""

    frame: pd.DataFrame
    lines: np.ndarray
    columns: tuple[str, ...]

    def given(self, column: str, lines: np.ndarray) -> pd.Series:
        """The cells of `column` on these lines of the chunk, as the source gave them."""
        # A chunk's lines are consecutive.
        return self.frame[column].iloc[lines - self.lines[0]]


ImportSource = str | Path | pd.DataFrame | Iterable[pd.DataFrame]


# Given a column that is not one of the specs: why it is refused, or None to let it through
# (a members file's further columns are member attributes).
ExtraColumns = Callable[[str], str | None]


def read_chunks(
    *,
    source: ImportSource,
    specs: tuple[ColumnSpec, ...],
    collector: ErrorCollector,
    extra_columns: ExtraColumns | None = None,
) -> Iterator[Chunk]:
    """Yield the source in chunks after checking its header; header errors go to `collector`.

    A path is read as UTF-8 CSV (a byte-order mark is allowed) with every cell as text. A
    DataFrame, or an iterable of DataFrames with the same columns, is numbered as if it were a
    CSV file: its first row is line 2. Cells of a DataFrame may already be typed (datetimes,
    numbers, booleans); they are checked the same way.
    """
    header = _HeaderCheck(specs, collector, extra_columns)
    if isinstance(source, str | Path):
        yield from _csv_chunks(Path(source), header, collector)
    elif isinstance(source, pd.DataFrame):
        yield from _frame_chunks(_slices(source), header, collector)
    else:
        pieces = (piece for frame in source for piece in _slices(frame))
        yield from _frame_chunks(pieces, header, collector)


def source_label(source: ImportSource) -> str:
    if isinstance(source, str | Path):
        return Path(source).name
    return "dataframe"


def validate_chunk(
    *,
    chunk: Chunk,
    specs: tuple[ColumnSpec, ...],
    collector: ErrorCollector,
    zone: ZoneInfo | None = None,
) -> pd.DataFrame:
    """Parse every present column of a chunk; bad cells are reported and become missing values.

    Returns typed columns (text as Arrow-backed strings, timestamps as UTC datetimes, numbers as
    float, booleans as bool) plus LINE, without rows that are blank in every column. Times
    without an offset are read in `zone`, and refused without one (`timestamps`).
    """
    frame = chunk.frame.reset_index(drop=True)
    cells = {spec.name: _cells(frame[spec.name], spec) for spec in specs if spec.name in frame}
    empty = {name: _empty(values) for name, values in cells.items()}
    lines = chunk.lines
    # Columns let through beyond the specs (member attributes) count too: a row that has only
    # them is no blank row, and its missing required cells are reported.
    others = [_empty(_cells(frame[name], _ANY_TEXT)) for name in frame if name not in cells]
    blank = [flags.to_numpy() for flags in (*empty.values(), *others)]
    keep = ~np.logical_and.reduce(blank)
    if not keep.all():
        lines = lines[keep]
        cells = {name: values[keep].reset_index(drop=True) for name, values in cells.items()}
        empty = {name: flags[keep].reset_index(drop=True) for name, flags in empty.items()}
    parsed = pd.DataFrame(
        {
            spec.name: _parse_column(
                cells[spec.name], empty[spec.name], spec, lines, collector, zone
            )
            for spec in specs
            if spec.name in cells
        },
        index=pd.RangeIndex(len(lines)),
    )
    parsed[LINE] = lines
    return parsed


def _parse_column(
    cells: pd.Series,
    empty: pd.Series,
    spec: ColumnSpec,
    lines: np.ndarray,
    collector: ErrorCollector,
    zone: ZoneInfo | None,
) -> pd.Series:
    def report(mask: pd.Series, reason: str) -> None:
        collector.add_cells(mask=mask, lines=lines, values=cells, column=spec.name, reason=reason)

    if spec.required:
        report(empty, "a value is required")

    if spec.kind in (ColumnKind.TEXT, ColumnKind.CHOICE):
        text = cells.fillna("")
        if spec.lowercase or spec.kind == ColumnKind.CHOICE:
            text = text.str.lower()
        bad = pd.Series(False, index=cells.index)
        if spec.kind == ColumnKind.CHOICE:
            unknown = ~empty & ~as_flags(text.isin(spec.choices))
            expected = ", ".join(sorted(spec.choices))
            report(unknown, f"unknown {spec.name}; expected one of: {expected}")
            bad |= unknown
        if spec.max_length is not None:
            too_long = as_flags(text.str.len() > spec.max_length)
            report(too_long, f"longer than {spec.max_length} characters")
            bad |= too_long
        return text.where(~bad)

    if spec.kind in (ColumnKind.DATETIME, ColumnKind.DATE):
        is_date = spec.kind == ColumnKind.DATE
        stamps, problems = parse_timestamps(cells, empty, zone=zone, dates=is_date)
        for mask, reason in problems:
            report(mask, reason)
        return stamps.dt.normalize() if is_date else stamps

    if spec.kind == ColumnKind.BOOLEAN:
        if pd.api.types.is_bool_dtype(cells):
            return cells.astype(bool)
        words = cells.fillna("").str.lower()
        bad = ~as_flags(words.isin(TRUE_WORDS | FALSE_WORDS))
        report(bad, "not a yes/no value (true/false, 1/0, yes/no)")
        return as_flags(words.isin(TRUE_WORDS))

    numbers, not_a_number = _numbers(cells, empty)
    checkable = numbers.notna()
    if spec.kind == ColumnKind.INTEGER:
        if _is_text(cells):
            not_whole = ~empty & ~not_a_number & ~as_flags(cells.str.fullmatch(_INTEGER_TEXT))
        else:
            not_whole = checkable & (numbers % 1 != 0)
        report(not_a_number | not_whole, "not a whole number")
        out_of_range = (
            checkable & ~not_whole & ((numbers < INTEGER_FIELD_MIN) | (numbers > INTEGER_FIELD_MAX))
        )
        report(out_of_range, f"outside {INTEGER_FIELD_MIN}..{INTEGER_FIELD_MAX}")
        return numbers.where(~(not_a_number | not_whole | out_of_range))

    report(not_a_number, "not a number")
    bad = not_a_number.copy()
    if spec.minimum is not None:
        too_small = checkable & (numbers < spec.minimum)
        reason = "must not be negative" if spec.minimum == 0 else f"less than {spec.minimum}"
        report(too_small, reason)
        bad |= too_small
    if spec.decimal_places is not None:
        places = spec.decimal_places
        fractional = _more_decimals(cells, numbers, checkable & ~bad, places)
        reason = f"more than {places} decimal places: amounts are stored exactly, never rounded"
        report(fractional, reason)
        bad |= fractional
        # The double nearest to the decimal, which both databases store as that decimal.
        numbers = numbers.round(places)
    if spec.max_digits is not None and spec.decimal_places is not None:
        whole_digits = spec.max_digits - spec.decimal_places
        too_large = checkable & ~bad & (numbers.abs() >= 10.0**whole_digits)
        report(too_large, f"too large: at most {whole_digits} digits before the decimal point")
        bad |= too_large
    return numbers.where(~bad)


def _more_decimals(
    cells: pd.Series, numbers: pd.Series, candidates: pd.Series, places: int
) -> pd.Series:
    """Which candidate numbers need more than `places` decimals, read from the text as written
    (a double cannot tell 123456789.12345 from 123456789.1235). Trailing zeros do not count."""
    if not _is_text(cells):
        scaled = numbers * 10**places
        off = (scaled - scaled.round()).abs()
        return candidates & (off > FLOAT_DECIMAL_ULPS * np.spacing(scaled.abs()))
    text = cells.where(candidates, "").fillna("")
    exponent = as_flags(text.str.contains("[eE]", regex=True))
    # What follows the decimal point (nothing when there is none), without trailing zeros.
    fraction = text.where(~exponent, "").str.replace(r"^[^.]*\.?", "", regex=True)
    more = as_flags(fraction.str.rstrip("0").str.len() > places)
    for position in np.flatnonzero(exponent.to_numpy()):
        # Rare (1.5e-3): exact, one value at a time.
        exponent_of = Decimal(text.iat[position]).normalize().as_tuple().exponent
        more.iat[position] = -exponent_of > places
    return candidates & more


def _numbers(cells: pd.Series, empty: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Floats (NaN where empty or bad) and a mask of non-empty cells that are not numbers."""
    if _is_text(cells):
        parsed = pd.to_numeric(cells.where(~empty), errors="coerce")
    else:
        parsed = cells
    numbers = pd.Series(
        np.asarray(parsed.to_numpy(dtype=float, na_value=np.nan), dtype=float), index=cells.index
    )
    not_finite = ~np.isfinite(numbers.to_numpy())
    return numbers.where(~not_finite), pd.Series(not_finite, index=cells.index) & ~empty


def _cells(raw: pd.Series, spec: ColumnSpec) -> pd.Series:
    """Text as stripped Arrow-backed strings (vectorised in C++); typed values as they come."""
    textual = spec.kind in (ColumnKind.TEXT, ColumnKind.CHOICE)
    if textual or raw.dtype == object or pd.api.types.is_string_dtype(raw):
        return raw.astype(TEXT_DTYPE).str.strip()
    return raw


def _is_text(cells: pd.Series) -> bool:
    return isinstance(cells.dtype, pd.StringDtype)


def _empty(cells: pd.Series) -> pd.Series:
    if _is_text(cells):
        return as_flags(cells.isna() | (cells == ""))
    return as_flags(cells.isna())


def as_flags(mask: pd.Series) -> pd.Series:
    """A plain bool Series (nullable results of string functions count missing as False)."""
    return pd.Series(mask.to_numpy(dtype=bool, na_value=False), index=mask.index)


def _shown(value: object) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    text = str(value)
    return text if len(text) <= ERROR_VALUE_CHARS else text[: ERROR_VALUE_CHARS - 1] + "…"


@dataclass(frozen=True)
class _HeaderCheck:
    specs: tuple[ColumnSpec, ...]
    collector: ErrorCollector
    extra_columns: ExtraColumns | None

    def __call__(self, columns: list[str]) -> bool:
        """Whether the header is good; what is wrong with it goes to the collector."""
        known = {spec.name for spec in self.specs}
        seen: set[str] = set()
        ok = True
        for column in columns:
            reason = None
            if column in seen:
                reason = "column appears more than once"
            elif column not in known:
                reason = self._unknown(column)
            if reason:
                self.collector.add(RowError(HEADER_LINE, column, column, reason))
                ok = False
            seen.add(column)
        for spec in self.specs:
            if spec.required and spec.name not in seen:
                missing = RowError(HEADER_LINE, spec.name, "", "required column is missing")
                self.collector.add(missing)
                ok = False
        return ok

    def _unknown(self, column: str) -> str | None:
        if self.extra_columns is not None:
            return self.extra_columns(column)
        expected = ", ".join(spec.name for spec in self.specs)
        return f"unknown column; expected columns: {expected}"


def _csv_chunks(
    path: Path, check_header: _HeaderCheck, collector: ErrorCollector
) -> Iterator[Chunk]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError:
        collector.add(RowError(HEADER_LINE, "", "", "the file is not UTF-8 text"))
        return
    if not header:
        collector.add(RowError(HEADER_LINE, "", "", "the file is empty; a header line is expected"))
        return
    header = [column.strip() for column in header]
    if not check_header(header):
        return
    next_line = FIRST_DATA_LINE
    try:
        reader = pd.read_csv(
            path,
            dtype=TEXT_DTYPE,
            na_filter=False,
            # Blank lines stay as rows so that every row's file line number is right.
            skip_blank_lines=False,
            chunksize=CHUNK_ROWS,
            encoding="utf-8-sig",
            names=header,
            header=0,
        )
        with reader:
            for frame in reader:
                lines = np.arange(next_line, next_line + len(frame))
                next_line += len(frame)
                yield Chunk(frame=frame, lines=lines, columns=tuple(header))
    except pd.errors.ParserError as error:
        found = _PANDAS_LINE.search(str(error))
        line = int(found.group(1)) if found else next_line
        reason = f"not readable as CSV: {str(error).split('C error: ')[-1].strip()}"
        collector.add(RowError(line, "", "", reason))
    except UnicodeDecodeError:
        collector.add(RowError(next_line, "", "", "the file is not UTF-8 text"))


def _slices(frame: pd.DataFrame) -> Iterator[pd.DataFrame]:
    if frame.empty:
        yield frame
    for start in range(0, len(frame), CHUNK_ROWS):
        yield frame.iloc[start : start + CHUNK_ROWS]


def _frame_chunks(
    frames: Iterator[pd.DataFrame], check_header: _HeaderCheck, collector: ErrorCollector
) -> Iterator[Chunk]:
    columns: tuple[str, ...] | None = None
    next_line = FIRST_DATA_LINE
    for frame in frames:
        names = tuple(str(column) for column in frame.columns)
        if columns is None:
            if not check_header(list(names)):
                return
            columns = names
        elif names != columns:
            reason = f"columns {list(names)} differ from the first part's {list(columns)}"
            collector.add(RowError(next_line, "", "", reason))
            return
        frame = frame.reset_index(drop=True)
        frame.columns = list(names)
        lines = np.arange(next_line, next_line + len(frame))
        next_line += len(frame)
        yield Chunk(frame=frame, lines=lines, columns=columns)


class ChunkSpill:
    """Validated chunks parked on disk between the validation and the write pass.

    Memory stays flat whatever the source's size, and a one-shot source (a generator of
    DataFrames) is read only once. Parquet keeps the parsed types, so nothing is parsed twice.
    """

    def __enter__(self) -> "ChunkSpill":
        self._folder = tempfile.TemporaryDirectory(prefix="loyalty-import-")
        self._paths: list[Path] = []
        self.rows = 0
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._folder.cleanup()

    def add(self, frame: pd.DataFrame) -> None:
        path = Path(self._folder.name) / f"{len(self._paths):06d}.parquet"
        frame.to_parquet(path, index=False)
        self._paths.append(path)
        self.rows += len(frame)

    def discard(self) -> None:
        """Drop what is parked: once an error is found nothing will be written."""
        for path in self._paths:
            path.unlink(missing_ok=True)
        self._paths.clear()

    def __iter__(self) -> Iterator[pd.DataFrame]:
        for path in self._paths:
            yield pd.read_parquet(path)
