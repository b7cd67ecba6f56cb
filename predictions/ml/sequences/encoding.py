"""Each member's last events before a cutoff as fixed-length arrays, for the sequence model.

Point in time like the features: only events strictly before the cutoff, the last `length` of
them, oldest first and left-padded (`mask` marks the real ones). The vocabulary is learned at
the latest training cutoff and reused for every later encoding, so that validation, calibration
and scoring meet later values as unknown, as production will. An unknown value and a missing
one get different codes: a view without a category is not a purchase in a category launched
last week. With `lookback_days`, the first event inside the window counts as the member's first
(gap 0), so a scoring process that loads only that window encodes exactly what training did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from predictions.ml import frames

DEFAULT_LENGTH = 64
DAY_NS = 86_400 * 10**9
# 0 is padding everywhere. Kinds: 1 unknown, then the vocabulary's kinds from 2. Categories and
# channels: 1 unknown (not seen before the training cutoff), 2 no value (''), then the learned
# values from 3, most frequent first.
PADDING_CODE = 0
UNKNOWN_CODE = 1
NO_VALUE_CODE = 2
FIRST_KIND_CODE = 2
FIRST_LEARNED_CODE = 3
# Categories or channels beyond the most frequent ones share the unknown code: a long tail of
# rare values would give embeddings that are trained on a handful of events.
MAX_VOCABULARY = 200
# Per event, 0 where absent: the signed log1p of the amount (a return always negative, whatever
# sign the source used), log1p of days since the member's previous event (over all earlier
# history), log1p of dwell seconds, and log1p of days before the cutoff (without it the model
# would see the spacing of events but not how long ago the last one was: not recency).
NUMERIC_CHANNELS: tuple[str, ...] = (
    "log_amount",
    "log_gap_days",
    "log_dwell_seconds",
    "log_age_days",
)
AMOUNT, GAP, DWELL, AGE = range(len(NUMERIC_CHANNELS))


@dataclass(frozen=True)
class SequenceVocabulary:
    """The kinds, categories and channels a model was trained with, in code order."""

    kinds: tuple[str, ...]
    categories: tuple[str, ...]
    channels: tuple[str, ...]

    @property
    def kind_codes(self) -> int:
        """Size of the kind embedding table (padding and unknown included)."""
        return FIRST_KIND_CODE + len(self.kinds)

    @property
    def category_codes(self) -> int:
        return FIRST_LEARNED_CODE + len(self.categories)

    @property
    def channel_codes(self) -> int:
        return FIRST_LEARNED_CODE + len(self.channels)

    def to_json(self) -> dict[str, Any]:
        return {
            "kinds": list(self.kinds),
            "categories": list(self.categories),
            "channels": list(self.channels),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SequenceVocabulary:
        return cls(
            kinds=tuple(str(v) for v in data["kinds"]),
            categories=tuple(str(v) for v in data["categories"]),
            channels=tuple(str(v) for v in data["channels"]),
        )


@dataclass(frozen=True)
class SequenceEvents:
    """Events sorted by (member_id, occurred_at, input row), with per-event columns computed once.

    `kind` holds frames.KIND_CODE codes; a vocabulary maps them to its own codes.

    `category_id` / `channel_id` index `category_values` / `channel_values` (the distinct
    strings, '' included); a vocabulary maps those few strings, not every event.
    """

    member_id: np.ndarray
    t_ns: np.ndarray
    kind: np.ndarray
    category_id: np.ndarray
    category_values: np.ndarray
    channel_id: np.ndarray
    channel_values: np.ndarray
    log_amount: np.ndarray
    log_gap_days: np.ndarray
    log_dwell_seconds: np.ndarray
    event_row: np.ndarray
    members: np.ndarray
    member_start: np.ndarray
    member_rank: np.ndarray

    def __len__(self) -> int:
        return len(self.t_ns)


@dataclass(frozen=True)
class EncodedSequences:
    """Members' event sequences as aligned arrays: row i is member_ids[i] at cutoff_ns[i].

    kind, category, channel: (n, length) int64 codes; numeric: (n, length, 4) float32 in
    NUMERIC_CHANNELS order; mask: (n, length) bool, True on real events; event_row: (n, length)
    int64, -1 on padding; occurred_at: (n, length) datetime64[ns] (UTC), NaT on padding.
    """

    member_ids: np.ndarray
    cutoff_ns: np.ndarray
    kind: np.ndarray
    category: np.ndarray
    channel: np.ndarray
    numeric: np.ndarray
    mask: np.ndarray
    event_row: np.ndarray
    occurred_at: np.ndarray
    vocabulary: SequenceVocabulary

    def __len__(self) -> int:
        return len(self.member_ids)

    @property
    def length(self) -> int:
        return int(self.mask.shape[1])

    def take(self, rows: np.ndarray | Sequence[int]) -> EncodedSequences:
        """The rows picked by a boolean mask or by positions (for splits and batches)."""
        rows = np.asarray(rows)
        return replace(self, **{name: getattr(self, name)[rows] for name in _ROW_ARRAYS})

    def events_of(self, row: int) -> pd.DataFrame:
        """One row's real events, oldest first, with their identity, names and numeric channels."""
        positions = np.flatnonzero(self.mask[row])
        table = pd.DataFrame(
            {
                "position": positions,
                "event_row": self.event_row[row, positions],
                "occurred_at": pd.to_datetime(self.occurred_at[row, positions]).tz_localize("UTC"),
                "kind": _names(self.kind[row, positions], self.vocabulary.kinds, FIRST_KIND_CODE),
                "category": _names(
                    self.category[row, positions], self.vocabulary.categories, FIRST_LEARNED_CODE
                ),
                "channel": _names(
                    self.channel[row, positions], self.vocabulary.channels, FIRST_LEARNED_CODE
                ),
            }
        )
        for index, name in enumerate(NUMERIC_CHANNELS):
            table[name] = self.numeric[row, positions, index].astype("float64")
        return table


