"""The human side: escalation policies, reviews of predictions, decisions and their reasons."""

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from loyalty.models import Action, Member
from predictions.models import Prediction, PredictionKind


class EscalationPolicy(models.Model):
    """One version of the routing rules for a prediction kind. Never edited: a change is a new
    version (who, when, why), and every review records the version that routed it.

    - confidence >= `auto_approve_confidence`: approved automatically (unless another rule says
      a person must look);
    - confidence < `expert_confidence`: an expert decides;
    - in between: an analyst;
    - member value at or above the `expert_value_quantile` of the scored population: an expert
      decides whatever the confidence;
    - churn risk within [`human_risk_low`, `human_risk_high`]: never auto-approved;
    - `audit_sample_rate` of would-be auto-approvals still go to an analyst;
    - an analyst item waiting longer than `sla_hours` escalates to an expert;
    - a queue holds at most its daily capacity (`analyst_daily_capacity`,
      `expert_daily_capacity`; empty: no limit) of items awaiting a decision: the overflow waits
      in the backlog (`reviews.services.capacity`). A case counts against the churn policy's;
    - `blind_share` of the items routed to people open blind (`reviews.services.blind`): the
      model's answer stays hidden until the reviewer commits their own.
    `segment_overrides` maps a segment to replacements of the two confidence thresholds: a key
    "rfm:<segment>" an RFM segment (`predictions.ml.segments`), "rule:<slug>" a custom segment
    whose rule over member data is stored in its value (`reviews.custom_segments`), any other
    key a tier (plain, as before, or "tier:<tier>"); when several match, each threshold takes
    the most demanding value they set (`reviews.services.routing_rules.override_thresholds`).
    """

    class Ranking(models.TextChoices):
        PROPENSITY = "propensity", "By propensity: the action the member is likeliest to take up"
        EXPECTED_VALUE = (
            "expected_value",
            ("By expected value: P(churn) x retention gain x member value - cost"),
        )

    kind = models.CharField(max_length=20, choices=PredictionKind.choices)
    version = models.PositiveIntegerField()
    ranking = models.CharField(
        max_length=20,
        choices=Ranking.choices,
        default=Ranking.PROPENSITY,
        db_default=Ranking.PROPENSITY,
        help_text="How a next-action review picks the action it recommends.",
    )
    auto_approve_confidence = models.FloatField(default=0.9)
    expert_confidence = models.FloatField(default=0.5)
    expert_value_quantile = models.FloatField(default=0.95)
    human_risk_low = models.FloatField(null=True, blank=True, default=0.6)
    human_risk_high = models.FloatField(null=True, blank=True, default=1.0)
    audit_sample_rate = models.FloatField(default=0.02)
    sla_hours = models.PositiveIntegerField(default=48)
    # How many items people can decide a day in each queue: the queue holds at most this many
    # awaiting a decision. None: no limit (what every version before capacities meant).
    analyst_daily_capacity = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Items analysts can decide a day; the overflow waits in the backlog.",
    )
    expert_daily_capacity = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Items experts can decide a day; the overflow waits in the backlog.",
    )
    blind_share = models.FloatField(
        default=0.05,
        help_text="Share of the items routed to people that open blind: the model's answer is "
        "hidden until the reviewer commits their own.",
    )
    segment_overrides = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    change_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["kind", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "version"], name="one_policy_version"),
            models.CheckConstraint(
                condition=Q(expert_confidence__lte=models.F("auto_approve_confidence")),
                name="expert_below_auto_approve",
            ),
            models.CheckConstraint(
                condition=Q(audit_sample_rate__gte=0) & Q(audit_sample_rate__lte=1),
                name="audit_rate_is_a_share",
            ),
            models.CheckConstraint(
                condition=Q(blind_share__gte=0) & Q(blind_share__lte=1),
                name="blind_share_is_a_share",
            ),
            models.CheckConstraint(
                condition=Q(analyst_daily_capacity__isnull=True) | Q(analyst_daily_capacity__gte=1),
                name="analyst_capacity_is_positive",
            ),
            models.CheckConstraint(
                condition=Q(expert_daily_capacity__isnull=True) | Q(expert_daily_capacity__gte=1),
                name="expert_capacity_is_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} policy v{self.version}"

    def daily_capacity(self, route: str) -> int | None:
        """The items `route`'s queue may hold awaiting a decision (None: no limit, or no queue:
        auto-approval has none)."""
        return {
            "analyst": self.analyst_daily_capacity,
            "expert": self.expert_daily_capacity,
        }.get(route)


class ReasonCode(models.Model):
    """Why a person decided as they did, and what that means for training."""

    class Treatment(models.TextChoices):
        CONFIRM = "confirm", "Confirms the model (training label as predicted)"
        RELABEL = "relabel", "The human answer becomes the label"
        EXCLUDE = "exclude", "Bad data: do not train on this case"
        ESCALATE = "escalate", "Needs an expert"

    code = models.SlugField(max_length=50, unique=True)
    label = models.CharField(max_length=120)
    treatment = models.CharField(max_length=20, choices=Treatment.choices)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["treatment", "label"]

    def __str__(self) -> str:
        return self.label

    def fits(self, verdict: str) -> bool:
        """Whether this reason may back a verdict (VERDICT_TREATMENTS)."""
        return self.treatment in VERDICT_TREATMENTS.get(verdict, ())


# Which reason codes make sense for which verdict, on every path (form, API, quick decide): an
# approval confirms or flags bad data, an override relabels or flags bad data, an escalation
# names why an expert must look. An approval with a "wrong churn call" reason would train the
# model's own answer as a correction.
VERDICT_TREATMENTS = {
    "approve": (ReasonCode.Treatment.CONFIRM, ReasonCode.Treatment.EXCLUDE),
    "override": (ReasonCode.Treatment.RELABEL, ReasonCode.Treatment.EXCLUDE),
    "escalate": (ReasonCode.Treatment.ESCALATE,),
}


# What a review whose decision settles both the churn call and the action is called where it
# leaves the product (events, feeds, the API): a case.
CASE = "case"


class ReviewQuerySet(models.QuerySet):
    def queued(self, route: str | None = None) -> "ReviewQuerySet":
        """The items in people's queues (of `route`): pending, not waiting in the backlog. What
        the queues list and count, what the SLA escalates and what capacity counts."""
        queued = self.filter(state=Review.State.PENDING, in_backlog=False)
        return queued if route is None else queued.filter(route=route)

    def backlogged(self, route: str | None = None) -> "ReviewQuerySet":
        """The items waiting in the backlog (of `route`) until their queue has room."""
        waiting = self.filter(state=Review.State.PENDING, in_backlog=True)
        return waiting if route is None else waiting.filter(route=route)


class Review(models.Model):
    """The routing state of one prediction: who must look at it and whether anyone has.

    While both kinds have an active model, a review is a *case* (`reviews.services.cases`):
    `prediction` is the member's churn prediction of the cycle and `action_prediction` the
    next-action prediction it carries; one decision settles the churn call and what to do.
    Otherwise a review holds the one prediction of the only active kind.

    Denormalized member tier, value, risk and confidence make the queue one index scan (a
    case's confidence is the lower of its two predictions').

    A pending review is in its route's queue, or `in_backlog`: routed to people while the queue
    was at its policy's daily capacity, it waits (no due time, nobody decides it) until the
    queue has room (`reviews.services.capacity`). Being pending, it is superseded, withdrawn and
    re-routed like any pending review.
    """

    class Route(models.TextChoices):
        AUTO = "auto", "Auto-approved"
        ANALYST = "analyst", "Analyst"
        EXPERT = "expert", "Expert"

    class State(models.TextChoices):
        PENDING = "pending"
        DECIDED = "decided"
        AUTO_APPROVED = "auto_approved"
        # A newer prediction of the member (a re-score, a new model) replaced it undecided.
        SUPERSEDED = "superseded"
        # The member was erased or withdrew consent to profiling before anyone decided it.
        WITHDRAWN = "withdrawn"

    prediction = models.OneToOneField(Prediction, on_delete=models.CASCADE, related_name="review")
    # A case's next-action prediction: the member's newest at or before its churn cutoff. A
    # churn re-score carries the same one again, so several cases may share it.
    action_prediction = models.ForeignKey(
        Prediction, null=True, blank=True, on_delete=models.SET_NULL, related_name="case_reviews"
    )
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="reviews")
    kind = models.CharField(max_length=20, choices=PredictionKind.choices)
    route = models.CharField(max_length=20, choices=Route.choices)
    state = models.CharField(max_length=20, choices=State.choices)
    route_reason = models.CharField(max_length=300)
    policy = models.ForeignKey(EscalationPolicy, on_delete=models.PROTECT, related_name="+")
    # The next-action policy version that ranked and routed a case's action side.
    action_policy = models.ForeignKey(
        EscalationPolicy, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    priority = models.FloatField(help_text="Higher first; see reviews.routing.priority.")
    tier = models.CharField(max_length=32, blank=True)
    # The prediction's RFM segment (`predictions.ml.segments`), denormalized like the tier:
    # the queue filters by it and a policy's override may be keyed by it.
    rfm_segment = models.CharField(max_length=32, blank=True, default="", db_default="")
    member_value = models.FloatField(default=0.0)
    risk = models.FloatField(null=True, blank=True)
    confidence = models.FloatField()
    # A next-action review's recommendation, ranked when it was routed by its policy's
    # `ranking` (`reviews.services.action_ranking`): the action (None: nothing eligible) and
    # its expected value (None: no churn score to weigh it with).
    recommended_action = models.ForeignKey(
        Action, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    expected_value = models.FloatField(null=True, blank=True)
    # The contact rules the recommendation would break (`loyalty.contact_rules`), as routing
    # found them: such a review is never auto-approved.
    contact_flags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    routed_at = models.DateTimeField()
    due_at = models.DateTimeField(null=True, blank=True)
    # Pending but not in the queue: waiting in the backlog until the queue has room.
    in_backlog = models.BooleanField(default=False, db_default=False)
    # Opens blind (`reviews.services.blind`): nothing shows the model's answer (score,
    # confidence, route reason, risk, explanation) until a person commits a `BlindAnswer`.
    is_blind = models.BooleanField(default=False, db_default=False)
    escalated_at = models.DateTimeField(null=True, blank=True)
    escalated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    escalation_reason = models.ForeignKey(
        ReasonCode, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    escalation_comment = models.TextField(blank=True)
    analyst_proposal = models.JSONField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    objects = ReviewQuerySet.as_manager()

    class Meta:
        indexes = [
            # The queue (and its backlog) in order: `queued` and `backlogged` fix the first three.
            models.Index(
                fields=["route", "state", "in_backlog", "-priority", "id"],
                name="review_queue_order",
            ),
            models.Index(fields=["member", "-created_at"], name="review_member"),
            models.Index(fields=["state", "due_at"], name="review_due"),
        ]
        permissions = [
            ("decide_review", "Can decide reviews routed to analysts"),
            ("decide_escalated", "Can decide escalated reviews and override auto-approvals"),
        ]

    def __str__(self) -> str:
        return f"review {self.pk} ({self.route}, {self.state})"

    @property
    def is_escalated(self) -> bool:
        return self.escalated_at is not None

    @property
    def is_waiting(self) -> bool:
        """Whether it waits in the backlog: for people, but in no queue yet."""
        return self.state == Review.State.PENDING and self.in_backlog

    @property
    def is_case(self) -> bool:
        """Whether one decision settles both the churn call and the action."""
        return self.action_prediction_id is not None

    @property
    def decision_kind(self) -> str:
        """What the review decides, as events and the API name it: 'case', or its kind."""
        return CASE if self.is_case else self.kind

    @property
    def recommends_action(self) -> bool:
        """Whether the review ranks actions and recommends one (a case or a next-action
        review); a churn review settles only the churn call."""
        return self.is_case or self.kind == PredictionKind.NEXT_ACTION

    @property
    def settles_churn_call(self) -> bool:
        return self.kind == PredictionKind.CHURN

    @property
    def action_source(self) -> Prediction | None:
        """The prediction whose action probabilities the review ranks (None: it ranks none)."""
        if self.is_case:
            return self.action_prediction
        return self.prediction if self.kind == PredictionKind.NEXT_ACTION else None

    @property
    def ranking_policy(self) -> EscalationPolicy:
        """The policy version whose `ranking` picked the recommendation."""
        return self.action_policy if self.is_case else self.policy


class Decision(models.Model):
    """Who decided what about a review, when and why. Immutable; one per review.

    A person decides (`decided_as` analyst or expert), or the policy does when it auto-approves
    (`decided_as` "policy", no `decided_by`): both leave the product alike and neither is ever
    reopened. `settled_action` is what the decision settles on (the approved recommendation or
    the person's action; None for a churn review or when nothing is eligible). `announced`:
    whether it left as an event; a re-score that settles on the member's last action again
    within the action's cooldown is recorded, not sent again (`silenced_because` says so)."""

    class Verdict(models.TextChoices):
        APPROVE = "approve"
        OVERRIDE = "override"

    POLICY = "policy"

    review = models.OneToOneField(Review, on_delete=models.CASCADE, related_name="decision")
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="decisions")
    verdict = models.CharField(max_length=20, choices=Verdict.choices)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="decisions",
    )
    decided_as = models.CharField(
        max_length=20, help_text="The role the person decided in, or policy (automatic)."
    )
    settled_action = models.ForeignKey(
        Action, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    announced = models.BooleanField(default=True, db_default=True)
    silenced_because = models.CharField(max_length=200, blank=True, db_default="")
    # The contact rules the decision broke, each overridden by the person with their reason.
    contact_flags = models.JSONField(default=list, blank=True)
    decided_at = models.DateTimeField(auto_now_add=True)
    # The decision feed's order (`loyalty.sequences`): assigned under a lock held until the
    # decision commits, so a reader paging by it never skips a decision committed late.
    sequence = models.PositiveBigIntegerField(unique=True, editable=False)
    reason = models.ForeignKey(ReasonCode, on_delete=models.PROTECT, related_name="decisions")
    comment = models.TextField(blank=True)
    churn_label = models.BooleanField(
        null=True, blank=True, help_text="Override of a churn call: will this member churn?"
    )
    action = models.ForeignKey(
        Action,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Override of a next action: the right action.",
    )
    # A control group (loyalty.control_groups): recorded, never executed; drawn, never chosen.
    held_out = models.BooleanField(default=False)
    holdout_reason = models.CharField(max_length=32, blank=True)
    holdout_draw = models.FloatField(null=True, blank=True)
    seconds_on_item = models.FloatField(
        null=True,
        blank=True,
        help_text="Seconds from the decider's first opening of the item (`ReviewOpening`) to "
        "the decision; empty when they decided without opening it (quick or bulk approve, "
        "the API) or the policy decided.",
    )

    class Meta:
        ordering = ["-decided_at", "-id"]
        indexes = [
            # The contact rules count a member's and an action's recent executed decisions.
            models.Index(fields=["member", "-decided_at"], name="decision_member_recent"),
            models.Index(fields=["settled_action", "-decided_at"], name="decision_action_recent"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(decided_as="policy") | Q(decided_by__isnull=False),
                name="a_person_decision_names_the_person",
            )
        ]

    def __str__(self) -> str:
        return f"{self.verdict} of review {self.review_id} by {self.decided_by_id or 'policy'}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("Decisions are immutable.")
        super().save(*args, **kwargs)

    @property
    def decider(self) -> str:
        """Who decided, as pages and feeds name them."""
        if self.decided_by_id is None:
            return "policy"
        return self.decided_by.get_username()


class Notification(models.Model):
    """An in-app message to one person (also sent by email where they have an address)."""

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    subject = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    link = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["recipient", "read_at"], name="notification_unread")]

    def __str__(self) -> str:
        return f"to {self.recipient_id}: {self.subject}"


