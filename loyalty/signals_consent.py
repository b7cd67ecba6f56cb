"""What the loyalty layer announces about consent to profiling, for higher layers to act on."""

from django.dispatch import Signal

# Sent inside the transaction that withdraws consent to profiling, with `member_ids` (a list of
# member pks whose consent went from given to withdrawn), so that a higher layer (reviews)
# takes the members' undecided work out of its queues in the same commit, without this layer
# importing it. Set by `services.members.set_consent` and by the CSV member import.
consent_withdrawn = Signal()
