"""Queue, member page and decisions (built by the review-workspace pages)."""

urlpatterns: list = []
