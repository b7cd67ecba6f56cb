"""The loyalty program's data: members, their behavioral events, the action catalog, audit."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from loyalty.member_attributes import validate_attributes
from predictions.ml import frames


class Member(models.Model):
    """A loyalty program member, known by a pseudonymous external id.

    `age_band`, `region` and `attributes` (further ones, e.g. income band, home ownership,
    household size: attribute key to short text, `loyalty.member_attributes`) are kept for
    fairness audits only: they never become model features, and analysts never see them.
    An erased member keeps its row (so that aggregate records stay consistent) with every
    personal field blanked and `erased_at` set.
    """

    class Consent(models.TextChoices):
        """The consents a member gives; each is the field `consent_<value>`, changed only
        through `services.members.set_consent`. `consent_changed_at` is when one last changed."""

        PROFILING = "profiling", "Profiling"
        MARKETING = "marketing", "Marketing"

    external_id = models.CharField(max_length=64, unique=True)
    joined_on = models.DateField(null=True, blank=True)
    tier = models.CharField(max_length=32, blank=True, db_index=True)
    points_balance = models.IntegerField(default=0)
    consent_profiling = models.BooleanField(default=False)
    # Consent to be contacted with offers: checked when a decision that contacts the member
    # leaves the product (`loyalty.contact_rules`), as it stands then, not as it stood at scoring.
    consent_marketing = models.BooleanField(default=False, db_default=False)
    consent_changed_at = models.DateTimeField(null=True, blank=True)
    age_band = models.CharField(max_length=32, blank=True)
    region = models.CharField(max_length=64, blank=True)
    # The database default serves the bulk writes that insert rows without Django (imports).
    attributes = models.JSONField(
        default=dict,
        db_default=models.Value({}, output_field=models.JSONField()),
        blank=True,
        validators=[validate_attributes],
    )
    erased_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Freshness (`predictions.services.scoring.freshness`): marked when an input of the
    # member's scores changes (new events, a consent, a tier or another field), cleared by the
    # scoring that covers the change; and the scoring clock's reading of its latest scoring.
    inputs_changed_at = models.DateTimeField(null=True, blank=True)
    scored_through = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["id"]
        permissions = [("erase_member", "Can erase a member's personal data")]
        indexes = [
            # Few members are marked at a time: the daily refresh finds them without a scan.
            models.Index(
                fields=["inputs_changed_at"],
                condition=Q(inputs_changed_at__isnull=False),
                name="member_inputs_changed",
            )
        ]

    def __str__(self) -> str:
        return self.external_id

    @property
    def is_erased(self) -> bool:
        return self.erased_at is not None

    @property
    def tier_rank(self) -> int:
        """Position on the configured tier ladder; unlisted tiers rank below all listed ones."""
        return frames.tier_rank(self.tier, settings.LOYALTY_TIER_LADDER)


class Event(models.Model):
    """One behavioral interaction of a member. The raw material of every feature.

    The natural key (member, occurred_at, kind, session_id, product_id) makes a re-import a
    no-op; its unique index also serves "events of a member ordered by time".
    """

    # The engine's event kinds, one list for the database and the models: Kind.PURCHASE is
    # "purchase", labelled "Purchase".
    Kind = models.TextChoices(
        "Kind", [(kind.upper(), kind) for kind in frames.EVENT_KINDS], qualname="Event.Kind"
    )

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="events")
    occurred_at = models.DateTimeField()
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # Four decimals hold unit prices and three-decimal currencies (KWD, BHD) exactly. Fifteen
    # digits in all is what SQLite keeps of a decimal and what a double carries exactly, so an
    # imported amount reads back as it was written on either database.
    amount = models.DecimalField(max_digits=15, decimal_places=4, null=True, blank=True)
    quantity = models.FloatField(null=True, blank=True)
    category = models.CharField(max_length=64, blank=True)
    channel = models.CharField(max_length=32, blank=True)
    session_id = models.CharField(max_length=64, blank=True)
    dwell_seconds = models.FloatField(null=True, blank=True)
    product_id = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["member", "occurred_at", "kind", "session_id", "product_id"],
                name="event_natural_key",
            ),
        ]
        indexes = [models.Index(fields=["occurred_at"], name="event_occurred_at")]

    def __str__(self) -> str:
        return f"{self.kind} by {self.member_id} at {self.occurred_at:%Y-%m-%d %H:%M}"


class Action(models.Model):
    """An entry in the catalog of things the program can do for a member."""

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    cost = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    min_tier = models.CharField(
        max_length=32, blank=True, help_text="Lowest tier that may receive it; blank for any."
    )
    requires_consent = models.BooleanField(
        default=True, help_text="Only for members who consented to profiling."
    )
    is_active = models.BooleanField(default=True)
    holdout_share = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.5)],
        help_text="Share of decisions for this action recorded but not executed (a holdout "
        "that measures what the action changes), drawn at random per decision. Blank: the "
        "program's default (control group settings).",
    )
    # What the action is worth until the control groups have measured it: expected value for a
    # member = P(churn) x retention_gain x member value - cost (`predictions.ml.action_value`).
    retention_gain = models.FloatField(
        default=0.0,
        db_default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Prior: the share of members about to churn that this action keeps "
        "(0.10 = one in ten), until the control groups have measured it.",
    )
    budget_count = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="At most this many executed decisions per budget period (contact rules); "
        "blank: no limit.",
    )
    budget_amount = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="At most this much spent (cost x executed decisions) per budget period; "
        "blank: no limit.",
    )
    cooldown_days = models.PositiveIntegerField(
        default=30,
        db_default=30,
        help_text="A re-score sends this action to the same member again only after this many "
        "days; a change of action goes out at once.",
    )

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name

    def is_eligible(self, member: Member) -> bool:
        if not self.is_active:
            return False
        if self.requires_consent and not member.consent_profiling:
            return False
        if self.min_tier:
            needed = frames.required_tier_rank(self.min_tier, settings.LOYALTY_TIER_LADDER)
            return member.tier_rank >= needed
        return True


class AuditRecord(models.Model):
    """Append-only trail of imports, erasures, consent and role changes, decisions, policy
    changes, promotions and the rest of `Kind`. Rows are never updated or deleted: the model
    refuses it, and so do database triggers (migration 0011), which let one change through, a
    declared redaction of `details` (see `reviews.erasure`)."""

    class Kind(models.TextChoices):
        IMPORT = "import"
        ERASURE = "erasure"
        CONSENT_CHANGE = "consent_change"
        ROLE_CHANGE = "role_change"
        MEMBER_CHANGE = "member_change"
        PROMOTION = "promotion"
        ROLLBACK = "rollback"
        POLICY_CHANGE = "policy_change"
        DECISION = "decision"
        ESCALATION = "escalation"
        # A change made in the admin (user, group, token, gate policy, reason code, action,
        # periodic task, scoring setting), with its before and after values.
        CONFIG_CHANGE = "config_change"
        # Everything the product holds about one member, handed out on request.
        EXPORT = "export"
        # An admin lifted an erasure's tombstone, so that the external id may come back.
        TOMBSTONE_LIFT = "tombstone_lift"
        # Repeated failed logins locked an account (django-axes), and an admin unlocked it.
        LOGIN_LOCKOUT = "login_lockout"
        LOGIN_UNLOCK = "login_unlock"

    occurred_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The user's id, not a database foreign key: deleting a user leaves the record as it was
    # (id and name), where SET NULL would rewrite it. A deleted user's record reads no user
    # (`select_related("actor")` gives None; plain `.actor` raises DoesNotExist): read
    # `actor_name`, as the pages do.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
    )
    actor_name = models.CharField(max_length=150, blank=True)
    kind = models.CharField(max_length=32, choices=Kind.choices, db_index=True)
    subject = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject} by {self.actor_name or 'system'}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("Audit records are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit records are append-only.")


class ErasureTombstoneQuerySet(models.QuerySet):
    def standing(self) -> "ErasureTombstoneQuerySet":
        """The tombstones in force: their external ids may not come back."""
        return self.filter(lifted_at__isnull=True)


class ErasureTombstone(models.Model):
    """What remains of an erased member's external id: enough to refuse the id when it comes
    back (an import, an API create, an event), not enough to learn it.

    `digest` is HMAC-SHA256, keyed with the server secret ERASURE_TOMBSTONE_KEY, of the
    SHA-256 of the external id (`loyalty.services.erasure.tombstone_digest`): without the key
    a low-entropy id cannot be found by trying candidates. The inner SHA-256 is what erasure
    records kept before tombstones existed, so that their erasures got tombstones too
    (migration 0007). A standing tombstone (`lifted_at` empty) refuses the id; an admin may
    lift it, saying why. At most one stands per id; a lifted one stays as history.
    """

    digest = models.CharField(max_length=64, db_index=True)
    member = models.OneToOneField(
        Member,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="erasure_tombstone",
        help_text="The erased member's row (its placeholder id says nothing about the person).",
    )
    erased_at = models.DateTimeField()
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lift_reason = models.TextField(blank=True)

    objects = ErasureTombstoneQuerySet.as_manager()

    class Meta:
        ordering = ["-erased_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["digest"],
                condition=Q(lifted_at__isnull=True),
                name="one_standing_tombstone_per_id",
            )
        ]

    def __str__(self) -> str:
        state = "standing" if self.lifted_at is None else "lifted"
        return f"tombstone {self.digest[:12]}… of member {self.member_id} ({state})"


class SyntheticTruth(models.Model):
    """The true churn probability of a generated member, known by construction.

    Kept apart from everything a model reads, so that interval coverage can be measured
    against the truth without leaking it into features.
    """

    member = models.OneToOneField(Member, on_delete=models.CASCADE, related_name="+")
    seed = models.IntegerField()
    cutoff = models.DateTimeField()
    horizon_days = models.IntegerField()
    churn_probability = models.FloatField()
    churned = models.BooleanField()

    def __str__(self) -> str:
        return f"truth for member {self.member_id}: p={self.churn_probability:.3f}"


class WorkerHeartbeat(models.Model):
    """A row a Celery worker writes on a schedule: the home page shows when one last ran."""

    hostname = models.CharField(max_length=200)
    beat_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(hostname=""), name="heartbeat_has_hostname")
        ]

    def __str__(self) -> str:
        return f"{self.hostname} at {self.beat_at:%Y-%m-%d %H:%M:%S}"


class OutboxEvent(models.Model):
    """Something other systems must hear of, written in the transaction of the change it
    announces (`loyalty.outbox.emit`), so that it exists exactly when the change does.
    `integrations` delivers it; `event_id` is what receivers deduplicate on, the same on
    every retry. `member_id` names the member it is about (a pk, not a key: the row outlives
    an erasure, whose receiver redacts the member's identifiers from `data`)."""

    event_id = models.UUIDField(unique=True, editable=False)
    type = models.CharField(max_length=64, db_index=True)
    data = models.JSONField()
    member_id = models.PositiveBigIntegerField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(db_index=True)
    # Set once delivery rows exist for every endpoint that wanted the event.
    fanned_out_at = models.DateTimeField(null=True, blank=True, db_index=True)
    redacted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class Counter(models.Model):
    """A named counter whose next values are handed out under a row lock
    (`loyalty.sequences.next_values`): the lock is held until the transaction commits, so the
    values become visible in the order they were handed out and a reader paging by them never
    skips one committed late."""

    name = models.CharField(max_length=64, primary_key=True)
    value = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} = {self.value}"


