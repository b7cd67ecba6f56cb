"""What the loyalty layer announces (consent withdrawn, a member erased), for higher layers to
act on without this layer importing them."""

from django.dispatch import Signal

# Sent inside the transaction that withdraws consent to profiling, with `member_ids` (a list of
# member pks whose consent went from given to withdrawn), so that a higher layer (reviews)
# takes the members' undecided work out of its queues in the same commit, without this layer
# importing it. Set by `services.members.set_consent` and by the CSV member import.
consent_withdrawn = Signal()

# Sent inside the erasure's transaction, before the member row is blanked, with `member_id`
# and `external_id` (the former id, for finding text that names it), so that a higher layer
# (predictions, reviews) deletes or blanks what it derived from the member in the same commit,
# without this layer importing it. Sent by `services.erasure.erase_member`.
member_erased = Signal()
