"""The custom-segment rows of the policy form: one row of fields per segment (and one empty
row to add one), their checks, and the `segment_overrides` entries they make
(`reviews.custom_segments` holds the rule itself)."""

import re
from dataclasses import dataclass

from django import forms
from django.conf import settings as django_settings

from predictions.ml.segments import RFM_SEGMENTS
from reviews.custom_segments import (
    MAX_CUSTOM_SEGMENTS,
    RULE_KEY_PREFIX,
    custom_segment_key,
    custom_segments_of,
    is_custom_segment_key,
)

AUTO_KEY, EXPERT_KEY = "auto_approve_confidence", "expert_confidence"
RULE_CONDITIONS = ("tiers", "rfm_segments", "min_value", "max_value")
ROW_FIELDS = ("name", *RULE_CONDITIONS, "auto", "expert", "remove")
# A row's fields are named custom_<index>_<field>; three digits bound what a post can ask for.
ROW_FIELD_NAME = re.compile(r"custom_(\d{1,3})_(?:" + "|".join(ROW_FIELDS) + r")")
SHARE = {"min_value": 0.0, "max_value": 1.0}
RFM_SEGMENT_LABELS = {info.code: info.name for info in RFM_SEGMENTS}


def threshold_error(
    *, label: str, own_auto, own_expert, auto: float | None, expert: float | None
) -> str | None:
    """Why an override's thresholds (None: the policy's) cannot stand together, or None: the
    expert threshold may not exceed the auto-approve threshold it ends up with."""
    effective_auto = own_auto if own_auto is not None else auto
    effective_expert = own_expert if own_expert is not None else expert
    if None in (effective_auto, effective_expert) or effective_expert <= effective_auto:
        return None
    return (
        f"{label}: expert threshold {effective_expert:.2f} exceeds its auto-approve "
        f"threshold {effective_auto:.2f}."
    )


def row_fields(*, tiers: list[str], rfm_segments: list[str]) -> dict[str, forms.Field]:
    """The fields of one custom-segment row, by their name within the row."""

    def share(label: str) -> forms.FloatField:
        return forms.FloatField(
            label=label,
            required=False,
            widget=forms.NumberInput(attrs={"step": "0.01", "min": "0", "max": "1"}),
            **SHARE,
        )

    def spend(label: str) -> forms.FloatField:
        return forms.FloatField(
            label=label,
            required=False,
            min_value=0.0,
            widget=forms.NumberInput(attrs={"step": "any", "min": "0"}),
        )

    return {
        "name": forms.CharField(label="Name", required=False, max_length=100),
        "tiers": forms.MultipleChoiceField(
            label="Tiers",
            required=False,
            choices=[(tier, tier) for tier in tiers],
            widget=forms.CheckboxSelectMultiple,
        ),
        "rfm_segments": forms.MultipleChoiceField(
            label="RFM segments",
            required=False,
            choices=[(code, RFM_SEGMENT_LABELS.get(code, code)) for code in rfm_segments],
            widget=forms.SelectMultiple(attrs={"size": 6}),
        ),
        "min_value": spend("12-month spend from"),
        "max_value": spend("to below"),
        "auto": share("Auto-approve ≥"),
        "expert": share("Expert below"),
        "remove": forms.BooleanField(label="Remove", required=False),
    }


def custom_form_data(overrides: dict | None) -> dict[str, object]:
    """Form data of the custom segments among `overrides`, one row each, as stored (the API's
    and the policy test's way in: the form checks what they hold)."""
    data: dict[str, object] = {}
    for index, segment in enumerate(custom_segments_of(_well_formed(overrides))):
        override = overrides[segment.key]
        rule = override.get("rule") or {}
        values = {
            "name": override.get("name", ""),
            "tiers": rule.get("tiers") or [],
            "rfm_segments": rule.get("rfm_segments") or [],
            "min_value": rule.get("min_value"),
            "max_value": rule.get("max_value"),
            "auto": override.get(AUTO_KEY),
            "expert": override.get(EXPERT_KEY),
        }
        data.update(
            {f"custom_{index}_{field}": "" if v is None else v for field, v in values.items()}
        )
    return data


