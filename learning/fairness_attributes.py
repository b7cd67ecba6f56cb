"""Which attributes the fairness reports measure, and which of them they judge: age band and
region (kept for fairness audits, `loyalty.models.Member`), the tier beside them for context,
and every member attribute an admin marked as protected (`learning.models.ProtectedAttribute`,
a key of `Member.attributes`). No Django: `learning.fairness_stats` reads it too.

A marked attribute is one more column of the report's frame, named by its key: a key that is
already a column of the frames (or of the columns the arithmetic adds) cannot be marked.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass

# Kept for fairness audits (loyalty.models.Member): judged against the limits. The tier is a
# program attribute, reported beside them for context but not judged (its churn differs by
# design of the program).
PROTECTED = ("age_band", "region")
ATTRIBUTES = {"age_band": "Age band", "region": "Region", "tier": "Tier"}
# The group of the members for whom an attribute is not recorded (blank, or a marked key they
# do not have): shown, never compared.
NOT_RECORDED = "not recorded"
# The other columns of the frames (`fairness_stats.FRAME_COLUMNS`,
# `fairness_actions.ACTION_FRAME_COLUMNS`) and those the arithmetic adds to them.
RESERVED_KEYS = frozenset(
    {
        *ATTRIBUTES,
        "score",
        "model",
        "final",
        "by_person",
        "outcome",
        "held_out",
        "override_rate",
        "toward_churn",
        "toward_stay",
    }
)


@dataclass(frozen=True)
class AuditedAttributes:
    """The attributes a report measures, in its order (each frame column with its label), and
    those judged against the limits."""

    labels: Mapping[str, str]
    protected: frozenset[str]

    @property
    def marked(self) -> tuple[str, ...]:
        """The marked attributes' keys: the frame's columns beyond the built-in ones."""
        return tuple(name for name in self.labels if name not in ATTRIBUTES)


BUILT_IN = AuditedAttributes(labels=ATTRIBUTES, protected=frozenset(PROTECTED))


def with_marked(marked: Mapping[str, str]) -> AuditedAttributes:
    """The built-in attributes, then the marked ones (key → label) in key order: all judged.
    A reserved key is left out (the model refuses to mark one)."""
    keys = sorted(key for key in marked if key not in RESERVED_KEYS)
    return AuditedAttributes(
        labels={**ATTRIBUTES, **{key: marked[key] for key in keys}},
        protected=frozenset((*PROTECTED, *keys)),
    )


def markable_key_error(key: str) -> str | None:
    """Why `key` cannot be marked as protected (beyond being an attribute key); None if it can."""
    if key in RESERVED_KEYS:
        return f"{key!r} is already a column of the fairness reports; it cannot be marked"
    return None


_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")


def group_order(group: object) -> tuple:
    """How a report lists an attribute's groups: numbers in a label by their value ("15-24K"
    before "100-124K", "2" before "10"), text without regard to case, "not recorded" last."""
    text = str(group)
    if text == NOT_RECORDED:
        return (1, ())
    parts = _NUMBER.split(text)
    return (
        0,
        tuple(
            (0, float(part), "") if index % 2 else (1, 0.0, part.casefold())
            for index, part in enumerate(parts)
            if part
        ),
    )


def ordered_counts(groups) -> list[tuple[object, int]]:
    """(group, count) of each value of `groups` (a pandas Series), in `group_order`."""
    return sorted(groups.value_counts().items(), key=lambda item: group_order(item[0]))