class PauseQuerySet(models.QuerySet):
    def open(self) -> "PauseQuerySet":
        """The pauses in force (at most one per kind, by a constraint)."""
        return self.filter(resumed_at__isnull=True)


class AutomationPause(models.Model):
    """Auto-approval of a kind is off while a pause is open (`resumed_at` empty): routing
    sends every prediction to people. Opened by the calibration monitor, closed by an admin or
    by the promotion of a new version."""

    kind = models.CharField(max_length=20, choices=PredictionKind.choices)
    paused_at = models.DateTimeField(auto_now_add=True)
    reason = models.CharField(max_length=300)
    monitor_report_id = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="The monitor report that opened the pause, if any."
    )
    resumed_at = models.DateTimeField(null=True, blank=True)
    resumed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resume_reason = models.CharField(max_length=300, blank=True)

    objects = PauseQuerySet.as_manager()

    class Meta:
        ordering = ["-paused_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind"],
                condition=Q(resumed_at__isnull=True),
                name="one_open_pause_per_kind",
            )
        ]

    def __str__(self) -> str:
        state = "open" if self.resumed_at is None else "closed"
        return f"{self.kind} auto-approval pause ({state})"


class ReviewOpening(models.Model):
    """When a person first opened an item awaiting a decision (its member page): the start of
    their time on it (`Decision.seconds_on_item`). Opening it again changes nothing."""

    review = models.ForeignKey(Review, on_delete=models.CASCADE, related_name="openings")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    opened_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["review", "user"], name="one_opening_per_person")
        ]

    def __str__(self) -> str:
        return (
            f"review {self.review_id} opened by {self.user_id} at {self.opened_at:%Y-%m-%d %H:%M}"
        )