def _well_formed(overrides: dict | None) -> dict:
    return {
        key: override
        for key, override in (overrides or {}).items()
        if is_custom_segment_key(key) and isinstance(override.get("rule") or {}, dict)
    }


def malformed_custom_segments(overrides: dict | None) -> list[str]:
    """What is wrong with the custom segments of `overrides` before the form can read them
    (an API's): a rule that is not an object, a condition a rule cannot hold (a model output,
    a cluster), a key that is not "rule:" and the slug of the segment's name."""
    problems = []
    for key, override in sorted((overrides or {}).items()):
        if not is_custom_segment_key(key):
            continue
        rule = override.get("rule")
        if rule is not None and not isinstance(rule, dict):
            problems.append(f"{key}: the rule must be an object of {', '.join(RULE_CONDITIONS)}.")
            continue
        if unknown := sorted(set(rule or {}) - set(RULE_CONDITIONS)):
            problems.append(
                f"{key}: a rule reads member data only ({', '.join(RULE_CONDITIONS)}), "
                f"not {', '.join(unknown)}."
            )
        name = override.get("name")
        if isinstance(name, str) and name.strip() and custom_segment_key(name) != key:
            problems.append(
                f"{key}: a custom segment's key is {RULE_KEY_PREFIX} and the slug of its name "
                f"({custom_segment_key(name)})."
            )
    return problems


@dataclass(frozen=True)
class CustomSegmentRow:
    """One row of the custom-segments fieldset: its bound fields (`is_new`: the empty row)."""

    index: int
    is_new: bool
    name: forms.BoundField
    tiers: forms.BoundField
    rfm_segments: forms.BoundField
    min_value: forms.BoundField
    max_value: forms.BoundField
    auto: forms.BoundField
    expert: forms.BoundField
    remove: forms.BoundField

    @property
    def has_errors(self) -> bool:
        return any(getattr(self, field).errors for field in ROW_FIELDS)


