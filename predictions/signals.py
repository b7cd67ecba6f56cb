"""Announcements of the prediction engine to higher layers (reviews connects to them).

Declared here so that this layer never imports the one above it.
"""

from django.dispatch import Signal

# Sent inside the transaction that finishes a scoring run, with `run_id`, `kind` and
# `model_version_id`. Receivers that queue work must do it with transaction.on_commit.
scoring_run_finished = Signal()

# Sent inside the transaction of a promotion or rollback, with `kind` and `model_version_id`
# (the version that is active now).
model_version_activated = Signal()