class BlindAnswer(models.Model):
    """A person's own answer to a blind review, committed before the model's was shown: their
    churn call and, where the review recommends one, their action. Immutable and one per
    review: the decision that follows may confirm or revise it, never overwrite it."""

    review = models.OneToOneField(Review, on_delete=models.CASCADE, related_name="blind_answer")
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    churn_label = models.BooleanField(help_text="The person's call: will this member churn?")
    action = models.ForeignKey(
        Action, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The model's churn call on the item, as it stood when the answer was committed.
    model_churn_call = models.BooleanField()
    committed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"blind answer to review {self.review_id} by {self.user_id}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("Blind answers are immutable.")
        super().save(*args, **kwargs)


class ExperimentQuerySet(models.QuerySet):
    def running(self) -> "ExperimentQuerySet":
        return self.filter(ended_at__isnull=True)


class PolicyExperiment(models.Model):
    """An A/B test of two policy versions of one kind (`reviews.services.experiments`): each
    member falls in an arm by a stable hash of `salt` and their id (`challenger_share` of them
    in the challenger's) and is routed and re-routed by their arm's version, until the test
    ends (at `ends_at`, after `max_decisions` person decisions, or by hand) with a version
    adopted."""

    kind = models.CharField(max_length=20, choices=PredictionKind.choices)
    champion = models.ForeignKey(EscalationPolicy, on_delete=models.PROTECT, related_name="+")
    challenger = models.ForeignKey(EscalationPolicy, on_delete=models.PROTECT, related_name="+")
    challenger_share = models.FloatField(default=0.5)
    salt = models.CharField(max_length=32)
    hypothesis = models.TextField(blank=True)
    started_at = models.DateTimeField()
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ends_at = models.DateTimeField(null=True, blank=True)
    max_decisions = models.PositiveIntegerField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The policy version the end created from the winning arm (None: still running).
    adopted = models.ForeignKey(
        EscalationPolicy, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    end_reason = models.TextField(blank=True)

    objects = ExperimentQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind"],
                condition=Q(ended_at__isnull=True),
                name="one_running_experiment_per_kind",
            ),
            models.CheckConstraint(
                condition=Q(challenger_share__gt=0) & Q(challenger_share__lt=1),
                name="challenger_share_is_a_proper_share",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} policy test v{self.champion.version} vs v{self.challenger.version}"
