"""Custom segments: rules an admin writes into a policy version, and who matches them.

A custom segment is a `segment_overrides` entry keyed "rule:<slug>" (the slug of its name)
whose value states its rule beside its thresholds:
`{"name": ..., "rule": {"tiers": [...], "rfm_segments": [...], "min_value": 1000.0,
"max_value": None}, "auto_approve_confidence": ..., "expert_confidence": ...}`. The rule is
stored inline in the version, so that a version states its routing in full and a rule never
changes meaning under the items that version routed: editing a rule saves a new version.

A rule reads member data only (tier, RFM segment, the member value routing reads): never a
model output or a behavioral cluster, whose numbers change with every refit. A member matches
when every condition given holds; a list matches any of its entries; the value bounds are
inclusive below and exclusive above. `CustomSegment.matches` (one member: routing and
re-routing) and `CustomSegment.mask` (columns: the simulation) are the one rule, held equal by
the tests.
"""

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd

RULE_KEY_PREFIX = "rule:"
MAX_SLUG_LENGTH = 32
# Enough for any team's hand-written segments; each costs a pass over the simulated rows.
MAX_CUSTOM_SEGMENTS = 20


def custom_segment_key(name: str) -> str:
    """The key of a custom segment named `name`: "rule:" and the slug of the name (lower-case
    ASCII letters, digits and "_", at most MAX_SLUG_LENGTH); "rule:" alone where the name has
    no letter or digit."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")
    return f"{RULE_KEY_PREFIX}{slug[:MAX_SLUG_LENGTH].rstrip('_')}"


def is_custom_segment_key(key: str) -> bool:
    return key.startswith(RULE_KEY_PREFIX)


@dataclass(frozen=True)
class CustomSegment:
    """One custom segment's rule as stored (`key` its `segment_overrides` key). An empty
    list or a None bound is a condition not given."""

    key: str
    name: str
    tiers: tuple[str, ...] = ()
    rfm_segments: tuple[str, ...] = ()
    min_value: float | None = None
    max_value: float | None = None

    @classmethod
    def of(cls, key: str, override: dict) -> "CustomSegment":
        rule = override.get("rule") or {}
        low, high = rule.get("min_value"), rule.get("max_value")
        return cls(
            key=key,
            name=str(override.get("name") or key.removeprefix(RULE_KEY_PREFIX)),
            tiers=tuple(rule.get("tiers") or ()),
            rfm_segments=tuple(rule.get("rfm_segments") or ()),
            min_value=None if low is None else float(low),
            max_value=None if high is None else float(high),
        )

    def matches(self, *, tier: str, rfm_segment: str, value: float | None) -> bool:
        """Whether one member matches (a value of None is within no bound)."""
        if self.tiers and tier not in self.tiers:
            return False
        if self.rfm_segments and rfm_segment not in self.rfm_segments:
            return False
        if self.min_value is not None and not (value is not None and value >= self.min_value):
            return False
        return self.max_value is None or (value is not None and value < self.max_value)

    def mask(self, *, tiers, rfm_segments, values: np.ndarray) -> np.ndarray:
        """`matches` of every row at once (a nan value is within no bound). `tiers` and
        `rfm_segments`: arrays of text, or pandas Categoricals of them (faster on many rows)."""
        rows = np.ones(len(values), dtype=bool)
        if self.tiers:
            rows &= pd.Series(tiers).isin(self.tiers).to_numpy(dtype=bool)
        if self.rfm_segments:
            rows &= pd.Series(rfm_segments).isin(self.rfm_segments).to_numpy(dtype=bool)
        values = np.asarray(values, dtype="float64")
        with np.errstate(invalid="ignore"):  # nan compares false: within no bound
            if self.min_value is not None:
                rows &= values >= self.min_value
            if self.max_value is not None:
                rows &= values < self.max_value
        return rows


def custom_segments_of(overrides: dict | None) -> tuple[CustomSegment, ...]:
    """The custom segments among `overrides`, by name (then key): the order pages list them."""
    segments = (
        CustomSegment.of(key, override)
        for key, override in (overrides or {}).items()
        if is_custom_segment_key(key)
    )
    return tuple(sorted(segments, key=lambda s: (s.name.casefold(), s.key)))
