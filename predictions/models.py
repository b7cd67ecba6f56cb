"""The model registry, scoring runs and the predictions they store."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from loyalty.models import Action, Member


class PredictionKind(models.TextChoices):
    CHURN = "churn", "Churn risk"
    NEXT_ACTION = "next_action", "Next best action"


class ModelVersion(models.Model):
    """One trained model in the registry, with everything needed to trust and reload it.

    Exactly one active version per kind (a partial unique index); promotion and rollback are
    services that change statuses in one transaction.
    """

    class Status(models.TextChoices):
        CANDIDATE = "candidate"
        ACTIVE = "active"
        RETIRED = "retired"

    kind = models.CharField(max_length=20, choices=PredictionKind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CANDIDATE)
    algorithm = models.CharField(max_length=40, help_text="What won the validation split.")
    evaluation_cutoff = models.DateTimeField()
    training_cutoffs = models.JSONField(default=list)
    horizon_days = models.IntegerField(null=True, blank=True)
    row_counts = models.JSONField(default=dict)
    data_fingerprint = models.CharField(max_length=64)
    features = models.JSONField(default=list, help_text="[{code, name, description}] in order.")
    hyperparameters = models.JSONField(default=dict)
    library_versions = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict)
    global_importance = models.JSONField(default=dict)
    artifact_path = models.CharField(max_length=500)
    artifact_checksums = models.JSONField(default=dict, help_text="{file name: sha256}")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    promoted_at = models.DateTimeField(null=True, blank=True)
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind"], condition=Q(status="active"), name="one_active_version_per_kind"
            ),
        ]
        permissions = [("promote_modelversion", "Can promote or roll back a model version")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} v{self.pk} ({self.status})"

    @property
    def feature_codes(self) -> tuple[str, ...]:
        """The model's feature codes, in the order its predictions store their values."""
        return tuple(feature["code"] for feature in self.features)


class ScoringSetting(models.Model):
    """Which of a version's models scoring serves, per prediction kind (one row per kind; no
    row means the default). Changed only through `services.settings.set_scoring_model`, which
    audits every change; a change applies to scoring runs started after it.

    - trees: the trees alone (the version's winner among the models that need no event
      sequences: XGBoost or a baseline), whatever else the version holds;
    - selected (default): the tree + sequence ensemble where the version's own selection rule
      picked it over the trees, the trees elsewhere;
    - ensemble: the ensemble wherever the version has one, even where the trees won the
      selection (an admin's call after comparing the two in the registry).
    The next-best-action model has no sequence model: it is always served by its trees.
    """

    class Choice(models.TextChoices):
        TREES = "trees", "Trees alone"
        SELECTED = "selected", "The ensemble where it won the version's selection, else trees"
        ENSEMBLE = "ensemble", "The tree + sequence ensemble wherever the version has one"

    kind = models.CharField(max_length=20, choices=PredictionKind.choices, unique=True)
    model = models.CharField(max_length=20, choices=Choice.choices, default=Choice.SELECTED)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["kind"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.get_model_display()}"

    def clean(self) -> None:
        if self.kind == PredictionKind.NEXT_ACTION and self.model == self.Choice.ENSEMBLE:
            raise ValidationError(
                {"model": "The next-best-action model has no sequence model: only its trees."}
            )


class ScoringRun(models.Model):
    """One scoring pass of a model version over members, split into chunks.

    The pending state of every chunk lives here, not only in the broker: a sweep re-sends a
    chunk whose worker died, so a run always finishes.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    class Scope(models.TextChoices):
        FULL = "full", "Every scorable member"
        REFRESH = "refresh", "The members whose scores were due (changed or stale)"

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="runs")
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.FULL)
    # The last run of a cycle (next action, then churn: `scoring.runs.CYCLE_ORDER`) brings its
    # members' freshness up to date (`Member.scored_through`) as its chunks are written.
    closes_cycle = models.BooleanField(default=True)
    value_points = models.JSONField(
        default=list,
        blank=True,
        help_text="A full run's population: its members' values at evenly spaced quantiles. "
        "Routing takes the expert value threshold and the priority percentiles from the "
        "latest full run's, so that a partial run is routed as the whole population would be.",
    )
    cutoff = models.DateTimeField(help_text="Features see events strictly before this time.")
    served_model = models.CharField(
        max_length=20,
        default="trees",
        help_text="Which of the version's models scores this run ('trees' or 'ensemble'), "
        "resolved from the scoring setting when the run starts: every chunk uses the same.",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    chunk_size = models.IntegerField()
    members_total = models.IntegerField(default=0)
    members_scored = models.IntegerField(default=0)
    members_skipped_no_consent = models.IntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.model_version} at {self.cutoff:%Y-%m-%d}"


class ScoringChunk(models.Model):
    """A slice of a run's members, scored by one task. Rerunning it writes nothing twice."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        FAILED = "failed"

    run = models.ForeignKey(ScoringRun, on_delete=models.CASCADE, related_name="chunks")
    index = models.IntegerField()
    member_ids = models.JSONField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.IntegerField(default=0)
    scored = models.IntegerField(default=0)
    skipped_no_consent = models.IntegerField(default=0)
    error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="one_chunk_per_run_index")
        ]
        indexes = [models.Index(fields=["status", "sent_at"], name="chunk_status_sent")]

    def __str__(self) -> str:
        return f"chunk {self.index} of run {self.run_id} ({self.status})"


