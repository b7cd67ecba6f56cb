"""The learning loop's records: labeled examples made of decisions and outcomes, the gate a
retrained candidate must pass, the retraining runs, the monitor's reports, and the fairness
check's limits and runs, and the member attributes marked as protected."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from learning.fairness_attributes import markable_key_error
from loyalty.member_attributes import MAX_KEY_LENGTH, validate_attribute_key
from loyalty.models import Action, Member
from predictions.models import ModelVersion, Prediction, PredictionKind
from reviews.models import Decision


class LabeledExample(models.Model):
    """A training row made from a human decision or from an observed outcome.

    Decision examples: an approval confirms the model's answer, an override's answer becomes
    the label (reason treatment relabel), and an "exclude" reason keeps the row only as the
    record that the decision was handled (`excluded`, never trained on). One per decision.
    Outcome examples: what the member actually did once the prediction's horizon had passed,
    one per prediction, linked to the human decision on it when there was one. A next-action
    outcome without any observed response says nothing about which action was right: it is
    kept for monitoring (`agrees_with_model` False) but `excluded` from training.
    `feature_values` are the values the model saw (in `model_version.features` order), so the
    row trains the same whatever happens to the events later.
    """

    class Source(models.TextChoices):
        DECISION = "decision", "Human decision"
        OUTCOME = "outcome", "Observed outcome"

    source = models.CharField(max_length=20, choices=Source.choices)
    kind = models.CharField(max_length=20, choices=PredictionKind.choices)
    prediction = models.ForeignKey(
        Prediction, on_delete=models.CASCADE, related_name="labeled_examples"
    )
    decision = models.ForeignKey(
        Decision,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="labeled_examples",
        help_text="The decision the example is made of, or the one on its prediction.",
    )
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    cutoff = models.DateTimeField(help_text="The prediction's cutoff: when the features hold.")
    churn_label = models.BooleanField(null=True, blank=True)
    action = models.ForeignKey(
        Action, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    treatment = models.CharField(max_length=20, blank=True, help_text="The reason's treatment.")
    agrees_with_model = models.BooleanField(
        null=True, blank=True, help_text="Whether the label is the model's own answer."
    )
    weight = models.FloatField()
    excluded = models.BooleanField(default=False)
    feature_values = models.JSONField(default=list)
    observed_at = models.DateTimeField(help_text="When the label became known.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-observed_at", "-id"]
        constraints = [
            # A case's decision teaches both kinds: one example of each.
            models.UniqueConstraint(
                fields=["decision", "kind"],
                condition=Q(source="decision"),
                name="one_example_per_decision_and_kind",
            ),
            models.UniqueConstraint(
                fields=["prediction"],
                condition=Q(source="outcome"),
                name="one_outcome_per_prediction",
            ),
            models.CheckConstraint(
                condition=Q(source="outcome") | Q(decision__isnull=False),
                name="decision_example_has_its_decision",
            ),
            models.CheckConstraint(condition=Q(weight__gte=0), name="example_weight_not_negative"),
        ]
        indexes = [
            models.Index(fields=["kind", "excluded", "observed_at"], name="example_training"),
        ]

    def __str__(self) -> str:
        return f"{self.source} example for prediction {self.prediction_id}"


class GatePolicy(models.Model):
    """What a retrained candidate must show to replace the active version, and what the
    calibration monitor tolerates before it pauses auto-approval. One row per kind, edited in
    the admin (changes are in the admin's history).

    The gate compares candidate and active version on the same out-of-time holdout and on the
    human-labeled examples that neither trained on (`learning.services.retraining`).
    """

    kind = models.CharField(max_length=20, choices=PredictionKind.choices, unique=True)
    max_auc_drop = models.FloatField(
        default=0.005, help_text="The candidate's ROC AUC may be at most this much lower."
    )
    max_ece = models.FloatField(
        default=0.05, help_text="Expected calibration error of the candidate, at most."
    )
    coverage_tolerance = models.FloatField(
        default=0.03, help_text="Interval / set coverage within nominal ± this."
    )
    max_human_log_loss_increase = models.FloatField(
        default=0.0,
        help_text="On held-out human labels, the candidate's log loss may exceed the active "
        "version's by at most this much.",
    )
    min_human_examples = models.PositiveIntegerField(
        default=30, help_text="Fewer held-out human labels than this: that check is skipped."
    )
    auto_promote = models.BooleanField(
        default=True, help_text="Promote a passing candidate at once, or wait for an admin."
    )
    retraining_horizon_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Churn: the horizon retraining trains for, in days. Empty: the active "
        "version's own horizon.",
    )
    monitor_max_ece = models.FloatField(
        default=0.1,
        help_text="Observed calibration error of the active version above this pauses "
        "auto-approval.",
    )
    monitor_max_psi = models.FloatField(
        default=0.25, help_text="Feature drift (PSI) above this pauses auto-approval."
    )
    monitor_min_outcomes = models.PositiveIntegerField(
        default=200, help_text="Outcomes needed before calibration is judged."
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.get_kind_display()} gate"


class RetrainingRun(models.Model):
    """One retraining of one kind: who or what asked, how far it got, what it produced and
    what the gate said. The candidate version and `candidate` on this row are written in one
    transaction, so a run killed at any point has a whole candidate or none."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule"
        MANUAL = "manual"

    class Verdict(models.TextChoices):
        PROMOTED = "promoted", "Passed the gate and promoted"
        AWAITING_APPROVAL = "awaiting_approval", "Passed the gate, waiting for an admin"
        APPROVED = "approved", "Passed the gate, promoted by an admin"
        REJECTED = "rejected", "Failed the gate: stays a candidate"

    kind = models.CharField(max_length=20, choices=PredictionKind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    stage = models.CharField(max_length=60, blank=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done.")
    examples_used = models.PositiveIntegerField(default=0)
    examples_held_out = models.PositiveIntegerField(default=0)
    candidate = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    compared_with = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The churn horizon the run trained for, and where it came from (`retraining_horizon`).
    horizon_days = models.PositiveIntegerField(null=True, blank=True)
    horizon_source = models.CharField(max_length=60, blank=True)
    gate = models.JSONField(default=dict, blank=True)
    verdict = models.CharField(max_length=20, choices=Verdict.choices, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # At most one run per kind queued or running: a second request joins the first.
            models.UniqueConstraint(
                fields=["kind"],
                condition=Q(status__in=["queued", "running"]),
                name="one_open_retraining_per_kind",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} retraining {self.pk} ({self.status})"


class MonitorReport(models.Model):
    """One look at the active version of a kind: how well its probabilities matched what
    members did (outcome examples), and how far its inputs drifted from the training data."""

    kind = models.CharField(max_length=20, choices=PredictionKind.choices)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    computed_at = models.DateTimeField(auto_now_add=True)
    outcomes = models.PositiveIntegerField(default=0)
    ece = models.FloatField(null=True, blank=True)
    reliability = models.JSONField(default=list, blank=True)
    drift = models.JSONField(default=dict, blank=True, help_text="{feature code: PSI}")
    max_psi = models.FloatField(null=True, blank=True)
    breaches = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-computed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} monitor of v{self.model_version_id} at {self.computed_at:%Y-%m-%d}"


class FairnessLimits(models.Model):
    """What the fairness check (`learning.services.fairness`) tolerates for a kind, between the
    groups of a protected attribute (age band, region, the marked `ProtectedAttribute`s): each
    limit empty is not judged. One row per kind, edited in the admin (changes audited). A
    breach tells the admins and, with `pause_on_breach`, pauses the kind's auto-approval like
    the calibration monitor does."""

    kind = models.CharField(max_length=20, choices=PredictionKind.choices, unique=True)
    window_days = models.PositiveIntegerField(
        default=365,
        validators=[MinValueValidator(1)],
        help_text="The decisions of the last this many days are measured.",
    )
    min_group_size = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1)],
        help_text="A rate resting on fewer items than this is reported as too small and left "
        "out of the comparisons between groups.",
    )
    max_parity_difference = models.FloatField(
        null=True,
        blank=True,
        default=0.1,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share called churn: highest group minus lowest, at most (model and final "
        "decisions).",
    )
    min_parity_ratio = models.FloatField(
        null=True,
        blank=True,
        default=0.8,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share called churn: lowest group over highest, at least (0.8: the "
        "four-fifths rule).",
    )
    max_equalized_odds_difference = models.FloatField(
        null=True,
        blank=True,
        default=0.1,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="The larger of the true and false positive rate differences, at most.",
    )
    max_calibration_difference = models.FloatField(
        null=True,
        blank=True,
        default=0.1,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Predicted minus observed churn: highest group minus lowest, at most.",
    )
    max_override_difference = models.FloatField(
        null=True,
        blank=True,
        default=0.1,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="People's overrides of the model (all, toward churn, toward stay): highest "
        "group's rate minus lowest, at most.",
    )
    pause_on_breach = models.BooleanField(
        default=False,
        help_text="A breach also pauses auto-approval of the kind (everything goes to people) "
        "until an admin resumes it.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "fairness limits"
        permissions = [
            ("view_fairness", "Can see fairness by protected group (age band, region)"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} fairness limits"


class FairnessCheck(models.Model):
    """One run of the fairness check of a kind: how many decisions it measured and the limits
    they breached (`breaches`: [{key, text}], `Breach.key` and its sentence). Admins are told
    when the limits breached differ from the previous check's, not every day again."""

    kind = models.CharField(max_length=20, choices=PredictionKind.choices)
    computed_at = models.DateTimeField(auto_now_add=True)
    decisions = models.PositiveIntegerField(default=0)
    breaches = models.JSONField(default=list, blank=True)
    paused = models.BooleanField(default=False, help_text="Whether it paused auto-approval.")

    class Meta:
        ordering = ["-computed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} fairness check at {self.computed_at:%Y-%m-%d}"


def validate_markable_key(key: str) -> None:
    reason = markable_key_error(key)
    if reason:
        raise ValidationError(reason)


class ProtectedAttribute(models.Model):
    """A member attribute (a key of `Member.attributes`) that an admin marked as protected: the
    fairness reports and the daily check measure and judge it beside age band and region.
    Marked and unmarked on the Fairness page or in the admin, each change audited
    (`learning.services.protected_attributes`). Analysts never see it, nor its values."""

    key = models.CharField(
        max_length=MAX_KEY_LENGTH,
        unique=True,
        validators=[validate_attribute_key, validate_markable_key],
        help_text="The attribute's key among the members' attributes (e.g. income).",
    )
    label = models.CharField(max_length=64, help_text="How the reports name it.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.label
