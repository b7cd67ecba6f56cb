"""A member's erasure reaches the learning loop: their labeled examples are deleted, so they
leave every future training set."""

from django.dispatch import receiver

from learning.models import LabeledExample
from loyalty.signals import member_erased


@receiver(member_erased, dispatch_uid="learning.erase_member_examples")
def erase_member_examples(sender, *, member_id: int, **kwargs) -> None:
    """Runs in the erasure's transaction: the examples go with the member or not at all."""
    LabeledExample.objects.filter(member_id=member_id).delete()
