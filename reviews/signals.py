"""What the review workflow announces to the layers above it (the learning loop), which
react without the workflow importing them."""

from django.dispatch import Signal

# Sent inside the deciding transaction with `decision_id`, once a person's decision is stored.
# Receivers that queue work must do it with transaction.on_commit.
decision_recorded = Signal()
