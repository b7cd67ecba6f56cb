"""Which events drove a member's sequence churn margin: occlusion, one event at a time.

    attribution = occlusion_attribution(model=model, encoded=encoded)
    attribution.top_events(row=0, k=5)   # DataFrame: event_row, occurred_at, kind, attribution

Attribution = margin(all events) - margin(without this event), in log-odds (positive: it pushed
the risk up); the removed event's gap merges into the next one's. Occlusion is exact and needs
no reference input, unlike gradient methods or sampled SHAP; but events that stand in for each
other each look less important than the pair, and the attributions do not add up to the margin
(`ensemble.sequence_share` is the additive share). The GRU state before each event is reused,
so n events cost about n^2 / 2 GRU steps, not n^2 (`occlusion_attribution_by_masking` is the
plain reference); `recent_events` limits it to each member's latest events.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from predictions.ml.sequences.encoding import FIRST_KIND_CODE, GAP, EncodedSequences
from predictions.ml.sequences.model import ChurnGRU, SequenceChurnModel, _deterministic, _tensors

DEFAULT_SEQUENCES_PER_PASS = 1024
# Members whose per-event states are held at once: (members, length, hidden) floats.
DEFAULT_MEMBERS_PER_PASS = 512


@dataclass(frozen=True)
class SequenceAttribution:
    """Per-event attributions aligned on `encoded`'s rows and positions (0 on padding)."""

    encoded: EncodedSequences
    margin: np.ndarray
    attribution: np.ndarray

    @property
    def member_ids(self) -> np.ndarray:
        return self.encoded.member_ids

    def top_events(self, row: int, *, k: int = 5) -> pd.DataFrame:
        """The row's k events with the largest attribution (pushing churn up), largest first."""
        table = self._events(row)
        return table.nlargest(k, "attribution", keep="first").reset_index(drop=True)

    def to_frame(self) -> pd.DataFrame:
        """member_id, position, event_row, occurred_at (UTC), kind, attribution per real event."""
        rows, positions = np.nonzero(self.encoded.mask)
        kinds = np.asarray(("", "(unknown)", *self.encoded.vocabulary.kinds), dtype=object)
        codes = self.encoded.kind[rows, positions]
        return pd.DataFrame(
            {
                "member_id": self.encoded.member_ids[rows],
                "position": positions,
                "event_row": self.encoded.event_row[rows, positions],
                "occurred_at": pd.to_datetime(
                    self.encoded.occurred_at[rows, positions]
                ).tz_localize("UTC"),
                "kind": kinds[np.where(codes >= FIRST_KIND_CODE, codes, 1)],
                "attribution": self.attribution[rows, positions],
            }
        )

    def _events(self, row: int) -> pd.DataFrame:
        table = self.encoded.events_of(row)
        table["attribution"] = self.attribution[row, table["position"].to_numpy()]
        return table


def occlusion_attribution(
    *,
    model: SequenceChurnModel,
    encoded: EncodedSequences,
    recent_events: int | None = None,
    members_per_pass: int = DEFAULT_MEMBERS_PER_PASS,
) -> SequenceAttribution:
    """margin(full) - margin(without event j) for every real event j of every row (only the
    latest `recent_events` of each row when given; the others get 0). Exact: the same numbers
    as `occlusion_attribution_by_masking` up to float rounding, in about a fifth of the time.
    """
    margin = model.predict_margin(encoded)
    attribution = np.zeros(encoded.mask.shape)
    with _deterministic(model.config.threads), torch.inference_mode():
        for start in range(0, len(encoded), members_per_pass):
            rows = np.arange(start, min(start + members_per_pass, len(encoded)))
            if encoded.mask[rows].any():
                without, positions = _margins_without_each_event(
                    model.network, encoded, rows, recent_events
                )
                owner, position = np.nonzero(positions >= 0)
                attribution[rows[owner], positions[owner, position]] = (
                    margin[rows[owner]] - without[owner, position]
                )
    return SequenceAttribution(encoded=encoded, margin=margin, attribution=attribution)