def _new_salt() -> str:
    import secrets

    return secrets.token_hex(16)


def _default_universal_share() -> float:
    return settings.LOYALTY_UNIVERSAL_CONTROL_SHARE


def _default_action_holdout_share() -> float:
    return settings.LOYALTY_ACTION_HOLDOUT_SHARE


class ContactRules(models.Model):
    """The program's contact rules (one row, `loyalty.contact_rules`): at most
    `frequency_cap_actions` executed actions per member in `frequency_cap_days`, and each
    action's budget (`Action.budget_count`, `Action.budget_amount`) per `budget_period_days`.
    A decision that would break one is flagged, never auto-approved, and needs a person's
    reason to go out."""

    frequency_cap_actions = models.PositiveIntegerField(
        default=2,
        validators=[MinValueValidator(1)],
        help_text="At most this many executed actions per member ...",
    )
    frequency_cap_days = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1)], help_text="... in this many days."
    )
    budget_period_days = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1)],
        help_text="The period each action's budget covers (the last N days).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "contact rules"
        verbose_name_plural = "contact rules"

    def __str__(self) -> str:
        return (
            f"at most {self.frequency_cap_actions} actions in {self.frequency_cap_days} days; "
            f"budgets per {self.budget_period_days} days"
        )


class ControlGroupSettings(models.Model):
    """The universal control group (one row): members whose stable draw
    (`loyalty.control_groups`) falls below `universal_share` receive no action at all; they
    are still scored and decided, so that their outcomes are the baseline. `salt` makes the
    draw unguessable and is never changed: raising the share only adds members. The shares a
    new row starts with are settings (LOYALTY_UNIVERSAL_CONTROL_SHARE, 5 %, and
    LOYALTY_ACTION_HOLDOUT_SHARE, 10 %); admins change them in the admin (audited)."""

    universal_share = models.FloatField(
        default=_default_universal_share,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.5)],
        help_text="Share of members who receive no action at all (the baseline).",
    )
    action_holdout_share = models.FloatField(
        default=_default_action_holdout_share,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.5)],
        help_text="Share of each action's decisions recorded but not executed, for actions "
        "that set no share of their own.",
    )
    salt = models.CharField(max_length=64, default=_new_salt, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "control group settings"
        verbose_name_plural = "control group settings"

    # The salt decides who is held out; the trail records that settings changed, not it.
    AUDIT_OMITTED_FIELDS = ("salt",)

    def __str__(self) -> str:
        return f"universal control: {self.universal_share:.0%}"