_ROW_ARRAYS = (
    "member_ids",
    "cutoff_ns",
    "kind",
    "category",
    "channel",
    "numeric",
    "mask",
    "event_row",
    "occurred_at",
)


def prepare_sequence_events(events: pd.DataFrame) -> SequenceEvents:
    """Normalize, sort by (member, time, row) once, and compute the per-event columns."""
    ev = frames.normalize_events(events)
    member_id = ev["member_id"].to_numpy(dtype="int64")
    t_ns = ev["occurred_at"].to_numpy(dtype="datetime64[ns]").view("int64")
    order = np.lexsort((np.arange(len(ev)), t_ns, member_id))
    member_id, t_ns = member_id[order], t_ns[order]
    kind = ev["kind"].map(frames.KIND_CODE).to_numpy(dtype="int64")[order]
    category_id, category_values = pd.factorize(ev["category"].to_numpy(dtype=object)[order])
    channel_id, channel_values = pd.factorize(ev["channel"].to_numpy(dtype=object)[order])
    members, member_start, member_rank = np.unique(
        member_id, return_index=True, return_inverse=True
    )
    return SequenceEvents(
        member_id=member_id,
        t_ns=t_ns,
        kind=kind,
        category_id=category_id.astype("int64"),
        category_values=np.asarray(category_values, dtype=object),
        channel_id=channel_id.astype("int64"),
        channel_values=np.asarray(channel_values, dtype=object),
        log_amount=_signed_log_amount(ev["amount"].to_numpy(dtype="float64")[order], kind),
        log_gap_days=_log_gap_days(member_id, t_ns),
        log_dwell_seconds=np.log1p(np.nan_to_num(ev["dwell_seconds"].to_numpy()[order]).clip(0)),
        event_row=order.astype("int64"),
        members=members,
        member_start=member_start.astype("int64"),
        member_rank=member_rank.astype("int64"),
    )


def learn_vocabulary(
    *, events: pd.DataFrame | SequenceEvents, cutoff: object, max_size: int = MAX_VOCABULARY
) -> SequenceVocabulary:
    """Categories and channels seen strictly before `cutoff`, most frequent first (ties by name).

    Learn it at the latest TRAINING cutoff, so that validation, calibration and scoring meet
    later values as unknown, as production will.
    """
    prepared = _prepared(events)
    before = prepared.t_ns < frames.to_utc_timestamp(cutoff).value
    return SequenceVocabulary(
        kinds=frames.EVENT_KINDS,
        categories=_frequent(prepared.category_id[before], prepared.category_values, max_size),
        channels=_frequent(prepared.channel_id[before], prepared.channel_values, max_size),
    )


