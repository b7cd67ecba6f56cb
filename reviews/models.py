"""Escalation policy, reviews and decisions (built by the review-workspace issue)."""
