"""values_frame: the same typed columns from COPY (PostgreSQL) as from the cursor (SQLite)."""

from decimal import Decimal

import numpy as np
import pytest

from loyalty.models import Event
from loyalty.query_frames import values_frame
from tests.factories import EventFactory, MemberFactory

pytestmark = pytest.mark.django_db

TYPES = {
    "member_id": "int64",
    "amount": "float64",
    "dwell_seconds": "float64",
    "category": "string",
    "product_id": "string",
}


def test_nulls_empties_quotes_and_numbers_come_back_as_stored():
    member = MemberFactory()
    EventFactory(member=member, amount=Decimal("12.34"), dwell_seconds=None, category="")
    EventFactory(member=member, amount=None, dwell_seconds=0.1, category='Dairy, "fresh"\nand more')
    EventFactory(member=member, amount=Decimal("-0.05"), dwell_seconds=1e-7, category="NULL")

    frame = values_frame(Event.objects.order_by("pk"), TYPES)

    assert list(frame.columns) == list(TYPES)
    assert frame["member_id"].dtype == np.int64 and frame["amount"].dtype == np.float64
    assert frame["member_id"].tolist() == [member.pk] * 3
    np.testing.assert_array_equal(frame["amount"].to_numpy(), [12.34, np.nan, -0.05])
    np.testing.assert_array_equal(frame["dwell_seconds"].to_numpy(), [np.nan, 0.1, 1e-7])
    assert frame["category"].tolist() == ["", 'Dairy, "fresh"\nand more', "NULL"]
    assert frame["product_id"].tolist() == ["", "", ""]


def test_no_rows_gives_empty_typed_columns():
    frame = values_frame(Event.objects.none() | Event.objects.filter(pk=-1), TYPES)

    assert len(frame) == 0
    assert list(frame.columns) == list(TYPES)
    assert frame["amount"].dtype == np.float64
