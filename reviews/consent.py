"""The review workflow's answer to a withdrawn consent to profiling: the member's undecided
reviews leave the queues (decided ones stay as the history they are)."""

from django.dispatch import receiver

from loyalty.signals import consent_withdrawn
from reviews.services.withdrawal import withdraw_pending_reviews

# The route reason a person reads on a review that left the queue this way.
CONSENT_WITHDRAWN_REASON = "consent to profiling withdrawn"


@receiver(consent_withdrawn, dispatch_uid="reviews.withdraw_reviews_without_consent")
def withdraw_reviews_without_consent(sender, *, member_ids: list[int], **kwargs) -> None:
    """Runs in the withdrawing transaction: the reviews leave together with the consent."""
    withdraw_pending_reviews(member_ids=member_ids, why=CONSENT_WITHDRAWN_REASON)
