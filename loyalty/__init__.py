"""Loyalty Review: project wiring and the loyalty program's own data."""

from loyalty.celery import app as celery_app

__all__ = ("celery_app",)
