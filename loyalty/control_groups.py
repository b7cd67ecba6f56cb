"""Who is held out, decided by nobody: stable draws from a salted hash.

- The universal control group: a member is in it when the draw of (salt, member pk) is below
  the share (`ControlGroupSettings`). The same member stays in it for good; raising the share
  only adds members.
- The per-action holdout: a decision for an action is held out when the draw of (salt, action,
  member pk, the decided prediction) is below the action's `holdout_share` (or the program's
  `action_holdout_share` when the action sets none). Reproducible: the
  same decision draws the same number on any machine, and the draw is stored with it.
"""

import hashlib
from dataclasses import dataclass

from loyalty.models import Action, ControlGroupSettings

UNIVERSAL_CONTROL = "universal_control"
ACTION_HOLDOUT = "action_holdout"


@dataclass(frozen=True)
class Holdout:
    held_out: bool
    reason: str  # "" when not held out
    draw: float | None  # the draw that decided it (None: no draw was needed)


NOT_HELD_OUT = Holdout(held_out=False, reason="", draw=None)


def unit_draw(*parts: object) -> float:
    """A number in [0, 1) from the parts, uniform and stable (SHA-256, first 8 bytes)."""
    digest = hashlib.sha256("|".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def control_settings() -> ControlGroupSettings:
    """The one settings row (created with its defaults if a flush removed it)."""
    settings, _ = ControlGroupSettings.objects.get_or_create(pk=1)
    return settings


def universal_control_draw(member_id: int, settings: ControlGroupSettings) -> float:
    return unit_draw(settings.salt, "universal", member_id)


def in_universal_control(member_id: int, settings: ControlGroupSettings | None = None) -> bool:
    settings = settings or control_settings()
    return universal_control_draw(member_id, settings) < settings.universal_share


def holdout_for(
    *,
    member_id: int,
    action: Action | None,
    subject: str,
    settings: ControlGroupSettings | None = None,
) -> Holdout:
    """Whether a decision about `member_id` (settling on `action`, or none) is held out.
    `subject` names what was decided (e.g. the prediction), so that each decision draws once."""
    settings = settings or control_settings()
    draw = universal_control_draw(member_id, settings)
    if draw < settings.universal_share:
        return Holdout(held_out=True, reason=UNIVERSAL_CONTROL, draw=draw)
    if action is None:
        return NOT_HELD_OUT
    share = action.holdout_share
    share = settings.action_holdout_share if share is None else share
    draw = unit_draw(settings.salt, "action", action.code, member_id, subject)
    if draw < share:
        return Holdout(held_out=True, reason=ACTION_HOLDOUT, draw=draw)
    return Holdout(held_out=False, reason="", draw=draw)
