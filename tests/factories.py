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