class Prediction(models.Model):
    """One model version's output for one member at one cutoff.

    Churn: `score` is the calibrated churn probability, `interval_low`/`interval_high` its
    interval, `label_set` the conformal set of {stay, churn}. Next action: `probabilities` maps
    action code to probability, `label_set` the conformal set of action codes,
    `recommended_action` the most probable eligible action. `explanation` holds the base value,
    the top SHAP contributions and the remainder; it is {} until computed (scoring stores none:
    `services.explanations` computes it when routing gives the prediction to a person, or when
    someone first opens it) and stays {} for a member who may not be profiled.
    `served_model` says which of the version's models scored it ('trees' or 'ensemble') and
    `model_input` holds the very row it scored: its explanation comes from the same model and
    the same numbers, whenever it is computed. `feature_values` is what the model saw: a
    list in the order of `model_version.features` (the keys are not repeated in every row: a
    list is a third of the size of the mapping, and writing it is most of the scoring write);
    `features_seen` gives it as a mapping. `member_value` is the member's value at the cutoff
    (spend over the last 365 days), the one feature that routing and the queue read.
    `rfm_segment` is the member's RFM segment at the cutoff (`predictions.ml.segments`), data
    about the member rather than the model's answer: routing, the queue and policies read it.
    `behavior_cluster` is the member's behavioral cluster (`predictions.ml.clusters`): a number
    within the model version's clustering, meaningless across versions; shown and filtered by,
    never read by a policy.
    """

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="predictions"
    )
    kind = models.CharField(max_length=20, choices=PredictionKind.choices)
    cutoff = models.DateTimeField()
    scored_at = models.DateTimeField(auto_now_add=True)
    score = models.FloatField(null=True, blank=True)
    probabilities = models.JSONField(null=True, blank=True)
    interval_low = models.FloatField(null=True, blank=True)
    interval_high = models.FloatField(null=True, blank=True)
    label_set = models.JSONField(default=list)
    recommended_action = models.ForeignKey(
        Action, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    confidence = models.FloatField()
    served_model = models.CharField(
        max_length=20,
        default="trees",
        help_text="Which of the version's models scored it ('trees' or 'ensemble', the run's "
        "served_model): its explanation is computed with the same one.",
    )
    explanation = models.JSONField(default=dict)
    feature_values = models.JSONField(
        default=list, help_text="Values in the order of the model version's features."
    )
    member_value = models.FloatField(null=True, blank=True)
    rfm_segment = models.CharField(
        max_length=32,
        blank=True,
        default="",
        db_default="",
        help_text="The member's RFM segment at the cutoff (predictions.ml.segments, on the "
        "model version's RFM scale); empty for a version trained before segments.",
    )
    behavior_cluster = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="The member's behavioral cluster at the cutoff: its number within the model "
        "version's clustering (predictions.ml.clusters); empty for a version without one.",
    )
    model_input = models.BinaryField(
        null=True,
        blank=True,
        help_text="The row the model scored: float32, little-endian, in the order of the model "
        "version's features (feature_values is its readable copy, rounded).",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["member", "model_version", "cutoff"], name="one_prediction_per_cutoff"
            ),
        ]
        indexes = [
            models.Index(fields=["member", "kind", "-scored_at"], name="prediction_member_kind"),
            models.Index(fields=["model_version", "cutoff"], name="prediction_version_cutoff"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.member_id} by v{self.model_version_id}"

    @property
    def features_seen(self) -> dict[str, float | None]:
        """{feature code: value the model saw}; None where the value was missing."""
        codes = self.model_version.feature_codes
        return dict(zip(codes, self.feature_values or [], strict=False))
