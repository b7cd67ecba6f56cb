"""API routes of the loyalty program's data."""

urlpatterns: list = []
