"""Write side of the review workflow: every change to a review goes through here."""