class CustomSegmentsMixin:
    """PolicyForm's custom-segment rows: `add_custom_rows` in `__init__`, `clean_custom_rows`
    in `clean`, which keeps what the rows make in `cleaned_custom` for `policy_settings`."""

    def add_custom_rows(self, overrides: dict) -> None:
        """A row per stored segment and an empty one (unbound); a row per row posted and, when
        the last holds a segment, an empty one (bound)."""
        # A stored rule's tier or RFM segment that is no longer one stays listed, ticked, so that
        # saving refuses it (`custom_row_problems`) rather than dropping it unseen: a rule
        # that lost a condition would match more members than it says.
        stored_rules = custom_segments_of(_well_formed(overrides))
        ladder = list(django_settings.LOYALTY_TIER_LADDER)
        tiers = ladder + sorted({t for s in stored_rules for t in s.tiers} - set(ladder))
        codes = list(RFM_SEGMENT_LABELS)
        codes += sorted({c for s in stored_rules for c in s.rfm_segments} - set(codes))
        if self.is_bound:
            posted = sorted(
                {int(match[1]) for name in self.data if (match := ROW_FIELD_NAME.fullmatch(name))}
            )
            last_is_filled = bool(posted) and bool(self._row_value(posted[-1], "name"))
            self.custom_indices = posted + ([posted[-1] + 1] if last_is_filled else [])
            self.custom_indices = self.custom_indices or [0]
        else:
            self.custom_indices = list(range(len(stored_rules) + 1))
            for name, value in custom_form_data(overrides).items():
                self.initial.setdefault(name, value)
        for index in self.custom_indices:
            for field, form_field in row_fields(tiers=tiers, rfm_segments=codes).items():
                self.fields[f"custom_{index}_{field}"] = form_field

    def _row_value(self, index: int, field: str):
        return str(self.data.get(f"custom_{index}_{field}", "") or "").strip()

    def custom_rows(self) -> list[CustomSegmentRow]:
        return [
            CustomSegmentRow(
                index=index,
                is_new=index == self.custom_indices[-1],
                **{field: self[f"custom_{index}_{field}"] for field in ROW_FIELDS},
            )
            for index in self.custom_indices
        ]

    def clean_custom_rows(self, data: dict, *, auto, expert) -> None:
        """Check each row that holds a segment and is not removed; keep what they make in
        `self.cleaned_custom` ({key: override})."""
        self.cleaned_custom: dict[str, dict] = {}
        for index in self.custom_indices:
            row = {field: data.get(f"custom_{index}_{field}") for field in ROW_FIELDS}
            if row["remove"] or all(row[field] in (None, "", []) for field in ROW_FIELDS[:-1]):
                continue
            override = self._clean_custom_row(index, row, auto=auto, expert=expert)
            if override is None:
                continue
            key = custom_segment_key(override["name"])
            if key in self.cleaned_custom:
                self.add_error(
                    f"custom_{index}_name",
                    f"Another custom segment's name gives the same key ({key}): name it apart.",
                )
            elif len(self.cleaned_custom) >= MAX_CUSTOM_SEGMENTS:
                self.add_error(
                    f"custom_{index}_name",
                    f"At most {MAX_CUSTOM_SEGMENTS} custom segments per version.",
                )
            else:
                self.cleaned_custom[key] = override

    def _clean_custom_row(self, index: int, row: dict, *, auto, expert) -> dict | None:
        """The override of one row, or None after adding its errors."""
        prefix = f"custom_{index}"
        if any(f"{prefix}_{field}" in self.errors for field in ROW_FIELDS):
            return None
        problems = custom_row_problems(row, auto=auto, expert=expert)
        for field, message in problems:
            self.add_error(f"{prefix}_{field}", message)
        if problems:
            return None
        ladder = [tier for tier, _ in self.fields[f"{prefix}_tiers"].choices]
        codes = [code for code, _ in self.fields[f"{prefix}_rfm_segments"].choices]
        override = {
            "name": row["name"].strip(),
            "rule": {
                "tiers": [tier for tier in ladder if tier in row["tiers"]],
                "rfm_segments": [code for code in codes if code in row["rfm_segments"]],
                "min_value": row["min_value"],
                "max_value": row["max_value"],
            },
        }
        if row["auto"] is not None:
            override[AUTO_KEY] = row["auto"]
        if row["expert"] is not None:
            override[EXPERT_KEY] = row["expert"]
        return override


def custom_row_problems(row: dict, *, auto, expert) -> list[tuple[str, str]]:
    """(field, message) for each thing wrong with one row's cleaned values; `auto` and
    `expert` are the policy's thresholds (None where they are wrong themselves)."""
    problems = []
    name = (row["name"] or "").strip()
    if not name:
        problems.append(("name", "Give the segment a name."))
    elif custom_segment_key(name) == RULE_KEY_PREFIX:
        problems.append(("name", "Give a name with at least one letter or digit."))
    ladder = django_settings.LOYALTY_TIER_LADDER
    if gone := [tier for tier in row["tiers"] or () if tier not in ladder]:
        problems.append(("tiers", f"Not a tier: {', '.join(gone)}. Untick it."))
    if gone := [code for code in row["rfm_segments"] or () if code not in RFM_SEGMENT_LABELS]:
        problems.append(("rfm_segments", f"Not an RFM segment: {', '.join(gone)}. Unselect it."))
    low, high = row["min_value"], row["max_value"]
    if not row["tiers"] and not row["rfm_segments"] and low is None and high is None:
        problems.append(
            (
                "tiers",
                "Give the rule at least one condition: a tier, an RFM segment or a spend bound.",
            )
        )
    if low is not None and high is not None and low >= high:
        problems.append(("max_value", f"Must be above the lower bound ({low:,.2f})."))
    if row["auto"] is None and row["expert"] is None:
        problems.append(
            (
                "auto",
                "Give at least one threshold: a segment that sets none routes as if it "
                "were not there.",
            )
        )
    elif problem := threshold_error(
        label=f"Custom {name or 'segment'}",
        own_auto=row["auto"],
        own_expert=row["expert"],
        auto=auto,
        expert=expert,
    ):
        problems.append(("expert", problem))
    return problems
