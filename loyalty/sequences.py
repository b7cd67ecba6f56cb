"""Gap-tolerant, commit-ordered sequence numbers for feeds that readers page through.

An autoincrement id is assigned when a row is inserted, not when it commits: a reader that
saw id 11 and asks for "after 11" skips an id 10 committed a moment later. A value handed out
here holds the counter's row lock until its transaction ends, so a later value cannot commit
before an earlier one (a rolled-back transaction leaves a gap, which readers never wait on).
"""

from django.db import IntegrityError, transaction

from loyalty.models import Counter


def next_values(name: str, count: int = 1) -> range:
    """`count` consecutive values of the counter `name`, locked until the caller's transaction
    ends. Call it inside that transaction, as late as possible: it serializes writers."""
    if count < 1:
        raise ValueError("count must be at least 1")
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("next_values needs the caller's transaction")
    counter = _locked(name)
    first = counter.value + 1
    counter.value += count
    counter.save(update_fields=["value"])
    return range(first, first + count)


def _locked(name: str) -> Counter:
    try:
        return Counter.objects.select_for_update().get(name=name)
    except Counter.DoesNotExist:
        try:
            with transaction.atomic():
                Counter.objects.create(name=name)
        except IntegrityError:  # created by a concurrent writer meanwhile
            pass
        return Counter.objects.select_for_update().get(name=name)
