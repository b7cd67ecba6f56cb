"""Policy settings with simulation, and the audit log."""

urlpatterns: list = []
