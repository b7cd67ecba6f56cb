"""factory_boy factories for the program's data."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import factory

from loyalty.models import Action, Event, Member


class MemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Member

    external_id = factory.Sequence(lambda n: f"M{n:06d}")
    joined_on = date(2024, 1, 15)
    tier = "silver"
    points_balance = 1200
    consent_profiling = True
    consent_marketing = True
    age_band = "35-44"
    region = "north"


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    member = factory.SubFactory(MemberFactory)
    occurred_at = factory.Sequence(lambda n: datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=n))
    kind = Event.Kind.PURCHASE
    amount = Decimal("12.50")
    quantity = 1.0
    category = "GROCERY"
    channel = "store"
    session_id = factory.Sequence(lambda n: f"S{n}")
    product_id = ""


class ActionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Action

    code = factory.Sequence(lambda n: f"action-{n}")
    name = factory.Sequence(lambda n: f"Action {n}")
    cost = Decimal("5.00")


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "predictions.ModelVersion"

    kind = "churn"
    algorithm = "xgboost"
    evaluation_cutoff = datetime(2025, 10, 1, tzinfo=UTC)
    data_fingerprint = "0" * 64
    artifact_path = "/nonexistent"


class PredictionFactory(factory.django.DjangoModelFactory):
    """A churn prediction; pass `spend` to set the member value the router reads."""

    class Meta:
        model = "predictions.Prediction"

    class Params:
        spend = 100.0

    member = factory.SubFactory(MemberFactory)
    model_version = factory.SubFactory(ModelVersionFactory)
    kind = "churn"
    cutoff = datetime(2026, 1, 1, tzinfo=UTC)
    score = 0.3
    interval_low = 0.25
    interval_high = 0.35
    label_set = factory.LazyFunction(lambda: ["stay"])
    confidence = 0.8
    explanation = factory.LazyFunction(dict)
    member_value = factory.SelfAttribute("spend")


def people_decisions():
    """The decisions people made (an auto-approval is the policy's decision, made at routing)."""
    from reviews.models import Decision

    return Decision.objects.exclude(decided_as=Decision.POLICY)
