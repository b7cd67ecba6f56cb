"""API routes of the review workflow."""

urlpatterns: list = []
