"""What one import did: counts, timings, and where its rejected rows went."""

from dataclasses import dataclass

MEMBERS = "members"
EVENTS = "events"


@dataclass(frozen=True)
class ImportResult:
    """What one import did. For events, `unchanged` counts rows whose natural key was already
    stored; `updated` is always 0. `rejected` counts the rows set aside in `rejects_file` when
    the import skipped invalid rows (`rejects_file` is None when it was all or nothing)."""

    kind: str
    source: str
    rows_read: int
    created: int
    updated: int
    unchanged: int
    validate_seconds: float
    write_seconds: float
    rejected: int = 0
    rejects_file: str | None = None
    negative_purchases_as_returns: int = 0

    @property
    def imported(self) -> int:
        """Rows accepted: created, updated, or already there."""
        return self.rows_read - self.rejected

    def summary(self) -> str:
        text = (
            f"{self.kind} from {self.source}: {self.rows_read:,} rows read, "
            f"{self.created:,} created, {self.updated:,} updated, {self.unchanged:,} unchanged"
        )
        if self.rejects_file is not None:
            text += f", {self.rejected:,} rejected"
        if self.negative_purchases_as_returns:
            text += (
                f"; {self.negative_purchases_as_returns:,} purchases with a negative amount or "
                "quantity read as returns"
            )
        return (
            f"{text} (validated in {self.validate_seconds:.1f} s, "
            f"written in {self.write_seconds:.1f} s)"
        )

    def as_dict(self) -> dict[str, object]:
        counts: dict[str, object] = {
            "kind": self.kind,
            "source": self.source,
            "rows_read": self.rows_read,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
        }
        if self.kind == EVENTS:
            counts["negative_purchases_as_returns"] = self.negative_purchases_as_returns
        if self.rejects_file is not None:
            counts.update(rejected=self.rejected, rejects_file=self.rejects_file)
        return counts