def encode_sequences(
    *,
    events: pd.DataFrame | SequenceEvents,
    member_ids: Sequence[int] | np.ndarray | pd.Index,
    cutoff: object,
    length: int = DEFAULT_LENGTH,
    vocabulary: SequenceVocabulary | None = None,
    lookback_days: int | None = None,
) -> EncodedSequences:
    """The last `length` events strictly before `cutoff` of each member, in `member_ids` order.

    Without a `vocabulary` one is learned from the events before this cutoff (do that for the
    training set only; pass its vocabulary for every later set). Members without events get
    an all-padding row. `lookback_days`: only events at or after cutoff - lookback_days (see
    the module docstring for the time gap of the first of them).
    """
    if length < 1:
        raise ValueError("length must be at least 1")
    prepared = _prepared(events)
    cutoff_ns = frames.to_utc_timestamp(cutoff).value
    start_ns = None if lookback_days is None else cutoff_ns - int(lookback_days) * DAY_NS
    if vocabulary is None:
        vocabulary = learn_vocabulary(events=prepared, cutoff=cutoff)
    ids = np.asarray(member_ids, dtype="int64")
    positions, mask, first_after_start = _window_positions(
        prepared, ids, cutoff_ns, length, start_ns
    )
    if len(prepared) == 0:
        prepared = _one_placeholder_event()  # every position is padding; gathers need a row

    def gather(values: np.ndarray, padding: Any) -> np.ndarray:
        return np.where(mask, values[positions], padding)

    def coded(ids: np.ndarray, table: np.ndarray) -> np.ndarray:
        return np.where(mask, table[ids[positions]], PADDING_CODE)

    kind_table = _kind_table(vocabulary)
    category_table = _value_table(prepared.category_values, vocabulary.categories)
    channel_table = _value_table(prepared.channel_values, vocabulary.channels)
    gap = gather(prepared.log_gap_days, 0.0)
    if first_after_start is not None:
        # The window's oldest event had a predecessor before the lookback: as if unloaded.
        gap = np.where(positions == first_after_start[:, None], 0.0, gap)
    numeric = np.stack(
        [
            gather(prepared.log_amount, 0.0),
            gap,
            gather(prepared.log_dwell_seconds, 0.0),
            np.log1p((cutoff_ns - gather(prepared.t_ns, cutoff_ns)) / DAY_NS),
        ],
        axis=-1,
    )
    return EncodedSequences(
        member_ids=ids.copy(),
        cutoff_ns=np.full(len(ids), cutoff_ns, dtype="int64"),
        kind=coded(prepared.kind, kind_table),
        category=coded(prepared.category_id, category_table),
        channel=coded(prepared.channel_id, channel_table),
        numeric=numeric.astype("float32"),
        mask=mask,
        event_row=gather(prepared.event_row, -1),
        occurred_at=gather(prepared.t_ns.view("datetime64[ns]"), np.datetime64("NaT", "ns")),
        vocabulary=vocabulary,
    )


def concat_sequences(parts: Sequence[EncodedSequences]) -> EncodedSequences:
    """Rows of several encodings (stacked cutoffs) in one; vocabulary and length must agree."""
    if not parts:
        raise ValueError("nothing to concatenate")
    first = parts[0]
    for part in parts[1:]:
        if part.vocabulary != first.vocabulary:
            raise ValueError("encodings with different vocabularies cannot be stacked")
        if part.length != first.length:
            raise ValueError(f"encodings of lengths {first.length} and {part.length}")
    return replace(
        first,
        **{name: np.concatenate([getattr(p, name) for p in parts]) for name in _ROW_ARRAYS},
    )


def _prepared(events: pd.DataFrame | SequenceEvents) -> SequenceEvents:
    return events if isinstance(events, SequenceEvents) else prepare_sequence_events(events)