def _margins_without_each_event(
    network: ChurnGRU, encoded: EncodedSequences, rows: np.ndarray, recent: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """(margins, positions), both (len(rows), length) in compacted event order: entry [i, j]
    is row i's margin without its j-th real event (oldest first) and that event's position
    in `encoded` (-1 where there is no such event or it was not occluded)."""
    kind, category, channel, numeric, mask = _tensors(encoded, rows)
    width = mask.shape[1]
    lengths = mask.sum(dim=1)
    # Real events to the front, in order: event j of row i sits at [i, j].
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    kind, category, channel = (t.gather(1, order) for t in (kind, category, channel))
    numeric = numeric.gather(1, order.unsqueeze(-1).expand_as(numeric))
    mask = mask.gather(1, order)
    steps = network.steps(kind, category, channel, numeric, mask)
    # Event j + 1 as it reads once event j is gone: the two time gaps merged into one.
    merged = numeric.clone()
    gap = numeric[..., GAP].double()
    merged[:, 1:, GAP] = torch.log1p(torch.expm1(gap[:, :-1]) + torch.expm1(gap[:, 1:])).float()
    merged_steps = network.steps(kind, category, channel, merged, mask)
    packed = pack_padded_sequence(
        steps, lengths.clamp(min=1), batch_first=True, enforce_sorted=False
    )
    states = pad_packed_sequence(network.gru(packed)[0], batch_first=True, total_length=width)[0]
    hidden = network.gru.hidden_size
    # A row with no event left runs one all-zero step (ChurnGRU._last_state).
    empty_state = network.gru(steps.new_zeros(1, 1, steps.shape[-1]))[1][0, 0]
    margins = np.zeros((len(rows), width))
    positions = np.full((len(rows), width), -1, dtype="int64")
    longest = int(lengths.max())
    for suffix in range(min(longest, recent or longest)):
        # Occlude event j = n - 1 - suffix of every row that has it: `suffix` events follow.
        members = (lengths > suffix).nonzero().squeeze(1)
        j = lengths[members] - 1 - suffix
        before = torch.where(
            (j >= 1).unsqueeze(1),
            states[members, (j - 1).clamp(min=0)],
            steps.new_zeros(len(members), hidden),
        )
        if suffix == 0:
            final = torch.where((lengths[members] == 1).unsqueeze(1), empty_state, before)
        else:
            after = (j + 1).unsqueeze(1) + torch.arange(suffix).unsqueeze(0)
            inputs = steps[members.unsqueeze(1), after]
            inputs[:, 0] = merged_steps[members, j + 1]
            final = network.gru(inputs, before.unsqueeze(0).contiguous())[1][0]
        members_np, j_np = members.numpy(), j.numpy()
        margins[members_np, j_np] = network.head(final).squeeze(-1).double().numpy()
        positions[members_np, j_np] = order[members, j].numpy()
    return margins, positions


def occlusion_attribution_by_masking(
    *,
    model: SequenceChurnModel,
    encoded: EncodedSequences,
    max_sequences_per_pass: int = DEFAULT_SEQUENCES_PER_PASS,
) -> SequenceAttribution:
    """margin(full) - margin(without event j) for every real event j of every row, by running
    every occluded copy through the model whole: the plain reference (see module docstring)."""
    margin = model.predict_margin(encoded)
    attribution = np.zeros(encoded.mask.shape)
    members_per_pass = max(1, max_sequences_per_pass // encoded.length)
    for start in range(0, len(encoded), members_per_pass):
        rows = np.arange(start, min(start + members_per_pass, len(encoded)))
        owner, position = np.nonzero(encoded.mask[rows])
        if len(owner) == 0:
            continue
        occluded = _without_one_event(encoded.take(rows), owner, position)
        without = model.predict_margin(occluded, batch_size=len(owner))
        attribution[rows[owner], position] = margin[rows[owner]] - without
    return SequenceAttribution(encoded=encoded, margin=margin, attribution=attribution)


def _without_one_event(
    chunk: EncodedSequences, owner: np.ndarray, position: np.ndarray
) -> EncodedSequences:
    """Copy `owner[i]`'s row once per i, with the event at `position[i]` masked out.

    The next real event's gap becomes the sum of both gaps (log1p(a) and log1p(b) become
    log1p(a + b)); positions are left where they are, the model skips masked ones.
    """
    copies = chunk.take(owner)
    mask = copies.mask.copy()
    copy_index = np.arange(len(owner))
    mask[copy_index, position] = False
    numeric = copies.numeric.copy()
    following = _next_real(mask, position)
    has_next = following < mask.shape[1]
    rows, later = copy_index[has_next], following[has_next]
    removed_days = np.expm1(numeric[rows, position[has_next], GAP].astype("float64"))
    next_days = np.expm1(numeric[rows, later, GAP].astype("float64"))
    numeric[rows, later, GAP] = np.log1p(removed_days + next_days)
    return replace(copies, mask=mask, numeric=numeric)


def _next_real(mask: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Per row, the first real position after `position` (mask.shape[1] when none)."""
    width = mask.shape[1]
    index = np.where(mask, np.arange(width)[None, :], width)
    after = np.where(np.arange(width)[None, :] > position[:, None], index, width)
    return after.min(axis=1)