def _window_positions(
    prepared: SequenceEvents,
    ids: np.ndarray,
    cutoff_ns: int,
    length: int,
    start_ns: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Sorted-event positions of each member's last `length` events before the cutoff (and at
    or after `start_ns` when given), the mask, and, with `start_ns`, the position of each
    member's first event at or after it where an older event exists (-1 elsewhere).

    Within a member's block events are in time order, so those before the cutoff are the
    block's first `count` events and the window ends at block start + count.
    """
    if len(prepared) == 0:
        empty = np.zeros((len(ids), length), dtype="int64")
        none_first = None if start_ns is None else np.full(len(ids), -1, dtype="int64")
        return empty, np.zeros((len(ids), length), bool), none_first
    count = np.bincount(
        prepared.member_rank[prepared.t_ns < cutoff_ns], minlength=len(prepared.members)
    )
    rank = np.minimum(np.searchsorted(prepared.members, ids), len(prepared.members) - 1)
    known = prepared.members[rank] == ids
    before = np.where(known, count[rank], 0)
    end = prepared.member_start[rank] + before
    available = before
    first_after_start = None
    if start_ns is not None:
        older = np.bincount(
            prepared.member_rank[prepared.t_ns < start_ns], minlength=len(prepared.members)
        )
        skipped = np.minimum(np.where(known, older[rank], 0), before)
        available = before - skipped
        first_after_start = np.where(
            (skipped > 0) & (available > 0), prepared.member_start[rank] + skipped, -1
        )
    slot = np.arange(length)
    mask = slot[None, :] >= (length - np.minimum(available, length))[:, None]
    positions = np.where(mask, end[:, None] - length + slot[None, :], 0)
    return positions, mask, first_after_start


def _signed_log_amount(amount: np.ndarray, kind: np.ndarray) -> np.ndarray:
    value = np.nan_to_num(amount)
    value = np.where(kind == frames.KIND_CODE[frames.RETURN], -np.abs(value), value)
    return np.sign(value) * np.log1p(np.abs(value))


def _log_gap_days(member_id: np.ndarray, t_ns: np.ndarray) -> np.ndarray:
    """log1p days since the same member's previous event (events sorted by member, time)."""
    gap = np.zeros(len(t_ns))
    if len(t_ns) > 1:
        same = member_id[1:] == member_id[:-1]
        gap[1:] = np.where(same, (t_ns[1:] - t_ns[:-1]) / DAY_NS, 0.0)
    return np.log1p(gap)


def _frequent(ids: np.ndarray, values: np.ndarray, max_size: int) -> tuple[str, ...]:
    counts = np.bincount(ids, minlength=len(values))
    ranked = sorted(
        (int(-counts[i]), str(values[i])) for i in range(len(values)) if counts[i] and values[i]
    )
    return tuple(name for _, name in ranked[:max_size])


def _value_table(values: np.ndarray, learned: tuple[str, ...]) -> np.ndarray:
    """Code of each distinct string: learned, no value ('') or unknown."""
    lookup = {name: FIRST_LEARNED_CODE + i for i, name in enumerate(learned)}
    codes = [NO_VALUE_CODE if v == "" else lookup.get(v, UNKNOWN_CODE) for v in values]
    return np.asarray(codes, dtype="int64").reshape(-1)


def _kind_table(vocabulary: SequenceVocabulary) -> np.ndarray:
    """Vocabulary code of each frames.KIND_CODE code (the prepared events' kinds)."""
    lookup = {name: FIRST_KIND_CODE + i for i, name in enumerate(vocabulary.kinds)}
    return np.asarray([lookup.get(kind, UNKNOWN_CODE) for kind in frames.EVENT_KINDS])


def _one_placeholder_event() -> SequenceEvents:
    one_int, one_float = np.zeros(1, dtype="int64"), np.zeros(1)
    return SequenceEvents(
        member_id=one_int,
        t_ns=one_int,
        kind=one_int,
        category_id=one_int,
        category_values=np.asarray([""], dtype=object),
        channel_id=one_int,
        channel_values=np.asarray([""], dtype=object),
        log_amount=one_float,
        log_gap_days=one_float,
        log_dwell_seconds=one_float,
        event_row=one_int,
        members=one_int,
        member_start=one_int,
        member_rank=one_int,
    )


def _names(codes: np.ndarray, learned: tuple[str, ...], first: int) -> list[str]:
    special = {PADDING_CODE: "", UNKNOWN_CODE: "(unknown)", NO_VALUE_CODE: ""}
    return [learned[c - first] if c >= first else special.get(int(c), "") for c in codes.tolist()]
